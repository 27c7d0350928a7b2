//! `POST`, `GET` and `DELETE` on `/t/{tenant}/{server}/mcp`.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use berth_core::backend::Backend;
use berth_core::{Principal, Scope, Slug};
use berth_protocol::jsonrpc::{self, Incoming, Message, Request};
use berth_protocol::{ProtocolVersion, RpcError, headers, meta};
use berth_sessions::registry::initialize_result;
use berth_sessions::{Opening, Owner, RequestContext, SessionError, SessionHandle, SessionLimits};
use berth_storage::routing::Route;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::DataPlaneState;
use crate::accounting::{CallMeta, Capture};
use crate::caller::{Refused, identify};
use crate::quota::{Demand, Quotas};
use crate::respond::{Accept, answer, rpc_error, stream};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// A request that passed the guards, authentication and authorization.
struct Admitted {
    owner: Owner,
    backend: Arc<dyn Backend>,
    route: Arc<Route>,
    /// What the accounting hooks need about each call.
    meta: Arc<CallMeta>,
    /// The tenant's quotas.
    policy: Arc<berth_storage::quotas::Policy>,
}

impl Admitted {
    /// What the session needs to know about one HTTP request.
    fn context(&self, bytes_in: usize) -> RequestContext {
        RequestContext {
            disabled_tools: Arc::from(self.route.server.disabled_tools.as_slice()),
            bytes_in: u64::try_from(bytes_in).unwrap_or(u64::MAX),
            extra: Some(self.meta.clone()),
        }
    }

    /// Session caps from the tenant's plan and the key.
    fn session_limits(&self, state: &DataPlaneState) -> SessionLimits {
        state.quotas.session_limits(&self.policy, self.meta.key)
    }

    /// Checks `demand` against the quotas: `Some` is the 429 of a refusal (audited).
    fn over_quota(&self, state: &DataPlaneState, demand: Demand, requests: &[&Request]) -> Option<HttpResponse> {
        let wasm = self.route.server.kind == berth_core::ServerKind::Wasm;
        let refusal =
            state.quotas.admit(&self.policy, self.owner.tenant, self.meta.key, self.owner.server, wasm, demand);
        let Err(exceeded) = refusal else { return None };
        metrics::counter!("berth_quota_refusals_total", "limit" => exceeded.limit.as_str()).increment(1);
        for request in requests {
            state.accounting.call_refused(&self.owner, &self.meta, &request.method, &request.params, &exceeded);
        }
        let id = match requests {
            [only] => Some(&only.id),
            _ => None,
        };
        Some(over_quota(id, &exceeded))
    }
}

/// Methods a backend answers (they cost CPU on WASM servers).
fn is_backend_method(method: &str) -> bool {
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

/// The JSON-RPC requests of a body, and what they ask of the quotas.
fn demand(incoming: &Incoming) -> (Demand, Vec<&Request>) {
    let requests: Vec<&Request> = match incoming {
        Incoming::Single(Message::Request(r)) => vec![r],
        Incoming::Batch(items) => items
            .iter()
            .filter_map(|i| match i {
                Ok(Message::Request(r)) => Some(r),
                _ => None,
            })
            .collect(),
        Incoming::Single(_) => Vec::new(),
    };
    let count =
        |f: fn(&str) -> bool| u32::try_from(requests.iter().filter(|r| f(&r.method)).count()).unwrap_or(u32::MAX);
    let demand = Demand {
        requests: u32::try_from(requests.len()).unwrap_or(u32::MAX).max(1),
        tool_calls: count(|m| m == "tools/call"),
        backend_calls: count(is_backend_method),
    };
    (demand, requests)
}

/// 429 for an exceeded quota: `Retry-After`, the IETF `RateLimit-Policy` and `RateLimit`
/// headers (draft-ietf-httpapi-ratelimit-headers), and a JSON-RPC error naming the limit.
fn over_quota(id: Option<&jsonrpc::RequestId>, exceeded: &berth_quotas::Exceeded) -> HttpResponse {
    let retry = exceeded.retry_after_secs();
    let data = json!({
        "limit": exceeded.limit.as_str(),
        "scope": exceeded.scope.as_str(),
        "allowed": exceeded.allowed,
        "retryAfter": retry,
    });
    let mut response =
        rpc_error(StatusCode::TOO_MANY_REQUESTS, id, &RpcError::quota_exceeded(exceeded.message(), data));
    let policy = exceeded.policy();
    let headers = [
        (header::RETRY_AFTER, retry.to_string()),
        (
            header::HeaderName::from_static("ratelimit-policy"),
            format!("\"{policy}\";q={};w={}", exceeded.allowed, exceeded.window.as_secs().max(1)),
        ),
        (header::HeaderName::from_static("ratelimit"), format!("\"{policy}\";r={};t={retry}", exceeded.remaining)),
    ];
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `WWW-Authenticate` value of a refusal: RFC 6750 parameters plus the server's Protected
/// Resource Metadata URL (RFC 9728) and the scope a client should ask for.
fn bearer_challenge(state: &DataPlaneState, path: &(String, String), error: Option<(&str, &str)>) -> String {
    let mut value = format!("Bearer realm=\"berth\", scope=\"{}\"", crate::prm::SCOPE);
    // Only well-formed slugs go into the header: the metadata URL is built from the request path.
    if Slug::parse("tenant", &path.0).is_ok() && Slug::parse("server", &path.1).is_ok() {
        value.push_str(&format!(", resource_metadata=\"{}\"", state.tokens.urls().resource_metadata(&path.0, &path.1)));
    }
    if let Some((code, description)) = error {
        value.push_str(&format!(", error=\"{code}\", error_description=\"{}\"", description.replace(['"', '\\'], "'")));
    }
    value
}

/// 401: no or unusable credentials. The challenge tells OAuth clients where to start.
fn challenge(state: &DataPlaneState, path: &(String, String), error: Option<(&str, &str)>) -> HttpResponse {
    let message = error.map_or("authentication required", |(_, d)| d);
    let mut response = rpc_error(StatusCode::UNAUTHORIZED, None, &RpcError::invalid_request(message));
    if let Ok(value) = header::HeaderValue::from_str(&bearer_challenge(state, path, error)) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 403 `insufficient_scope`: the credentials are valid but lack `mcp`.
fn insufficient_scope(state: &DataPlaneState, path: &(String, String)) -> HttpResponse {
    let message = "the credentials lack the `mcp` scope";
    let mut response = refuse(StatusCode::FORBIDDEN, message);
    if let Ok(value) =
        header::HeaderValue::from_str(&bearer_challenge(state, path, Some(("insufficient_scope", message))))
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn refuse(status: StatusCode, message: &str) -> HttpResponse {
    rpc_error(status, None, &RpcError::invalid_request(message))
}

fn unknown_server() -> HttpResponse {
    refuse(StatusCode::NOT_FOUND, "no such MCP server")
}

fn session_failure(e: &SessionError) -> HttpResponse {
    match e {
        SessionError::NotFound => refuse(StatusCode::NOT_FOUND, "Session not found"),
        SessionError::TooMany(n) => over_quota(None, &Quotas::sessions_exceeded(berth_quotas::QuotaScope::Tenant, *n)),
        SessionError::TooManyForKey(n) => {
            over_quota(None, &Quotas::sessions_exceeded(berth_quotas::QuotaScope::Key, *n))
        }
        SessionError::UnknownEvent(_) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// [`admit_inner`], recording refused and accepted credentials in the audit trail.
async fn admit(req: &HttpRequest, path: &(String, String), state: &DataPlaneState) -> Result<Admitted, HttpResponse> {
    let admitted = admit_inner(req, path, state).await;
    match &admitted {
        Ok(a) if a.owner.principal != "anonymous" => {
            state.accounting.auth_succeeded(a.owner.tenant, &a.owner.server_slug, &a.owner.principal);
        }
        Ok(_) => {}
        Err(response) if response.status() == StatusCode::UNAUTHORIZED => {
            record_refusal(req, path, state, response).await
        }
        Err(_) => {}
    }
    admitted
}

/// A refused credential, in the chain of the tenant the URL names (when it exists).
async fn record_refusal(req: &HttpRequest, path: &(String, String), state: &DataPlaneState, response: &HttpResponse) {
    let Ok((tenant, server)) =
        Slug::parse("tenant", &path.0).and_then(|t| Slug::parse("server", &path.1).map(|s| (t, s)))
    else {
        return;
    };
    let Ok(Some(route)) = state.catalog.route(&tenant, &server).await else { return };
    let token = header_str(req, "authorization").and_then(berth_auth::bearer_token);
    let principal = match token {
        None => "anonymous".to_owned(),
        Some(token) => match berth_auth::ParsedKey::parse(token) {
            Some(key) => format!("api-key-prefix:{}", key.prefix()),
            None => "bearer-token".to_owned(),
        },
    };
    let why = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("error_description=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .unwrap_or(if token.is_some() { "invalid credentials" } else { "no credentials" });
    state.accounting.auth_failed(route.tenant.id, server.as_str(), &principal, 401, why);
}

/// Guards, credentials, route and authorization, in that order.
async fn admit_inner(
    req: &HttpRequest,
    path: &(String, String),
    state: &DataPlaneState,
) -> Result<Admitted, HttpResponse> {
    if !state.guard.host_ok(header_str(req, "host")) {
        return Err(refuse(StatusCode::FORBIDDEN, "Invalid Host header"));
    }
    if !state.guard.origin_ok(header_str(req, "origin")) {
        return Err(refuse(StatusCode::FORBIDDEN, "Invalid Origin header"));
    }
    let principal = match identify(req, &state.catalog, &state.tokens, &path.0, &path.1).await {
        Ok(p) => p,
        Err(Refused::Invalid(why)) => return Err(challenge(state, path, Some(("invalid_token", why)))),
        Err(Refused::TenantDisabled) => return Err(refuse(StatusCode::FORBIDDEN, "the tenant is disabled")),
        Err(Refused::Unavailable) => {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "credentials cannot be checked right now"));
        }
    };
    let slugs = Slug::parse("tenant", &path.0).and_then(|t| Slug::parse("server", &path.1).map(|s| (t, s)));
    let route = match slugs {
        Ok((tenant, server)) => state
            .catalog
            .route(&tenant, &server)
            .await
            .map_err(|_| refuse(StatusCode::SERVICE_UNAVAILABLE, "the catalog is unavailable right now"))?,
        Err(_) => None,
    };
    // Unknown servers, and servers of another tenant, answer alike.
    let route = match (&principal, route) {
        (None, Some(route)) if route.server.public => route,
        (None, _) => return Err(challenge(state, path, None)),
        (Some(Principal::ApiKey { tenant, .. } | Principal::Token { tenant, .. }), Some(route))
            if tenant.tenant_id() == route.tenant.id =>
        {
            route
        }
        (Some(Principal::PlatformAdmin), Some(route)) => route,
        (Some(_), _) => return Err(unknown_server()),
    };
    if let Some(principal) = &principal {
        if !principal.has_scope(Scope::Mcp) {
            return Err(insufficient_scope(state, path));
        }
        if let Principal::ApiKey { servers: Some(allowed), .. } = principal
            && !allowed.contains(&route.server.id)
        {
            return Err(refuse(StatusCode::FORBIDDEN, "this API key may not use this server"));
        }
    }
    if !route.tenant.enabled {
        return Err(refuse(StatusCode::FORBIDDEN, "the tenant is disabled"));
    }
    if !route.server.enabled {
        return Err(refuse(StatusCode::FORBIDDEN, "the server is disabled"));
    }
    let Some(version) = &route.version else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "the server has no active version"));
    };
    if !version.enabled {
        return Err(refuse(StatusCode::FORBIDDEN, "the server's active version is disabled"));
    }
    let backend = state.catalog.backend(&route, state.resolver.as_ref()).await.map_err(|e| {
        tracing::warn!(error.message = %e, tenant = %route.tenant.slug, server = %route.server.slug, "backend unavailable");
        refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
    })?;
    let owner = Owner {
        tenant: route.tenant.id,
        tenant_slug: route.tenant.slug.to_string(),
        server: route.server.id,
        server_slug: route.server.slug.to_string(),
        version: version.id,
        principal: principal.as_ref().map_or_else(|| "anonymous".to_owned(), Principal::label),
    };
    let policy = state
        .catalog
        .policy(route.tenant.id)
        .await
        .map_err(|_| refuse(StatusCode::SERVICE_UNAVAILABLE, "quotas cannot be checked right now"))?;
    let capture = policy.capture.get(&route.server.id).map(|redact| Arc::new(Capture { redact: redact.clone() }));
    let meta = Arc::new(CallMeta {
        tenant: owner.tenant_slug.clone(),
        server: owner.server_slug.clone(),
        version: version.number,
        key: match &principal {
            Some(Principal::ApiKey { key_id, .. }) => Some(*key_id),
            _ => None,
        },
        capture,
    });
    Ok(Admitted { owner, backend, route, meta, policy })
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HttpResponse> {
    let too_large = || refuse(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body exceeds {limit} bytes"));
    let declared = header_str(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| refuse(StatusCode::BAD_REQUEST, "failed to read the body"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `POST`: every client message.
pub(crate) async fn post(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<DataPlaneState>,
    payload: web::Payload,
) -> HttpResponse {
    let admitted = match admit(&req, &path, &state).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    let media =
        header_str(&req, "content-type").and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/json") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let accept = Accept::of(&req);
    if !accept.json && !accept.sse {
        return refuse(StatusCode::NOT_ACCEPTABLE, "Accept must allow application/json or text/event-stream");
    }
    let body = match read_body(&req, payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let incoming = match jsonrpc::parse(&body) {
        Ok(i) => i,
        Err(rejected) => return rpc_error(StatusCode::BAD_REQUEST, rejected.id.as_ref(), &rejected.error),
    };
    let (demand, requests) = demand(&incoming);
    if let Some(response) = admitted.over_quota(&state, demand, &requests) {
        return response;
    }
    drop(requests);
    let header_version = header_str(&req, VERSION_HEADER);
    let marked = matches!(&incoming, Incoming::Single(Message::Request(r)) if meta::has_modern_marker(&r.params));
    let modern_header = header_version
        .is_some_and(|v| ProtocolVersion::parse(v).is_none_or(|p| p.era() == berth_protocol::Era::Modern));
    if modern_header || marked {
        let context = admitted.context(body.len());
        return modern(&req, &state, admitted, incoming, accept, context).await;
    }
    let context = admitted.context(body.len());
    if let Some(id) = header_str(&req, SESSION_HEADER) {
        return legacy(&state, admitted, id, header_version, incoming, accept, context).await;
    }
    match incoming {
        Incoming::Single(Message::Request(request)) if request.method == "initialize" => {
            initialize(&state, admitted, request, accept, context)
        }
        Incoming::Single(Message::Request(request)) => rpc_error(
            StatusCode::BAD_REQUEST,
            Some(&request.id),
            &RpcError::invalid_request("Bad Request: missing Mcp-Session-Id header (send initialize first)"),
        ),
        _ => refuse(StatusCode::BAD_REQUEST, "Bad Request: missing Mcp-Session-Id header (send initialize first)"),
    }
}

fn initialize(
    state: &DataPlaneState,
    admitted: Admitted,
    request: Request,
    accept: Accept,
    context: RequestContext,
) -> HttpResponse {
    let Some(requested) = request.params.get("protocolVersion").and_then(Value::as_str) else {
        let error = RpcError::invalid_params("initialize needs params.protocolVersion");
        return rpc_error(StatusCode::BAD_REQUEST, Some(&request.id), &error);
    };
    let version = ProtocolVersion::negotiate_legacy(requested);
    let capabilities =
        request.params.get("capabilities").filter(|c| c.is_object()).cloned().unwrap_or_else(|| json!({}));
    let opening = Opening {
        limits: admitted.session_limits(state),
        client: request.params.get("clientInfo").filter(|c| c.is_object()).cloned(),
        context: Some(context),
    };
    let handle =
        match state.sessions.open_legacy(admitted.owner, admitted.backend.clone(), version, capabilities, opening) {
            Ok(h) => h,
            Err(e) => return session_failure(&e),
        };
    let body = jsonrpc::text(&jsonrpc::response(&request.id, initialize_result(admitted.backend.as_ref(), version)));
    let out = berth_sessions::Outbound::new(berth_sessions::OutKind::Response, body);
    let response = if accept.json {
        HttpResponse::Ok().content_type("application/json").body(out.json.to_string())
    } else {
        let (_tx, rx) = berth_sessions::outbound::channel();
        stream(VecDeque::from([out]), rx)
    };
    with_session_header(response, &handle)
}

fn with_session_header(mut response: HttpResponse, handle: &SessionHandle) -> HttpResponse {
    if let Some(id) = handle.id()
        && let Ok(value) = header::HeaderValue::from_str(id)
    {
        response.headers_mut().insert(header::HeaderName::from_static(SESSION_HEADER), value);
    }
    response
}

async fn legacy(
    state: &DataPlaneState,
    admitted: Admitted,
    id: &str,
    header_version: Option<&str>,
    incoming: Incoming,
    accept: Accept,
    context: RequestContext,
) -> HttpResponse {
    let handle = match state.sessions.legacy(id, &admitted.owner) {
        Ok(h) => h,
        Err(e) => return session_failure(&e),
    };
    if let Some(v) = header_version
        && v != handle.version().as_str()
    {
        let message = format!("MCP-Protocol-Version {v} does not match the session's {}", handle.version());
        return refuse(StatusCode::BAD_REQUEST, &message);
    }
    let response = match incoming {
        Incoming::Single(Message::Request(request)) => match handle.request_with(request, context).await {
            Ok(rx) => answer(rx, accept, None).await,
            Err(e) => session_failure(&e),
        },
        Incoming::Single(Message::Notification(n)) => {
            handle.notify(n);
            HttpResponse::Accepted().finish()
        }
        Incoming::Single(Message::Response(r)) => {
            handle.respond(r);
            HttpResponse::Accepted().finish()
        }
        Incoming::Batch(_) if !handle.version().allows_batches() => {
            let message = format!("JSON-RPC batches are not allowed in protocol version {}", handle.version());
            rpc_error(StatusCode::BAD_REQUEST, None, &RpcError::invalid_request(message))
        }
        Incoming::Batch(items) => batch(&handle, items, &context).await,
    };
    with_session_header(response, &handle)
}

/// A `2025-03-26` batch: notifications and responses are delivered, requests answered together
/// as a JSON array.
async fn batch(
    handle: &SessionHandle,
    items: Vec<Result<Message, jsonrpc::Rejected>>,
    context: &RequestContext,
) -> HttpResponse {
    let mut answers = Vec::new();
    let mut streams = Vec::new();
    for item in items {
        match item {
            Ok(Message::Request(request)) if request.method == "initialize" => {
                let error = RpcError::invalid_request("initialize must not be part of a batch");
                answers.push(jsonrpc::error_response(Some(&request.id), &error));
            }
            Ok(Message::Request(request)) => match handle.request_with(request, context.clone()).await {
                Ok(rx) => streams.push(rx),
                Err(e) => return session_failure(&e),
            },
            Ok(Message::Notification(n)) => handle.notify(n),
            Ok(Message::Response(r)) => handle.respond(r),
            Err(rejected) => answers.push(jsonrpc::error_response(rejected.id.as_ref(), &rejected.error)),
        }
    }
    for mut rx in streams {
        while let Some(out) = rx.recv().await {
            if out.kind == berth_sessions::OutKind::Response {
                answers.push(serde_json::from_str(&out.json).unwrap_or(Value::Null));
            }
        }
    }
    if answers.is_empty() {
        return HttpResponse::Accepted().finish();
    }
    HttpResponse::Ok().content_type("application/json").body(jsonrpc::text(&Value::Array(answers)))
}

async fn modern(
    req: &HttpRequest,
    state: &DataPlaneState,
    admitted: Admitted,
    incoming: Incoming,
    accept: Accept,
    context: RequestContext,
) -> HttpResponse {
    let request = match incoming {
        Incoming::Single(Message::Request(r)) => r,
        Incoming::Single(Message::Notification(_)) => return HttpResponse::Accepted().finish(),
        Incoming::Single(Message::Response(_)) => {
            return refuse(StatusCode::BAD_REQUEST, "clients must not send responses in protocol version 2026-07-28");
        }
        Incoming::Batch(_) => {
            return refuse(StatusCode::BAD_REQUEST, "JSON-RPC batches are not allowed in protocol version 2026-07-28");
        }
    };
    let fail = |error: RpcError| rpc_error(StatusCode::BAD_REQUEST, Some(&request.id), &error);
    let envelope = match meta::modern_meta(&request.params) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let Some(header_version) = header_str(req, VERSION_HEADER) else {
        return fail(RpcError::header_mismatch("missing required MCP-Protocol-Version header"));
    };
    if header_version != envelope.protocol_version {
        return fail(RpcError::header_mismatch(
            "MCP-Protocol-Version header does not match the request's _meta protocol version",
        ));
    }
    if !ProtocolVersion::MODERN.contains(&header_version) {
        return fail(RpcError::unsupported_version(header_version, &ProtocolVersion::MODERN));
    }
    if let Err(e) =
        headers::check(&request.method, &request.params, |name| req.headers().get(name).map(|v| v.as_bytes()))
    {
        return fail(e);
    }
    let backend = admitted.backend.clone();
    let opening = Opening {
        limits: admitted.session_limits(state),
        client: envelope.client_info.clone(),
        context: Some(context.clone()),
    };
    let handle = match state.sessions.open_modern(&admitted.owner, opening, move || backend) {
        Ok(h) => h,
        Err(e) => return session_failure(&e),
    };
    match handle.modern_with(request, envelope, context).await {
        Ok(rx) => answer(rx, accept, None).await,
        Err(e) => session_failure(&e),
    }
}

/// `GET`: the legacy server-to-client stream, or a resumed stream after `Last-Event-ID`.
pub(crate) async fn get(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<DataPlaneState>,
) -> HttpResponse {
    let admitted = match admit(&req, &path, &state).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    let Some(id) = header_str(&req, SESSION_HEADER) else {
        return method_not_allowed().await;
    };
    if let Some(response) = admitted.over_quota(&state, Demand { requests: 1, tool_calls: 0, backend_calls: 0 }, &[]) {
        return response;
    }
    if !Accept::of(&req).sse {
        return refuse(StatusCode::NOT_ACCEPTABLE, "the GET stream needs Accept: text/event-stream");
    }
    let handle = match state.sessions.legacy(id, &admitted.owner) {
        Ok(h) => h,
        Err(e) => return session_failure(&e),
    };
    let last = header_str(&req, "last-event-id").map(str::to_owned);
    match handle.open_stream(last).await {
        Ok(rx) => with_session_header(stream(VecDeque::new(), rx), &handle),
        Err(e) => session_failure(&e),
    }
}

/// `DELETE`: ends a legacy session.
pub(crate) async fn delete(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<DataPlaneState>,
) -> HttpResponse {
    let admitted = match admit(&req, &path, &state).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    let Some(id) = header_str(&req, SESSION_HEADER) else {
        return method_not_allowed().await;
    };
    if let Some(response) = admitted.over_quota(&state, Demand { requests: 1, tool_calls: 0, backend_calls: 0 }, &[]) {
        return response;
    }
    match state.sessions.legacy(id, &admitted.owner) {
        Ok(handle) => {
            handle.terminate();
            HttpResponse::Ok().finish()
        }
        Err(e) => session_failure(&e),
    }
}

/// Anything else.
pub(crate) async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, POST, DELETE"))
        .content_type("application/json")
        .body(jsonrpc::text(&jsonrpc::error_response(None, &RpcError::invalid_request("Method not allowed"))))
}
