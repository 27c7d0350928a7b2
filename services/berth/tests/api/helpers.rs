//! `spawn_app` and a typed client with one method per endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code fails loudly

use std::net::SocketAddr;
use std::sync::Once;

use berth::settings::{LogFormat, Settings};
use std::sync::Arc;

use berth::startup::{Application, Planes, Wiring};
use berth_test_support::TestDatabase;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Largest upload the test app accepts, small so 413 is cheap to provoke.
pub const MAX_UPLOAD: usize = 64 * 1024;

/// A running application.
pub struct TestApp {
    pub address: String,
    pub admin_token: String,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    /// The data-plane secret (`BERTH_SECRET_KEY`) stored secrets are sealed with.
    pub secret_key: String,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = if std::env::var_os("TEST_LOG").is_some() { "info" } else { "off" };
        let _ = berth::telemetry::init(filter, LogFormat::Pretty, std::io::stderr).map(std::mem::forget);
    });
}

pub fn test_settings() -> Settings {
    Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: None,
        admin_token: None,
        database_url: None,
        database_max_connections: 8,
        data_dir: std::env::temp_dir(),
        max_upload_bytes: MAX_UPLOAD,
        max_json_bytes: 16 * 1024,
        log: "off".into(),
        log_format: LogFormat::Json,
        workers: Some(1),
        secret_key: None,
        secret_key_previous: None,
        node_id: Some("test".into()),
        mcp_max_body_bytes: 64 * 1024,
        max_sessions_per_tenant: 100,
        session_idle_secs: 60,
        wasm_max_memory_mb: 64,
        wasm_call_timeout_ms: 2_000,
        wasm_max_instances: 32,
        wasm_ready_instances: 32,
        wasm_egress_private_networks: Vec::new(),
        trusted_proxies: Vec::new(),
        containers: Default::default(),
        fail_closed_after_secs: 60,
        // One spool per app: apps of different tests must not replay each other's events.
        quota_nodes: 1,
        oauth_cimd_allow_loopback: false,
        audit_spool_dir: Some(
            std::env::temp_dir().join("berth-test-spools").join(uuid::Uuid::new_v4().simple().to_string()),
        ),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(berth_data_plane::NoRuntimes)).await
}

/// Spawns the app with the real runtimes: components are validated and run by wasmtime.
pub async fn spawn_app_with_runtimes() -> TestApp {
    let cache = std::env::temp_dir().join("berth-test-wasm-cache");
    let settings = berth_runtime_wasm::WasmSettings {
        cache_dir: Some(cache),
        call_timeout: std::time::Duration::from_millis(1_500),
        ..berth_runtime_wasm::WasmSettings::default()
    };
    let wasm = berth_runtime_wasm::WasmRuntime::new(settings).expect("wasm runtime");
    let db = berth_test_support::database().await;
    // The resolver opens what the control plane seals: both get the same secret, as in `berth up`.
    let secret = new_secret();
    let resolver = berth_data_plane::Runtimes::new(db.pool.clone(), wasm.clone()).with_secret(secret.as_bytes());
    let mut settings = test_settings();
    settings.max_upload_bytes = 8 * 1024 * 1024;
    let validator = Arc::new(berth_data_plane::WasmValidator(wasm));
    spawn_app_with_secret(settings, db, Arc::new(resolver), validator, secret).await
}

fn new_secret() -> String {
    format!("test-secret-{}", uuid::Uuid::new_v4())
}

/// Spawns the app with `resolver` finding backends (the fixture backend for MCP tests).
pub async fn spawn_app_with(resolver: Arc<dyn berth_core::backend::BackendResolver>) -> TestApp {
    let db = berth_test_support::database().await;
    spawn_app_on(test_settings(), db, resolver, Arc::new(berth_core::backend::HeaderOnly)).await
}

pub async fn spawn_app_on(
    settings: Settings,
    db: TestDatabase,
    resolver: Arc<dyn berth_core::backend::BackendResolver>,
    validator: Arc<dyn berth_core::backend::ComponentValidator>,
) -> TestApp {
    spawn_app_with_secret(settings, db, resolver, validator, new_secret()).await
}

async fn spawn_app_with_secret(
    settings: Settings,
    db: TestDatabase,
    resolver: Arc<dyn berth_core::backend::BackendResolver>,
    validator: Arc<dyn berth_core::backend::ComponentValidator>,
    secret_key: String,
) -> TestApp {
    init_logs();
    let admin_token = format!("berth_admin_test_{}", uuid::Uuid::new_v4().simple());
    let wiring = Wiring {
        pool: db.pool.clone(),
        admin_token: SecretString::from(admin_token.clone()),
        secret_key: SecretString::from(secret_key.clone()),
        resolver,
        validator,
    };
    let app = Application::build(&settings, wiring, Planes::Both).expect("failed to build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp { address, admin_token, db, client: test_client(), secret_key }
}

/// The `items` of a list reply.
pub fn items(reply: &Reply) -> &Vec<Value> {
    reply.body["items"].as_array().unwrap_or_else(|| panic!("no items in {}", reply.text))
}

/// One string field of every item of a list reply.
pub fn item_field<'r>(reply: &'r Reply, field: &str) -> Vec<&'r str> {
    items(reply).iter().map(|i| i[field].as_str().unwrap_or_else(|| panic!("no {field} in {i}"))).collect()
}

/// A client whose pooled connections never outlive the server's keep-alive.
pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(2)).build().expect("reqwest client")
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(response: Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self { status, headers, body, text }
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.content_type(), "application/problem+json", "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().is_some_and(|t| t.starts_with("urn:berth:problem:")));
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        self
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self
    }
}

/// Who sends a request.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Admin,
    Key(&'a str),
    Anonymous,
}

impl TestApp {
    /// Another app on this app's database, as a second node or as this one restarted, with
    /// `settings`, `resolver` and the data-plane secret `secret_key`. Returns its address.
    pub async fn sibling(
        &self,
        settings: &Settings,
        resolver: Arc<dyn berth_core::backend::BackendResolver>,
        secret_key: &str,
    ) -> String {
        let wiring = Wiring {
            pool: self.db.pool.clone(),
            admin_token: SecretString::from(self.admin_token.clone()),
            secret_key: SecretString::from(secret_key.to_owned()),
            resolver,
            validator: Arc::new(berth_core::backend::HeaderOnly),
        };
        let app = Application::build(settings, wiring, Planes::Both).expect("failed to build the sibling app");
        let address = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run_until_stopped());
        address
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, who: As<'_>, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match who {
            As::Admin => builder.bearer_auth(&self.admin_token),
            As::Key(key) => builder.bearer_auth(key),
            As::Anonymous => builder,
        }
    }

    pub async fn send(&self, builder: RequestBuilder) -> Reply {
        Reply::from(builder.send().await.expect("request failed")).await
    }

    pub async fn get(&self, who: As<'_>, path: &str) -> Reply {
        self.send(self.request(who, Method::GET, path)).await
    }

    pub async fn delete(&self, who: As<'_>, path: &str) -> Reply {
        self.send(self.request(who, Method::DELETE, path)).await
    }

    pub async fn post_json(&self, who: As<'_>, path: &str, body: &Value) -> Reply {
        self.send(self.request(who, Method::POST, path).json(body)).await
    }

    pub async fn patch_json(&self, who: As<'_>, path: &str, body: &Value) -> Reply {
        self.send(self.request(who, Method::PATCH, path).json(body)).await
    }

    pub async fn post_raw(&self, who: As<'_>, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(self.request(who, Method::POST, path).header("content-type", content_type).body(body)).await
    }

    // One method per endpoint, as the platform administrator unless a caller is given.

    pub async fn create_tenant(&self, slug: &str) -> Reply {
        self.post_json(As::Admin, "/api/v1/tenants", &json!({"slug": slug, "name": format!("Tenant {slug}")})).await
    }

    pub async fn create_server(&self, who: As<'_>, tenant: &str, slug: &str, kind: &str) -> Reply {
        self.post_json(
            who,
            &format!("/api/v1/tenants/{tenant}/servers"),
            &json!({"slug": slug, "name": format!("Server {slug}"), "kind": kind}),
        )
        .await
    }

    pub async fn publish_json(&self, who: As<'_>, tenant: &str, server: &str, spec: &Value) -> Reply {
        self.post_json(who, &format!("/api/v1/tenants/{tenant}/servers/{server}/versions"), spec).await
    }

    pub async fn publish_wasm(&self, who: As<'_>, tenant: &str, server: &str, bytes: Vec<u8>) -> Reply {
        self.post_raw(who, &format!("/api/v1/tenants/{tenant}/servers/{server}/versions"), "application/wasm", bytes)
            .await
    }

    pub async fn create_key(&self, who: As<'_>, tenant: &str, body: &Value) -> Reply {
        self.post_json(who, &format!("/api/v1/tenants/{tenant}/api-keys"), body).await
    }

    /// Creates a key with `scopes` and returns its secret.
    pub async fn key_with(&self, tenant: &str, scopes: &[&str]) -> String {
        let reply = self.create_key(As::Admin, tenant, &json!({"name": "test", "scopes": scopes})).await;
        reply.assert_status(201);
        reply.body["key"].as_str().expect("key in response").to_owned()
    }

    /// Creates a key from `body` as the platform administrator: (key id, secret).
    pub async fn new_key(&self, tenant: &str, body: &Value) -> (String, String) {
        let reply = self.create_key(As::Admin, tenant, body).await;
        reply.assert_status(201);
        let id = reply.body["id"].as_str().expect("id in response").to_owned();
        (id, reply.body["key"].as_str().expect("key in response").to_owned())
    }

    /// Creates a server of `kind` as the platform administrator and publishes one minimal
    /// version to it; returns the publish reply.
    pub async fn server_with_version(&self, tenant: &str, slug: &str, kind: &str) -> Reply {
        self.create_server(As::Admin, tenant, slug, kind).await.assert_status(201);
        let reply = match kind {
            "wasm" => self.publish_wasm(As::Admin, tenant, slug, component_bytes(32, 7)).await,
            "container" => {
                let spec = json!({"image": "ghcr.io/acme/tools:1", "transport": "stdio"});
                self.publish_json(As::Admin, tenant, slug, &spec).await
            }
            _ => self.publish_json(As::Admin, tenant, slug, &json!({"url": "https://mcp.example.com/mcp"})).await,
        };
        reply.assert_status(201);
        reply
    }

    /// Runs one SQL statement on the test's database and returns the number of rows it
    /// touched. For a `SELECT`, PostgreSQL reports the number of rows returned, so
    /// `execute("SELECT 1 FROM t WHERE …")` counts rows.
    pub async fn execute(&self, sql: &str) -> u64 {
        let mut conn = self.db.pool.acquire().await.expect("database connection");
        berth_storage::testing::execute(&mut conn, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of `table` owned by tenant `tenant`.
    pub async fn tenant_rows(&self, table: &str, tenant: &str) -> u64 {
        self.execute(&format!(
            "SELECT 1 FROM {table} WHERE tenant_id = (SELECT id FROM tenants WHERE slug = '{tenant}')"
        ))
        .await
    }

    /// Two tenants, `acme` and `globex`, each with an `admin` key: (acme key, globex key).
    pub async fn two_tenants(&self) -> (String, String) {
        self.create_tenant("acme").await.assert_status(201);
        self.create_tenant("globex").await.assert_status(201);
        (self.key_with("acme", &["admin"]).await, self.key_with("globex", &["admin"]).await)
    }
}

/// The smallest valid WebAssembly component header plus `extra` filler bytes.
pub fn component_bytes(extra: usize, seed: u8) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend(std::iter::repeat_n(seed, extra));
    bytes
}
