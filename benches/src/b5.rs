//! B5: container-backed calls, at the backend port (no HTTP), against baselines measured in the
//! same run:
//!
//! - **floor**: `docker run --rm --network none` of the same image running a command that exits
//!   at once (the image's server with `--version`, its `true`);
//! - **cold start**: a fresh session's first call with an empty warm pool (create, attach,
//!   start, MCP handshake, call), hardened as in production;
//! - **warm call**: `tools/call echo` on a session's running container, interleaved in blocks
//!   with the same call on the in-process fixture backend (B1's tool, without HTTP), so the
//!   difference is what the container bridge adds;
//! - **pool refill**: containers started and handshaken per second while a drained pool of
//!   `--pool` refills.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::backend::{Backend, BackendRequest};
use berth_core::{ContainerSpec, TenantId, VersionId};
use berth_runtime_container::{ContainerRuntime, ContainerSettings, VersionKey};
use berth_test_support::ScriptedPeer;
use serde_json::json;

use crate::harness::Pinning;
use crate::stats::Latencies;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Cold starts (and floor runs) measured.
    #[arg(long, default_value_t = 10)]
    cold: usize,
    /// Warm calls per target.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Warm-pool size refilled for the refill rate.
    #[arg(long, default_value_t = 6)]
    pool: usize,
}

fn key(server: &str) -> VersionKey {
    VersionKey {
        tenant_id: TenantId::new(),
        tenant: "bench".into(),
        server: server.into(),
        version: VersionId::new(),
        number: 1,
    }
}

fn spec(image: &str) -> ContainerSpec {
    serde_json::from_value(
        json!({ "image": image, "transport": "stdio", "limits": { "memory_mb": 64, "cpus": 1.0, "pids": 32 } }),
    )
    .expect("a valid spec")
}

fn echo() -> BackendRequest {
    let params = json!({ "name": "echo", "arguments": { "message": "hi" } });
    BackendRequest { method: "tools/call".into(), params: params.as_object().cloned().unwrap_or_default() }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) async fn run(args: &Args, _pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let image = berth_test_support::docker::image("stdio-rust");
    println!("B5: container-backed calls ({image})\n{header}");

    // Floor and cold start, interleaved A B A B.
    let runtime = ContainerRuntime::new(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await?;
    let server = runtime.server(key("cold"), spec(&image)).await?;
    let (mut floor, mut cold) = (Vec::new(), Vec::new());
    for _ in 0..args.cold {
        let started = Instant::now();
        let status = tokio::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", &image, "--version"])
            .stdout(std::process::Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "docker run failed");
        floor.push(started.elapsed().as_secs_f64() * 1000.0);
        let session = server.session().ok_or_else(|| anyhow::anyhow!("no session backend"))?;
        let started = Instant::now();
        session.handle(echo(), ScriptedPeer::legacy().shared()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        cold.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(session);
    }
    let (floor_ms, cold_ms) = (median(floor), median(cold));
    println!("\n| phase | median (ms) |\n|---|---|");
    println!("| floor: docker run --rm (exits at once) | {floor_ms:.1} |");
    println!("| cold start: first call of a new session, empty pool | {cold_ms:.1} |");
    println!("| cold start − floor | {:.1} |", cold_ms - floor_ms);

    // Warm calls: the container session vs the in-process fixture, in blocks of 100.
    let session = server.session().ok_or_else(|| anyhow::anyhow!("no session backend"))?;
    let fixture: Arc<dyn Backend> = Arc::new(berth_test_support::FixtureBackend::new());
    let peer = ScriptedPeer::legacy().shared();
    session.handle(echo(), peer.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut warm, mut base) = (Latencies::with_capacity(args.calls), Latencies::with_capacity(args.calls));
    for _ in 0..args.calls.div_ceil(100) {
        for _ in 0..100 {
            let started = Instant::now();
            session.handle(echo(), peer.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            warm.push(started.elapsed());
        }
        for _ in 0..100 {
            let started = Instant::now();
            fixture.handle(echo(), peer.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            base.push(started.elapsed());
        }
    }
    let (w50, w99, b50, b99) =
        (warm.percentile_us(50.0), warm.percentile_us(99.0), base.percentile_us(50.0), base.percentile_us(99.0));
    println!("\n| warm tools/call echo | p50 (µs) | p99 (µs) |\n|---|---|---|");
    println!("| in-process fixture backend (B1's tool, no HTTP) | {b50:.1} | {b99:.1} |");
    println!("| stdio container, one session | {w50:.1} | {w99:.1} |");
    println!("| added by the container bridge | {:.1} | {:.1} |", w50 - b50, w99 - b99);
    drop(session);
    runtime.shutdown().await;

    // Pool refill: resolve (one container), then time the pool to `pool` containers.
    let runtime =
        ContainerRuntime::new(ContainerSettings { warm_pool: args.pool, ..ContainerSettings::default() }).await?;
    let k = key("refill");
    let version = k.version;
    let started = Instant::now();
    let _server = runtime.server(k, spec(&image)).await?;
    let first = started.elapsed();
    let started = Instant::now();
    while runtime.warm(version) < args.pool {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the pool did not refill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refill = started.elapsed();
    let rate = (args.pool.saturating_sub(1)) as f64 / refill.as_secs_f64();
    println!("\n| pool refill | value |\n|---|---|");
    println!("| first container (resolve) | {:.1} ms |", first.as_secs_f64() * 1000.0);
    println!("| refill of {} more | {:.1} ms |", args.pool.saturating_sub(1), refill.as_secs_f64() * 1000.0);
    println!("| refill rate | {rate:.1} containers/s |");
    runtime.shutdown().await;
    Ok(())
}
