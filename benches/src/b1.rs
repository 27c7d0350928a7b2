//! B1: `tools/call` of a trivial echo tool through Berth (API-key auth, quota and audit on)
//! against (b) the same tool on an rmcp server directly and (a) a raw actix-web JSON echo.
//! Berth runs twice: with the real WASM runtime serving the classic example's `echo` component
//! (the target's definition) and with the native fixture backend's `echo` (no WASM).
//!
//! Sessions are opened with rmcp's client before any timing; each cell then times N calls per
//! session at 1 and at 32 concurrent sessions. Rounds interleave the targets (Berth WASM, Berth
//! fixture, rmcp, actix, Berth WASM, ...); reported figures are medians over rounds, ratios are
//! taken per round.

use std::time::Instant;

use futures::future::join_all;

use crate::client::{
    BerthEndpoint, Captured, LEGACY, Raw, berth_accounting, berth_endpoint_with, echo_body, message,
    rmcp_connect_captured, rmcp_echo,
};
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
    /// Which Berth backends to run: the WASM runtime, the native fixture, or both.
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
    /// Pin each Berth's PostgreSQL cluster to this CPU. By default it shares the server's core:
    /// the cluster is started by the server process and inherits its pinning.
    #[arg(long)]
    db_cpu: Option<usize>,
    /// Run every server under valgrind's callgrind and report the user-space instructions each
    /// executes per call: the same for the same work however busy the machine is, where times
    /// vary from run to run. Servers run tens of times slower, so use small call counts
    /// (`--calls-single 300 --calls-many 20`); the times and rates are then meaningless.
    /// The WASM server then gets a pool of four instance slots (valgrind cannot map the address
    /// space of the default 256).
    #[arg(long)]
    callgrind: bool,
    /// The WASM server's `wasm_ready_instances` (Berth's default 32; 0 makes every call
    /// instantiate on its own request path).
    #[arg(long, default_value_t = 32)]
    wasm_ready: u32,
}

/// Which Berth backends B1 runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backends {
    /// The real WASM runtime with the classic example's `echo` component, and the fixture.
    Both,
    /// The real WASM runtime only.
    Wasm,
    /// The native fixture backend only.
    Fixture,
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
    BerthWasm,
    Berth,
    Rmcp,
    Actix,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::BerthWasm => "Berth (WASM echo, API key, quota, audit)",
            Target::Berth => "Berth (fixture echo, API key, quota, audit)",
            Target::Rmcp => "(b) rmcp 3.9.0 direct",
            Target::Actix => "(a) actix-web raw echo",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Target::BerthWasm => "Berth WASM",
            Target::Berth => "Berth fixture",
            Target::Rmcp => "rmcp",
            Target::Actix => "actix",
        }
    }
}

struct Targets {
    berth_wasm: Option<Server>,
    berth: Option<Server>,
    rmcp: Server,
    actix: Server,
    via: Via,
    berth_wasm_sessions: Vec<(Captured, Raw)>,
    berth_sessions: Vec<(Captured, Raw)>,
    rmcp_sessions: Vec<(Captured, Raw)>,
    echo_clients: Vec<reqwest::Client>,
    echo_url: String,
}

impl Targets {
    fn server(&self, target: Target) -> &Server {
        match target {
            Target::BerthWasm => self.berth_wasm.as_ref().expect("the WASM Berth runs"),
            Target::Berth => self.berth.as_ref().expect("the fixture Berth runs"),
            Target::Rmcp => &self.rmcp,
            Target::Actix => &self.actix,
        }
    }
}

/// Opens `n` rmcp-client sessions on a Berth endpoint.
async fn berth_sessions(endpoint: &BerthEndpoint, n: usize) -> anyhow::Result<Vec<(Captured, Raw)>> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let berth = rmcp_connect_captured(&endpoint.url, Some(&endpoint.key)).await?;
        let raw =
            Raw::new(&endpoint.url, Some(&endpoint.key)).with_version(berth.seen.version.as_deref().unwrap_or(LEGACY));
        sessions.push((berth, raw));
    }
    Ok(sessions)
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
        Target::BerthWasm => &targets.berth_wasm_sessions[session],
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

/// The WASM server's instance slots under `--callgrind`.
const CALLGRIND_WASM_INSTANCES: u32 = 4;

/// Times `calls` sequential calls on each of `sessions` concurrent sessions.
async fn cell(targets: &Targets, target: Target, sessions: usize, calls: usize, seq: &mut usize) -> Cell {
    let base = *seq;
    *seq += sessions * calls;
    let server = targets.server(target);
    let cpu = server.cpu_secs();
    let db_cpu = server.database_cpu_secs();
    if server.callgrind
        && let Err(e) = server.zero_instructions()
    {
        eprintln!("  {}: {e:#}", target.name());
    }
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
    let db_cpu = server.database_cpu_secs() - db_cpu;
    let mut all = Latencies::with_capacity(sessions * calls);
    let mut errors = 0;
    for (lat, e, first) in runs {
        all.extend(lat);
        errors += e;
        if let Some(first) = first {
            eprintln!("  {} error: {first}", target.name());
        }
    }
    let ops = all.len();
    let mut cell = Cell::from(all, wall, cpu, errors).with_database(ops, db_cpu);
    if server.callgrind {
        match server.instructions() {
            Ok(n) if ops > 0 => cell.instructions_per_op = n as f64 / ops as f64,
            Ok(_) => {}
            Err(e) => eprintln!("  {}: {e:#}", target.name()),
        }
        if let Err(e) = server.dump_profile(&format!("{} {sessions} sessions", target.short())) {
            eprintln!("  {}: {e:#}", target.name());
        }
    }
    cell
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let admin_token = format!("berth_admin_bench_{}", uuid::Uuid::new_v4().simple());
    let with_wasm = args.backend != Backends::Fixture;
    let with_fixture = args.backend != Backends::Wasm;
    let component = if with_wasm {
        eprintln!("B1: building the WebAssembly examples (wasm32-wasip2) for the classic `echo` component...");
        let path = berth_test_support::guests::guest("berth_example_classic");
        Some(std::fs::read(&path)?)
    } else {
        None
    };
    eprintln!("B1: starting servers (each Berth starts a private PostgreSQL cluster)...");
    let counted = args.callgrind;
    let spawn = |name: &str, argv: &[String]| {
        if counted { Server::spawn_counted(name, argv, pinning) } else { Server::spawn(name, argv, pinning) }
    };
    let serve_berth = |kind: &str, name: &str| {
        let mut argv = vec![kind.to_owned(), "--admin-token".into(), admin_token.clone()];
        if kind == "berth-wasm" {
            argv.extend(["--wasm-ready".into(), args.wasm_ready.to_string()]);
        }
        if counted && kind == "berth-wasm" {
            // Valgrind cannot map the address space 256 slots reserve (4 GiB and a guard per
            // linear memory); four do, and the calls of 32 sessions then queue for them, as
            // valgrind runs one thread at a time anyway.
            argv.extend(["--wasm-instances".into(), CALLGRIND_WASM_INSTANCES.to_string()]);
        }
        spawn(name, &argv)
    };
    let berth_wasm = if with_wasm { Some(serve_berth("berth-wasm", "b1-berth-wasm")?) } else { None };
    let berth = if with_fixture { Some(serve_berth("berth", "b1-berth")?) } else { None };
    if let Some(cpu) = args.db_cpu {
        for server in [&berth_wasm, &berth].into_iter().flatten() {
            server.pin_database(&[cpu])?;
        }
    }
    let rmcp = spawn("b1-rmcp", &["rmcp".into()])?;
    let actix = spawn("b1-echo", &["echo".into()])?;
    let sessions = args.sessions.max(1);
    eprintln!("B1: setting up tenants and opening {sessions} sessions per MCP target with rmcp's client...");
    let mut berth_wasm_sessions = Vec::new();
    if let Some(server) = &berth_wasm {
        let endpoint = berth_endpoint_with(&server.base(), &admin_token, component.clone()).await?;
        berth_wasm_sessions = berth_sessions(&endpoint, sessions).await?;
    }
    let mut fixture_sessions = Vec::new();
    if let Some(server) = &berth {
        let endpoint = berth_endpoint_with(&server.base(), &admin_token, None).await?;
        fixture_sessions = berth_sessions(&endpoint, sessions).await?;
    }
    let rmcp_url = format!("{}/mcp", rmcp.base());
    let mut rmcp_sessions = Vec::new();
    for _ in 0..sessions {
        let rmcp = rmcp_connect_captured(&rmcp_url, None).await?;
        let raw = Raw::new(&rmcp_url, None).with_version(rmcp.seen.version.as_deref().unwrap_or(LEGACY));
        rmcp_sessions.push((rmcp, raw));
    }
    let version = berth_wasm_sessions
        .first()
        .or(fixture_sessions.first())
        .and_then(|s| s.0.seen.version.clone())
        .unwrap_or_default();
    let echo_clients = (0..sessions).map(|_| reqwest::Client::new()).collect();
    let echo_url = format!("{}/echo", actix.base());
    let targets = Targets {
        berth_wasm,
        berth,
        rmcp,
        actix,
        via: args.calls_via,
        berth_wasm_sessions,
        berth_sessions: fixture_sessions,
        rmcp_sessions,
        echo_clients,
        echo_url,
    };
    let list: Vec<Target> = [
        with_wasm.then_some(Target::BerthWasm),
        with_fixture.then_some(Target::Berth),
        Some(Target::Rmcp),
        Some(Target::Actix),
    ]
    .into_iter()
    .flatten()
    .collect();
    let index = |t: Target| list.iter().position(|&x| x == t);
    let (ri, ai) = (index(Target::Rmcp).unwrap_or_default(), index(Target::Actix).unwrap_or_default());

    let mut seq = 0;
    eprintln!("B1: warming up...");
    for &target in &list {
        let _ = cell(&targets, target, 1, 300, &mut seq).await;
        let _ = cell(&targets, target, sessions, 5, &mut seq).await;
    }
    let concurrency = [(1, args.calls_single), (sessions, args.calls_many)];
    // results[target][conc] = one cell per round
    let mut results = vec![vec![Vec::new(); concurrency.len()]; list.len()];
    let mut noisy = 0;
    let mut loads = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (busy, _) = wait_quiet(QUIET_CORES, QUIET_PATIENCE).await;
        noisy += usize::from(busy >= QUIET_CORES);
        loads.push(loadavg());
        for (ci, &(conc, calls)) in concurrency.iter().enumerate() {
            for (ti, &target) in list.iter().enumerate() {
                let c = cell(&targets, target, conc, calls, &mut seq).await;
                eprintln!(
                    "  round {}/{} {:<44} sessions={conc:<3} {:>9} req/s  p50 {:>7} µs  p99 {:>7} µs  server {:.2} cores{}",
                    round + 1,
                    args.rounds,
                    target.name(),
                    int(c.rate),
                    f1(c.p50),
                    f1(c.p99),
                    c.server_cpu,
                    if args.callgrind {
                        format!("  {} instructions/call", int(c.instructions_per_op))
                    } else {
                        String::new()
                    }
                );
                results[ti][ci].push(c);
            }
        }
    }

    let mut columns = vec![
        "target",
        "sessions",
        "req/s",
        "p50 µs",
        "p99 µs",
        "server CPU (cores)",
        "server CPU µs/call",
        "its PostgreSQL's CPU µs/call",
        "errors",
    ];
    if args.callgrind {
        columns.push("server instructions/call (callgrind)");
    }
    let mut table = Table::new(&columns);
    for (ti, target) in list.iter().enumerate() {
        for (ci, &(conc, _)) in concurrency.iter().enumerate() {
            let m = median_cell(&results[ti][ci]);
            let mut row = vec![
                target.name().into(),
                conc.to_string(),
                int(m.rate),
                f1(m.p50),
                f1(m.p99),
                f2(m.server_cpu),
                f1(m.cpu_per_op),
                if targets.server(*target).database.is_some() { f1(m.db_cpu_per_op) } else { "—".into() },
                m.errors.to_string(),
            ];
            if args.callgrind {
                row.push(int(m.instructions_per_op));
            }
            table.row(row);
        }
    }
    // Per-round figures of target `bi` against the others, then their median.
    let per_round = |ci: usize, bi: usize, f: &dyn Fn(&Cell, &Cell, &Cell) -> f64| -> f64 {
        let values: Vec<f64> = (0..results[bi][ci].len())
            .map(|r| f(&results[bi][ci][r], &results[ri][ci][r], &results[ai][ci][r]))
            .collect();
        median(&values)
    };
    let mut ratios = Table::new(&[
        "Berth backend",
        "sessions",
        "Berth ÷ (b) req/s",
        "Berth ÷ (a) req/s",
        "added p50 over (b), µs",
        "added p99 over (b), µs",
        "Berth ÷ (b) CPU µs/call",
        "calls per core ÷ (a)",
        "the same, Berth's PostgreSQL counted",
    ]);
    let mut targets_table = Table::new(&["Berth backend", "target (perf-targets.md B1)", "measured", "verdict"]);
    for (bi, &b) in list.iter().enumerate().filter(|(_, t)| matches!(t, Target::BerthWasm | Target::Berth)) {
        let mut figures = Vec::new();
        for (ci, &(conc, _)) in concurrency.iter().enumerate() {
            let vs_b = per_round(ci, bi, &|b, r, _| b.rate / r.rate);
            let vs_a = per_round(ci, bi, &|b, _, a| b.rate / a.rate);
            let added50 = per_round(ci, bi, &|b, r, _| b.p50 - r.p50);
            let added99 = per_round(ci, bi, &|b, r, _| b.p99 - r.p99);
            let cpu = per_round(ci, bi, &|b, r, _| b.cpu_per_op / r.cpu_per_op);
            let per_core = per_round(ci, bi, &|b, _, a| a.cpu_per_op / b.cpu_per_op);
            let per_core_db = per_round(ci, bi, &|b, _, a| a.cpu_per_op / (b.cpu_per_op + b.db_cpu_per_op));
            ratios.row(vec![
                b.short().into(),
                conc.to_string(),
                f2(vs_b),
                f2(vs_a),
                f1(added50),
                f1(added99),
                f2(cpu),
                f2(per_core),
                f2(per_core_db),
            ]);
            figures.push((vs_b, vs_a, added50, per_core, per_core_db));
        }
        let (b1_vs_b, b1_vs_a, added, ..) = figures[0];
        let (bn_vs_b, bn_vs_a, _, bn_per_core, bn_per_core_db) = figures[1];
        let name = b.short().to_owned();
        targets_table.row(vec![
            name.clone(),
            "added p50 ≤ 100 µs over (b), 1 session".into(),
            format!("{} µs", f1(added)),
            verdict(added <= 100.0).into(),
        ]);
        targets_table.row(vec![
            name.clone(),
            "throughput ≥ 0.5 × (b) at 1 session".into(),
            f2(b1_vs_b),
            verdict(b1_vs_b >= 0.5).into(),
        ]);
        targets_table.row(vec![
            name.clone(),
            format!("throughput ≥ 0.4 × (b) at {sessions} sessions"),
            f2(bn_vs_b),
            verdict(bn_vs_b >= 0.4).into(),
        ]);
        targets_table.row(vec![
            name.clone(),
            "throughput ≥ 0.25 × (a)".into(),
            format!("{} (1) / {} ({sessions})", f2(b1_vs_a), f2(bn_vs_a)),
            verdict(b1_vs_a >= 0.25 && bn_vs_a >= 0.25).into(),
        ]);
        // perf-anchors.md words it per core: calls per CPU-second of the server against (a)'s,
        // read where the servers are busiest.
        targets_table.row(vec![
            name,
            format!("calls per core ≥ 0.25 × (a) (perf-anchors.md), {sessions} sessions"),
            format!("{} ({} with its PostgreSQL)", f2(bn_per_core), f2(bn_per_core_db)),
            verdict(bn_per_core_db >= 0.25).into(),
        ]);
    }
    // B4's end-to-end figure: what the WASM runtime adds to a whole call over the fixture, both
    // through Berth's HTTP path in the same run.
    let mut b4 = None;
    if let (Some(wi), Some(fi)) = (index(Target::BerthWasm), index(Target::Berth)) {
        let added = |ci: usize, pick: &dyn Fn(&Cell) -> f64| {
            let values: Vec<f64> =
                (0..results[wi][ci].len()).map(|r| pick(&results[wi][ci][r]) - pick(&results[fi][ci][r])).collect();
            median(&values)
        };
        b4 = Some((added(0, &|c| c.p50), added(0, &|c| c.p99), added(1, &|c| c.p50)));
    }

    // Usage deltas reach the database every second; let the last ones land.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut accounting = Vec::new();
    for target in [Target::BerthWasm, Target::Berth] {
        if index(target).is_some() {
            let line = berth_accounting(&targets.server(target).base(), &admin_token)
                .await
                .unwrap_or_else(|e| format!("cannot read: {e:#}"));
            accounting.push(format!("{}: {line}", target.short()));
        }
    }

    println!("\nB1 tools/call: Berth (WASM and fixture backends) vs (b) rmcp direct vs (a) actix-web echo");
    println!("{header}");
    println!("load average at the start of each round: {}", loads.join(" | "));
    if with_wasm {
        println!("WASM server: wasm_ready_instances {}", args.wasm_ready);
    }
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
    println!(
        "each Berth's PostgreSQL cluster: {}",
        match args.db_cpu {
            Some(cpu) => format!("pinned to CPU {cpu} (--db-cpu)"),
            None => "on the server's core (it inherits the server's pinning)".to_owned(),
        }
    );
    println!("\n{}\n\n{}\n\n{}", table.render(), ratios.render(), targets_table.render());
    if args.callgrind {
        println!("\nserver instructions per call (callgrind), medians over rounds, and per core against (a):");
        for (bi, &b) in list.iter().enumerate().filter(|(_, t)| matches!(t, Target::BerthWasm | Target::Berth)) {
            for (ci, &(conc, _)) in concurrency.iter().enumerate() {
                let ir = |t: usize| median_cell(&results[t][ci]).instructions_per_op;
                println!(
                    "  {} at {conc} session(s): {} ({} × (b) rmcp, {} × (a) actix: calls per core {} of (a)'s)",
                    b.short(),
                    int(ir(bi)),
                    f2(ir(bi) / ir(ri)),
                    f2(ir(bi) / ir(ai)),
                    f2(ir(ai) / ir(bi))
                );
            }
        }
    }
    if let Some((p50, p99, many)) = b4 {
        println!(
            "\nB4 end to end: Berth WASM − Berth fixture (medians of per-round differences): p50 {} µs, p99 {} µs at 1 session; p50 {} µs at {sessions} sessions; target whole call within +30 µs (p50, 1 session): {}",
            f1(p50),
            f1(p99),
            f1(many),
            verdict(p50 <= 30.0)
        );
    }
    println!("\nquota and audit after the run (the tenant has a plan with every quota set high):");
    for line in &accounting {
        println!("  {line}");
    }
    Ok(())
}

/// `/proc/loadavg`'s three figures.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
