//! B2: legacy session creation (`initialize` + `notifications/initialized`) through Berth vs an
//! rmcp server directly, and a storm of concurrent opens that must all yield working sessions.
//!
//! The rate cells use the raw wire client (each opener one keep-alive connection, every status
//! checked); sessions are deleted, untimed, after each cell so every cell starts from the same
//! state. The storm opens N sessions at once, each on its own new connection, then calls
//! `tools/list` on each; it runs with the raw client (statuses of each step checked: 200, 202,
//! 200) and with rmcp's own client.

use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::client::{Raw, berth_endpoint, rmcp_connect};
use crate::harness::{Pinning, QUIET_CORES, QUIET_PATIENCE, Server, wait_quiet};
use crate::stats::{Cell, Latencies, Table, f1, f2, int, median, median_cell, verdict};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rounds; targets interleaved within each round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per rate cell.
    #[arg(long, default_value_t = 1.5)]
    secs: f64,
    /// Concurrent openers in the many-opener cells.
    #[arg(long, default_value_t = 16)]
    openers: usize,
    /// Sessions opened at once in the storm.
    #[arg(long, default_value_t = 1000)]
    storm: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Berth,
    Rmcp,
}

struct Endpoint {
    url: String,
    token: Option<String>,
}

/// Opens sessions on `openers` connections for `secs`; returns the cell and the session ids.
async fn rate_cell(server: &Server, endpoint: &Endpoint, openers: usize, secs: f64) -> (Cell, Vec<(Raw, String)>) {
    let clients: Vec<Raw> = (0..openers).map(|_| Raw::new(&endpoint.url, endpoint.token.as_deref())).collect();
    // One untimed open per connection so every opener has its keep-alive connection up.
    let mut opened = Vec::new();
    for c in &clients {
        if let Ok(s) = c.open().await {
            opened.push((c.clone(), s));
        }
    }
    let deadline = Duration::from_secs_f64(secs);
    let cpu = server.cpu_secs();
    let start = Instant::now();
    let runs = join_all(clients.iter().map(|c| async move {
        let mut lat = Latencies::with_capacity(4096);
        let mut ids = Vec::new();
        let mut errors = 0;
        while start.elapsed() < deadline {
            let t = Instant::now();
            match c.open().await {
                Ok(id) => {
                    lat.push(t.elapsed());
                    ids.push(id);
                }
                Err(e) => {
                    if errors == 0 {
                        eprintln!("  open failed: {e}");
                    }
                    errors += 1;
                }
            }
        }
        (lat, ids, errors)
    }))
    .await;
    let wall = start.elapsed();
    let cpu = server.cpu_secs() - cpu;
    let mut all = Latencies::default();
    let mut errors = 0;
    for (c, (lat, ids, e)) in clients.iter().zip(runs) {
        all.extend(lat);
        errors += e;
        opened.extend(ids.into_iter().map(|id| (c.clone(), id)));
    }
    (Cell::from(all, wall, cpu, errors), opened)
}

/// Deletes sessions, `width` at a time (untimed clean-up).
async fn delete_all(sessions: Vec<(Raw, String)>, width: usize) {
    let mut chunks: Vec<Vec<(Raw, String)>> = (0..width).map(|_| Vec::new()).collect();
    for (i, s) in sessions.into_iter().enumerate() {
        chunks[i % width].push(s);
    }
    join_all(chunks.into_iter().map(|chunk| async move {
        for (c, id) in chunk {
            let _ = c.delete(&id).await;
        }
    }))
    .await;
}

/// Outcome of a storm.
struct Storm {
    wall: Duration,
    open_failed: usize,
    initialized_failed: usize,
    list_failed: usize,
    ok: usize,
    open_p50: f64,
    open_p99: f64,
}

/// `n` raw clients at once (one new connection each): initialize, initialized (must be 202),
/// tools/list (must list echo).
async fn raw_storm(endpoint: &Endpoint, n: usize) -> Storm {
    let clients: Vec<Raw> = (0..n).map(|_| Raw::new(&endpoint.url, endpoint.token.as_deref())).collect();
    let start = Instant::now();
    let outcomes = join_all(clients.iter().map(|c| async move {
        let t = Instant::now();
        let session = match c.initialize().await {
            Ok(s) => s,
            Err(e) => return (1, t.elapsed(), Some(e.to_string()), None),
        };
        if let Err(e) = c.initialized(&session).await {
            return (2, t.elapsed(), Some(e.to_string()), Some(session));
        }
        let opened = t.elapsed();
        match c.list_has_echo(&session).await {
            Ok(()) => (0, opened, None, Some(session)),
            Err(e) => (3, opened, Some(e.to_string()), Some(session)),
        }
    }))
    .await;
    let wall = start.elapsed();
    let mut storm =
        Storm { wall, open_failed: 0, initialized_failed: 0, list_failed: 0, ok: 0, open_p50: 0.0, open_p99: 0.0 };
    let mut lat = Latencies::default();
    let mut cleanup = Vec::new();
    let mut shown = 0;
    for (c, (step, took, error, session)) in clients.iter().zip(outcomes) {
        match step {
            0 => storm.ok += 1,
            1 => storm.open_failed += 1,
            2 => storm.initialized_failed += 1,
            _ => storm.list_failed += 1,
        }
        if step == 0 || step == 3 {
            lat.push(took);
        }
        if let Some(error) = error
            && shown < 3
        {
            eprintln!("  storm failure: {error}");
            shown += 1;
        }
        if let Some(session) = session {
            cleanup.push((c.clone(), session));
        }
    }
    storm.open_p50 = lat.percentile_us(50.0);
    storm.open_p99 = lat.percentile_us(99.0);
    delete_all(cleanup, 16).await;
    storm
}

/// `n` rmcp clients at once: connect (initialize + initialized + GET stream), then `tools/list`.
async fn rmcp_storm(endpoint: &Endpoint, n: usize) -> Storm {
    let start = Instant::now();
    let outcomes = join_all((0..n).map(|_| async {
        let t = Instant::now();
        let client = match rmcp_connect(&endpoint.url, endpoint.token.as_deref()).await {
            Ok(c) => c,
            Err(e) => return (1, t.elapsed(), Some(format!("{e:#}")), None),
        };
        let opened = t.elapsed();
        let listed = client.list_tools(None).await;
        match listed {
            Ok(list) if list.tools.iter().any(|tool| tool.name == "echo") => (0, opened, None, Some(client)),
            Ok(_) => (3, opened, Some("tools/list has no echo".to_owned()), Some(client)),
            Err(e) => (3, opened, Some(e.to_string()), Some(client)),
        }
    }))
    .await;
    let wall = start.elapsed();
    let mut storm =
        Storm { wall, open_failed: 0, initialized_failed: 0, list_failed: 0, ok: 0, open_p50: 0.0, open_p99: 0.0 };
    let mut lat = Latencies::default();
    let mut clients = Vec::new();
    let mut shown = 0;
    for (step, took, error, client) in outcomes {
        match step {
            0 => storm.ok += 1,
            1 => storm.open_failed += 1,
            _ => storm.list_failed += 1,
        }
        if step != 1 {
            lat.push(took);
        }
        if let Some(error) = error
            && shown < 3
        {
            eprintln!("  rmcp storm failure: {error}");
            shown += 1;
        }
        clients.extend(client);
    }
    storm.open_p50 = lat.percentile_us(50.0);
    storm.open_p99 = lat.percentile_us(99.0);
    join_all(clients.into_iter().map(|c| async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.cancel()).await;
    }))
    .await;
    storm
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let admin_token = format!("berth_admin_bench_{}", uuid::Uuid::new_v4().simple());
    eprintln!("B2: starting servers (Berth starts a private PostgreSQL cluster)...");
    let berth = Server::spawn(
        "b2-berth",
        &["berth".into(), "--admin-token".into(), admin_token.clone(), "--max-sessions".into(), "1000000".into()],
        pinning,
    )?;
    let rmcp = Server::spawn("b2-rmcp", &["rmcp".into()], pinning)?;
    let b = berth_endpoint(&berth.base(), &admin_token).await?;
    let berth_ep = Endpoint { url: b.url, token: Some(b.key) };
    let rmcp_ep = Endpoint { url: format!("{}/mcp", rmcp.base()), token: None };
    let target = |t: Target| match t {
        Target::Berth => (&berth, &berth_ep),
        Target::Rmcp => (&rmcp, &rmcp_ep),
    };

    eprintln!("B2: warming up...");
    for t in [Target::Berth, Target::Rmcp] {
        let (server, ep) = target(t);
        let (_, opened) = rate_cell(server, ep, 4, 0.3).await;
        delete_all(opened, 16).await;
    }
    let openers = args.openers.max(1);
    let concurrency = [1, openers];
    let mut results: Vec<Vec<Vec<Cell>>> = vec![vec![Vec::new(); 2]; 2];
    let mut noisy = 0;
    for round in 0..args.rounds.max(1) {
        let (busy, _) = wait_quiet(QUIET_CORES, QUIET_PATIENCE).await;
        noisy += usize::from(busy >= QUIET_CORES);
        for (ci, &conc) in concurrency.iter().enumerate() {
            for (ti, t) in [Target::Berth, Target::Rmcp].into_iter().enumerate() {
                let (server, ep) = target(t);
                let (cell, opened) = rate_cell(server, ep, conc, args.secs).await;
                eprintln!(
                    "  round {}/{} {:<6} openers={conc:<3} {:>7} sessions/s  p50 {:>7} µs  p99 {:>7} µs  server {:.2} cores",
                    round + 1,
                    args.rounds,
                    if ti == 0 { "Berth" } else { "rmcp" },
                    int(cell.rate),
                    f1(cell.p50),
                    f1(cell.p99),
                    cell.server_cpu
                );
                results[ti][ci].push(cell);
                delete_all(opened, 16).await;
            }
        }
    }

    eprintln!("B2: storms of {} concurrent opens...", args.storm);
    let (busy, _) = wait_quiet(QUIET_CORES, QUIET_PATIENCE).await;
    noisy += usize::from(busy >= QUIET_CORES);
    let storms = [
        ("Berth, raw client", raw_storm(&berth_ep, args.storm).await),
        ("rmcp direct, raw client", raw_storm(&rmcp_ep, args.storm).await),
        ("Berth, rmcp client", rmcp_storm(&berth_ep, args.storm).await),
        ("rmcp direct, rmcp client", rmcp_storm(&rmcp_ep, args.storm).await),
    ];

    let mut table = Table::new(&[
        "target",
        "openers",
        "sessions/s",
        "p50 µs",
        "p99 µs",
        "server CPU (cores)",
        "server CPU µs/session",
        "errors",
    ]);
    for (ti, name) in ["Berth", "(b) rmcp 3.9.0 direct"].iter().enumerate() {
        for (ci, &conc) in concurrency.iter().enumerate() {
            let m = median_cell(&results[ti][ci]);
            table.row(vec![
                (*name).into(),
                conc.to_string(),
                int(m.rate),
                f1(m.p50),
                f1(m.p99),
                f2(m.server_cpu),
                f1(m.cpu_per_op),
                m.errors.to_string(),
            ]);
        }
    }
    let mut ratios = Table::new(&["openers", "Berth ÷ rmcp sessions/s", "Berth ÷ rmcp CPU µs/session"]);
    let mut rate_ratios = Vec::new();
    for (ci, &conc) in concurrency.iter().enumerate() {
        let rounds = results[0][ci].len();
        let rate = median(&(0..rounds).map(|r| results[0][ci][r].rate / results[1][ci][r].rate).collect::<Vec<_>>());
        let cpu = median(
            &(0..rounds).map(|r| results[0][ci][r].cpu_per_op / results[1][ci][r].cpu_per_op).collect::<Vec<_>>(),
        );
        ratios.row(vec![conc.to_string(), f2(rate), f2(cpu)]);
        rate_ratios.push(rate);
    }
    let mut storm_table = Table::new(&[
        "storm",
        "sessions",
        "working",
        "initialize failed",
        "initialized failed",
        "tools/list failed",
        "wall ms",
        "open p50 ms",
        "open p99 ms",
    ]);
    for (name, s) in &storms {
        storm_table.row(vec![
            (*name).into(),
            args.storm.to_string(),
            s.ok.to_string(),
            s.open_failed.to_string(),
            if name.ends_with("rmcp client") { "(in open)".into() } else { s.initialized_failed.to_string() },
            s.list_failed.to_string(),
            int(s.wall.as_secs_f64() * 1000.0),
            f1(s.open_p50 / 1000.0),
            f1(s.open_p99 / 1000.0),
        ]);
    }
    let berth_failures: usize = storms
        .iter()
        .filter(|(n, _)| n.starts_with("Berth"))
        .map(|(_, s)| s.open_failed + s.initialized_failed + s.list_failed)
        .sum();
    let worst = rate_ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let mut targets = Table::new(&["target (perf-targets.md B2)", "measured", "verdict"]);
    targets.row(vec![
        "session creation ≥ 0.7 × rmcp direct".into(),
        format!("{} (1 opener) / {} ({openers})", f2(rate_ratios[0]), f2(rate_ratios[1])),
        verdict(worst >= 0.7).into(),
    ]);
    targets.row(vec![
        format!("zero lost `initialized` in a storm of {} opens", args.storm),
        format!("{berth_failures} failed sessions on Berth"),
        verdict(berth_failures == 0).into(),
    ]);

    println!("\nB2 legacy session creation: Berth vs (b) rmcp direct");
    println!("{header}");
    println!(
        "rounds: {} (medians), {} s per cell; a session = initialize (200) + notifications/initialized (202)",
        args.rounds, args.secs
    );
    println!("rounds started on a busy machine (other jobs ≥ {QUIET_CORES} cores): {noisy}");
    println!("\n{}\n\n{}\n\n{}\n\n{}", table.render(), ratios.render(), storm_table.render(), targets.render());
    println!(
        "\nB2 summary: Berth ÷ rmcp session creation {} (1 opener) / {} ({openers}); storm of {}: {berth_failures} failed Berth sessions.",
        f2(rate_ratios[0]),
        f2(rate_ratios[1]),
        args.storm
    );
    Ok(())
}
