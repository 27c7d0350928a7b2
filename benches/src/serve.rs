//! The hidden `serve` subcommand: one server per process, so it can be pinned to its own core
//! and its RSS and CPU time read from `/proc`. Prints `READY <port>` once it accepts connections.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use axum::serve::ListenerExt;
use berth::settings::{LogFormat, Settings};
use berth::startup::{Application, Planes, Wiring};
use berth_core::backend::{BackendResolver, ComponentValidator};
use berth_data_plane::{Runtimes, WasmValidator};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use secrecy::SecretString;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Berth (both planes) over a private PostgreSQL cluster, fixture backend.
    Berth,
    /// Berth (both planes) over a private PostgreSQL cluster with the production WASM runtime
    /// resolver and validator (`berth up`'s, without containers).
    BerthWasm,
    /// A raw actix-web JSON echo endpoint, `POST /echo`.
    Echo,
    /// An rmcp 3.9.0 Streamable HTTP server with one `echo` tool, at `/mcp`.
    Rmcp,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which server to run.
    #[arg(value_enum)]
    kind: Kind,
    /// HTTP worker threads (actix workers; tokio worker threads for rmcp, 1 = current-thread).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Berth: `max_sessions_per_tenant`.
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// Berth: `session_idle_secs`.
    #[arg(long, default_value_t = 1800)]
    idle_secs: u64,
    /// Berth WASM: `wasm_max_instances`, the instance pool's slots.
    #[arg(long, default_value_t = 256)]
    wasm_instances: u32,
    /// Berth WASM: `wasm_ready_instances`, instances made ahead of calls (0: none).
    #[arg(long, default_value_t = 32)]
    wasm_ready: u32,
    /// Berth: the platform admin token.
    #[arg(long, default_value = "berth_admin_bench")]
    admin_token: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    match args.kind {
        Kind::Berth => berth(args, false),
        Kind::BerthWasm => berth(args, true),
        Kind::Echo => echo(args),
        Kind::Rmcp => rmcp_server(args),
    }
}

fn ready(port: u16) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "READY {port}");
    let _ = out.flush();
}

/// Berth as `berth up` runs it (production logging defaults: `info`, JSON on stderr; audit
/// writer and quotas on), with the real WASM runtime (`wasm`) or the fixture backend standing in
/// for it.
fn berth(args: &Args, wasm: bool) -> anyhow::Result<()> {
    let _telemetry = berth::telemetry::init("info", LogFormat::Json, std::io::stderr)?;
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: None,
        admin_token: None,
        database_url: None,
        database_max_connections: 16,
        data_dir: std::env::temp_dir().join(format!("berth-bench-data-{}", uuid::Uuid::new_v4().simple())),
        max_upload_bytes: 32 * 1024 * 1024,
        max_json_bytes: 1024 * 1024,
        log: "info".into(),
        log_format: LogFormat::Json,
        workers: Some(args.workers),
        secret_key: None,
        secret_key_previous: None,
        node_id: Some("bench".into()),
        mcp_max_body_bytes: 4 * 1024 * 1024,
        max_sessions_per_tenant: args.max_sessions,
        session_idle_secs: args.idle_secs,
        wasm_max_memory_mb: 64,
        wasm_call_timeout_ms: 10_000,
        wasm_max_instances: args.wasm_instances,
        wasm_ready_instances: args.wasm_ready,
        wasm_egress_private_networks: Vec::new(),
        trusted_proxies: Vec::new(),
        containers: Default::default(),
        fail_closed_after_secs: 60,
        quota_nodes: 1,
        oauth_cimd_allow_loopback: false,
        audit_spool_dir: Some(
            std::env::temp_dir().join(format!("berth-bench-spool-{}", uuid::Uuid::new_v4().simple())),
        ),
    };
    let admin_token = args.admin_token.clone();
    actix_web::rt::System::new().block_on(async move {
        let db = berth_test_support::database().await;
        let pool = berth_storage::connect_with(db.options.clone(), settings.database_max_connections)
            .await
            .context("cannot connect to the bench database")?;
        let secret_key = format!("bench-secret-{}", uuid::Uuid::new_v4().simple());
        let (resolver, validator): (Arc<dyn BackendResolver>, Arc<dyn ComponentValidator>) = if wasm {
            // As `berth up` wires it (`services/berth/src/main.rs`), minus the container runtime.
            let runtime = berth::startup::wasm_runtime(&settings)?;
            (
                Arc::new(Runtimes::new(pool.clone(), runtime.clone()).with_secret(secret_key.as_bytes())),
                Arc::new(WasmValidator(runtime)),
            )
        } else {
            (Arc::new(berth_test_support::fixture::FixtureResolver::new()), Arc::new(berth_core::backend::HeaderOnly))
        };
        let wiring = Wiring {
            pool,
            admin_token: SecretString::from(admin_token),
            secret_key: SecretString::from(secret_key),
            resolver,
            validator,
        };
        let app = Application::build(&settings, wiring, Planes::Both)?;
        ready(app.port());
        app.run_until_stopped().await.context("server failed")
    })
}

/// Baseline (a): actix-web echoing the POST body, one worker like Berth.
fn echo(args: &Args) -> anyhow::Result<()> {
    let workers = args.workers;
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new().route(
                "/echo",
                web::post().to(|body: web::Bytes| async move {
                    HttpResponse::Ok().content_type("application/json").body(body)
                }),
            )
        })
        .workers(workers)
        .bind(("127.0.0.1", 0))?;
        let port = server.addrs().first().map(SocketAddr::port).context("no bound address")?;
        let running = server.run();
        ready(port);
        running.await.context("server failed")
    })
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The message to echo.
    message: String,
}

/// Baseline (b): the same `echo` tool as the fixture (text content plus structured content).
#[derive(Debug, Clone)]
struct EchoServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl EchoServer {
    fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Echoes the message back")]
    fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> CallToolResult {
        let mut out = CallToolResult::success(vec![ContentBlock::text(message.clone())]);
        out.structured_content = Some(serde_json::json!({ "message": message }));
        out
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Baseline (b): rmcp's Streamable HTTP server with its defaults (legacy sessions, SSE
/// responses) on axum with TCP_NODELAY, on a current-thread runtime for one worker.
fn rmcp_server(args: &Args) -> anyhow::Result<()> {
    let runtime = if args.workers <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers).enable_all().build()?
    };
    runtime.block_on(async {
        let service: StreamableHttpService<EchoServer, LocalSessionManager> =
            StreamableHttpService::new(|| Ok(EchoServer::new()), Arc::default(), StreamableHttpServerConfig::default());
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        // TCP_NODELAY: without it a client that reads rmcp's SSE reply to its end waits out
        // delayed-ACK (~40 ms) for the final chunk (Nagle holds the small last write).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        ready(port);
        axum::serve(listener, router).await.context("server failed")
    })
}
