//! MCP content: [`Content`] blocks, [`ResourceContents`], and the result types of tools
//! ([`CallToolResult`]) and prompts ([`PromptMessage`], [`GetPromptResult`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// One content block of a tool result or prompt message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum Content {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, base64-encoded.
    Image {
        /// Base64 data.
        data: String,
        /// E.g. `image/png`.
        mime_type: String,
    },
    /// Audio, base64-encoded.
    Audio {
        /// Base64 data.
        data: String,
        /// E.g. `audio/wav`.
        mime_type: String,
    },
    /// An embedded resource.
    Resource {
        /// The resource's contents.
        resource: ResourceContents,
    },
    /// A link to a resource the client can read.
    ResourceLink {
        /// The resource's URI.
        uri: String,
        /// Its name.
        name: String,
        /// What it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Its MIME type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
    },
}

impl Content {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// An image block from raw bytes (encoded here).
    pub fn image(bytes: &[u8], mime_type: impl Into<String>) -> Self {
        Self::Image { data: encode(bytes), mime_type: mime_type.into() }
    }

    /// An image block from data that is already base64.
    pub fn image_base64(data: impl Into<String>, mime_type: impl Into<String>) -> Self {
        Self::Image { data: data.into(), mime_type: mime_type.into() }
    }

    /// An audio block from raw bytes (encoded here).
    pub fn audio(bytes: &[u8], mime_type: impl Into<String>) -> Self {
        Self::Audio { data: encode(bytes), mime_type: mime_type.into() }
    }

    /// An audio block from data that is already base64.
    pub fn audio_base64(data: impl Into<String>, mime_type: impl Into<String>) -> Self {
        Self::Audio { data: data.into(), mime_type: mime_type.into() }
    }

    /// An embedded resource block.
    pub fn resource(resource: ResourceContents) -> Self {
        Self::Resource { resource }
    }

    /// A resource link block.
    pub fn resource_link(uri: impl Into<String>, name: impl Into<String>) -> Self {
        Self::ResourceLink { uri: uri.into(), name: name.into(), description: None, mime_type: None }
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            _ => None,
        }
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<ResourceContents> for Content {
    fn from(resource: ResourceContents) -> Self {
        Self::resource(resource)
    }
}

/// The contents of a resource: text or a base64 blob, at a URI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceContents {
    uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
}

impl ResourceContents {
    /// Text contents.
    pub fn text(uri: impl Into<String>, text: impl Into<String>) -> Self {
        Self { uri: uri.into(), mime_type: None, text: Some(text.into()), blob: None }
    }

    /// Binary contents from raw bytes (encoded here).
    pub fn blob(uri: impl Into<String>, bytes: &[u8]) -> Self {
        Self::blob_base64(uri, encode(bytes))
    }

    /// Binary contents from data that is already base64.
    pub fn blob_base64(uri: impl Into<String>, data: impl Into<String>) -> Self {
        Self { uri: uri.into(), mime_type: None, text: None, blob: Some(data.into()) }
    }

    /// Sets the MIME type.
    pub fn with_mime_type(mut self, mime_type: impl Into<String>) -> Self {
        self.mime_type = Some(mime_type.into());
        self
    }

    /// Sets the MIME type unless one is set already.
    pub(crate) fn or_mime_type(mut self, mime_type: Option<&str>) -> Self {
        if self.mime_type.is_none() {
            self.mime_type = mime_type.map(str::to_owned);
        }
        self
    }

    /// The URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The MIME type.
    pub fn mime_type(&self) -> Option<&str> {
        self.mime_type.as_deref()
    }

    /// The text, for text contents.
    pub fn as_text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The base64 data, for binary contents.
    pub fn as_blob_base64(&self) -> Option<&str> {
        self.blob.as_deref()
    }
}

/// A `tools/call` result. Tools usually return plain values and let the SDK build this; return
/// it directly for full control (several content blocks, `isError`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// The content blocks.
    pub content: Vec<Content>,
    /// Structured output (a JSON object matching the tool's output schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// Whether this reports a tool execution error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl CallToolResult {
    /// A successful result with these blocks.
    pub fn success(content: Vec<Content>) -> Self {
        Self { content, structured_content: None, is_error: false }
    }

    /// A successful result with one text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::success(vec![Content::text(text)])
    }

    /// A tool execution error (`isError: true`) with these blocks.
    pub fn error(content: Vec<Content>) -> Self {
        Self { content, structured_content: None, is_error: true }
    }

    /// A tool execution error with one text block.
    pub fn error_text(message: impl Into<String>) -> Self {
        Self::error(vec![Content::text(message)])
    }

    /// Adds structured content (it should match the tool's output schema).
    pub fn with_structured_content(mut self, value: Value) -> Self {
        self.structured_content = Some(value);
        self
    }
}

/// Who speaks a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: Content,
}

impl PromptMessage {
    /// A message.
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self { role, content: content.into() }
    }

    /// A user message (text, or any [`Content`]).
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message (text, or any [`Content`]).
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A `prompts/get` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GetPromptResult {
    /// A description of this rendering of the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The messages.
    pub messages: Vec<PromptMessage>,
}

impl GetPromptResult {
    /// A result with these messages.
    pub fn new(messages: Vec<PromptMessage>) -> Self {
        Self { description: None, messages }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn content_serializes_with_mcp_field_names() {
        let blocks = vec![
            Content::text("hi"),
            Content::image(&[1, 2, 3], "image/png"),
            Content::resource(ResourceContents::text("test://x", "body").with_mime_type("text/plain")),
            Content::resource_link("test://y", "y"),
        ];
        assert_eq!(
            serde_json::to_value(&blocks).unwrap(),
            json!([
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "AQID", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://x", "mimeType": "text/plain", "text": "body"}},
                {"type": "resource_link", "uri": "test://y", "name": "y"},
            ])
        );
    }

    #[test]
    fn call_tool_result_omits_is_error_unless_set() {
        assert_eq!(
            serde_json::to_value(CallToolResult::text("a")).unwrap(),
            json!({"content": [{"type": "text", "text": "a"}]})
        );
        assert_eq!(
            serde_json::to_value(CallToolResult::error_text("b")).unwrap(),
            json!({"content": [{"type": "text", "text": "b"}], "isError": true})
        );
    }

    #[test]
    fn prompt_messages_serialize_roles_in_lowercase() {
        assert_eq!(
            serde_json::to_value(PromptMessage::assistant("ok")).unwrap(),
            json!({"role": "assistant", "content": {"type": "text", "text": "ok"}})
        );
    }
}
