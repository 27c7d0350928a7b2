//! [`SessionHandle`]: the only way to talk to a session.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::Addr;
use berth_protocol::ProtocolVersion;
use berth_protocol::jsonrpc::{Notification, Request, Response};
use berth_protocol::meta::RequestMeta;

use crate::actor::{
    ClientResponse, IdleCheck, KillCalls, LegacyNotification, LegacyRequest, ModernRequest, OpenStream, Session,
    Shared, Terminate, touch,
};
use crate::error::SessionError;
use crate::hooks::RequestContext;
use crate::outbound::OutboundReceiver;

/// How long a caller waits for room in a full session mailbox.
const MAILBOX_WAIT: Duration = Duration::from_secs(5);

/// A cloneable handle on one session; mailbox failures become [`SessionError`]s.
#[derive(Clone)]
pub struct SessionHandle {
    addr: Addr<Session>,
    shared: Arc<Shared>,
    epoch: Instant,
    id: Option<Arc<str>>,
    version: ProtocolVersion,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle").field("version", &self.version).finish_non_exhaustive()
    }
}

impl SessionHandle {
    pub(crate) fn new(
        addr: Addr<Session>,
        shared: Arc<Shared>,
        epoch: Instant,
        id: Option<Arc<str>>,
        version: ProtocolVersion,
    ) -> Self {
        Self { addr, shared, epoch, id, version }
    }

    /// The legacy session id (`None` for modern sessions).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub(crate) fn touch(&self) {
        touch(&self.shared, self.epoch);
    }

    pub(crate) fn last_seen_ms(&self) -> u64 {
        self.shared.last_seen_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn send_idle_check(&self) {
        self.addr.do_send(IdleCheck);
    }

    /// A legacy request; the receiver yields its stream, ending after the response.
    pub async fn request(&self, request: Request) -> Result<OutboundReceiver, SessionError> {
        self.request_with(request, RequestContext::default()).await
    }

    /// A legacy request with the data plane's context (disabled tools, accounting).
    pub async fn request_with(
        &self,
        request: Request,
        context: RequestContext,
    ) -> Result<OutboundReceiver, SessionError> {
        self.touch();
        Ok(self.addr.send(LegacyRequest(request, context)).timeout(MAILBOX_WAIT).await?)
    }

    /// A legacy notification (`initialized`, `cancelled`, …).
    pub fn notify(&self, notification: Notification) {
        self.touch();
        self.addr.do_send(LegacyNotification(notification));
    }

    /// A legacy client's response to a server→client request.
    pub fn respond(&self, response: Response) {
        self.touch();
        self.addr.do_send(ClientResponse(response));
    }

    /// Opens the GET stream, or resumes a stream after `last_event_id`.
    pub async fn open_stream(&self, last_event_id: Option<String>) -> Result<OutboundReceiver, SessionError> {
        self.touch();
        self.addr.send(OpenStream(last_event_id)).timeout(MAILBOX_WAIT).await?
    }

    /// Ends the session.
    pub fn terminate(&self) {
        self.addr.do_send(Terminate(None));
    }

    /// Ends the session by the kill switch: in-flight calls are answered with an error naming
    /// `reason`, then every stream ends.
    pub fn kill(&self, reason: &str) {
        self.addr.do_send(Terminate(Some(reason.to_owned())));
    }

    /// Ends in-flight calls of `tools` with an error naming `reason`.
    pub fn kill_tool_calls(&self, tools: &[String], reason: &str) {
        self.addr.do_send(KillCalls { tools: tools.to_vec(), reason: reason.to_owned() });
    }

    /// A modern request with its validated envelope.
    pub async fn modern(&self, request: Request, meta: RequestMeta) -> Result<OutboundReceiver, SessionError> {
        self.modern_with(request, meta, RequestContext::default()).await
    }

    /// A modern request with the data plane's context (disabled tools, accounting).
    pub async fn modern_with(
        &self,
        request: Request,
        meta: RequestMeta,
        context: RequestContext,
    ) -> Result<OutboundReceiver, SessionError> {
        self.touch();
        Ok(self.addr.send(ModernRequest { request, meta, context }).timeout(MAILBOX_WAIT).await?)
    }

    /// Whether the actor is still running.
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }
}
