//! Tools: [`ToolDef`] (what `#[tool]` generates, or what you build by hand), [`ToolSpec`],
//! and the conversion of return values into a `CallToolResult` ([`IntoToolResult`], [`Json`],
//! [`Structured`]).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{CallToolResult, Content, Context, Error, schema};

/// A tool's handler: the request context and the `arguments` object.
pub type ToolHandler = fn(&Context, Value) -> Result<CallToolResult, Error>;

/// A tool: its descriptor and handler. `#[tool]` builds one; build one by hand (all
/// constructors are `const`) for what the attribute cannot express, and hand it to `server!`
/// through a type implementing [`ToolSpec`].
#[derive(Clone, Copy)]
pub struct ToolDef {
    pub(crate) name: &'static str,
    pub(crate) title: Option<&'static str>,
    pub(crate) description: Option<&'static str>,
    pub(crate) input_schema: fn() -> Value,
    pub(crate) output_schema: fn() -> Option<Value>,
    pub(crate) annotations: Option<ToolAnnotations>,
    pub(crate) call: ToolHandler,
}

fn no_output_schema() -> Option<Value> {
    None
}

impl ToolDef {
    /// A tool named `name` whose arguments follow `input_schema` (a JSON Schema object).
    pub const fn new(name: &'static str, input_schema: fn() -> Value, call: ToolHandler) -> Self {
        Self {
            name,
            title: None,
            description: None,
            input_schema,
            output_schema: no_output_schema,
            annotations: None,
            call,
        }
    }

    /// Sets the human-readable title.
    pub const fn with_title(mut self, title: Option<&'static str>) -> Self {
        self.title = title;
        self
    }

    /// Sets the description (what the model reads).
    pub const fn with_description(mut self, description: Option<&'static str>) -> Self {
        self.description = description;
        self
    }

    /// Sets the output schema (`None` for tools without structured output).
    pub const fn with_output_schema(mut self, output_schema: fn() -> Option<Value>) -> Self {
        self.output_schema = output_schema;
        self
    }

    /// Sets the behaviour hints.
    pub const fn with_annotations(mut self, annotations: ToolAnnotations) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// The name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The description.
    pub const fn description(&self) -> Option<&'static str> {
        self.description
    }

    /// The input schema.
    pub fn input_schema(&self) -> Value {
        (self.input_schema)()
    }

    /// The output schema, if the tool returns structured content.
    pub fn output_schema(&self) -> Option<Value> {
        (self.output_schema)()
    }

    /// Runs the tool.
    pub fn call(&self, ctx: &Context, arguments: Value) -> Result<CallToolResult, Error> {
        (self.call)(ctx, arguments)
    }
}

impl std::fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolDef").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A tool's behaviour hints (MCP `ToolAnnotations`); `#[tool(read_only, idempotent, …)]` sets
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolAnnotations {
    read_only: Option<bool>,
    destructive: Option<bool>,
    idempotent: Option<bool>,
    open_world: Option<bool>,
}

impl ToolAnnotations {
    /// No hints.
    pub const fn new() -> Self {
        Self { read_only: None, destructive: None, idempotent: None, open_world: None }
    }

    /// `readOnlyHint`: the tool does not change its environment.
    pub const fn read_only(mut self, value: bool) -> Self {
        self.read_only = Some(value);
        self
    }

    /// `destructiveHint`: the tool may destroy data.
    pub const fn destructive(mut self, value: bool) -> Self {
        self.destructive = Some(value);
        self
    }

    /// `idempotentHint`: calling it twice with the same arguments does nothing more.
    pub const fn idempotent(mut self, value: bool) -> Self {
        self.idempotent = Some(value);
        self
    }

    /// `openWorldHint`: the tool talks to the world outside.
    pub const fn open_world(mut self, value: bool) -> Self {
        self.open_world = Some(value);
        self
    }

    pub(crate) fn to_json(self) -> Value {
        let mut map = Map::new();
        for (key, value) in [
            ("readOnlyHint", self.read_only),
            ("destructiveHint", self.destructive),
            ("idempotentHint", self.idempotent),
            ("openWorldHint", self.open_world),
        ] {
            if let Some(value) = value {
                map.insert(key.to_owned(), Value::Bool(value));
            }
        }
        Value::Object(map)
    }
}

/// Names a tool for `server!`: `#[tool]` implements it for a hidden struct named like the
/// function. Implement it yourself to register a hand-built [`ToolDef`].
pub trait ToolSpec {
    /// The tool.
    const DEF: ToolDef;
}

/// What a tool function may return. The SDK implements it for:
///
/// - `String`, `&str`: one text block; `()`: no content;
/// - [`Content`], `Vec<Content>`, [`CallToolResult`]: as they are;
/// - [`Json<T>`] and [`Structured<T>`]: structured content (see [`Json`]);
/// - `Result<T, E>` for any of these `T` and `E: Into<Error>`: `Err` becomes an `isError`
///   result for [`Error::Tool`] (what `?` makes of ordinary errors) and a JSON-RPC error
///   otherwise.
///
/// `#[tool]` wraps any other return type `T` (or the `T` of `Result<T, E>`) in [`Json`], so it
/// must implement `Serialize` and `JsonSchema`.
pub trait IntoToolResult {
    /// The result.
    fn into_tool_result(self) -> Result<CallToolResult, Error>;

    /// The output schema, for results with structured content.
    fn output_schema() -> Option<Value> {
        None
    }
}

impl IntoToolResult for CallToolResult {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(self)
    }
}

impl IntoToolResult for String {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(CallToolResult::text(self))
    }
}

impl IntoToolResult for &str {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(CallToolResult::text(self))
    }
}

impl IntoToolResult for () {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(CallToolResult::success(Vec::new()))
    }
}

impl IntoToolResult for Content {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(CallToolResult::success(vec![self]))
    }
}

impl IntoToolResult for Vec<Content> {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        Ok(CallToolResult::success(self))
    }
}

impl<T: IntoToolResult, E: Into<Error>> IntoToolResult for Result<T, E> {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        match self {
            Ok(value) => value.into_tool_result(),
            Err(error) => match error.into() {
                Error::Tool(message) => Ok(CallToolResult::error_text(message)),
                other => Err(other),
            },
        }
    }

    fn output_schema() -> Option<Value> {
        T::output_schema()
    }
}

/// A structured tool result: `structuredContent` is the value (wrapped as `{"result": value}`
/// when its schema is not an object schema, e.g. a number or a list), a text block carries the
/// value's JSON, and the tool's `outputSchema` comes from `T`'s `JsonSchema`. As a resource's
/// return value, JSON text (`application/json` unless the resource says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

fn structured_value<T: Serialize + JsonSchema>(value: &T) -> Result<(Value, Value), Error> {
    let value =
        serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialize the tool result: {e}")))?;
    let structured = if schema::is_wrapped::<T>() { json!({ "result": value.clone() }) } else { value.clone() };
    Ok((value, structured))
}

impl<T: Serialize + JsonSchema> IntoToolResult for Json<T> {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        let (value, structured) = structured_value(&self.0)?;
        // The same text as `Value`'s `Display`, without its formatter.
        let text = serde_json::to_string(&value)
            .map_err(|e| Error::internal(format!("cannot serialize the tool result: {e}")))?;
        Ok(CallToolResult::text(text).with_structured_content(structured))
    }

    fn output_schema() -> Option<Value> {
        Some(schema::output_schema::<T>().0)
    }
}

/// Like [`Json`], with text of your choosing instead of the value's JSON (e.g. an `echo` whose
/// text is the message and whose structured content is `{"message": …}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structured<T> {
    value: T,
    text: String,
}

impl<T> Structured<T> {
    /// Structured content `value` with this text block.
    pub fn new(value: T, text: impl Into<String>) -> Self {
        Self { value, text: text.into() }
    }
}

impl<T: Serialize + JsonSchema> IntoToolResult for Structured<T> {
    fn into_tool_result(self) -> Result<CallToolResult, Error> {
        let (_, structured) = structured_value(&self.value)?;
        Ok(CallToolResult::text(self.text).with_structured_content(structured))
    }

    fn output_schema() -> Option<Value> {
        Some(schema::output_schema::<T>().0)
    }
}
