//! What the session layer reports to the data plane for accounting: sessions opening and
//! closing, and every finished backend call with its outcome, latency, CPU time and bytes.
//!
//! The data plane implements [`SessionHooks`] with the audit trail and the usage counters.
//! Hooks run on the actor's thread or the call's task, so they must not block: the data plane's
//! implementation only pushes into bounded queues and bumps counters.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_protocol::Era;
use serde_json::{Map, Value};

use crate::registry::Owner;

/// Per-request context handed in by the data plane with each request.
#[derive(Clone, Default)]
pub struct RequestContext {
    /// Tools refused by the kill switch: `tools/call` for them is refused and `tools/list`
    /// results omit them.
    pub disabled_tools: Arc<[String]>,
    /// Bytes of the HTTP request body that carried the request.
    pub bytes_in: u64,
    /// Opaque data for the hooks (the data plane's call metadata).
    pub extra: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("disabled_tools", &self.disabled_tools)
            .field("bytes_in", &self.bytes_in)
            .finish_non_exhaustive()
    }
}

impl RequestContext {
    /// Whether `tool` is disabled.
    pub fn tool_disabled(&self, tool: &str) -> bool {
        self.disabled_tools.iter().any(|t| t == tool)
    }
}

/// How a backend call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// A result.
    Ok,
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// A JSON-RPC error with this code.
    Error(i64),
    /// Modern: the call ended with `input_required`.
    InputRequired,
    /// Cancelled by the client (legacy `notifications/cancelled`, modern disconnect).
    Cancelled,
    /// Ended by the kill switch.
    Killed,
}

impl CallOutcome {
    /// The wire name used in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::ToolError => "tool_error",
            CallOutcome::Error(_) => "error",
            CallOutcome::InputRequired => "input_required",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Killed => "killed",
        }
    }

    /// The JSON-RPC error code, when there is one.
    pub fn code(self) -> Option<i64> {
        match self {
            CallOutcome::Error(code) => Some(code),
            _ => None,
        }
    }

    /// Classifies a JSON-RPC response body.
    pub fn of_response(json: &Value) -> Self {
        if let Some(code) = json.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64) {
            return CallOutcome::Error(code);
        }
        let result = json.get("result");
        if result.and_then(|r| r.get("resultType")).and_then(Value::as_str) == Some("input_required") {
            return CallOutcome::InputRequired;
        }
        if result.and_then(|r| r.get("isError")).and_then(Value::as_bool) == Some(true) {
            return CallOutcome::ToolError;
        }
        CallOutcome::Ok
    }
}

/// One finished backend call.
#[derive(Debug)]
pub struct CallRecord<'a> {
    /// Whose session ran it.
    pub owner: &'a Owner,
    /// The legacy session id.
    pub session: Option<&'a str>,
    /// The era.
    pub era: Era,
    /// `clientInfo` (legacy: from `initialize`; modern: from the request's `_meta`).
    pub client: Option<&'a Value>,
    /// The MCP method.
    pub method: &'a str,
    /// The parameters the backend saw (`_meta` and MRTR fields removed).
    pub params: &'a Map<String, Value>,
    /// The request's context.
    pub context: &'a RequestContext,
    /// How it ended.
    pub outcome: CallOutcome,
    /// From dispatch to the response.
    pub latency: Duration,
    /// CPU time the backend reported, if it measures it (WASM).
    pub cpu: Option<Duration>,
    /// Bytes of the response message.
    pub bytes_out: u64,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Ended by the client (`DELETE`) or replaced.
    Client,
    /// Idle expiry.
    Idle,
    /// The kill switch (tenant, server, version, key or client disabled).
    Killed,
}

impl CloseReason {
    /// The wire name used in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Idle => "idle",
            CloseReason::Killed => "killed",
        }
    }
}

/// A session as the hooks see it.
#[derive(Debug)]
pub struct SessionInfo<'a> {
    /// Its owner.
    pub owner: &'a Owner,
    /// The legacy session id.
    pub id: Option<&'a str>,
    /// The era.
    pub era: Era,
    /// `clientInfo` from `initialize` (legacy).
    pub client: Option<&'a Value>,
    /// The context of the request that opened it (modern: the first request).
    pub context: Option<&'a RequestContext>,
}

/// Observers of sessions and calls; every method defaults to doing nothing.
pub trait SessionHooks: Send + Sync + 'static {
    /// A session started.
    fn session_opened(&self, _session: &SessionInfo<'_>) {}
    /// A session ended.
    fn session_closed(&self, _session: &SessionInfo<'_>, _reason: CloseReason) {}
    /// A backend call finished (or was cancelled or killed).
    fn call_finished(&self, _call: &CallRecord<'_>) {}
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl SessionHooks for NoHooks {}

/// CPU time a backend reports for one call (through `Peer::record_cpu`).
#[derive(Debug, Default)]
pub(crate) struct CallMeter {
    cpu_nanos: AtomicU64,
    measured: std::sync::atomic::AtomicBool,
}

impl CallMeter {
    pub(crate) fn add_cpu(&self, cpu: Duration) {
        let nanos = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.measured.store(true, Ordering::Relaxed);
    }

    pub(crate) fn cpu(&self) -> Option<Duration> {
        self.measured.load(Ordering::Relaxed).then(|| Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed)))
    }
}

/// Removes disabled tools from a `tools/list` result.
pub(crate) fn filter_tools(result: &mut Value, context: &RequestContext) {
    if context.disabled_tools.is_empty() {
        return;
    }
    if let Some(Value::Array(tools)) = result.get_mut("tools") {
        tools.retain(|tool| tool.get("name").and_then(Value::as_str).is_none_or(|name| !context.tool_disabled(name)));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outcomes_are_read_from_responses() {
        assert_eq!(CallOutcome::of_response(&json!({"result": {"content": []}})), CallOutcome::Ok);
        assert_eq!(CallOutcome::of_response(&json!({"result": {"isError": true}})), CallOutcome::ToolError);
        assert_eq!(CallOutcome::of_response(&json!({"error": {"code": -32602}})), CallOutcome::Error(-32602));
        assert_eq!(
            CallOutcome::of_response(&json!({"result": {"resultType": "input_required"}})),
            CallOutcome::InputRequired
        );
    }

    #[test]
    fn disabled_tools_are_filtered_out_of_lists() {
        let context = RequestContext { disabled_tools: Arc::from(vec!["add".to_owned()]), ..Default::default() };
        let mut result = json!({"tools": [{"name": "echo"}, {"name": "add"}]});
        filter_tools(&mut result, &context);
        assert_eq!(result, json!({"tools": [{"name": "echo"}]}));
    }
}
