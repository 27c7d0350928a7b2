//! The session actor.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use berth_protocol::Era;

use actix::prelude::*;
use berth_core::backend::{Backend, BackendError, BackendRequest, ServerEvent};
use berth_protocol::jsonrpc::{self, Notification, Request, RequestId, Response, RpcError};
use berth_protocol::meta::{LogLevel, RequestMeta, SUBSCRIPTION_ID};
use berth_protocol::{ProtocolVersion, result, state};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::SessionConfig;
use crate::error::SessionError;
use crate::hooks::{CallMeter, CallOutcome, CallRecord, CloseReason, RequestContext, SessionHooks, SessionInfo};
use crate::outbound::{self, OutKind, Outbound, OutboundReceiver, OutboundSender};
use crate::peer::{self, LegacyPeer, ModernPeer, NO_LEVEL};
use crate::registry::{Owner, RegistryInner};

/// Methods a backend answers; everything else is the session's own business.
pub(crate) fn is_backend_method(method: &str) -> bool {
    matches!(
        method,
        "tools/list"
            | "tools/call"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "prompts/list"
            | "prompts/get"
            | "completion/complete"
    )
}

/// Parameters a backend never sees.
fn backend_params(mut params: Map<String, Value>) -> Map<String, Value> {
    for key in ["_meta", "requestState", "inputResponses"] {
        params.remove(key);
    }
    params
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// HTTP status of a modern error response sent before anything else.
fn modern_status(code: i64) -> u16 {
    use berth_protocol::jsonrpc::code::*;
    match code {
        METHOD_NOT_FOUND => 404,
        PARSE_ERROR
        | INVALID_REQUEST
        | HEADER_MISMATCH
        | MISSING_REQUIRED_CLIENT_CAPABILITY
        | UNSUPPORTED_PROTOCOL_VERSION => 400,
        _ => 200,
    }
}

/// Which era the session speaks.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Legacy { id: Arc<str>, version: ProtocolVersion },
    Modern,
}

struct LegacyStream {
    seq: u64,
    buffer: VecDeque<Outbound>,
    buffered_bytes: usize,
    sink: Option<OutboundSender>,
    finished: bool,
}

impl LegacyStream {
    fn new(sink: Option<OutboundSender>) -> Self {
        Self { seq: 0, buffer: VecDeque::new(), buffered_bytes: 0, sink, finished: false }
    }

    fn is_live(&self) -> bool {
        self.sink.as_ref().is_some_and(|s| !s.is_closed())
    }
}

/// Methods whose calls are audited with their parameters (a digest, or the payload when the
/// server opts in).
fn is_audited_method(method: &str) -> bool {
    matches!(method, "tools/call" | "resources/read" | "prompts/get")
}

/// The tool a `tools/call` names.
fn tool_name<'a>(method: &str, params: &'a Map<String, Value>) -> Option<&'a str> {
    if method == "tools/call" { params.get("name").and_then(Value::as_str) } else { None }
}

/// A call's bookkeeping from dispatch to its response.
pub(crate) struct CallTrace {
    started: Instant,
    method: String,
    /// Kept for audited methods only.
    params: Map<String, Value>,
    context: RequestContext,
    meter: Arc<CallMeter>,
    /// Modern `clientInfo` from the request's `_meta`.
    client: Option<Value>,
}

impl CallTrace {
    fn new(method: &str, params: &Map<String, Value>, context: RequestContext, client: Option<Value>) -> Self {
        let params = if is_audited_method(method) { params.clone() } else { Map::new() };
        Self { started: Instant::now(), method: method.to_owned(), params, context, meter: Arc::default(), client }
    }

    fn tool(&self) -> Option<&str> {
        tool_name(&self.method, &self.params)
    }
}

struct InFlight {
    stream: u64,
    task: JoinHandle<()>,
    trace: Arc<CallTrace>,
    /// Modern calls: the response stream, so the kill switch can answer before ending it.
    tx: Option<OutboundSender>,
}

struct Listener {
    id: RequestId,
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: HashSet<String>,
    tx: OutboundSender,
}

/// State shared between a session's actor and its handles, readable without a message.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Milliseconds since the registry started, at the last request.
    pub(crate) last_seen_ms: std::sync::atomic::AtomicU64,
}

/// One client session.
pub struct Session {
    pub(crate) kind: Kind,
    pub(crate) owner: Owner,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) capabilities: Value,
    pub(crate) config: Arc<SessionConfig>,
    pub(crate) registry: Weak<RegistryInner>,
    log_level: Arc<AtomicU8>,
    in_flight: HashMap<RequestId, InFlight>,
    streams: HashMap<u64, LegacyStream>,
    finished_order: VecDeque<u64>,
    next_stream: u64,
    next_request: u64,
    pending: HashMap<RequestId, oneshot::Sender<Result<Value, RpcError>>>,
    subscriptions: HashSet<String>,
    listeners: Vec<Listener>,
    server_info: Value,
    hooks: Arc<dyn SessionHooks>,
    /// Legacy `clientInfo` from `initialize`.
    client: Option<Value>,
    /// The context of the request that opened the session.
    opened_by: Option<RequestContext>,
    close_reason: CloseReason,
}

/// Stream number of the standalone GET stream.
const GET_STREAM: u64 = 0;
/// Finished streams kept for resumption.
const KEEP_FINISHED: usize = 32;

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: Kind,
        owner: Owner,
        backend: Arc<dyn Backend>,
        capabilities: Value,
        config: Arc<SessionConfig>,
        registry: Weak<RegistryInner>,
        hooks: Arc<dyn SessionHooks>,
        opening: crate::registry::Opening,
    ) -> Self {
        let description = backend.describe();
        let server_info = json!({ "name": description.name, "version": description.version });
        Self {
            kind,
            owner,
            backend,
            capabilities,
            config,
            registry,
            log_level: Arc::new(AtomicU8::new(NO_LEVEL)),
            in_flight: HashMap::new(),
            streams: HashMap::new(),
            finished_order: VecDeque::new(),
            next_stream: 1,
            next_request: 1,
            pending: HashMap::new(),
            subscriptions: HashSet::new(),
            listeners: Vec::new(),
            server_info,
            hooks,
            client: opening.client,
            opened_by: opening.context,
            close_reason: CloseReason::Client,
        }
    }

    fn era(&self) -> Era {
        if self.is_modern() { Era::Modern } else { Era::Legacy }
    }

    fn legacy_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Legacy { id, .. } => Some(id),
            Kind::Modern => None,
        }
    }

    fn info(&self) -> SessionInfo<'_> {
        SessionInfo {
            owner: &self.owner,
            id: self.legacy_id(),
            era: self.era(),
            client: self.client.as_ref(),
            context: self.opened_by.as_ref(),
        }
    }

    /// Reports a finished call to the hooks.
    fn report(&self, trace: &CallTrace, outcome: CallOutcome, bytes_out: usize) {
        report(
            &*self.hooks,
            &self.owner,
            self.legacy_id(),
            self.era(),
            self.client.as_ref(),
            trace,
            outcome,
            bytes_out,
        );
    }

    fn is_modern(&self) -> bool {
        matches!(self.kind, Kind::Modern)
    }

    // ---- legacy streams -------------------------------------------------------------------

    fn open_stream(&mut self, sink: OutboundSender) -> u64 {
        let stream = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(stream, LegacyStream::new(Some(sink)));
        self.prime(stream);
        stream
    }

    fn prime(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            let id: Arc<str> = format!("{stream}-{}", s.seq).into();
            if let Some(sink) = &s.sink {
                let _ = sink.try_send(Outbound {
                    event_id: Some(id),
                    json: Arc::from(""),
                    kind: OutKind::Priming,
                    status: 200,
                });
            }
        }
    }

    /// Numbers an event, keeps it for replay and forwards it to the stream's live sink.
    pub(crate) fn emit(&mut self, stream: u64, kind: OutKind, json: String) {
        let (max_events, max_bytes) = (self.config.replay_events, self.config.replay_bytes);
        let Some(s) = self.streams.get_mut(&stream) else { return };
        if s.finished {
            return;
        }
        s.seq += 1;
        let out =
            Outbound { event_id: Some(format!("{stream}-{}", s.seq).into()), json: json.into(), kind, status: 200 };
        s.buffered_bytes += out.json.len();
        s.buffer.push_back(out.clone());
        while s.buffer.len() > max_events || s.buffered_bytes > max_bytes {
            match s.buffer.pop_front() {
                Some(old) => s.buffered_bytes -= old.json.len(),
                None => break,
            }
        }
        if let Some(sink) = &s.sink
            && sink.try_send(out).is_err()
        {
            // Slow or gone: detach; the client resumes from the replay buffer.
            s.sink = None;
        }
        if kind == OutKind::Response {
            self.finish_stream(stream);
        }
    }

    fn finish_stream(&mut self, stream: u64) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.finished = true;
            s.sink = None;
            self.finished_order.push_back(stream);
        }
        while self.finished_order.len() > KEEP_FINISHED {
            if let Some(old) = self.finished_order.pop_front() {
                self.streams.remove(&old);
            }
        }
    }

    fn respond_legacy(&mut self, stream: u64, id: &RequestId, outcome: Result<Value, RpcError>) {
        self.respond_legacy_sized(stream, id, outcome);
    }

    /// Answers a legacy request; returns the response and its size.
    fn respond_legacy_sized(
        &mut self,
        stream: u64,
        id: &RequestId,
        outcome: Result<Value, RpcError>,
    ) -> (Value, usize) {
        let json = match outcome {
            Ok(Value::Object(map)) => jsonrpc::response(id, Value::Object(result::legacy(map))),
            Ok(other) => jsonrpc::response(id, other),
            Err(error) => jsonrpc::error_response(Some(id), &error),
        };
        let text = jsonrpc::text(&json);
        let size = text.len();
        self.emit(stream, OutKind::Response, text);
        (json, size)
    }

    fn spawn_legacy(&mut self, ctx: &mut Context<Self>, stream: u64, request: Request, context: RequestContext) {
        let Request { id, method, params } = request;
        let progress_token = berth_protocol::meta::progress_token(&params);
        let params = backend_params(params);
        let trace = Arc::new(CallTrace::new(&method, &params, context, None));
        if let Some(tool) = trace.tool().filter(|t| trace.context.tool_disabled(t)) {
            let error = RpcError::invalid_params(format!("Tool {tool} is disabled")).with_data(json!({ "tool": tool }));
            let (json, size) = self.respond_legacy_sized(stream, &id, Err(error));
            self.report(&trace, CallOutcome::of_response(&json), size);
            return;
        }
        let peer = Arc::new(LegacyPeer {
            session: ctx.address(),
            stream,
            capabilities: self.capabilities.clone(),
            progress_token,
            log_level: self.log_level.clone(),
            last_progress: Mutex::new(f64::MIN),
            timeout: self.config.peer_timeout,
            meter: trace.meter.clone(),
        });
        let work = self.backend.handle(BackendRequest { method, params }, peer);
        let addr = ctx.address();
        let done_id = id.clone();
        let task = actix::spawn(async move {
            let outcome = work.await;
            addr.do_send(Finished { id: done_id, outcome });
        });
        self.in_flight.insert(id, InFlight { stream, task, trace, tx: None });
    }

    // ---- modern ---------------------------------------------------------------------------

    fn discover(&self) -> Value {
        let description = self.backend.describe();
        let mut out = Map::new();
        out.insert("supportedVersions".into(), json!(ProtocolVersion::MODERN));
        out.insert("capabilities".into(), description.capabilities.clone());
        if let Some(instructions) = &description.instructions {
            out.insert("instructions".into(), json!(instructions));
        }
        Value::Object(result::modern("server/discover", out, &self.server_info, 0))
    }

    fn listen(&mut self, id: RequestId, params: &Map<String, Value>, tx: OutboundSender) {
        let caps = &self.backend.describe().capabilities;
        let wanted = params.get("notifications").cloned().unwrap_or_else(|| json!({}));
        let flag = |name: &str, cap: &str| {
            wanted.get(name).and_then(Value::as_bool).unwrap_or(false)
                && caps.get(cap).and_then(|c| c.get("listChanged")).and_then(Value::as_bool).unwrap_or(false)
        };
        let (tools, prompts, resources) = (
            flag("toolsListChanged", "tools"),
            flag("promptsListChanged", "prompts"),
            flag("resourcesListChanged", "resources"),
        );
        let can_subscribe =
            caps.get("resources").and_then(|c| c.get("subscribe")).and_then(Value::as_bool).unwrap_or(false);
        let uris: HashSet<String> = if can_subscribe {
            wanted
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        } else {
            HashSet::new()
        };
        let mut honoured = Map::new();
        for (name, on) in
            [("toolsListChanged", tools), ("promptsListChanged", prompts), ("resourcesListChanged", resources)]
        {
            if on {
                honoured.insert(name.into(), json!(true));
            }
        }
        if !uris.is_empty() {
            let mut list: Vec<&String> = uris.iter().collect();
            list.sort();
            honoured.insert("resourceSubscriptions".into(), json!(list));
        }
        let ack = jsonrpc::notification(
            "notifications/subscriptions/acknowledged",
            json!({ "_meta": { SUBSCRIPTION_ID: id.to_value() }, "notifications": honoured }),
        );
        if tx.try_send(Outbound::new(OutKind::Notification, jsonrpc::text(&ack))).is_ok() {
            self.listeners.push(Listener { id, tools, prompts, resources, uris, tx });
        }
    }

    fn spawn_modern(
        &mut self,
        ctx: &mut Context<Self>,
        request: Request,
        meta: RequestMeta,
        tx: OutboundSender,
        context: RequestContext,
    ) {
        let Request { id, method, params } = request;
        let trace =
            Arc::new(CallTrace::new(&method, &backend_params(params.clone()), context, meta.client_info.clone()));
        if let Some(tool) = trace.tool().filter(|t| trace.context.tool_disabled(t)) {
            let error = RpcError::invalid_params(format!("Tool {tool} is disabled")).with_data(json!({ "tool": tool }));
            let json = jsonrpc::error_response(Some(&id), &error);
            let text = jsonrpc::text(&json);
            self.report(&trace, CallOutcome::of_response(&json), text.len());
            let _ = tx.try_send(Outbound::new(OutKind::Response, text).with_status(modern_status(error.code)));
            return;
        }
        let digest = state::request_digest(&params);
        let binding_parts =
            (self.owner.tenant_slug.clone(), self.owner.server_slug.clone(), self.owner.principal.clone());
        let binding = state::Binding {
            tenant: &binding_parts.0,
            server: &binding_parts.1,
            principal: &binding_parts.2,
            method: &method,
            params_digest: digest,
        };
        let mut answers = Map::new();
        if let Some(token) = params.get("requestState") {
            let opened = token.as_str().ok_or(state::StateError::Malformed).and_then(|t| {
                let previous = self.config.previous_state_key.as_ref();
                state::open_rotating(&self.config.state_key, previous, &binding, t, now_unix())
            });
            match opened {
                Ok(payload) => {
                    if let Some(Value::Object(recorded)) = payload.get("answers") {
                        answers.extend(recorded.clone());
                    }
                }
                Err(e) => {
                    let error = RpcError::invalid_params(format!("invalid requestState: {e}"));
                    let json = jsonrpc::text(&jsonrpc::error_response(Some(&id), &error));
                    let _ = tx.try_send(Outbound::new(OutKind::Response, json).with_status(400));
                    return;
                }
            }
        }
        if let Some(Value::Object(responses)) = params.get("inputResponses") {
            answers.extend(responses.clone());
        }
        let peer = Arc::new(ModernPeer {
            tx: tx.clone(),
            capabilities: meta.client_capabilities,
            progress_token: meta.progress_token,
            log_level: meta.log_level,
            last_progress: Mutex::new(f64::MIN),
            answers,
            asked: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            meter: trace.meter.clone(),
        });
        let work = self
            .backend
            .handle(BackendRequest { method: method.clone(), params: backend_params(params) }, peer.clone());
        let addr = ctx.address();
        let server_info = self.server_info.clone();
        let state_key = self.config.state_key.clone();
        let expires_at = now_unix() + self.config.state_ttl.as_secs();
        let done_id = id.clone();
        let (hooks, owner, task_trace, task_tx) = (self.hooks.clone(), self.owner.clone(), trace.clone(), tx.clone());
        let task = actix::spawn(async move {
            let outcome = tokio::select! {
                outcome = work => Some(outcome),
                () = tx.closed() => None,
            };
            if let Some(mut outcome) = outcome {
                if method == "tools/list"
                    && let Ok(result) = &mut outcome
                {
                    crate::hooks::filter_tools(result, &task_trace.context);
                }
                let pending = peer.take_pending();
                let binding = state::Binding {
                    tenant: &binding_parts.0,
                    server: &binding_parts.1,
                    principal: &binding_parts.2,
                    method: &method,
                    params_digest: digest,
                };
                let out = modern_outcome(&done_id, &method, outcome, pending, &peer.answers, &server_info, |payload| {
                    state::seal(&state_key, &binding, payload, expires_at)
                });
                let classified = serde_json::from_str::<Value>(&out.json)
                    .map(|v| CallOutcome::of_response(&v))
                    .unwrap_or(CallOutcome::Ok);
                let size = out.json.len();
                let _ = tx.send(out).await;
                report(&*hooks, &owner, None, Era::Modern, None, &task_trace, classified, size);
            } else {
                report(&*hooks, &owner, None, Era::Modern, None, &task_trace, CallOutcome::Cancelled, 0);
            }
            addr.do_send(ModernDone { id: done_id });
        });
        self.in_flight.insert(id, InFlight { stream: 0, task, trace, tx: Some(task_tx) });
    }

    /// Ends in-flight calls (all of them, or those of the given tools) with `reason` as a
    /// JSON-RPC error: the kill switch.
    fn kill_calls(&mut self, tools: Option<&[String]>, reason: &str) {
        let doomed: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, f)| tools.is_none_or(|tools| f.trace.tool().is_some_and(|t| tools.iter().any(|x| x == t))))
            .map(|(id, _)| id.clone())
            .collect();
        for id in doomed {
            let Some(flight) = self.in_flight.remove(&id) else { continue };
            flight.task.abort();
            let error = RpcError::internal(reason.to_owned());
            match &flight.tx {
                Some(tx) => {
                    let text = jsonrpc::text(&jsonrpc::error_response(Some(&id), &error));
                    let _ = tx.try_send(Outbound::new(OutKind::Response, text));
                }
                None => {
                    self.respond_legacy(flight.stream, &id, Err(error));
                }
            }
            self.report(&flight.trace, CallOutcome::Killed, 0);
        }
    }

    fn deliver_event(&mut self, event: &ServerEvent) {
        let (method, params) = match event {
            ServerEvent::ToolsListChanged => ("notifications/tools/list_changed", json!({})),
            ServerEvent::PromptsListChanged => ("notifications/prompts/list_changed", json!({})),
            ServerEvent::ResourcesListChanged => ("notifications/resources/list_changed", json!({})),
            ServerEvent::ResourceUpdated { uri } => ("notifications/resources/updated", json!({ "uri": uri })),
        };
        if self.is_modern() {
            self.listeners.retain(|l| !l.tx.is_closed());
            for listener in &self.listeners {
                let wanted = match event {
                    ServerEvent::ToolsListChanged => listener.tools,
                    ServerEvent::PromptsListChanged => listener.prompts,
                    ServerEvent::ResourcesListChanged => listener.resources,
                    ServerEvent::ResourceUpdated { uri } => listener.uris.contains(uri),
                };
                if wanted {
                    let mut params = params.clone();
                    if let Value::Object(map) = &mut params {
                        map.insert("_meta".into(), json!({ SUBSCRIPTION_ID: listener.id.to_value() }));
                    }
                    let json = jsonrpc::text(&jsonrpc::notification(method, params));
                    let _ = listener.tx.try_send(Outbound::new(OutKind::Notification, json));
                }
            }
        } else {
            if let ServerEvent::ResourceUpdated { uri } = event
                && !self.subscriptions.contains(uri)
            {
                return;
            }
            if self.streams.get(&GET_STREAM).is_some_and(LegacyStream::is_live) {
                self.emit(GET_STREAM, OutKind::Notification, jsonrpc::text(&jsonrpc::notification(method, params)));
            }
        }
    }

    fn is_idle(&mut self) -> bool {
        self.listeners.retain(|l| !l.tx.is_closed());
        self.in_flight.is_empty() && self.listeners.is_empty() && !self.streams.values().any(LegacyStream::is_live)
    }
}

/// Turns a finished modern backend call into the response to send.
fn modern_outcome(
    id: &RequestId,
    method: &str,
    outcome: Result<Value, BackendError>,
    pending: Vec<(String, Value)>,
    answers: &Map<String, Value>,
    server_info: &Value,
    seal: impl FnOnce(&Value) -> String,
) -> Outbound {
    if !pending.is_empty() {
        if !result::allows_input_required(method) {
            let error = RpcError::internal(format!("{method} cannot ask the client for input"));
            return Outbound::new(OutKind::Response, jsonrpc::text(&jsonrpc::error_response(Some(id), &error)));
        }
        let requests: Map<String, Value> = pending.into_iter().collect();
        let nonce: u64 = rand::random();
        let state = seal(&json!({ "answers": answers, "n": nonce }));
        let mut out = Map::new();
        out.insert("resultType".into(), json!("input_required"));
        out.insert("inputRequests".into(), Value::Object(requests));
        out.insert("requestState".into(), json!(state));
        let body = result::modern(method, out, server_info, 0);
        return Outbound::new(OutKind::Response, jsonrpc::text(&jsonrpc::response(id, Value::Object(body))));
    }
    let (json, status) = match outcome {
        Ok(Value::Object(map)) => {
            (jsonrpc::response(id, Value::Object(result::modern(method, map, server_info, 0))), 200)
        }
        Ok(other) => (jsonrpc::response(id, other), 200),
        Err(BackendError::Rpc(error)) => (jsonrpc::error_response(Some(id), &error), modern_status(error.code)),
        Err(BackendError::InputRequired) => {
            (jsonrpc::error_response(Some(id), &RpcError::internal("the server asked for input it did not name")), 200)
        }
        Err(BackendError::Unavailable(why)) => {
            (jsonrpc::error_response(Some(id), &RpcError::internal(format!("the server is unavailable: {why}"))), 200)
        }
    };
    Outbound::new(OutKind::Response, jsonrpc::text(&json)).with_status(status)
}

fn legacy_outcome(outcome: Result<Value, BackendError>) -> Result<Value, RpcError> {
    match outcome {
        Ok(value) => Ok(value),
        Err(BackendError::Rpc(error)) => Err(error),
        Err(BackendError::InputRequired) => Err(RpcError::internal("the server asked for input it did not name")),
        Err(BackendError::Unavailable(why)) => Err(RpcError::internal(format!("the server is unavailable: {why}"))),
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        if let Some(events) = self.backend.events() {
            ctx.add_stream(events);
        }
        self.hooks.session_opened(&self.info());
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for (_, flight) in std::mem::take(&mut self.in_flight) {
            flight.task.abort();
            let outcome =
                if self.close_reason == CloseReason::Killed { CallOutcome::Killed } else { CallOutcome::Cancelled };
            self.report(&flight.trace, outcome, 0);
        }
        self.hooks.session_closed(&self.info(), self.close_reason);
        let teardown: Vec<Listener> = self.listeners.drain(..).collect();
        for listener in teardown {
            let done = jsonrpc::response(&listener.id, json!({ "resultType": "complete" }));
            let _ = listener.tx.try_send(Outbound::new(OutKind::Response, done.to_string()));
        }
        self.streams.clear();
        self.pending.clear();
        if let Some(registry) = self.registry.upgrade() {
            registry.forget(&self.kind, &self.owner);
        }
    }
}

impl StreamHandler<ServerEvent> for Session {
    fn handle(&mut self, event: ServerEvent, _ctx: &mut Self::Context) {
        self.deliver_event(&event);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The backend stopped announcing events; the session itself carries on.
    }
}

// ---- messages ------------------------------------------------------------------------------

/// A legacy request; answers with the stream of its response.
#[derive(Message)]
#[rtype(result = "OutboundReceiver")]
pub(crate) struct LegacyRequest(pub(crate) Request, pub(crate) RequestContext);

impl Handler<LegacyRequest> for Session {
    type Result = MessageResult<LegacyRequest>;

    fn handle(&mut self, msg: LegacyRequest, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = outbound::channel();
        let stream = self.open_stream(tx);
        let LegacyRequest(request, context) = msg;
        let id = request.id.clone();
        if self.in_flight.contains_key(&id) {
            self.respond_legacy(
                stream,
                &id,
                Err(RpcError::invalid_request("a request with this id is already in flight")),
            );
            return MessageResult(rx);
        }
        match request.method.as_str() {
            "ping" => self.respond_legacy(stream, &id, Ok(json!({}))),
            "initialize" => {
                self.respond_legacy(stream, &id, Err(RpcError::invalid_request("the session is already initialized")))
            }
            "logging/setLevel" => {
                let level = request.params.get("level").and_then(Value::as_str).and_then(LogLevel::parse);
                let outcome = match level {
                    Some(level) => {
                        self.log_level.store(peer::level_to_u8(level), Ordering::Relaxed);
                        Ok(json!({}))
                    }
                    None => Err(RpcError::invalid_params("level must be a valid log level")),
                };
                self.respond_legacy(stream, &id, outcome);
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                let outcome = match request.params.get("uri").and_then(Value::as_str) {
                    Some(uri) => {
                        if request.method == "resources/subscribe" {
                            self.subscriptions.insert(uri.to_owned());
                        } else {
                            self.subscriptions.remove(uri);
                        }
                        Ok(json!({}))
                    }
                    None => Err(RpcError::invalid_params("uri is required")),
                };
                self.respond_legacy(stream, &id, outcome);
            }
            method if is_backend_method(method) => {
                if self.in_flight.len() >= self.config.max_in_flight {
                    let error = RpcError::internal("too many requests in flight on this session");
                    self.respond_legacy(stream, &id, Err(error));
                } else {
                    self.spawn_legacy(ctx, stream, request, context);
                }
            }
            method => {
                let error = RpcError::method_not_found(method);
                self.respond_legacy(stream, &id, Err(error));
            }
        }
        MessageResult(rx)
    }
}

/// A legacy notification.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct LegacyNotification(pub(crate) Notification);

impl Handler<LegacyNotification> for Session {
    type Result = ();

    fn handle(&mut self, msg: LegacyNotification, _ctx: &mut Self::Context) {
        if msg.0.method == "notifications/cancelled"
            && let Some(id) = msg.0.params.get("requestId").and_then(RequestId::from_value)
            && let Some(flight) = self.in_flight.remove(&id)
        {
            flight.task.abort();
            // A cancelled request gets no response; its stream just ends.
            self.finish_stream(flight.stream);
            self.report(&flight.trace, CallOutcome::Cancelled, 0);
        }
    }
}

/// A client's response to one of our requests.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ClientResponse(pub(crate) Response);

impl Handler<ClientResponse> for Session {
    type Result = ();

    fn handle(&mut self, msg: ClientResponse, _ctx: &mut Self::Context) {
        if let Some(reply) = self.pending.remove(&msg.0.id) {
            let _ = reply.send(msg.0.outcome);
        }
    }
}

/// Opens the standalone GET stream, or resumes a stream after `Last-Event-ID`.
#[derive(Message)]
#[rtype(result = "Result<OutboundReceiver, SessionError>")]
pub(crate) struct OpenStream(pub(crate) Option<String>);

impl Handler<OpenStream> for Session {
    type Result = Result<OutboundReceiver, SessionError>;

    fn handle(&mut self, msg: OpenStream, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = outbound::channel();
        let Some(last) = msg.0 else {
            let stream = self.streams.entry(GET_STREAM).or_insert_with(|| LegacyStream::new(None));
            stream.sink = Some(tx);
            self.prime(GET_STREAM);
            return Ok(rx);
        };
        let unknown = || SessionError::UnknownEvent(last.chars().take(64).collect());
        let (stream_no, seq) = last.split_once('-').ok_or_else(unknown)?;
        let (stream_no, seq) =
            (stream_no.parse::<u64>().map_err(|_| unknown())?, seq.parse::<u64>().map_err(|_| unknown())?);
        let stream = self.streams.get_mut(&stream_no).ok_or_else(unknown)?;
        for event in &stream.buffer {
            let event_seq = event
                .event_id
                .as_deref()
                .and_then(|id| id.rsplit_once('-'))
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .unwrap_or(0);
            if event_seq > seq && tx.try_send(event.clone()).is_err() {
                break;
            }
        }
        if !stream.finished {
            stream.sink = Some(tx);
        }
        Ok(rx)
    }
}

/// Ends the session: `DELETE`, or the kill switch with a reason in-flight calls are told.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Terminate(pub(crate) Option<String>);

impl Handler<Terminate> for Session {
    type Result = ();

    fn handle(&mut self, msg: Terminate, ctx: &mut Self::Context) {
        if let Some(reason) = msg.0 {
            self.close_reason = CloseReason::Killed;
            self.kill_calls(None, &reason);
        }
        ctx.stop();
    }
}

/// Ends in-flight calls of the given tools (a tool was disabled).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct KillCalls {
    pub(crate) tools: Vec<String>,
    pub(crate) reason: String,
}

impl Handler<KillCalls> for Session {
    type Result = ();

    fn handle(&mut self, msg: KillCalls, _ctx: &mut Self::Context) {
        self.kill_calls(Some(&msg.tools), &msg.reason);
    }
}

/// Ends the session if nothing is going on.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct IdleCheck;

impl Handler<IdleCheck> for Session {
    type Result = ();

    fn handle(&mut self, _msg: IdleCheck, ctx: &mut Self::Context) {
        if self.is_idle() {
            self.close_reason = CloseReason::Idle;
            ctx.stop();
        }
    }
}

/// A modern request; answers with the stream of its response.
#[derive(Message)]
#[rtype(result = "OutboundReceiver")]
pub(crate) struct ModernRequest {
    pub(crate) request: Request,
    pub(crate) meta: RequestMeta,
    pub(crate) context: RequestContext,
}

impl Handler<ModernRequest> for Session {
    type Result = MessageResult<ModernRequest>;

    fn handle(&mut self, msg: ModernRequest, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = outbound::channel();
        let ModernRequest { request, meta, context } = msg;
        let id = request.id.clone();
        let reply = |error: RpcError| {
            let status = modern_status(error.code);
            Outbound::new(OutKind::Response, jsonrpc::text(&jsonrpc::error_response(Some(&id), &error)))
                .with_status(status)
        };
        match request.method.as_str() {
            "server/discover" => {
                let json = jsonrpc::text(&jsonrpc::response(&id, self.discover()));
                let _ = tx.try_send(Outbound::new(OutKind::Response, json));
            }
            "subscriptions/listen" => self.listen(id, &request.params, tx),
            method if is_backend_method(method) => {
                if self.in_flight.contains_key(&id) {
                    let _ =
                        tx.try_send(reply(RpcError::invalid_request("a request with this id is already in flight")));
                } else if self.in_flight.len() >= self.config.max_in_flight {
                    let _ = tx.try_send(reply(RpcError::internal("too many requests in flight for this client")));
                } else {
                    self.spawn_modern(ctx, request, meta, tx, context);
                }
            }
            method => {
                let _ = tx.try_send(reply(RpcError::method_not_found(method)));
            }
        }
        MessageResult(rx)
    }
}

/// A legacy backend call finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Finished {
    id: RequestId,
    outcome: Result<Value, BackendError>,
}

impl Handler<Finished> for Session {
    type Result = ();

    fn handle(&mut self, msg: Finished, _ctx: &mut Self::Context) {
        // Absent: the request was cancelled, and must not be answered.
        if let Some(flight) = self.in_flight.remove(&msg.id) {
            let mut outcome = legacy_outcome(msg.outcome);
            if flight.trace.method == "tools/list"
                && let Ok(result) = &mut outcome
            {
                crate::hooks::filter_tools(result, &flight.trace.context);
            }
            let (json, size) = self.respond_legacy_sized(flight.stream, &msg.id, outcome);
            self.report(&flight.trace, CallOutcome::of_response(&json), size);
        }
    }
}

/// A modern backend call finished (its response went straight to the client).
#[derive(Message)]
#[rtype(result = "()")]
struct ModernDone {
    id: RequestId,
}

impl Handler<ModernDone> for Session {
    type Result = ();

    fn handle(&mut self, msg: ModernDone, _ctx: &mut Self::Context) {
        self.in_flight.remove(&msg.id);
    }
}

/// A notice or request from a running legacy call, to number and send on its stream.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Emit {
    pub(crate) stream: u64,
    pub(crate) kind: OutKind,
    pub(crate) json: String,
}

impl Handler<Emit> for Session {
    type Result = ();

    fn handle(&mut self, msg: Emit, _ctx: &mut Self::Context) {
        self.emit(msg.stream, msg.kind, msg.json);
    }
}

/// A legacy call asks the client something; answers with where the reply will arrive.
#[derive(Message)]
#[rtype(result = "Option<oneshot::Receiver<Result<Value, RpcError>>>")]
pub(crate) struct AskClient {
    pub(crate) stream: u64,
    pub(crate) method: String,
    pub(crate) params: Value,
}

impl Handler<AskClient> for Session {
    type Result = Option<oneshot::Receiver<Result<Value, RpcError>>>;

    fn handle(&mut self, msg: AskClient, _ctx: &mut Self::Context) -> Self::Result {
        if self.streams.get(&msg.stream).is_none_or(|s| s.finished) {
            return None;
        }
        let id = peer::server_request_id(self.next_request);
        self.next_request += 1;
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id.clone(), tx);
        self.emit(msg.stream, OutKind::Request, jsonrpc::text(&jsonrpc::request(&id, &msg.method, msg.params)));
        Some(rx)
    }
}

/// Hands one finished call to the hooks.
#[allow(clippy::too_many_arguments)]
fn report(
    hooks: &dyn SessionHooks,
    owner: &Owner,
    session: Option<&str>,
    era: Era,
    client: Option<&Value>,
    trace: &CallTrace,
    outcome: CallOutcome,
    bytes_out: usize,
) {
    hooks.call_finished(&CallRecord {
        owner,
        session,
        era,
        client: trace.client.as_ref().or(client),
        method: &trace.method,
        params: &trace.params,
        context: &trace.context,
        outcome,
        latency: trace.started.elapsed(),
        cpu: trace.meter.cpu(),
        bytes_out: u64::try_from(bytes_out).unwrap_or(u64::MAX),
    });
}

/// When the session saw its last request.
pub(crate) fn touch(shared: &Shared, epoch: Instant) {
    let ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.last_seen_ms.store(ms, Ordering::Relaxed);
}
