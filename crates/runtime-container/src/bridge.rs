//! The MCP client Berth runs toward a bridged backend (a container or a remote upstream), on
//! rmcp, and the translation between that client and the [`Peer`] of each Berth call.
//!
//! - Calls go upstream as raw JSON turned into rmcp's `ClientRequest`; results come back as JSON.
//!   Dropping a call sends `notifications/cancelled` upstream.
//! - Progress notifications are routed by the progress token rmcp gives each request. Log
//!   messages and server→client requests carry no request id on the wire (stdio), so they go to
//!   the most recent call in flight; with one call in flight, the common case, that is exact.
//! - A legacy upstream's server→client request is asked through the call's [`Peer`]: a legacy
//!   client gets a real request; a modern client's peer answers from the replayed answers or
//!   reports `InputRequired`, and then the call ends at once with `input_required` (the session
//!   re-runs it when the client retries, ADR 0007) and is cancelled upstream.
//! - A modern upstream's `input_required` result is answered the same way, through the call's
//!   [`Peer`], and the request retried upstream with `inputResponses` and its `requestState`.
//! - List-changed and resource-updated notifications become [`ServerEvent`]s of the session the
//!   connection is bound to.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::backend::{BackendError, INPUT_KEY_META, Notice, Peer, PeerError, ServerDescription, ServerEvent};
use berth_protocol::{LogLevel, RpcError};
use rmcp::model::{
    ClientNotification, ClientRequest, ClientResult, ErrorData, ServerNotification, ServerRequest, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService, ServiceError};
use rmcp::{RoleClient, Service};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc};

use crate::stdio::Death;

/// Rounds of upstream `input_required` answered before a call gives up.
const MAX_INPUT_ROUNDS: usize = 8;

/// Set when the client must answer first (modern replay): the call ends with `InputRequired`.
type InputFlag = Arc<(AtomicBool, Notify)>;

struct Call {
    seq: u64,
    token: String,
    peer: Arc<dyn Peer>,
    input_required: InputFlag,
}

#[derive(Default)]
struct BridgeInner {
    calls: Mutex<Vec<Call>>,
    events: Mutex<Option<mpsc::Sender<ServerEvent>>>,
    next: AtomicU64,
}

/// The rmcp client service of one upstream connection.
#[derive(Clone, Default)]
pub(crate) struct Bridge {
    inner: Arc<BridgeInner>,
}

impl Bridge {
    /// Sends the connection's list-changed and resource-updated events to a session.
    pub(crate) fn bind_events(&self, tx: mpsc::Sender<ServerEvent>) {
        if let Ok(mut slot) = self.inner.events.lock() {
            *slot = Some(tx);
        }
    }

    fn latest(&self) -> Option<(Arc<dyn Peer>, InputFlag)> {
        let calls = self.inner.calls.lock().ok()?;
        calls.iter().max_by_key(|c| c.seq).map(|c| (c.peer.clone(), c.input_required.clone()))
    }

    fn by_token(&self, token: &str) -> Option<Arc<dyn Peer>> {
        let calls = self.inner.calls.lock().ok()?;
        calls.iter().find(|c| c.token == token).map(|c| c.peer.clone())
    }

    fn register(&self, token: String, peer: Arc<dyn Peer>) -> (u64, InputFlag) {
        let seq = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new((AtomicBool::new(false), Notify::new()));
        if let Ok(mut calls) = self.inner.calls.lock() {
            calls.push(Call { seq, token, peer, input_required: flag.clone() });
        }
        (seq, flag)
    }

    fn unregister(&self, seq: u64) {
        if let Ok(mut calls) = self.inner.calls.lock() {
            calls.retain(|c| c.seq != seq);
        }
    }

    fn event(&self, event: ServerEvent) {
        if let Some(tx) = self.inner.events.lock().ok().and_then(|s| s.clone()) {
            let _ = tx.try_send(event);
        }
    }
}

fn rpc_error(e: &ErrorData) -> RpcError {
    let error = RpcError::new(i64::from(e.code.0), e.message.to_string());
    match &e.data {
        Some(data) => error.with_data(data.clone()),
        None => error,
    }
}

fn to_error_data(e: &RpcError) -> ErrorData {
    ErrorData::new(rmcp::model::ErrorCode(i32::try_from(e.code).unwrap_or(-32603)), e.message.clone(), e.data.clone())
}

/// `(method, params)` of a typed rmcp message, through its JSON form.
fn split(message: &impl serde::Serialize) -> (String, Value) {
    let value = serde_json::to_value(message).unwrap_or(Value::Null);
    let method = value.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
    let params = value.get("params").cloned().unwrap_or_else(|| json!({}));
    (method, params)
}

fn token_key(token: &impl serde::Serialize) -> String {
    serde_json::to_string(token).unwrap_or_default()
}

impl Service<RoleClient> for Bridge {
    async fn handle_request(
        &self,
        request: ServerRequest,
        _context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        let (method, params) = split(&request);
        let Some((peer, input_required)) = self.latest() else {
            return match request {
                ServerRequest::PingRequest(_) => Ok(ClientResult::empty(())),
                // Asked outside any call (right after `initialized`, say): no roots.
                ServerRequest::ListRootsRequest(_) => Ok(ClientResult::ListRootsResult(Default::default())),
                _ => Err(ErrorData::internal_error(format!("{method} outside any request is not relayed"), None)),
            };
        };
        if matches!(request, ServerRequest::PingRequest(_)) {
            return Ok(ClientResult::empty(()));
        }
        let answer = match peer.request(&method, params).await {
            Ok(answer) => answer,
            Err(PeerError::InputRequired) => {
                input_required.0.store(true, Ordering::SeqCst);
                input_required.1.notify_one();
                return Err(ErrorData::internal_error("the client answers on its retry", None));
            }
            Err(PeerError::Client(e)) => return Err(to_error_data(&e)),
            Err(PeerError::Unsupported(what)) => {
                return Err(ErrorData::new(
                    rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                    format!("the client does not support {what}"),
                    None,
                ));
            }
            Err(PeerError::Gone) => return Err(ErrorData::internal_error("the client went away", None)),
        };
        let parse = |e: serde_json::Error| ErrorData::internal_error(format!("bad answer from the client: {e}"), None);
        Ok(match request {
            ServerRequest::CreateMessageRequest(_) => {
                ClientResult::CreateMessageResult(Box::new(serde_json::from_value(answer).map_err(parse)?))
            }
            ServerRequest::ElicitRequest(_) => {
                ClientResult::ElicitResult(serde_json::from_value(answer).map_err(parse)?)
            }
            ServerRequest::ListRootsRequest(_) => {
                ClientResult::ListRootsResult(serde_json::from_value(answer).map_err(parse)?)
            }
            _ => ClientResult::CustomResult(rmcp::model::CustomResult(answer)),
        })
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        let (_, params) = split(&notification);
        match notification {
            ServerNotification::ProgressNotification(_) => {
                let token = params.get("progressToken").map(token_key).unwrap_or_default();
                if let (Some(peer), Some(progress)) =
                    (self.by_token(&token), params.get("progress").and_then(Value::as_f64))
                {
                    peer.notify(Notice::Progress {
                        progress,
                        total: params.get("total").and_then(Value::as_f64),
                        message: params.get("message").and_then(Value::as_str).map(str::to_owned),
                    });
                }
            }
            ServerNotification::LoggingMessageNotification(_) => {
                let level = params.get("level").and_then(Value::as_str).and_then(LogLevel::parse);
                if let (Some((peer, _)), Some(level)) = (self.latest(), level) {
                    peer.notify(Notice::Log {
                        level,
                        logger: params.get("logger").and_then(Value::as_str).map(str::to_owned),
                        data: params.get("data").cloned().unwrap_or(Value::Null),
                    });
                }
            }
            ServerNotification::ToolListChangedNotification(_) => self.event(ServerEvent::ToolsListChanged),
            ServerNotification::PromptListChangedNotification(_) => self.event(ServerEvent::PromptsListChanged),
            ServerNotification::ResourceListChangedNotification(_) => self.event(ServerEvent::ResourcesListChanged),
            ServerNotification::ResourceUpdatedNotification(_) => {
                if let Some(uri) = params.get("uri").and_then(Value::as_str) {
                    self.event(ServerEvent::ResourceUpdated { uri: uri.to_owned() });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        client_info()
    }
}

/// What Berth declares upstream: it relays sampling, elicitation and roots to its clients
/// (a client that lacks one gets the request refused by its session).
pub(crate) fn client_info() -> rmcp::model::ClientConfig {
    let info = json!({
        "protocolVersion": "2025-11-25",
        "capabilities": { "sampling": {}, "elicitation": { "form": {} }, "roots": {} },
        "clientInfo": { "name": "berth", "version": env!("CARGO_PKG_VERSION") },
    });
    serde_json::from_value(info).unwrap_or_default()
}

/// One live MCP client connection to a backend.
pub(crate) struct Link {
    service: RunningService<RoleClient, Bridge>,
    bridge: Bridge,
    description: ServerDescription,
    death: Death,
    call_timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("server", &self.description.name).finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.service.cancellation_token().cancel();
    }
}

/// How the client starts its lifecycle: `server/discover` first (modern), falling back to
/// `initialize` for legacy servers.
pub(crate) fn lifecycle() -> rmcp::service::ClientLifecycleMode {
    rmcp::service::ClientLifecycleMode::Auto {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        legacy_version: Some(rmcp::model::ProtocolVersion::V_2025_11_25),
    }
}

impl Link {
    /// Runs the MCP handshake over `transport` and reads the server's description.
    pub(crate) async fn connect<T, E, A>(
        transport: T,
        mode: rmcp::service::ClientLifecycleMode,
        death: Death,
        call_timeout: Duration,
    ) -> Result<Self, String>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let bridge = Bridge::default();
        let service = rmcp::service::serve_client_with_lifecycle(bridge.clone(), transport, mode)
            .await
            .map_err(|e| death.get().unwrap_or_else(|| e.to_string()))?;
        let info = service.peer().peer_info().ok_or("the server sent no description")?;
        let info = serde_json::to_value(&*info).map_err(|e| e.to_string())?;
        let server_info = info.get("serverInfo");
        let description = ServerDescription {
            name: server_info.and_then(|s| s.get("name")).and_then(Value::as_str).unwrap_or("mcp-server").to_owned(),
            version: server_info.and_then(|s| s.get("version")).and_then(Value::as_str).unwrap_or("0").to_owned(),
            capabilities: info.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            instructions: info.get("instructions").and_then(Value::as_str).map(str::to_owned),
        };
        let link = Self { service, bridge, description, death, call_timeout };
        if link.description.capabilities.get("logging").is_some() && !link.is_modern() {
            // Berth filters log messages per client; the upstream sends them all.
            let _ = link.raw("logging/setLevel", json!({ "level": "debug" })).await;
        }
        Ok(link)
    }

    pub(crate) fn description(&self) -> &ServerDescription {
        &self.description
    }

    pub(crate) fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    /// Whether the connection is over (the transport closed or the service stopped).
    pub(crate) fn is_closed(&self) -> bool {
        self.service.is_closed() || self.death.get().is_some()
    }

    fn is_modern(&self) -> bool {
        self.service.peer().peer_info().is_some_and(|i| !i.protocol_version.has_initialize())
    }

    async fn raw(&self, method: &str, params: Value) -> Result<ServerResult, ServiceError> {
        let request: ClientRequest = serde_json::from_value(json!({ "method": method, "params": params }))
            .map_err(|e| ServiceError::McpError(ErrorData::invalid_params(e.to_string(), None)))?;
        self.service.peer().send_request(request).await
    }

    /// Answers one Berth call through the upstream server.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Map<String, Value>,
        peer: Arc<dyn Peer>,
    ) -> Result<Value, BackendError> {
        let mut params = params;
        for _round in 0..MAX_INPUT_ROUNDS {
            let result = self.once(method, &params, peer.clone()).await?;
            let ServerResult::InputRequiredResult(input) = result else {
                return serde_json::to_value(&result).map_err(|e| BackendError::Unavailable(e.to_string()));
            };
            let input = serde_json::to_value(&input).unwrap_or(Value::Null);
            let mut responses = Map::new();
            let mut missing = false;
            if let Some(Value::Object(requests)) = input.get("inputRequests") {
                for (key, request) in requests {
                    let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
                    let mut params = request.get("params").cloned().unwrap_or_else(|| json!({}));
                    if let Some(map) = params.as_object_mut() {
                        let meta = map.entry("_meta").or_insert_with(|| json!({}));
                        if let Some(meta) = meta.as_object_mut() {
                            meta.insert(INPUT_KEY_META.into(), json!(key));
                        }
                    }
                    match peer.request(method, params).await {
                        Ok(answer) => {
                            responses.insert(key.clone(), answer);
                        }
                        Err(PeerError::InputRequired) => missing = true,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if missing {
                return Err(BackendError::InputRequired);
            }
            params.insert("inputResponses".into(), Value::Object(responses));
            match input.get("requestState") {
                Some(state) => params.insert("requestState".into(), state.clone()),
                None => params.remove("requestState"),
            };
        }
        Err(BackendError::Rpc(RpcError::internal(format!(
            "the server asked for input more than {MAX_INPUT_ROUNDS} times"
        ))))
    }

    async fn once(
        &self,
        method: &str,
        params: &Map<String, Value>,
        peer: Arc<dyn Peer>,
    ) -> Result<ServerResult, BackendError> {
        let request: ClientRequest = serde_json::from_value(json!({ "method": method, "params": params }))
            .map_err(|e| BackendError::Rpc(RpcError::invalid_params(e.to_string())))?;
        let mut options = PeerRequestOptions::no_options();
        options.timeout = Some(self.call_timeout);
        let handle =
            self.service.peer().send_request_with_option(request, options).await.map_err(|e| self.failure(&e))?;
        let (seq, flag) = self.bridge.register(token_key(&handle.progress_token), peer);
        let mut guard =
            CancelOnDrop { peer: Some(self.service.peer().clone()), id: handle.id.clone(), bridge: &self.bridge, seq };
        let outcome = tokio::select! {
            outcome = handle.await_response() => outcome,
            () = async {
                while !flag.0.load(Ordering::SeqCst) {
                    flag.1.notified().await;
                }
            } => return Err(BackendError::InputRequired),
        };
        guard.peer = None;
        drop(guard);
        if flag.0.load(Ordering::SeqCst) {
            return Err(BackendError::InputRequired);
        }
        outcome.map_err(|e| self.failure(&e))
    }

    fn failure(&self, e: &ServiceError) -> BackendError {
        match e {
            ServiceError::McpError(data) => BackendError::Rpc(rpc_error(data)),
            ServiceError::Timeout { timeout } => {
                BackendError::Unavailable(format!("the server did not answer within {} s", timeout.as_secs()))
            }
            other => {
                let why = self.death.get().unwrap_or_else(|| other.to_string());
                BackendError::Unavailable(format!("the connection to the server broke mid-call ({why})"))
            }
        }
    }
}

/// Unregisters a call; when dropped before its response, cancels it upstream.
struct CancelOnDrop<'a> {
    peer: Option<rmcp::service::Peer<RoleClient>>,
    id: rmcp::model::RequestId,
    bridge: &'a Bridge,
    seq: u64,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.bridge.unregister(self.seq);
        let Some(peer) = self.peer.take() else { return };
        let cancelled = json!({
            "method": "notifications/cancelled",
            "params": { "requestId": self.id, "reason": "cancelled by the client" },
        });
        let Ok(notification) = serde_json::from_value::<ClientNotification>(cancelled) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = peer.send_notification(notification).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_requests_become_typed_rmcp_requests() {
        for (method, params) in [
            ("tools/call", json!({ "name": "echo", "arguments": { "message": "hi" } })),
            ("tools/list", json!({})),
            ("resources/read", json!({ "uri": "mem://hello" })),
            ("prompts/get", json!({ "name": "greet", "arguments": { "name": "x" } })),
            (
                "completion/complete",
                json!({ "ref": { "type": "ref/prompt", "name": "greet" }, "argument": { "name": "name", "value": "a" } }),
            ),
        ] {
            let request: ClientRequest = serde_json::from_value(json!({ "method": method, "params": params })).unwrap();
            let (m, p) = split(&request);
            assert_eq!(m, method);
            assert_eq!(p.get("name"), params.get("name"));
        }
    }

    #[test]
    fn berth_declares_the_client_features_it_relays() {
        let info = serde_json::to_value(client_info()).unwrap();
        for cap in ["sampling", "elicitation", "roots"] {
            assert!(info["capabilities"].get(cap).is_some(), "{cap} missing from {info}");
        }
        assert_eq!(info["clientInfo"]["name"], "berth");
    }
}
