//! What a session sends toward one HTTP response.

use std::sync::Arc;

/// The kind of an outbound item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    /// An SSE priming event (an id, no data); JSON responses skip it.
    Priming,
    /// A notification related to the request (progress, log) or to the stream.
    Notification,
    /// A server→client request (legacy).
    Request,
    /// The response that completes the request; the stream ends after it.
    Response,
}

/// One message for an HTTP response stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// SSE event id (legacy streams only).
    pub event_id: Option<Arc<str>>,
    /// The JSON-RPC message (empty for priming events).
    pub json: Arc<str>,
    /// What it is.
    pub kind: OutKind,
    /// HTTP status to use if this is the first thing sent and it is a response (modern errors
    /// such as unknown methods answer 404, validation failures 400).
    pub status: u16,
}

impl Outbound {
    /// A message with status 200.
    pub fn new(kind: OutKind, json: impl Into<Arc<str>>) -> Self {
        Self { event_id: None, json: json.into(), kind, status: 200 }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// The receiving end handed to the HTTP layer; the stream ends when all senders are gone.
pub type OutboundReceiver = tokio::sync::mpsc::Receiver<Outbound>;
/// The sending end.
pub type OutboundSender = tokio::sync::mpsc::Sender<Outbound>;

/// Capacity of one response stream's channel; a client slower than this is detached (legacy)
/// and resumes from the replay buffer, or loses best-effort notifications (modern).
pub const STREAM_CAPACITY: usize = 256;

/// A new response stream.
pub fn channel() -> (OutboundSender, OutboundReceiver) {
    tokio::sync::mpsc::channel(STREAM_CAPACITY)
}
