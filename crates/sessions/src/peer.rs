//! The client as a backend sees it, one implementation per era.
//!
//! - [`LegacyPeer`] relays notices onto the request's SSE stream (through the session actor,
//!   which numbers events for replay) and really asks the client, awaiting its response.
//! - [`ModernPeer`] writes notices straight to the request's stream and answers server→client
//!   requests from the answers recorded in the sealed `requestState` and the retry's
//!   `inputResponses`; a missing answer is registered as an input request and reported as
//!   [`PeerError::InputRequired`], so the call ends with an `input_required` result.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use actix::Addr;
use berth_core::backend::{BoxFuture, INPUT_KEY_META, Notice, Peer, PeerError};
use berth_protocol::{Era, LogLevel, RequestId, jsonrpc};
use serde_json::{Map, Value, json};

use crate::actor::{AskClient, Emit, Session};
use crate::hooks::CallMeter;
use crate::outbound::{OutKind, Outbound, OutboundSender};

/// Sentinel for "no level set" in an [`AtomicU8`] log level.
pub(crate) const NO_LEVEL: u8 = u8::MAX;

pub(crate) fn level_to_u8(level: LogLevel) -> u8 {
    level as u8
}

/// Takes the backend's name for a server→client request out of its params (see
/// [`INPUT_KEY_META`]); `_meta` goes too when nothing else is left in it.
fn take_input_key(params: &mut Value) -> Option<String> {
    let meta = params.get_mut("_meta")?.as_object_mut()?;
    let key = meta.remove(INPUT_KEY_META)?.as_str().map(str::to_owned);
    if meta.is_empty()
        && let Some(map) = params.as_object_mut()
    {
        map.remove("_meta");
    }
    key.filter(|k| !k.is_empty() && k.len() <= 128)
}

/// The capability a server→client method needs.
fn required_capability(method: &str) -> Option<&'static str> {
    match method {
        "elicitation/create" => Some("elicitation"),
        "sampling/createMessage" => Some("sampling"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

fn check_capability(caps: &Value, method: &str) -> Result<(), PeerError> {
    match required_capability(method) {
        Some(cap) if caps.get(cap).is_some_and(|v| !v.is_null()) => Ok(()),
        Some(cap) => Err(PeerError::Unsupported(cap)),
        None => Err(PeerError::Client(berth_protocol::RpcError::invalid_request(format!(
            "servers may not send {method} to clients"
        )))),
    }
}

/// Builds the notification for a notice, or `None` when the client did not ask for it.
/// Progress must increase: a notice that does not is dropped.
fn notification_for(
    notice: Notice,
    progress_token: Option<&Value>,
    last_progress: &Mutex<f64>,
    min_level: Option<LogLevel>,
) -> Option<String> {
    match notice {
        Notice::Progress { progress, total, message } => {
            let token = progress_token?;
            let mut last = last_progress.lock().ok()?;
            if progress.partial_cmp(&*last) != Some(std::cmp::Ordering::Greater) {
                return None;
            }
            *last = progress;
            let mut params = Map::new();
            params.insert("progressToken".into(), token.clone());
            params.insert("progress".into(), json!(progress));
            if let Some(total) = total {
                params.insert("total".into(), json!(total));
            }
            if let Some(message) = message {
                params.insert("message".into(), json!(message));
            }
            Some(jsonrpc::text(&jsonrpc::notification("notifications/progress", Value::Object(params))))
        }
        Notice::Log { level, logger, data } => {
            if level < min_level? {
                return None;
            }
            let mut params = Map::new();
            params.insert("level".into(), json!(level.as_str()));
            if let Some(logger) = logger {
                params.insert("logger".into(), json!(logger));
            }
            params.insert("data".into(), data);
            Some(jsonrpc::text(&jsonrpc::notification("notifications/message", Value::Object(params))))
        }
    }
}

/// A legacy request's view of its client.
pub(crate) struct LegacyPeer {
    pub(crate) session: Addr<Session>,
    pub(crate) stream: u64,
    pub(crate) capabilities: Value,
    pub(crate) progress_token: Option<Value>,
    pub(crate) log_level: std::sync::Arc<AtomicU8>,
    pub(crate) last_progress: Mutex<f64>,
    pub(crate) timeout: std::time::Duration,
    pub(crate) meter: std::sync::Arc<CallMeter>,
}

impl Peer for LegacyPeer {
    fn notify(&self, notice: Notice) {
        let level = match self.log_level.load(Ordering::Relaxed) {
            NO_LEVEL => Some(LogLevel::Debug),
            n => LogLevel::ALL.get(usize::from(n)).copied(),
        };
        if let Some(json) = notification_for(notice, self.progress_token.as_ref(), &self.last_progress, level) {
            self.session.do_send(Emit { stream: self.stream, kind: OutKind::Notification, json });
        }
    }

    fn request(&self, method: &str, mut params: Value) -> BoxFuture<'_, Result<Value, PeerError>> {
        let checked = check_capability(&self.capabilities, method);
        take_input_key(&mut params);
        let ask = AskClient { stream: self.stream, method: method.to_owned(), params };
        Box::pin(async move {
            checked?;
            let answer = self.session.send(ask).await.map_err(|_| PeerError::Gone)?.ok_or(PeerError::Gone)?;
            match tokio::time::timeout(self.timeout, answer).await {
                Ok(Ok(Ok(result))) => Ok(result),
                Ok(Ok(Err(error))) => Err(PeerError::Client(error)),
                Ok(Err(_)) | Err(_) => Err(PeerError::Gone),
            }
        })
    }

    fn client_capabilities(&self) -> &Value {
        &self.capabilities
    }

    fn era(&self) -> Era {
        Era::Legacy
    }

    fn record_cpu(&self, cpu: std::time::Duration) {
        self.meter.add_cpu(cpu);
    }
}

/// A modern request's view of its client.
pub(crate) struct ModernPeer {
    pub(crate) tx: OutboundSender,
    pub(crate) capabilities: Value,
    pub(crate) progress_token: Option<Value>,
    pub(crate) log_level: Option<LogLevel>,
    pub(crate) last_progress: Mutex<f64>,
    /// Answers recorded in earlier rounds and sent with this retry, by input key.
    pub(crate) answers: Map<String, Value>,
    /// How many server→client requests this run has made (keys are `input-<n>`).
    pub(crate) asked: AtomicUsize,
    /// Requests without an answer yet: (key, request object).
    pub(crate) pending: Mutex<Vec<(String, Value)>>,
    pub(crate) meter: std::sync::Arc<CallMeter>,
}

impl ModernPeer {
    pub(crate) fn take_pending(&self) -> Vec<(String, Value)> {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }
}

impl Peer for ModernPeer {
    fn notify(&self, notice: Notice) {
        if let Some(json) = notification_for(notice, self.progress_token.as_ref(), &self.last_progress, self.log_level)
        {
            // Request-scoped notifications are best effort: a full stream drops them.
            let _ = self.tx.try_send(Outbound::new(OutKind::Notification, json));
        }
    }

    fn request(&self, method: &str, mut params: Value) -> BoxFuture<'_, Result<Value, PeerError>> {
        let checked = check_capability(&self.capabilities, method);
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        let key = take_input_key(&mut params).unwrap_or_else(|| format!("input-{n}"));
        let method = method.to_owned();
        Box::pin(async move {
            checked?;
            if let Some(answer) = self.answers.get(&key) {
                return Ok(answer.clone());
            }
            if let Ok(mut pending) = self.pending.lock() {
                pending.push((key, json!({ "method": method, "params": params })));
            }
            Err(PeerError::InputRequired)
        })
    }

    fn client_capabilities(&self) -> &Value {
        &self.capabilities
    }

    fn era(&self) -> Era {
        Era::Modern
    }

    fn record_cpu(&self, cpu: std::time::Duration) {
        self.meter.add_cpu(cpu);
    }
}

/// The id of a request the session sends to a legacy client.
pub(crate) fn server_request_id(n: u64) -> RequestId {
    RequestId::String(format!("berth-{n}"))
}
