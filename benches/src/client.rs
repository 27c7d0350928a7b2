//! Clients: rmcp's own client (the real MCP client the rules ask for), a raw wire client that
//! sends exactly what that client sends for `initialize` / `notifications/initialized` (see
//! docs/protocol-notes.md §1) with every status checked, and Berth's admin API for set-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ClientJsonRpcMessage, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use serde_json::{Value, json};

/// The legacy protocol version the raw client speaks.
pub(crate) const LEGACY: &str = "2025-11-25";

/// An rmcp client session.
pub(crate) type McpClient = RunningService<RoleClient, ClientConfig>;

/// Opens a legacy session with rmcp's client (`initialize`, `notifications/initialized`, then
/// the client's own GET stream), with a bearer token when given.
pub(crate) async fn rmcp_connect(url: &str, token: Option<&str>) -> anyhow::Result<McpClient> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ClientConfig::default().serve(transport).await.with_context(|| format!("rmcp client could not connect to {url}"))
}

/// What rmcp's client put on the wire for its session: the id and `MCP-Protocol-Version`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) session: Option<String>,
    pub(crate) version: Option<String>,
}

/// reqwest under rmcp's client, noting the session id and protocol version it sends, so raw
/// timed calls can reuse a session that rmcp's client created (and keeps, with its GET stream).
#[derive(Clone)]
pub(crate) struct Capture {
    inner: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
}

impl Capture {
    fn note(&self, session: Option<&Arc<str>>, headers: &HashMap<HeaderName, HeaderValue>) {
        if let Ok(mut seen) = self.seen.lock() {
            if let Some(s) = session {
                seen.session = Some(s.to_string());
            }
            let version = headers.iter().find(|(k, _)| k.as_str() == "mcp-protocol-version");
            if let Some(v) = version.and_then(|(_, v)| v.to_str().ok()) {
                seen.version = Some(v.to_owned());
            }
        }
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
type StreamResult = Result<BoxStream<'static, Result<sse_stream::Sse, SseError>>, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for Capture {
    type Error = reqwest::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = PostResult> + Send + '_ {
        self.note(session_id.as_ref(), &custom_headers);
        self.inner.post_message(uri, message, session_id, auth_header, custom_headers)
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = PostResult> + Send + '_ {
        self.note(session_id.as_ref(), &custom_headers);
        self.inner.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        )
    }

    fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<(), StreamableHttpError<reqwest::Error>>> + Send + '_ {
        self.inner.delete_session(uri, session_id, auth_header, custom_headers)
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = StreamResult> + Send + '_ {
        self.inner.get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
    }

    fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = StreamResult> + Send + '_ {
        self.inner.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        )
    }
}

/// An rmcp client session whose id and version are known.
pub(crate) struct Captured {
    /// The running client (keeps the session and its GET stream).
    pub(crate) client: RunningService<RoleClient, ClientConfig>,
    /// The session id and protocol version it uses.
    pub(crate) seen: Seen,
}

/// Like [`rmcp_connect`], noting the session id and protocol version.
pub(crate) async fn rmcp_connect_captured(url: &str, token: Option<&str>) -> anyhow::Result<Captured> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let capture = Capture { inner: reqwest::Client::new(), seen: Arc::default() };
    let seen = Arc::clone(&capture.seen);
    let transport = StreamableHttpClientTransport::with_client(capture, config);
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .with_context(|| format!("rmcp client could not connect to {url}"))?;
    // A call on the session so the id has certainly been sent.
    client.list_tools(None).await?;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    ensure!(seen.session.is_some(), "rmcp's client sent no session id");
    Ok(Captured { client, seen })
}

/// `tools/call echo {message}` through an rmcp client; checks the echoed text.
pub(crate) async fn rmcp_echo(client: &McpClient, message: &str) -> anyhow::Result<()> {
    let mut args = JsonObject::new();
    args.insert("message".into(), Value::String(message.to_owned()));
    let result = client.call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await?;
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str());
    ensure!(text == Some(message), "echo returned {text:?}");
    Ok(())
}

/// A request body of about 180 bytes (the size of one echo `tools/call`), unique per `n`.
pub(crate) fn message(n: usize) -> String {
    format!("berth-bench payload {n:08} abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

/// The raw JSON body for baseline (a): the `tools/call` an MCP client would send, ~180 bytes.
pub(crate) fn echo_body(n: usize) -> String {
    json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": message(n)}}})
    .to_string()
}

/// A raw Streamable HTTP client for one endpoint.
#[derive(Clone)]
pub(crate) struct Raw {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    version: String,
}

/// One HTTP reply: status, `mcp-session-id`, and the JSON-RPC message (JSON body or the last SSE
/// `data`).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) session: Option<String>,
    pub(crate) message: Value,
}

impl Raw {
    /// A client with its own connection pool (one keep-alive connection when used serially).
    pub(crate) fn new(url: &str, token: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
            version: LEGACY.to_owned(),
        }
    }

    fn request(&self, method: reqwest::Method, session: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, &self.url).header("accept", "application/json, text/event-stream");
        if let Some(token) = &self.token {
            r = r.bearer_auth(token);
        }
        if let Some(session) = session {
            r = r.header("mcp-session-id", session).header("mcp-protocol-version", &self.version);
        }
        r
    }

    /// The same client speaking `version` on its sessions (the version rmcp's client negotiated).
    pub(crate) fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// `tools/call echo {message}` on `session`; checks the echoed text.
    pub(crate) async fn echo(&self, session: &str, id: u64, message: &str) -> anyhow::Result<()> {
        let params = json!({"name": "echo", "arguments": {"message": message}});
        let reply = self.call(session, id, "tools/call", params).await?;
        ensure!(reply.status == 200, "tools/call answered {}", reply.status);
        let text = reply.message["result"]["content"][0]["text"].as_str();
        ensure!(text == Some(message), "echo returned {}", reply.message);
        Ok(())
    }

    /// POSTs one JSON-RPC message and reads the whole reply.
    pub(crate) async fn post(&self, session: Option<&str>, body: &Value) -> anyhow::Result<Reply> {
        let response = self
            .request(reqwest::Method::POST, session)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let sse = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let text = response.text().await?;
        let message = if sse {
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data:"))
                .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Ok(Reply { status, session, message })
    }

    /// `initialize`; returns the new session id.
    pub(crate) async fn initialize(&self) -> anyhow::Result<String> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "berth-bench", "version": "1"}}});
        let reply = self.post(None, &body).await?;
        ensure!(reply.status == 200, "initialize answered {}: {}", reply.status, reply.message);
        ensure!(reply.message.get("result").is_some(), "initialize returned no result: {}", reply.message);
        reply.session.context("initialize returned no mcp-session-id")
    }

    /// `notifications/initialized`; must be accepted (202).
    pub(crate) async fn initialized(&self, session: &str) -> anyhow::Result<()> {
        let body = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let reply = self.post(Some(session), &body).await?;
        ensure!(reply.status == 202, "notifications/initialized answered {}", reply.status);
        Ok(())
    }

    /// `initialize` + `notifications/initialized`.
    pub(crate) async fn open(&self) -> anyhow::Result<String> {
        let session = self.initialize().await?;
        self.initialized(&session).await?;
        Ok(session)
    }

    /// A request on a session; returns (HTTP status, JSON-RPC message).
    pub(crate) async fn call(&self, session: &str, id: u64, method: &str, params: Value) -> anyhow::Result<Reply> {
        self.post(Some(session), &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await
    }

    /// `tools/list`; must list `echo`.
    pub(crate) async fn list_has_echo(&self, session: &str) -> anyhow::Result<()> {
        let reply = self.call(session, 1, "tools/list", json!({})).await?;
        ensure!(reply.status == 200, "tools/list answered {}", reply.status);
        let tools = reply.message["result"]["tools"].as_array().context("tools/list returned no tools")?;
        ensure!(tools.iter().any(|t| t["name"] == "echo"), "tools/list has no echo");
        Ok(())
    }

    /// `DELETE` the session; returns the status.
    pub(crate) async fn delete(&self, session: &str) -> anyhow::Result<u16> {
        Ok(self.request(reqwest::Method::DELETE, Some(session)).send().await?.status().as_u16())
    }
}

/// Berth's admin API, as the platform administrator.
pub(crate) struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    pub(crate) fn new(base: &str, token: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned(), token: token.to_owned() }
    }

    async fn post(&self, path: &str, body: reqwest::Body, content_type: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 201 {
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.post(path, body.to_string().into(), "application/json").await
    }

    /// Creates a tenant.
    pub(crate) async fn tenant(&self, slug: &str) -> anyhow::Result<()> {
        self.post_json("/api/v1/tenants", &json!({"slug": slug, "name": format!("Tenant {slug}")})).await.map(|_| ())
    }

    /// Creates a `wasm` server; with `publish`, also publishes (and activates) a minimal
    /// component as its first version.
    pub(crate) async fn server(&self, tenant: &str, slug: &str, publish: bool) -> anyhow::Result<()> {
        let component = publish.then(|| {
            let mut component = b"\0asm\x0d\0\x01\0".to_vec();
            component.extend(std::iter::repeat_n(7u8, 32));
            component
        });
        self.server_with(tenant, slug, component).await
    }

    /// Creates a `wasm` server and, when given, publishes (and activates) `component` as its
    /// first version.
    pub(crate) async fn server_with(&self, tenant: &str, slug: &str, component: Option<Vec<u8>>) -> anyhow::Result<()> {
        let body = json!({"slug": slug, "name": format!("Server {slug}"), "kind": "wasm"});
        self.post_json(&format!("/api/v1/tenants/{tenant}/servers"), &body).await?;
        if let Some(component) = component {
            self.post(
                &format!("/api/v1/tenants/{tenant}/servers/{slug}/versions"),
                component.into(),
                "application/wasm",
            )
            .await?;
        }
        Ok(())
    }

    /// Sets the tenant's plan (`PUT /tenants/{tenant}/quotas`).
    pub(crate) async fn quotas(&self, tenant: &str, plan: &Value) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/api/v1/tenants/{tenant}/quotas", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(plan.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        ensure!(status == 200, "PUT quotas answered {status}: {}", response.text().await.unwrap_or_default());
        Ok(())
    }

    /// `GET {path}` as JSON.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        ensure!(status == 200, "GET {path} answered {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates an API key with `scopes`; returns its secret.
    pub(crate) async fn key(&self, tenant: &str, scopes: &[&str]) -> anyhow::Result<String> {
        let reply = self
            .post_json(&format!("/api/v1/tenants/{tenant}/api-keys"), &json!({"name": "bench", "scopes": scopes}))
            .await?;
        reply["key"].as_str().map(str::to_owned).context("no key in the reply")
    }
}

/// A Berth tenant with one published `wasm` server `echo` and an `mcp` key.
pub(crate) struct BerthEndpoint {
    /// `{base}/t/bench/echo/mcp`.
    pub(crate) url: String,
    /// The `mcp`-scoped API key.
    pub(crate) key: String,
}

/// A plan with every quota set, far above what a benchmark uses, so the quota path (token
/// buckets, the monthly ledger, the session count) runs on every request without refusing any.
pub(crate) fn high_plan() -> Value {
    json!({
        "requests_per_minute": 1_000_000_000u32,
        "tool_calls_per_month": 1_000_000_000_000u64,
        "max_sessions": 1_000_000u32,
        "wasm_cpu_ms_per_month": 1_000_000_000_000u64,
        "max_containers": 1_000u32,
    })
}

/// Sets up tenant `bench` with [`high_plan`], server `echo` (published with a minimal
/// header-only component, enough for the fixture backend) and an `mcp` key on a Berth server.
pub(crate) async fn berth_endpoint(base: &str, admin_token: &str) -> anyhow::Result<BerthEndpoint> {
    berth_endpoint_with(base, admin_token, None).await
}

/// [`berth_endpoint`] publishing `component` when given (the WASM backend needs a real one).
pub(crate) async fn berth_endpoint_with(
    base: &str,
    admin_token: &str,
    component: Option<Vec<u8>>,
) -> anyhow::Result<BerthEndpoint> {
    let admin = Admin::new(base, admin_token);
    admin.tenant("bench").await?;
    admin.quotas("bench", &high_plan()).await?;
    match component {
        Some(component) => admin.server_with("bench", "echo", Some(component)).await?,
        None => admin.server("bench", "echo", true).await?,
    }
    let key = admin.key("bench", &["mcp"]).await?;
    // Plan changes reach the data plane by NOTIFY within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    Ok(BerthEndpoint { url: format!("{base}/t/bench/echo/mcp"), key })
}

/// What the `bench` tenant's audit trail and usage hold: the newest audit sequence number (the
/// number of events in its chain), the number of `tools/call` events, and the usage totals.
pub(crate) async fn berth_accounting(base: &str, admin_token: &str) -> anyhow::Result<String> {
    let admin = Admin::new(base, admin_token);
    let first_seq = |v: &Value| {
        v.as_object()
            .and_then(|o| o.values().find_map(Value::as_array))
            .and_then(|items| items.first())
            .and_then(|e| e["seq"].as_i64())
    };
    let newest = admin.get("/api/v1/tenants/bench/audit?limit=1").await?;
    let calls = admin.get("/api/v1/tenants/bench/audit?limit=1&method=tools/call").await?;
    let usage = admin.get("/api/v1/tenants/bench/usage").await?;
    Ok(format!(
        "audit chain head seq {:?} (newest tools/call event seq {:?}); usage totals {}",
        first_seq(&newest),
        first_seq(&calls),
        usage.get("totals").unwrap_or(&Value::Null)
    ))
}
