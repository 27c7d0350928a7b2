//! From a session's outbound stream to an HTTP response.
//!
//! A request's answer is held back until the first real message: if that is the response and
//! the client accepts JSON, the reply is one `application/json` body with the right status
//! (so modern errors keep their 400/404). Anything else — a notification, a server→client
//! request, or ten seconds of silence — commits to `text/event-stream`, with keep-alive comments
//! while the stream is open. Legacy events carry ids for `Last-Event-ID` resumption.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use berth_protocol::{RequestId, RpcError, jsonrpc, sse};
use berth_sessions::outbound::OutboundReceiver;
use berth_sessions::{OutKind, Outbound};
use bytes::Bytes;

/// How long to wait for the first message before committing to SSE.
const COMMIT_AFTER: Duration = Duration::from_secs(10);
/// Interval of keep-alive comments on open streams.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// What the client's `Accept` header allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accept {
    pub(crate) json: bool,
    pub(crate) sse: bool,
}

impl Accept {
    pub(crate) fn of(req: &HttpRequest) -> Self {
        let Some(value) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Self { json: true, sse: true };
        };
        let mut accept = Self { json: false, sse: false };
        for item in value.split(',') {
            let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "application/*" => accept.json = true,
                "text/event-stream" | "text/*" => accept.sse = true,
                "*/*" => {
                    accept.json = true;
                    accept.sse = true;
                }
                _ => {}
            }
        }
        accept
    }
}

/// A JSON-RPC error as an HTTP response.
pub(crate) fn rpc_error(status: StatusCode, id: Option<&RequestId>, error: &RpcError) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(jsonrpc::text(&jsonrpc::error_response(id, error)))
}

fn event_bytes(out: &Outbound) -> Bytes {
    match (out.kind, &out.event_id) {
        (OutKind::Priming, Some(id)) => Bytes::from(sse::priming(id, None)),
        (OutKind::Priming, None) => Bytes::new(),
        (_, id) => Bytes::from(sse::message(id.as_deref(), &out.json)),
    }
}

fn with_session(mut response: HttpResponse, session: Option<&str>) -> HttpResponse {
    if let Some(id) = session
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(header::HeaderName::from_static("mcp-session-id"), value);
    }
    response
}

fn json_reply(out: &Outbound) -> HttpResponse {
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    HttpResponse::build(status).content_type("application/json").body(out.json.to_string())
}

enum First {
    Message(Outbound),
    Closed,
    Silent,
}

/// Answers a request from its outbound stream.
pub(crate) async fn answer(mut rx: OutboundReceiver, accept: Accept, session: Option<&str>) -> HttpResponse {
    let mut head = VecDeque::new();
    let deadline = tokio::time::Instant::now() + COMMIT_AFTER;
    let first = loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(out)) if out.kind == OutKind::Priming => head.push_back(out),
            Ok(Some(out)) => break First::Message(out),
            Ok(None) => break First::Closed,
            Err(_) => break First::Silent,
        }
    };
    if let First::Message(out) = &first
        && out.kind == OutKind::Response
        && (accept.json || out.status != 200)
    {
        return with_session(json_reply(out), session);
    }
    if !accept.sse {
        // JSON only: skip notifications and wait for the response.
        let mut pending = match first {
            First::Message(out) => Some(out),
            First::Closed => None,
            First::Silent => rx.recv().await,
        };
        while let Some(out) = pending {
            if out.kind == OutKind::Response {
                return with_session(json_reply(&out), session);
            }
            pending = rx.recv().await;
        }
        return with_session(HttpResponse::Accepted().finish(), session);
    }
    if let First::Message(out) = first {
        head.push_back(out);
    }
    with_session(stream(head, rx), session)
}

/// An SSE response: `head` first, then everything from `rx`, with keep-alives.
pub(crate) fn stream(head: VecDeque<Outbound>, rx: OutboundReceiver) -> HttpResponse {
    let ticker = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE_EVERY, KEEP_ALIVE_EVERY);
    let body = futures::stream::unfold((head, rx, ticker), |(mut head, mut rx, mut ticker)| async move {
        if let Some(out) = head.pop_front() {
            return Some((Ok::<_, actix_web::Error>(event_bytes(&out)), (head, rx, ticker)));
        }
        let next = tokio::select! {
            item = rx.recv() => item.map(|out| event_bytes(&out)),
            _ = ticker.tick() => Some(Bytes::from_static(sse::KEEP_ALIVE.as_bytes())),
        };
        next.map(|bytes| (Ok(bytes), (head, rx, ticker)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache, no-transform"))
        .insert_header((header::HeaderName::from_static("x-accel-buffering"), "no"))
        .streaming(body)
}
