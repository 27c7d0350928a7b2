//! [`WasmServer`]: one hosted server (a loaded component plus its [`ServerSpec`]) behind the
//! [`Backend`] port, mapping MCP methods to the world's exports and back.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_core::backend::{Backend, BackendError, BackendRequest, BoxFuture, Peer, ServerDescription};
use berth_protocol::{Era, RpcError, jsonrpc};
use serde_json::{Map, Value, json};

use crate::bindings::types;
use crate::call::{Answer, Export, Failure, ServerCalls, ServerId};
use crate::egress::Allowlist;
use crate::runtime::{LoadedComponent, RuntimeInner};
use crate::store::CallContext;
use crate::{CallStats, ServerSpec};

/// The capabilities of every WASM server: the world can answer all of these.
pub(crate) fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": false },
        "resources": { "subscribe": false, "listChanged": false },
        "prompts": { "listChanged": false },
        "completions": {},
        "logging": {},
    })
}

/// Cumulative usage of a server or a runtime.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    calls: AtomicU64,
    cpu_nanos: AtomicU64,
    wall_nanos: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Usage {
    pub(crate) fn record(&self, stats: CallStats) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.cpu_nanos.fetch_add(nanos(stats.cpu), Ordering::Relaxed);
        self.wall_nanos.fetch_add(nanos(stats.wall), Ordering::Relaxed);
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn total(&self) -> CallStats {
        CallStats {
            cpu: Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed)),
            wall: Duration::from_nanos(self.wall_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A hosted WASM server: every request runs in a fresh instance of its component, with its own
/// configuration, secrets and egress allowlist.
///
/// Made by [`WasmRuntime::server`](crate::WasmRuntime::server) (as a `dyn Backend`) or
/// [`WasmRuntime::wasm_server`](crate::WasmRuntime::wasm_server) (to read its usage).
pub struct WasmServer {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    runtime: Arc<RuntimeInner>,
    calls: ServerCalls,
    component: Arc<LoadedComponent>,
    spec: Arc<ServerSpec>,
    egress: Arc<Allowlist>,
    description: ServerDescription,
    usage: Usage,
}

impl std::fmt::Debug for WasmServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmServer")
            .field("component", &self.inner.component.sha256())
            .field("name", &self.inner.description.name)
            .field("version", &self.inner.description.version)
            .finish_non_exhaustive()
    }
}

impl WasmServer {
    pub(crate) fn new(
        runtime: Arc<RuntimeInner>,
        id: ServerId,
        component: Arc<LoadedComponent>,
        spec: ServerSpec,
    ) -> Self {
        let egress = Arc::new(Allowlist::new(&spec.egress, runtime.private_networks.clone()));
        let description = component.description();
        Self {
            inner: Arc::new(ServerInner {
                runtime,
                calls: ServerCalls::new(id),
                component,
                spec: Arc::new(spec),
                egress,
                description,
                usage: Usage::default(),
            }),
        }
    }

    /// CPU time used by all calls to this server so far.
    pub fn cpu_total(&self) -> Duration {
        self.inner.usage.total().cpu
    }

    /// CPU and wall time used by all calls to this server so far.
    pub fn usage(&self) -> CallStats {
        self.inner.usage.total()
    }

    /// Calls made to this server so far.
    pub fn calls(&self) -> u64 {
        self.inner.usage.calls()
    }
}

impl Backend for WasmServer {
    fn describe(&self) -> &ServerDescription {
        &self.inner.description
    }

    fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> BoxFuture<'static, Result<Value, BackendError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.handle(request, peer).await })
    }
}

impl ServerInner {
    async fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> Result<Value, BackendError> {
        let call = parse_request(request)?;
        let modern = peer.era() == Era::Modern;
        let meter = peer.clone();
        let context = CallContext { peer, spec: self.spec.clone(), egress: self.egress.clone() };
        let (outcome, stats) =
            self.runtime.executor.run(self.component.guest(), context, call, Some(&self.calls)).await;
        meter.record_cpu(stats.cpu);
        self.usage.record(stats);
        self.runtime.usage.record(stats);
        let answer = outcome.map_err(failure)?;
        answer_to_json(answer, self.runtime.settings.max_output_bytes, modern)
    }
}

impl Drop for ServerInner {
    /// A server that is gone needs no instance for its next call.
    fn drop(&mut self) {
        self.runtime.executor.ready.forget(self.calls.id);
    }
}

fn failure(failure: Failure) -> BackendError {
    match failure {
        Failure::Busy | Failure::Unavailable(_) => BackendError::Unavailable(failure.message()),
        Failure::TimedOut(_) | Failure::OutOfMemory(_) | Failure::Crashed(_) => {
            BackendError::Rpc(RpcError::internal(failure.message()))
        }
    }
}

fn required_string(params: &Map<String, Value>, name: &str) -> Result<String, BackendError> {
    match params.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(RpcError::invalid_params(format!("`{name}` must be a string")).into()),
        None => Err(RpcError::invalid_params(format!("missing `{name}`")).into()),
    }
}

/// `arguments` as JSON text: an object, or `{}` when absent or null.
fn arguments(params: &Map<String, Value>) -> Result<String, BackendError> {
    match params.get("arguments") {
        None | Some(Value::Null) => Ok("{}".to_owned()),
        Some(value @ Value::Object(_)) => Ok(jsonrpc::text(value)),
        Some(_) => Err(RpcError::invalid_params("`arguments` must be an object").into()),
    }
}

fn parse_request(request: BackendRequest) -> Result<Export, BackendError> {
    let params = request.params;
    Ok(match request.method.as_str() {
        "tools/list" => Export::ListTools,
        "tools/call" => Export::CallTool { name: required_string(&params, "name")?, arguments: arguments(&params)? },
        "resources/list" => Export::ListResources,
        "resources/templates/list" => Export::ListResourceTemplates,
        "resources/read" => Export::ReadResource { uri: required_string(&params, "uri")? },
        "prompts/list" => Export::ListPrompts,
        "prompts/get" => Export::GetPrompt { name: required_string(&params, "name")?, arguments: arguments(&params)? },
        "completion/complete" => Export::Complete { request: jsonrpc::text(&Value::Object(params)) },
        other => return Err(RpcError::method_not_found(other).into()),
    })
}

fn too_large(limit: usize) -> BackendError {
    RpcError::internal(format!("the server's response exceeded {limit} bytes")).into()
}

/// Counts the bytes of a serialization without keeping them.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn bounded(value: Value, limit: usize) -> Result<Value, BackendError> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, &value).map_err(|e| RpcError::internal(format!("cannot encode: {e}")))?;
    if counter.0 > limit { Err(too_large(limit)) } else { Ok(value) }
}

/// Parses a JSON schema, annotations or result the guest produced as text.
fn guest_json(text: &str, what: &str) -> Result<Value, BackendError> {
    serde_json::from_str(text)
        .map_err(|e| RpcError::internal(format!("the server returned invalid JSON for {what}: {e}")).into())
}

fn insert_opt(object: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), Value::String(value));
    }
}

fn tool_json(tool: types::Tool) -> Result<Value, BackendError> {
    let what = format!("tool `{}`", tool.name);
    let mut object = Map::new();
    object.insert("name".into(), Value::String(tool.name));
    insert_opt(&mut object, "title", tool.title);
    insert_opt(&mut object, "description", tool.description);
    object.insert("inputSchema".into(), guest_json(&tool.input_schema, &what)?);
    if let Some(schema) = tool.output_schema {
        object.insert("outputSchema".into(), guest_json(&schema, &what)?);
    }
    if let Some(annotations) = tool.annotations {
        object.insert("annotations".into(), guest_json(&annotations, &what)?);
    }
    Ok(Value::Object(object))
}

fn resource_json(resource: types::Resource) -> Value {
    let mut object = Map::new();
    object.insert("uri".into(), Value::String(resource.uri));
    object.insert("name".into(), Value::String(resource.name));
    insert_opt(&mut object, "title", resource.title);
    insert_opt(&mut object, "description", resource.description);
    insert_opt(&mut object, "mimeType", resource.mime_type);
    Value::Object(object)
}

fn template_json(template: types::ResourceTemplate) -> Value {
    let mut object = Map::new();
    object.insert("uriTemplate".into(), Value::String(template.uri_template));
    object.insert("name".into(), Value::String(template.name));
    insert_opt(&mut object, "title", template.title);
    insert_opt(&mut object, "description", template.description);
    insert_opt(&mut object, "mimeType", template.mime_type);
    Value::Object(object)
}

fn prompt_json(prompt: types::Prompt) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), Value::String(prompt.name));
    insert_opt(&mut object, "title", prompt.title);
    insert_opt(&mut object, "description", prompt.description);
    let arguments = prompt
        .arguments
        .into_iter()
        .map(|argument| {
            let mut object = Map::new();
            object.insert("name".into(), Value::String(argument.name));
            insert_opt(&mut object, "description", argument.description);
            object.insert("required".into(), Value::Bool(argument.required));
            Value::Object(object)
        })
        .collect();
    object.insert("arguments".into(), Value::Array(arguments));
    Value::Object(object)
}

fn guest_error(error: types::Error, modern: bool) -> BackendError {
    match error {
        types::Error::InvalidParams(message) => RpcError::invalid_params(message).into(),
        types::Error::ResourceNotFound(uri) => RpcError::resource_not_found(&uri, modern).into(),
        types::Error::InputRequired => BackendError::InputRequired,
        types::Error::Unsupported(capability) => {
            let mut required = Map::new();
            required.insert(capability, json!({}));
            RpcError::missing_client_capability(Value::Object(required)).into()
        }
        types::Error::Internal(message) => RpcError::internal(message).into(),
    }
}

fn answer_to_json(answer: Answer, limit: usize, modern: bool) -> Result<Value, BackendError> {
    let value = match answer {
        Answer::Json(Ok(text)) => {
            if text.len() > limit {
                return Err(too_large(limit));
            }
            return guest_json(&text, "its result");
        }
        Answer::Json(Err(error)) => return Err(guest_error(error, modern)),
        Answer::Tools(tools) => json!({ "tools": tools.into_iter().map(tool_json).collect::<Result<Vec<_>, _>>()? }),
        Answer::Resources(resources) => {
            json!({ "resources": resources.into_iter().map(resource_json).collect::<Vec<_>>() })
        }
        Answer::Templates(templates) => {
            json!({ "resourceTemplates": templates.into_iter().map(template_json).collect::<Vec<_>>() })
        }
        Answer::Prompts(prompts) => json!({ "prompts": prompts.into_iter().map(prompt_json).collect::<Vec<_>>() }),
        Answer::Info(_) => return Err(RpcError::internal("unexpected answer from the server").into()),
    };
    bounded(value, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, params: Value) -> BackendRequest {
        let Value::Object(params) = params else { panic!("params must be an object") };
        BackendRequest { method: method.into(), params }
    }

    #[test]
    fn requests_map_to_exports() {
        assert_eq!(parse_request(request("tools/list", json!({}))).unwrap(), Export::ListTools);
        assert_eq!(
            parse_request(request("tools/call", json!({"name": "echo"}))).unwrap(),
            Export::CallTool { name: "echo".into(), arguments: "{}".into() }
        );
        assert_eq!(
            parse_request(request("prompts/get", json!({"name": "p", "arguments": {"a": "b"}}))).unwrap(),
            Export::GetPrompt { name: "p".into(), arguments: r#"{"a":"b"}"#.into() }
        );
        assert_eq!(
            parse_request(request("resources/read", json!({"uri": "file:///x"}))).unwrap(),
            Export::ReadResource { uri: "file:///x".into() }
        );
        assert!(matches!(
            parse_request(request("completion/complete", json!({"ref": {}}))).unwrap(),
            Export::Complete { request } if request == r#"{"ref":{}}"#
        ));
    }

    #[test]
    fn bad_requests_are_rejected() {
        let Err(BackendError::Rpc(e)) = parse_request(request("tools/call", json!({}))) else { panic!() };
        assert_eq!(e.code, berth_protocol::jsonrpc::code::INVALID_PARAMS);
        let Err(BackendError::Rpc(e)) = parse_request(request("tools/call", json!({"name": "x", "arguments": [1]})))
        else {
            panic!()
        };
        assert_eq!(e.code, berth_protocol::jsonrpc::code::INVALID_PARAMS);
        let Err(BackendError::Rpc(e)) = parse_request(request("sampling/whatever", json!({}))) else { panic!() };
        assert_eq!(e.code, berth_protocol::jsonrpc::code::METHOD_NOT_FOUND);
    }

    #[test]
    fn records_become_camel_case_mcp_json() {
        let tools = Answer::Tools(vec![types::Tool {
            name: "t".into(),
            title: None,
            description: Some("d".into()),
            input_schema: r#"{"type":"object"}"#.into(),
            output_schema: Some(r#"{"type":"object"}"#.into()),
            annotations: None,
        }]);
        assert_eq!(
            answer_to_json(tools, 1 << 20, true).unwrap(),
            json!({"tools": [{"name": "t", "description": "d", "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"}}]})
        );
        let templates = Answer::Templates(vec![types::ResourceTemplate {
            uri_template: "x://{id}".into(),
            name: "x".into(),
            title: None,
            description: None,
            mime_type: Some("text/plain".into()),
        }]);
        assert_eq!(
            answer_to_json(templates, 1 << 20, true).unwrap(),
            json!({"resourceTemplates": [{"uriTemplate": "x://{id}", "name": "x", "mimeType": "text/plain"}]})
        );
        let prompts = Answer::Prompts(vec![types::Prompt {
            name: "p".into(),
            title: Some("P".into()),
            description: None,
            arguments: vec![types::PromptArgument { name: "a".into(), description: None, required: true }],
        }]);
        assert_eq!(
            answer_to_json(prompts, 1 << 20, true).unwrap(),
            json!({"prompts": [{"name": "p", "title": "P", "arguments": [{"name": "a", "required": true}]}]})
        );
    }

    #[test]
    fn guest_errors_map_to_rpc_errors() {
        let modern = guest_error(types::Error::ResourceNotFound("x://1".into()), true);
        assert_eq!(modern, BackendError::Rpc(RpcError::resource_not_found("x://1", true)));
        let legacy = guest_error(types::Error::ResourceNotFound("x://1".into()), false);
        assert_eq!(legacy, BackendError::Rpc(RpcError::resource_not_found("x://1", false)));
        assert_eq!(guest_error(types::Error::InputRequired, true), BackendError::InputRequired);
        assert_eq!(
            guest_error(types::Error::Unsupported("sampling".into()), true),
            BackendError::Rpc(RpcError::missing_client_capability(json!({"sampling": {}})))
        );
        assert_eq!(
            guest_error(types::Error::Internal("nope".into()), true),
            BackendError::Rpc(RpcError::internal("nope"))
        );
    }

    #[test]
    fn oversized_and_invalid_results_are_errors() {
        let big = Answer::Json(Ok(format!("\"{}\"", "x".repeat(100))));
        let Err(BackendError::Rpc(e)) = answer_to_json(big, 50, true) else { panic!() };
        assert!(e.message.contains("exceeded"), "{}", e.message);
        let Err(BackendError::Rpc(e)) = answer_to_json(Answer::Json(Ok("{oops".into())), 50, true) else { panic!() };
        assert!(e.message.contains("invalid JSON"), "{}", e.message);
    }
}
