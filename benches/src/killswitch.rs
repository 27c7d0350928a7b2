//! Kill-switch propagation across processes: one `berth control-plane` and two
//! `berth data-plane` processes on one private PostgreSQL cluster, the classic example's
//! component as the server. Each round revokes an API key (or disables the server) through the
//! control plane and measures, on each data-plane node, how long after the admin call returned
//! the node refuses a new call, and how long until a legacy session's open GET stream on the
//! second node ends.
//!
//! Needs the release `berth` binary beside this one (`cargo build --release -p berth`) and the
//! classic component (built by `cargo xtask test`, or `BERTH_DEMO_COMPONENT`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::Pinning;
use crate::stats::{Latencies, Table, f1, verdict};

const ADMIN_TOKEN: &str = "berth_admin_killswitch_bench";
const SECRET_KEY: &str = "killswitch-bench-secret-key-0123456789abcdef";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rounds per kind of change.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Give up on a node that still accepts after this long (milliseconds).
    #[arg(long, default_value_t = 5_000)]
    give_up_ms: u64,
}

/// A `berth` child process, killed when dropped.
struct Process {
    child: Child,
    base: String,
    name: &'static str,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn berth_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench executable")?;
    let berth = exe.with_file_name("berth");
    ensure!(
        berth.is_file(),
        "{} is missing: run `cargo build --release -p berth` first (same CARGO_TARGET_DIR)",
        berth.display()
    );
    Ok(berth)
}

fn component() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("BERTH_DEMO_COMPONENT").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/target/wasm32-wasip2/release/berth_example_classic.wasm")
        },
        PathBuf::from,
    );
    ensure!(
        path.is_file(),
        "{} is missing: build the examples (`cargo xtask test` does) or set BERTH_DEMO_COMPONENT",
        path.display()
    );
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn spawn(
    berth: &PathBuf,
    name: &'static str,
    subcommand: &str,
    database_url: &str,
    node: &str,
    data_dir: &std::path::Path,
    pinning: &Pinning,
) -> anyhow::Result<Process> {
    let port = free_port()?;
    let log_path = std::env::temp_dir().join(format!("berth-bench-killswitch-{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let dir = data_dir.join(name);
    std::fs::create_dir_all(&dir)?;
    // The processes run where the harness pins servers (they would inherit the load
    // generator's core otherwise).
    let mut command = match &pinning.server {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(berth);
            c
        }
        None => Command::new(berth),
    };
    let child = command
        .arg(subcommand)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&dir)
        .env("DATABASE_URL", database_url)
        .env("BERTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("BERTH_SECRET_KEY", SECRET_KEY)
        .env("BERTH_NODE_ID", node)
        .env("BERTH_WORKERS", "1")
        .env("BERTH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start berth {subcommand}"))?;
    let process = Process { child, base: format!("http://127.0.0.1:{port}"), name };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", process.base)).send().await
            && r.status().is_success()
        {
            return Ok(process);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("berth {subcommand} ({name}) did not start; see {}", log_path.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        ct: &str,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.header("content-type", ct).body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "{method} {path} answered {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(method, path, Some(body.to_string().into()), "application/json").await
    }
}

/// A modern `tools/call` of the classic `echo`; returns the HTTP status.
async fn call(http: &reqwest::Client, url: &str, key: &str, id: u64) -> anyhow::Result<u16> {
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "echo", "arguments": {"message": "hi"},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "berth-bench", "version": "1"},
            },
        },
    });
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

/// Opens a legacy session and its GET stream; the returned task resolves when the stream ends.
async fn open_stream(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<tokio::task::JoinHandle<Instant>> {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "berth-bench", "version": "1"}},
    });
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await?;
    ensure!(response.status().is_success(), "initialize answered {}", response.status());
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("no Mcp-Session-Id")?;
    response.bytes().await?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = http
        .post(url)
        .bearer_auth(key)
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", LEGACY)
        .body(initialized.to_string())
        .send()
        .await?;
    ensure!(response.status().as_u16() == 202, "initialized answered {}", response.status());
    let mut stream = http
        .get(url)
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", LEGACY)
        .send()
        .await?;
    ensure!(stream.status().is_success(), "GET stream answered {}", stream.status());
    Ok(tokio::spawn(async move {
        while let Ok(Some(_)) = stream.chunk().await {}
        Instant::now()
    }))
}

/// Polls a node until a call answers `refused`; returns the time since `since`.
async fn until_refused(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    refused: u16,
    since: Instant,
    give_up: Duration,
) -> anyhow::Result<Duration> {
    let mut id = 1_000;
    loop {
        id += 1;
        let status = call(http, url, key, id).await?;
        if status == refused {
            return Ok(since.elapsed());
        }
        ensure!(status == 200, "{url} answered {status} while waiting for {refused}");
        ensure!(since.elapsed() < give_up, "{url} still accepts after {give_up:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until both nodes accept `key` (their caches are warm).
async fn until_accepted(http: &reqwest::Client, urls: &[String; 2], key: &str) -> anyhow::Result<()> {
    for url in urls {
        let started = Instant::now();
        while call(http, url, key, 1).await? != 200 {
            ensure!(started.elapsed() < Duration::from_secs(5), "{url} never accepted the key");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

struct Measured {
    node_a: Latencies,
    node_b: Latencies,
    stream: Latencies,
}

impl Measured {
    fn new(rounds: usize) -> Self {
        Self {
            node_a: Latencies::with_capacity(rounds),
            node_b: Latencies::with_capacity(rounds),
            stream: Latencies::with_capacity(rounds),
        }
    }
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let berth = berth_binary()?;
    let wasm = std::fs::read(component()?)?;
    let give_up = Duration::from_millis(args.give_up_ms);
    println!("{header}");
    let cluster = tokio::task::spawn_blocking(berth_test_support::start_private_cluster)
        .await
        .context("cluster start-up panicked")??;
    let database_url = cluster.url("postgres");
    let scratch = tempfile_dir()?;
    let status = Command::new(&berth)
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        .env("BERTH_LOG", "warn")
        .status()
        .await?;
    ensure!(status.success(), "berth migrate failed");
    let control = spawn(&berth, "control", "control-plane", &database_url, "control", &scratch, pinning).await?;
    let nodes = [
        spawn(&berth, "node-a", "data-plane", &database_url, "node-a", &scratch, pinning).await?,
        spawn(&berth, "node-b", "data-plane", &database_url, "node-b", &scratch, pinning).await?,
    ];
    println!("control plane {} ({}), data planes {} and {}", control.base, control.name, nodes[0].base, nodes[1].base);

    let admin = Admin { http: reqwest::Client::new(), base: control.base.clone() };
    for tenant in ["acme", "globex"] {
        admin.json(reqwest::Method::POST, "/api/v1/tenants", &json!({"slug": tenant, "name": tenant})).await?;
        admin
            .json(
                reqwest::Method::POST,
                &format!("/api/v1/tenants/{tenant}/servers"),
                &json!({"slug": "classic", "name": "Classic", "kind": "wasm"}),
            )
            .await?;
        admin
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/tenants/{tenant}/servers/classic/versions"),
                Some(wasm.clone().into()),
                "application/wasm",
            )
            .await?;
    }
    let urls = [format!("{}/t/acme/classic/mcp", nodes[0].base), format!("{}/t/acme/classic/mcp", nodes[1].base)];
    let globex_url = format!("{}/t/globex/classic/mcp", nodes[1].base);
    let new_key = |tenant: &'static str| {
        let admin = &admin;
        async move {
            let created = admin
                .json(
                    reqwest::Method::POST,
                    &format!("/api/v1/tenants/{tenant}/api-keys"),
                    &json!({"name": "bench", "scopes": ["mcp"]}),
                )
                .await?;
            let id = created["id"].as_str().context("no id")?.to_owned();
            let key = created["key"].as_str().context("no key")?.to_owned();
            anyhow::Ok((id, key))
        }
    };
    let (_, globex_key) = new_key("globex").await?;
    let http = reqwest::Client::new();

    let mut revoked = Measured::new(args.rounds);
    let mut disabled = Measured::new(args.rounds);
    for round in 0..args.rounds {
        // An API key revoked.
        let (id, key) = new_key("acme").await?;
        until_accepted(&http, &urls, &key).await?;
        let stream = open_stream(&http, &urls[1], &key).await?;
        admin.send(reqwest::Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{id}"), None, "").await?;
        let since = Instant::now();
        let (a, b) = tokio::join!(
            until_refused(&http, &urls[0], &key, 401, since, give_up),
            until_refused(&http, &urls[1], &key, 401, since, give_up),
        );
        revoked.node_a.push(a?);
        revoked.node_b.push(b?);
        let ended = tokio::time::timeout(give_up, stream).await.context("the stream outlived the revocation")??;
        revoked.stream.push(ended.saturating_duration_since(since));

        // The server disabled, then enabled again for the next round.
        let (_, key) = new_key("acme").await?;
        until_accepted(&http, &urls, &key).await?;
        let stream = open_stream(&http, &urls[1], &key).await?;
        admin.json(reqwest::Method::PATCH, "/api/v1/tenants/acme/servers/classic", &json!({"enabled": false})).await?;
        let since = Instant::now();
        let (a, b) = tokio::join!(
            until_refused(&http, &urls[0], &key, 403, since, give_up),
            until_refused(&http, &urls[1], &key, 403, since, give_up),
        );
        disabled.node_a.push(a?);
        disabled.node_b.push(b?);
        let ended = tokio::time::timeout(give_up, stream).await.context("the stream outlived the disabling")??;
        disabled.stream.push(ended.saturating_duration_since(since));
        ensure!(call(&http, &globex_url, &globex_key, 7).await? == 200, "the other tenant was affected");
        admin.json(reqwest::Method::PATCH, "/api/v1/tenants/acme/servers/classic", &json!({"enabled": true})).await?;
        eprintln!("  round {}/{} done", round + 1, args.rounds);
    }

    let mut table = Table::new(&["change", "measure", "p50 ms", "p99 ms", "max ms", "target", "verdict"]);
    for (change, m) in [("API key revoked", &mut revoked), ("server disabled", &mut disabled)] {
        for (what, lat) in [
            ("node A refuses a new call", &mut m.node_a),
            ("node B refuses a new call", &mut m.node_b),
            ("node B's open GET stream ends", &mut m.stream),
        ] {
            let max = lat.percentile_us(100.0) / 1000.0;
            table.row(vec![
                change.into(),
                what.into(),
                f1(lat.percentile_us(50.0) / 1000.0),
                f1(lat.percentile_us(99.0) / 1000.0),
                f1(max),
                "≤ 1,000 ms".into(),
                verdict(max <= 1000.0).into(),
            ]);
        }
    }
    println!("\nKill-switch propagation, {} rounds each, times from the admin call's response:\n", args.rounds);
    println!("{}", table.render());
    drop(nodes);
    drop(control);
    let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("berth-bench-killswitch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
