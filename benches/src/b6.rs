//! B6: audit throughput, against `COPY` of the same rows with `psql`.
//!
//! Each round, interleaved A B A B:
//! - **A, Berth's writer**: `Auditor::record` for every event (what the data plane does per
//!   call), flushing every 8,000 events; the writer batches (500 events or 50 ms), seals each
//!   tenant's events into its hash chain under the chain head's row lock, and inserts with one
//!   `INSERT … SELECT FROM UNNEST(…)` per tenant per batch. Timed from the first `record` to
//!   the last event committed.
//! - **B, the ceiling**: the same number of rows, sealed beforehand (untimed), written to a CSV
//!   file and loaded with `psql -c "\copy audit_events … FROM … (FORMAT csv)"` into the same
//!   table with the same indexes. Timed around the `psql` process.
//!
//! Then the cost on the request path: building a call's event (argument digest included) and
//! `Auditor::record`, timed one by one while the writer runs.
//!
//! A private PostgreSQL cluster (the test harness's, `fsync=off`) holds the database.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use berth_audit::chain::Head;
use berth_audit::event::{AuditEvent, Kind};
use berth_audit::{Auditor, Flushed, SealedEvent, WriterSettings};
use berth_core::{AdminScope, Slug, TenantId};
use serde_json::json;

use crate::harness::Pinning;
use crate::stats::{Latencies, Table, f1, f2, int, median, verdict};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Events per run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Runs of each side (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tenants the events are spread over.
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// Events whose recording cost is timed one by one.
    #[arg(long, default_value_t = 100_000)]
    timed: usize,
}

const COLUMNS: &str = "tenant_id, seq, id, at, kind, method, name, principal, client, server, version, args_sha256, \
                       payload, outcome, error_code, latency_us, cpu_us, bytes_in, bytes_out, detail, node, prev_hash, hash";

/// A call event as the data plane records it.
fn call_event(tenant: TenantId, n: usize) -> AuditEvent {
    let args = json!({"message": format!("call {n}"), "count": n});
    let mut event = AuditEvent::new(tenant, Kind::Call, "tools/call", "api-key:01a1fd59-5556-712d-b49f-d7b36453602c");
    event.name = Some("echo".into());
    event.client = Some("bench-client/1.0".into());
    event.server = Some("fixture".into());
    event.version = Some(1);
    event.args_sha256 = Some(berth_audit::event::sha256_hex(&args));
    event.latency_us = Some(180);
    event.cpu_us = Some(35);
    event.bytes_in = Some(240);
    event.bytes_out = Some(310);
    event.node = "bench".into();
    event
}

fn csv_text(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

fn opt_text(value: &Option<String>) -> String {
    value.as_deref().map(csv_text).unwrap_or_default()
}

fn opt_num<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn csv_line(s: &SealedEvent) -> String {
    let e = &s.event;
    [
        e.tenant_id.to_string(),
        s.seq.to_string(),
        e.id.to_string(),
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.kind.as_str().to_owned(),
        csv_text(&e.method),
        opt_text(&e.name),
        csv_text(&e.principal),
        opt_text(&e.client),
        opt_text(&e.server),
        opt_num(&e.version),
        opt_text(&e.args_sha256),
        opt_text(&e.payload),
        csv_text(&e.outcome),
        opt_num(&e.error_code),
        opt_num(&e.latency_us),
        opt_num(&e.cpu_us),
        opt_num(&e.bytes_in),
        opt_num(&e.bytes_out),
        opt_text(&e.detail),
        csv_text(&e.node),
        s.prev_hash.clone(),
        s.hash.clone(),
    ]
    .join(",")
}

async fn new_tenants(pool: &berth_storage::PgPool, prefix: &str, n: usize) -> anyhow::Result<Vec<TenantId>> {
    let mut conn = pool.acquire().await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let slug = Slug::parse("tenant", &format!("{prefix}-{i}"))?;
        let tenant =
            berth_storage::tenants::insert(&mut conn, AdminScope::from_verified_admin_token(), &slug, "bench").await?;
        ids.push(tenant.id);
    }
    Ok(ids)
}

async fn stored(pool: &berth_storage::PgPool, tenants: &[TenantId]) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    let mut total = 0;
    for tenant in tenants {
        let scope = berth_core::TenantScope::from_verified_credentials(*tenant, Slug::parse("tenant", "x")?);
        total += berth_storage::audit::head(&mut conn, &scope).await?.map_or(0, |h| h.seq);
    }
    Ok(total)
}

/// A: the writer. Events per second.
async fn writer_run(pool: &berth_storage::PgPool, tenants: &[TenantId], events: usize) -> anyhow::Result<f64> {
    let spool = tempfile_dir("b6-spool")?;
    let sink = Arc::new(berth_storage::audit::PgSink::new(pool.clone()));
    let settings = WriterSettings {
        capacity: 16_384,
        spool_dir: Some(spool.clone()),
        node: "bench".into(),
        ..WriterSettings::default()
    };
    let (auditor, writer) = Auditor::start(sink, settings)?;
    let task = tokio::spawn(writer.run());
    let batch: Vec<AuditEvent> = (0..events).map(|n| call_event(tenants[n % tenants.len()], n)).collect();
    let started = Instant::now();
    for chunk in batch.chunks(8_000) {
        for event in chunk {
            auditor.record(event.clone());
        }
        anyhow::ensure!(auditor.flush().await == Some(Flushed::Stored), "the writer spooled instead of storing");
    }
    let wall = started.elapsed();
    drop(auditor);
    task.await?;
    let _ = std::fs::remove_dir_all(&spool);
    let count = stored(pool, tenants).await?;
    anyhow::ensure!(count as usize == events, "stored {count} of {events} events");
    Ok(events as f64 / wall.as_secs_f64())
}

/// B: `\copy` of the same rows. Rows per second.
fn copy_run(url: &str, tenants: &[TenantId], events: usize) -> anyhow::Result<f64> {
    let mut heads = vec![Head::EMPTY; tenants.len()];
    let dir = tempfile_dir("b6-copy")?;
    let path = dir.join("rows.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    for n in 0..events {
        let i = n % tenants.len();
        let sealed = heads[i].seal(call_event(tenants[i], n));
        writeln!(file, "{}", csv_line(&sealed))?;
    }
    file.flush()?;
    drop(file);
    let started = Instant::now();
    let status = std::process::Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("\\copy audit_events ({COLUMNS}) FROM '{}' WITH (FORMAT csv)", path.display()))
        .status()?;
    let wall = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(status.success(), "psql \\copy failed");
    Ok(events as f64 / wall.as_secs_f64())
}

fn tempfile_dir(prefix: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The request path's share: build the event (digest included) and record it.
async fn record_cost(pool: &berth_storage::PgPool, tenants: &[TenantId], n: usize) -> anyhow::Result<Latencies> {
    let spool = tempfile_dir("b6-spool")?;
    let sink = Arc::new(berth_storage::audit::PgSink::new(pool.clone()));
    let settings = WriterSettings { spool_dir: Some(spool.clone()), node: "bench".into(), ..WriterSettings::default() };
    let (auditor, writer) = Auditor::start(sink, settings)?;
    let task = tokio::spawn(writer.run());
    let mut lat = Latencies::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(4_000) {
        for &i in chunk {
            let started = Instant::now();
            auditor.record(call_event(tenants[i % tenants.len()], i));
            lat.push(started.elapsed());
        }
        auditor.flush().await;
    }
    drop(auditor);
    task.await?;
    let _ = std::fs::remove_dir_all(&spool);
    Ok(lat)
}

pub(crate) async fn run(args: &Args, _pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(berth_test_support::start_private_cluster).await??;
    let admin = berth_storage::connect_with(cluster.connect_options("postgres"), 1).await?;
    berth_storage::create_database_if_missing(&admin, "b6").await?;
    admin.close().await;
    let pool = berth_storage::connect_with(cluster.connect_options("b6"), 8).await?;
    berth_storage::migrate(&pool).await?;
    let url = cluster.url("b6");

    // Warm up both paths (connections, caches, psql's first start).
    let warm = new_tenants(&pool, "warm", args.tenants).await?;
    writer_run(&pool, &warm, 10_000).await?;
    let warm = new_tenants(&pool, "warmcopy", args.tenants).await?;
    copy_run(&url, &warm, 10_000)?;

    let (mut ours, mut ceiling) = (Vec::new(), Vec::new());
    for round in 0..args.runs {
        let tenants = new_tenants(&pool, &format!("w{round}"), args.tenants).await?;
        ours.push(writer_run(&pool, &tenants, args.events).await?);
        let tenants = new_tenants(&pool, &format!("c{round}"), args.tenants).await?;
        // Nothing else runs meanwhile: waiting for psql on the runtime's thread is fine.
        ceiling.push(copy_run(&url, &tenants, args.events)?);
        eprintln!("  round {}/{}: writer {:.0}/s, COPY {:.0}/s", round + 1, args.runs, ours[round], ceiling[round]);
    }
    let tenants = new_tenants(&pool, "timed", args.tenants).await?;
    let mut cost = record_cost(&pool, &tenants, args.timed).await?;
    pool.close().await;
    let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;

    let (writer, copy) = (median(&ours), median(&ceiling));
    let ratio = writer / copy;
    let (p50, p99) = (cost.percentile_us(50.0), cost.percentile_us(99.0));
    let mut table = Table::new(&["measure", "value", "target", "verdict"]);
    table.row(vec![
        "writer, events/s (median)".into(),
        int(writer),
        "≥ 50,000".into(),
        verdict(writer >= 50_000.0).into(),
    ]);
    table.row(vec!["psql COPY, rows/s (median)".into(), int(copy), "—".into(), "".into()]);
    table.row(vec!["writer ÷ COPY".into(), f2(ratio), "≥ 0.50".into(), verdict(ratio >= 0.5).into()]);
    table.row(vec!["record cost p50, µs".into(), f2(p50), "—".into(), "".into()]);
    table.row(vec!["record cost p99, µs".into(), f2(p99), "≤ 20".into(), verdict(p99 <= 20.0).into()]);
    println!(
        "B6 audit throughput ({} events per run over {} tenants, {} runs A B interleaved; {} events timed singly)",
        args.events, args.tenants, args.runs, args.timed
    );
    println!("{header}\n\n{}", table.render());
    println!(
        "\nruns: writer {} events/s; COPY {} rows/s",
        ours.iter().map(|r| f1(*r)).collect::<Vec<_>>().join(", "),
        ceiling.iter().map(|r| f1(*r)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
