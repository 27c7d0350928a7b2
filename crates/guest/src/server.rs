//! [`Server`]: the catalogue `server!` declares, and the dispatch of every export of
//! `berth:mcp/server` over it. The dispatch methods take and return JSON, so tests on the host
//! can drive a server without WebAssembly.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::completion::{CompletionDef, CompletionRef, CompletionRequest};
use crate::prompt::PromptDef;
use crate::resource::{ResourceDef, UriVars};
use crate::tool::ToolDef;
use crate::{CallToolResult, Context, Error, GetPromptResult, ResourceContents};

/// The most completion values answered at once (the protocol's limit).
const MAX_COMPLETIONS: usize = 100;

/// An MCP server: its identity and catalogue. `server!` declares one (as `BERTH_SERVER`) and
/// exports it; all constructors are `const`.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    name: &'static str,
    version: &'static str,
    instructions: Option<&'static str>,
    tools: &'static [ToolDef],
    resources: &'static [ResourceDef],
    prompts: &'static [PromptDef],
    completions: &'static [CompletionDef],
}

impl Server {
    /// A server with an empty catalogue.
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        Self { name, version, instructions: None, tools: &[], resources: &[], prompts: &[], completions: &[] }
    }

    /// Sets the instructions (how to use this server, for the model).
    pub const fn with_instructions(mut self, instructions: &'static str) -> Self {
        self.instructions = Some(instructions);
        self
    }

    /// Sets the tools.
    pub const fn with_tools(mut self, tools: &'static [ToolDef]) -> Self {
        self.tools = tools;
        self
    }

    /// Sets the resources and resource templates.
    pub const fn with_resources(mut self, resources: &'static [ResourceDef]) -> Self {
        self.resources = resources;
        self
    }

    /// Sets the prompts.
    pub const fn with_prompts(mut self, prompts: &'static [PromptDef]) -> Self {
        self.prompts = prompts;
        self
    }

    /// Sets the completers.
    pub const fn with_completions(mut self, completions: &'static [CompletionDef]) -> Self {
        self.completions = completions;
        self
    }

    /// The name (`serverInfo.name`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The version (`serverInfo.version`).
    pub const fn version(&self) -> &'static str {
        self.version
    }

    /// The tools.
    pub const fn tools(&self) -> &'static [ToolDef] {
        self.tools
    }

    /// The resources and templates.
    pub const fn resources(&self) -> &'static [ResourceDef] {
        self.resources
    }

    /// The prompts.
    pub const fn prompts(&self) -> &'static [PromptDef] {
        self.prompts
    }

    /// `tools/call`: runs tool `name` with `arguments` (a JSON object; empty text means `{}`) and
    /// returns the `CallToolResult`. Unknown tools are [`Error::InvalidParams`]; a tool's
    /// [`Error::Tool`] becomes an `isError` result.
    pub fn call_tool(&self, ctx: &Context, name: &str, arguments: &str) -> Result<Value, Error> {
        to_value(&self.run_tool(ctx, name, arguments)?)
    }

    fn run_tool(&self, ctx: &Context, name: &str, arguments: &str) -> Result<CallToolResult, Error> {
        let tool = self
            .tools
            .iter()
            .find(|tool| tool.name == name)
            .ok_or_else(|| Error::invalid_params(format!("Unknown tool: {name}")))?;
        let arguments = arguments_object(arguments)?;
        match tool.call(ctx, Value::Object(arguments)) {
            Ok(result) => Ok(result),
            Err(Error::Tool(message)) => Ok(CallToolResult::error_text(message)),
            Err(other) => Err(other),
        }
    }

    /// `resources/read`: the `ReadResourceResult` for `uri` (plain resources first, then the
    /// templates in order).
    pub fn read_resource(&self, ctx: &Context, uri: &str) -> Result<Value, Error> {
        to_value(&self.run_read(ctx, uri)?)
    }

    fn run_read(&self, ctx: &Context, uri: &str) -> Result<ReadResourceResult, Error> {
        let plain = self.resources.iter().find(|r| !r.is_template() && r.uri == uri).map(|r| (r, UriVars::default()));
        let found = plain
            .or_else(|| self.resources.iter().filter(|r| r.is_template()).find_map(|r| Some((r, r.matches(uri)?))));
        let Some((resource, vars)) = found else { return Err(Error::resource_not_found(uri)) };
        Ok(ReadResourceResult { contents: (resource.read)(ctx, uri, &vars)? })
    }

    /// `prompts/get`: the `GetPromptResult` of prompt `name` with `arguments` (a JSON object of
    /// strings; empty text means `{}`).
    pub fn get_prompt(&self, ctx: &Context, name: &str, arguments: &str) -> Result<Value, Error> {
        to_value(&self.run_prompt(ctx, name, arguments)?)
    }

    fn run_prompt(&self, ctx: &Context, name: &str, arguments: &str) -> Result<GetPromptResult, Error> {
        let prompt = self
            .prompts
            .iter()
            .find(|prompt| prompt.name == name)
            .ok_or_else(|| Error::invalid_params(format!("Unknown prompt: {name}")))?;
        let arguments = arguments_object(arguments)?;
        (prompt.get)(ctx, &arguments)
    }

    /// `completion/complete`: `request` is the params (`ref`, `argument`, `context`).
    pub fn complete(&self, ctx: &Context, request: &str) -> Result<Value, Error> {
        let request: Value = serde_json::from_str(request)
            .map_err(|e| Error::invalid_params(format!("the completion request is not JSON: {e}")))?;
        let invalid = |what: &str| Error::invalid_params(format!("missing or invalid parameter: {what}"));
        let reference = request.get("ref").and_then(Value::as_object).ok_or_else(|| invalid("ref"))?;
        let argument = request.get("argument").and_then(Value::as_object).ok_or_else(|| invalid("argument"))?;
        let argument_name = argument.get("name").and_then(Value::as_str).ok_or_else(|| invalid("argument.name"))?;
        let value = argument.get("value").and_then(Value::as_str).unwrap_or_default();
        let context = request.pointer("/context/arguments").and_then(Value::as_object).cloned().unwrap_or_default();
        let unknown = || Error::invalid_params("Unknown reference");
        let is_target: Box<dyn Fn(&CompletionRef) -> bool> = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference.get("name").and_then(Value::as_str).ok_or_else(|| invalid("ref.name"))?;
                if !self.prompts.iter().any(|p| p.name == name) {
                    return Err(unknown());
                }
                let name = name.to_owned();
                Box::new(move |target| matches!(target, CompletionRef::Prompt(p) if *p == name))
            }
            Some("ref/resource") => {
                let uri = reference.get("uri").and_then(Value::as_str).ok_or_else(|| invalid("ref.uri"))?;
                if !self.resources.iter().any(|r| r.uri == uri) {
                    return Err(unknown());
                }
                let uri = uri.to_owned();
                Box::new(move |target| matches!(target, CompletionRef::Resource(u) if *u == uri))
            }
            _ => return Err(invalid("ref.type")),
        };
        let completer = self.completions.iter().find(|c| c.argument == argument_name && is_target(&c.target));
        let request = CompletionRequest { argument: argument_name.to_owned(), value: value.to_owned(), context };
        let mut values = match completer {
            Some(completer) => (completer.complete)(ctx, &request)?,
            None => Vec::new(),
        };
        let total = values.len();
        values.truncate(MAX_COMPLETIONS);
        Ok(json!({ "completion": { "values": values, "total": total, "hasMore": total > MAX_COMPLETIONS } }))
    }
}

/// The `arguments` object of a call (empty text or `null` mean `{}`).
fn arguments_object(text: &str) -> Result<Map<String, Value>, Error> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::invalid_params("arguments must be a JSON object")),
        Err(e) => Err(Error::invalid_params(format!("arguments are not JSON: {e}"))),
    }
}

/// A `resources/read` result.
#[derive(Serialize)]
struct ReadResourceResult {
    contents: Vec<ResourceContents>,
}

fn to_value(value: &impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::internal(format!("cannot serialize the result: {e}")))
}

/// A result as the JSON text an export returns, written straight from the result: building a
/// `Value` first, then printing it through `Display`, took about half of a tool call's instructions
/// inside the guest.
fn to_text(value: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("cannot serialize the result: {e}")))
}

/// The world's exports over a [`Server`], for the `Guest` impl `server!` generates.
pub mod export {
    use super::{Server, to_text};
    use crate::Context;
    use crate::bindings::berth::mcp::types::{
        Error, Prompt, PromptArgument, Resource, ResourceTemplate, ServerInfo, Tool,
    };

    fn owned(text: Option<&str>) -> Option<String> {
        text.map(str::to_owned)
    }

    /// `info`.
    pub fn info(server: &Server) -> ServerInfo {
        ServerInfo {
            name: server.name.to_owned(),
            version: server.version.to_owned(),
            instructions: owned(server.instructions),
        }
    }

    /// `list-tools`.
    pub fn list_tools(server: &Server) -> Vec<Tool> {
        server
            .tools
            .iter()
            .map(|tool| Tool {
                name: tool.name.to_owned(),
                title: owned(tool.title),
                description: owned(tool.description),
                input_schema: tool.input_schema().to_string(),
                output_schema: tool.output_schema().map(|schema| schema.to_string()),
                annotations: tool.annotations.map(|a| a.to_json().to_string()),
            })
            .collect()
    }

    /// `call-tool`.
    pub fn call_tool(server: &Server, name: &str, arguments: &str) -> Result<String, Error> {
        server.run_tool(&Context::new(), name, arguments).and_then(|r| to_text(&r)).map_err(crate::Error::into_wit)
    }

    /// `list-resources`.
    pub fn list_resources(server: &Server) -> Vec<Resource> {
        server
            .resources
            .iter()
            .filter(|r| !r.is_template() && !r.unlisted)
            .map(|r| Resource {
                uri: r.uri.to_owned(),
                name: r.name.to_owned(),
                title: owned(r.title),
                description: owned(r.description),
                mime_type: owned(r.mime_type),
            })
            .collect()
    }

    /// `list-resource-templates`.
    pub fn list_resource_templates(server: &Server) -> Vec<ResourceTemplate> {
        server
            .resources
            .iter()
            .filter(|r| r.is_template() && !r.unlisted)
            .map(|r| ResourceTemplate {
                uri_template: r.uri.to_owned(),
                name: r.name.to_owned(),
                title: owned(r.title),
                description: owned(r.description),
                mime_type: owned(r.mime_type),
            })
            .collect()
    }

    /// `read-resource`.
    pub fn read_resource(server: &Server, uri: &str) -> Result<String, Error> {
        server.run_read(&Context::new(), uri).and_then(|r| to_text(&r)).map_err(crate::Error::into_wit)
    }

    /// `list-prompts`.
    pub fn list_prompts(server: &Server) -> Vec<Prompt> {
        server
            .prompts
            .iter()
            .map(|p| Prompt {
                name: p.name.to_owned(),
                title: owned(p.title),
                description: owned(p.description),
                arguments: p
                    .arguments
                    .iter()
                    .map(|a| PromptArgument {
                        name: a.name.to_owned(),
                        description: owned(a.description),
                        required: a.required,
                    })
                    .collect(),
            })
            .collect()
    }

    /// `get-prompt`.
    pub fn get_prompt(server: &Server, name: &str, arguments: &str) -> Result<String, Error> {
        server.run_prompt(&Context::new(), name, arguments).and_then(|r| to_text(&r)).map_err(crate::Error::into_wit)
    }

    /// `complete`.
    pub fn complete(server: &Server, request: &str) -> Result<String, Error> {
        server.complete(&Context::new(), request).and_then(|r| to_text(&r)).map_err(crate::Error::into_wit)
    }
}
