//! A raw MCP-over-HTTP client for tests: full control over headers and bodies, with SSE parsing.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{As, TestApp, component_bytes, spawn_app_on, test_settings};

/// One parsed reply.
#[derive(Debug)]
pub struct McpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub content_type: String,
    /// JSON-RPC messages: the JSON body, or the `data` of each SSE event.
    pub messages: Vec<Value>,
    /// SSE event ids, in order (None for events without one).
    #[allow(dead_code)]
    pub event_ids: Vec<Option<String>>,
    pub text: String,
}

impl McpReply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.unwrap();
        let (messages, event_ids) = if content_type.starts_with("text/event-stream") {
            parse_sse(&text)
        } else if text.is_empty() {
            (vec![], vec![])
        } else {
            (vec![serde_json::from_str(&text).unwrap_or(Value::Null)], vec![])
        };
        Self { status, headers, content_type, messages, event_ids, text }
    }

    /// The final message (the response).
    pub fn last(&self) -> &Value {
        self.messages.last().unwrap_or_else(|| panic!("no messages: {} {}", self.status, self.text))
    }

    pub fn result(&self) -> &Value {
        let last = self.last();
        assert!(last.get("result").is_some(), "expected a result, got {last}");
        &last["result"]
    }

    pub fn error_code(&self) -> i64 {
        self.last()["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error, got {}", self.text))
    }

    pub fn session(&self) -> Option<String> {
        self.headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// Parses an SSE body into (data messages, event ids); events with empty data are skipped.
pub fn parse_sse(text: &str) -> (Vec<Value>, Vec<Option<String>>) {
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.trim_start());
            }
        }
        if !data.trim().is_empty() {
            messages.push(serde_json::from_str(&data).unwrap_or(Value::String(data)));
            ids.push(id);
        }
    }
    (messages, ids)
}

pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The standard modern `_meta`.
pub fn modern_meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "berth-tests", "version": "1"},
    })
}

/// A fixture-backed app: tenants acme and globex, each with an admin key, an `mcp` key and a
/// private server `fixture`; acme also has a public server `open`.
pub struct McpApp {
    pub app: TestApp,
    pub acme: String,
    pub globex: String,
}

impl McpApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(test_settings()).await
    }

    /// [`McpApp::spawn`] with these settings.
    pub async fn spawn_on(settings: berth::settings::Settings) -> Self {
        let db = berth_test_support::database().await;
        let resolver = Arc::new(berth_test_support::fixture::FixtureResolver::new());
        let app = spawn_app_on(settings, db, resolver, Arc::new(berth_core::backend::HeaderOnly)).await;
        let (acme_admin, globex_admin) = app.two_tenants().await;
        for (tenant, admin) in [("acme", &acme_admin), ("globex", &globex_admin)] {
            app.create_server(As::Key(admin), tenant, "fixture", "wasm").await.assert_status(201);
            app.publish_wasm(As::Key(admin), tenant, "fixture", component_bytes(8, 1)).await.assert_status(201);
        }
        let open = json!({"slug": "open", "name": "Open", "kind": "wasm", "public": true});
        app.post_json(As::Admin, "/api/v1/tenants/acme/servers", &open).await.assert_status(201);
        app.publish_wasm(As::Admin, "acme", "open", component_bytes(8, 2)).await.assert_status(201);
        let acme = app.key_with("acme", &["mcp"]).await;
        let globex = app.key_with("globex", &["mcp"]).await;
        Self { app, acme, globex }
    }

    pub fn url(&self, tenant: &str, server: &str) -> String {
        self.app.url(&format!("/t/{tenant}/{server}/mcp"))
    }

    /// A POST with the given headers and JSON body.
    pub async fn post(&self, url: &str, token: Option<&str>, headers: &[(&str, &str)], body: &Value) -> McpReply {
        let mut request = self.app.client.request(Method::POST, url).header("content-type", "application/json");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("accept")) {
            request = request.header("accept", ACCEPT_BOTH);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        McpReply::read(request.body(body.to_string()).send().await.unwrap()).await
    }

    /// `initialize` + `notifications/initialized`; returns the session id.
    pub async fn initialize(&self, url: &str, token: Option<&str>, version: &str, capabilities: Value) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}});
        let reply = self.post(url, token, &[], &init).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let session = reply.session().expect("a session id");
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let done =
            self.post(url, token, &[("mcp-session-id", &session), ("mcp-protocol-version", version)], &note).await;
        assert_eq!(done.status, 202, "{}", done.text);
        session
    }

    /// A legacy request on a session.
    pub async fn legacy(
        &self,
        url: &str,
        token: Option<&str>,
        session: &str,
        id: i64,
        method: &str,
        params: Value,
    ) -> McpReply {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(url, token, &[("mcp-session-id", session), ("mcp-protocol-version", "2025-11-25")], &body).await
    }

    /// A well-formed modern request.
    pub async fn modern(
        &self,
        url: &str,
        token: Option<&str>,
        id: Value,
        method: &str,
        mut params: Value,
        capabilities: Value,
    ) -> McpReply {
        params["_meta"] = modern_meta(capabilities);
        let name = params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str).map(str::to_owned);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
        if let Some(name) = name.as_deref() {
            headers.push(("mcp-name", name));
        }
        self.post(url, token, &headers, &body).await
    }
}
