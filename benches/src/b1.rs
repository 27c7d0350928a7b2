//! B1: `tools/call` of a trivial echo tool through Berth (fixture backend, API-key auth) against
//! (b) the same tool on an rmcp server directly and (a) a raw actix-web JSON echo.
//!
//! Sessions are opened with rmcp's client before any timing; each cell then times N calls per
//! session at 1 and at 32 concurrent sessions. Rounds interleave the targets (Berth, rmcp,
//! actix, Berth, ...); reported figures are medians over rounds, ratios are taken per round.

use std::time::Instant;

use futures::future::join_all;

use crate::client::{Captured, LEGACY, Raw, berth_endpoint, echo_body, message, rmcp_connect_captured, rmcp_echo};
use crate::harness::{Pinning, QUIET_CORES, QUIET_PATIENCE, Server, wait_quiet};
use crate::stats::{Cell, Latencies, Table, f1, f2, int, median, median_cell, verdict};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rounds; every round runs every cell once, targets interleaved.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Calls per session in the 1-session cells.
    #[arg(long, default_value_t = 8000)]
    calls_single: usize,
    /// Calls per session in the many-session cells.
    #[arg(long, default_value_t = 800)]
    calls_many: usize,
    /// Sessions in the many-session cells.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// What sends the timed MCP calls: rmcp's client, or a raw HTTP client reusing the sessions
    /// rmcp's client opened (a lighter load generator).
    #[arg(long, value_enum, default_value_t = Via::Rmcp)]
    calls_via: Via,
}

/// What sends the timed MCP calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Via {
    /// `RunningService::call_tool` of rmcp's client.
    Rmcp,
    /// A reqwest POST of `tools/call` on the session rmcp's client opened.
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Berth,
    Rmcp,
    Actix,
}

impl Target {
    const ALL: [Target; 3] = [Target::Berth, Target::Rmcp, Target::Actix];

    fn name(self) -> &'static str {
        match self {
            Target::Berth => "Berth (fixture echo, API key)",
            Target::Rmcp => "(b) rmcp 3.9.0 direct",
            Target::Actix => "(a) actix-web raw echo",
        }
    }
}

struct Targets {
    berth: Server,
    rmcp: Server,
    actix: Server,
    via: Via,
    berth_sessions: Vec<(Captured, Raw)>,
    rmcp_sessions: Vec<(Captured, Raw)>,
    echo_clients: Vec<reqwest::Client>,
    echo_url: String,
}

impl Targets {
    fn server(&self, target: Target) -> &Server {
        match target {
            Target::Berth => &self.berth,
            Target::Rmcp => &self.rmcp,
            Target::Actix => &self.actix,
        }
    }
}

async fn echo_raw(client: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<()> {
    let body = echo_body(n);
    let response = client.post(url).header("content-type", "application/json").body(body.clone()).send().await?;
    anyhow::ensure!(response.status().as_u16() == 200, "echo answered {}", response.status());
    let bytes = response.bytes().await?;
    anyhow::ensure!(bytes.len() == body.len(), "echo returned {} bytes, sent {}", bytes.len(), body.len());
    Ok(())
}

async fn one_call(targets: &Targets, target: Target, session: usize, n: usize) -> anyhow::Result<()> {
    let mcp = match target {
        Target::Berth => &targets.berth_sessions[session],
        Target::Rmcp => &targets.rmcp_sessions[session],
        Target::Actix => return echo_raw(&targets.echo_clients[session], &targets.echo_url, n).await,
    };
    match targets.via {
        Via::Rmcp => rmcp_echo(&mcp.0.client, &message(n)).await,
        Via::Raw => {
            let id = mcp.0.seen.session.as_deref().unwrap_or_default();
            mcp.1.echo(id, n as u64 + 1000, &message(n)).await
        }
    }
}

/// Times `calls` sequential calls on each of `sessions` concurrent sessions.
async fn cell(targets: &Targets, target: Target, sessions: usize, calls: usize, seq: &mut usize) -> Cell {
    let base = *seq;
    *seq += sessions * calls;
    let server = targets.server(target);
    let cpu = server.cpu_secs();
    let start = Instant::now();
    let runs = join_all((0..sessions).map(|s| async move {
        let mut lat = Latencies::with_capacity(calls);
        let mut errors = 0;
        let mut first_error = None;
        for k in 0..calls {
            let t = Instant::now();
            match one_call(targets, target, s, base + s * calls + k).await {
                Ok(()) => lat.push(t.elapsed()),
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (lat, errors, first_error)
    }))
    .await;
    let wall = start.elapsed();
    let cpu = server.cpu_secs() - cpu;
    let mut all = Latencies::with_capacity(sessions * calls);
    let mut errors = 0;
    for (lat, e, first) in runs {
        all.extend(lat);
        errors += e;
        if let Some(first) = first {
            eprintln!("  {} error: {first}", target.name());
        }
    }
    Cell::from(all, wall, cpu, errors)
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let admin_token = format!("berth_admin_bench_{}", uuid::Uuid::new_v4().simple());
    eprintln!("B1: starting servers (Berth starts a private PostgreSQL cluster)...");
    let berth = Server::spawn("b1-berth", &["berth".into(), "--admin-token".into(), admin_token.clone()], pinning)?;
    let rmcp = Server::spawn("b1-rmcp", &["rmcp".into()], pinning)?;
    let actix = Server::spawn("b1-echo", &["echo".into()], pinning)?;
    let endpoint = berth_endpoint(&berth.base(), &admin_token).await?;
    let sessions = args.sessions.max(1);
    eprintln!("B1: opening {sessions} sessions per MCP target with rmcp's client...");
    let mut berth_sessions = Vec::new();
    let mut rmcp_sessions = Vec::new();
    let rmcp_url = format!("{}/mcp", rmcp.base());
    for _ in 0..sessions {
        let berth = rmcp_connect_captured(&endpoint.url, Some(&endpoint.key)).await?;
        let raw =
            Raw::new(&endpoint.url, Some(&endpoint.key)).with_version(berth.seen.version.as_deref().unwrap_or(LEGACY));
        berth_sessions.push((berth, raw));
        let rmcp = rmcp_connect_captured(&rmcp_url, None).await?;
        let raw = Raw::new(&rmcp_url, None).with_version(rmcp.seen.version.as_deref().unwrap_or(LEGACY));
        rmcp_sessions.push((rmcp, raw));
    }
    let version = berth_sessions.first().and_then(|s| s.0.seen.version.clone()).unwrap_or_default();
    let echo_clients = (0..sessions).map(|_| reqwest::Client::new()).collect();
    let echo_url = format!("{}/echo", actix.base());
    let targets =
        Targets { berth, rmcp, actix, via: args.calls_via, berth_sessions, rmcp_sessions, echo_clients, echo_url };

    let mut seq = 0;
    eprintln!("B1: warming up...");
    for target in Target::ALL {
        let _ = cell(&targets, target, 1, 300, &mut seq).await;
        let _ = cell(&targets, target, sessions, 5, &mut seq).await;
    }
    let concurrency = [(1, args.calls_single), (sessions, args.calls_many)];
    // results[target][conc] = one cell per round
    let mut results = vec![vec![Vec::new(); concurrency.len()]; Target::ALL.len()];
    let mut noisy = 0;
    for round in 0..args.rounds.max(1) {
        let (busy, _) = wait_quiet(QUIET_CORES, QUIET_PATIENCE).await;
        noisy += usize::from(busy >= QUIET_CORES);
        for (ci, &(conc, calls)) in concurrency.iter().enumerate() {
            for (ti, &target) in Target::ALL.iter().enumerate() {
                let c = cell(&targets, target, conc, calls, &mut seq).await;
                eprintln!(
                    "  round {}/{} {:<30} sessions={conc:<3} {:>9} req/s  p50 {:>7} µs  p99 {:>7} µs  server {:.2} cores",
                    round + 1,
                    args.rounds,
                    target.name(),
                    int(c.rate),
                    f1(c.p50),
                    f1(c.p99),
                    c.server_cpu
                );
                results[ti][ci].push(c);
            }
        }
    }

    let mut table = Table::new(&[
        "target",
        "sessions",
        "req/s",
        "p50 µs",
        "p99 µs",
        "server CPU (cores)",
        "server CPU µs/call",
        "errors",
    ]);
    for (ti, target) in Target::ALL.iter().enumerate() {
        for (ci, &(conc, _)) in concurrency.iter().enumerate() {
            let m = median_cell(&results[ti][ci]);
            table.row(vec![
                target.name().into(),
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
    // Per-round ratios, then their median.
    let per_round = |ci: usize, f: &dyn Fn(&Cell, &Cell, &Cell) -> f64| -> f64 {
        let values: Vec<f64> =
            (0..results[0][ci].len()).map(|r| f(&results[0][ci][r], &results[1][ci][r], &results[2][ci][r])).collect();
        median(&values)
    };
    let mut ratios = Table::new(&[
        "sessions",
        "Berth ÷ (b) req/s",
        "Berth ÷ (a) req/s",
        "added p50 over (b), µs",
        "added p99 over (b), µs",
        "Berth ÷ (b) CPU µs/call",
    ]);
    let mut figures = Vec::new();
    for (ci, &(conc, _)) in concurrency.iter().enumerate() {
        let vs_b = per_round(ci, &|b, r, _| b.rate / r.rate);
        let vs_a = per_round(ci, &|b, _, a| b.rate / a.rate);
        let added50 = per_round(ci, &|b, r, _| b.p50 - r.p50);
        let added99 = per_round(ci, &|b, r, _| b.p99 - r.p99);
        let cpu = per_round(ci, &|b, r, _| b.cpu_per_op / r.cpu_per_op);
        ratios.row(vec![conc.to_string(), f2(vs_b), f2(vs_a), f1(added50), f1(added99), f2(cpu)]);
        figures.push((vs_b, vs_a, added50));
    }
    let (b1_vs_b, b1_vs_a, added) = figures[0];
    let (bn_vs_b, bn_vs_a, _) = figures[1];
    let mut targets_table = Table::new(&["target (perf-targets.md B1)", "measured", "verdict"]);
    targets_table.row(vec![
        "added p50 ≤ 100 µs over (b), 1 session".into(),
        format!("{} µs", f1(added)),
        verdict(added <= 100.0).into(),
    ]);
    targets_table.row(vec!["throughput ≥ 0.5 × (b) at 1 session".into(), f2(b1_vs_b), verdict(b1_vs_b >= 0.5).into()]);
    targets_table.row(vec![
        format!("throughput ≥ 0.4 × (b) at {sessions} sessions"),
        f2(bn_vs_b),
        verdict(bn_vs_b >= 0.4).into(),
    ]);
    targets_table.row(vec![
        "throughput ≥ 0.25 × (a)".into(),
        format!("{} (1) / {} ({sessions})", f2(b1_vs_a), f2(bn_vs_a)),
        verdict(b1_vs_a >= 0.25 && bn_vs_a >= 0.25).into(),
    ]);

    println!("\nB1 tools/call: Berth vs (b) rmcp direct vs (a) actix-web echo");
    println!("{header}");
    println!(
        "rounds: {} (medians), calls/session: {} at 1 session, {} at {sessions}; sessions opened by rmcp's client (protocol {version}); timed MCP calls sent by {}; request body {} B for (a)",
        args.rounds,
        args.calls_single,
        args.calls_many,
        match args.calls_via {
            Via::Rmcp => "rmcp's client (call_tool)",
            Via::Raw => "a raw reqwest client on those sessions",
        },
        echo_body(1).len()
    );
    println!("rounds started on a busy machine (other jobs ≥ {QUIET_CORES} cores): {noisy}");
    println!("\n{}\n\n{}\n\n{}", table.render(), ratios.render(), targets_table.render());
    println!(
        "\nB1 summary: Berth ÷ rmcp req/s {} (1 session) / {} ({sessions}); Berth ÷ actix {} / {}; added p50 over rmcp {} µs.",
        f2(b1_vs_b),
        f2(bn_vs_b),
        f2(b1_vs_a),
        f2(bn_vs_a),
        f1(added)
    );
    Ok(())
}
