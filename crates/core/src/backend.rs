//! The port every hosted MCP server implements: WASM components, containers, remote
//! upstreams, and the fixture backend of the tests.
//!
//! A client session (in `berth-sessions`) owns the protocol: eras, sessions, streams, ids,
//! `ping`, `logging/setLevel`, subscriptions, MRTR. A [`Backend`] only answers MCP methods
//! (`tools/call`, `resources/read`, …) with JSON results and talks back to the client through
//! its [`Peer`]: request-scoped notices (progress, log) and server→client requests
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`). The session turns those into
//! legacy server→client requests or modern `input_required` results.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use berth_protocol::{Era, LogLevel, RpcError};
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::model::{Server, ServerVersion, Tenant};

/// `_meta` key a backend may put in the params of a server→client request to name it.
///
/// Modern clients see the name as the request's key in `inputRequests` and answer under it in
/// `inputResponses`; the session strips the key before anything reaches a client. Unnamed
/// requests are keyed `input-<n>`, in the order the backend asks.
pub const INPUT_KEY_META: &str = "berth/inputKey";

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a backend describes itself; the session answers `initialize` and `server/discover` with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDescription {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// Server capabilities (`tools`, `resources`, `prompts`, `completions`, `logging`, …).
    pub capabilities: Value,
    /// Optional natural-language instructions.
    pub instructions: Option<String>,
}

/// Something a backend tells the client while handling one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// `notifications/progress` (the session adds the request's progress token; progress must
    /// increase).
    Progress {
        /// Progress so far.
        progress: f64,
        /// Total, when known.
        total: Option<f64>,
        /// A human-readable message.
        message: Option<String>,
    },
    /// `notifications/message` (sent only at or above the level the client asked for).
    Log {
        /// Severity.
        level: LogLevel,
        /// Logger name.
        logger: Option<String>,
        /// Arbitrary JSON data.
        data: Value,
    },
}

/// Something a backend announces outside any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// `notifications/tools/list_changed`.
    ToolsListChanged,
    /// `notifications/prompts/list_changed`.
    PromptsListChanged,
    /// `notifications/resources/list_changed`.
    ResourcesListChanged,
    /// `notifications/resources/updated` for one URI.
    ResourceUpdated {
        /// The resource.
        uri: String,
    },
}

/// Why a server→client request produced no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerError {
    /// Modern era: the answer is not available yet. The backend should return
    /// [`BackendError::InputRequired`] (the `?` operator does it); the session ends the request
    /// with an `input_required` result and re-runs it when the client retries with answers.
    #[error("the client must provide input first")]
    InputRequired,
    /// The client did not declare the capability the request needs.
    #[error("the client does not support {0}")]
    Unsupported(&'static str),
    /// The client answered with an error.
    #[error("the client answered with an error: {0}")]
    Client(RpcError),
    /// The session ended or the client did not answer in time.
    #[error("the client went away")]
    Gone,
}

/// Why a backend could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// A JSON-RPC error to return as is.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// See [`PeerError::InputRequired`].
    #[error("input required")]
    InputRequired,
    /// The backend is down or failing; the message is safe to show to the client.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
}

impl From<PeerError> for BackendError {
    fn from(e: PeerError) -> Self {
        match e {
            PeerError::InputRequired => BackendError::InputRequired,
            PeerError::Unsupported(what) => {
                BackendError::Rpc(RpcError::missing_client_capability(serde_json::json!({ what: {} })))
            }
            PeerError::Client(e) => BackendError::Rpc(RpcError::internal(format!("the client refused: {}", e.message))),
            PeerError::Gone => BackendError::Unavailable("the client went away".into()),
        }
    }
}

/// The client, as seen by a backend handling one request.
pub trait Peer: Send + Sync {
    /// Relays a notice to the client if it asked for such notices; never blocks.
    fn notify(&self, notice: Notice);
    /// Asks the client: `elicitation/create`, `sampling/createMessage` or `roots/list`.
    fn request(&self, method: &str, params: Value) -> BoxFuture<'_, Result<Value, PeerError>>;
    /// The capabilities the client declared.
    fn client_capabilities(&self) -> &Value;
    /// The era of the client's session.
    fn era(&self) -> Era;
    /// Reports CPU time spent on this request, for backends that measure it (WASM). The
    /// session adds it to the call's accounting (audit records, CPU quotas).
    fn record_cpu(&self, _cpu: std::time::Duration) {}
}

/// One request handed to a backend: the method and its parameters, with `_meta`,
/// `requestState` and `inputResponses` already taken out by the session.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRequest {
    /// The MCP method.
    pub method: String,
    /// Its parameters.
    pub params: Map<String, Value>,
}

/// A hosted MCP server.
pub trait Backend: Send + Sync + 'static {
    /// Name, version, capabilities and instructions.
    fn describe(&self) -> &ServerDescription;

    /// Answers one request. Dropping the returned future cancels the work.
    fn handle(&self, request: BackendRequest, peer: Arc<dyn Peer>) -> BoxFuture<'static, Result<Value, BackendError>>;

    /// Announcements outside requests (list changes, resource updates), if the backend has any.
    fn events(&self) -> Option<BoxStream<'static, ServerEvent>> {
        None
    }

    /// A backend of its own for one client session, for backends that keep state per client
    /// (a stdio container, an upstream MCP session). The session calls it once when it starts,
    /// holds the result for its lifetime and drops it when it ends, which releases what it held.
    /// `None` (the default): sessions share `self`.
    fn session(&self) -> Option<Arc<dyn Backend>> {
        None
    }
}

/// Finds (starting or loading as needed) the backend serving a server version.
pub trait BackendResolver: Send + Sync + 'static {
    /// The backend for `version` of `server` in `tenant`.
    fn resolve(
        &self,
        tenant: &Tenant,
        server: &Server,
        version: &ServerVersion,
    ) -> BoxFuture<'static, Result<Arc<dyn Backend>, BackendError>>;
}

/// Checks an uploaded WebAssembly component against the `berth:mcp` world before it is stored.
pub trait ComponentValidator: Send + Sync + 'static {
    /// `Err` names what is missing or wrong.
    fn validate(&self, bytes: &[u8]) -> Result<(), String>;
}

/// The validator of a build without a WASM runtime: the component header only.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderOnly;

impl ComponentValidator for HeaderOnly {
    fn validate(&self, bytes: &[u8]) -> Result<(), String> {
        crate::server::check_component_header(bytes).map_err(|e| e.to_string())
    }
}
