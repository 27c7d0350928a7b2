//! Control-plane reads: `GET /api/v1/tenants/{t}/servers` (10 servers) with a tenant key of
//! scope `admin`, against `GET /healthz` (a bare actix handler) on the same Berth process.

use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::client::Admin;
use crate::harness::{Pinning, QUIET_CORES, QUIET_PATIENCE, Server, wait_quiet};
use crate::stats::{Cell, Latencies, Table, f1, f2, int, median, median_cell};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rounds; the two endpoints interleaved within each round.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds per cell.
    #[arg(long, default_value_t = 1.5)]
    secs: f64,
    /// Concurrent connections in the many-connection cells.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

/// GETs `url` with `token` on `connections` keep-alive connections for `secs`.
async fn cell(server: &Server, url: &str, token: Option<&str>, connections: usize, secs: f64) -> Cell {
    let clients: Vec<reqwest::Client> = (0..connections).map(|_| reqwest::Client::new()).collect();
    let get = |c: &reqwest::Client| {
        let mut r = c.get(url);
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        async move {
            let response = r.send().await?;
            anyhow::ensure!(response.status().as_u16() == 200, "GET answered {}", response.status());
            response.bytes().await?;
            anyhow::Ok(())
        }
    };
    for c in &clients {
        let _ = get(c).await;
    }
    let deadline = Duration::from_secs_f64(secs);
    let cpu = server.cpu_secs();
    let start = Instant::now();
    let runs = join_all(clients.iter().map(|c| async move {
        let mut lat = Latencies::with_capacity(4096);
        let mut errors = 0;
        while start.elapsed() < deadline {
            let t = Instant::now();
            match get(c).await {
                Ok(()) => lat.push(t.elapsed()),
                Err(e) => {
                    if errors == 0 {
                        eprintln!("  {url}: {e}");
                    }
                    errors += 1;
                }
            }
        }
        (lat, errors)
    }))
    .await;
    let wall = start.elapsed();
    let cpu = server.cpu_secs() - cpu;
    let mut all = Latencies::default();
    let mut errors = 0;
    for (lat, e) in runs {
        all.extend(lat);
        errors += e;
    }
    Cell::from(all, wall, cpu, errors)
}

pub(crate) async fn run(args: &Args, pinning: &Pinning, header: &str) -> anyhow::Result<()> {
    let admin_token = format!("berth_admin_bench_{}", uuid::Uuid::new_v4().simple());
    eprintln!("control-plane: starting Berth (private PostgreSQL cluster)...");
    let berth = Server::spawn("cp-berth", &["berth".into(), "--admin-token".into(), admin_token.clone()], pinning)?;
    let base = berth.base();
    let admin = Admin::new(&base, &admin_token);
    admin.tenant("bench").await?;
    for i in 0..10 {
        admin.server("bench", &format!("server-{i:02}"), false).await?;
    }
    let key = admin.key("bench", &["admin"]).await?;
    let list_url = format!("{base}/api/v1/tenants/bench/servers");
    let health_url = format!("{base}/healthz");
    let listed: serde_json::Value =
        reqwest::Client::new().get(&list_url).bearer_auth(&key).send().await?.json().await?;
    let count = listed["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(count == 10, "expected 10 servers in the list, got {count}: {listed}");

    let endpoints: [(&str, &str, Option<&str>); 2] =
        [("GET /healthz", &health_url, None), ("GET /api/v1/tenants/{t}/servers", &list_url, Some(&key))];
    let concurrency = [1, args.connections.max(1)];
    let _ = cell(&berth, &health_url, None, 4, 0.3).await;
    let _ = cell(&berth, &list_url, Some(&key), 4, 0.3).await;
    let mut results: Vec<Vec<Vec<Cell>>> = vec![vec![Vec::new(); 2]; 2];
    let mut noisy = 0;
    for round in 0..args.rounds.max(1) {
        let (busy, _) = wait_quiet(QUIET_CORES, QUIET_PATIENCE).await;
        noisy += usize::from(busy >= QUIET_CORES);
        for (ci, &conc) in concurrency.iter().enumerate() {
            for (ei, (name, url, token)) in endpoints.iter().enumerate() {
                let c = cell(&berth, url, *token, conc, args.secs).await;
                eprintln!(
                    "  round {}/{} {:<34} connections={conc:<3} {:>8} req/s  p50 {:>7} µs  p99 {:>7} µs",
                    round + 1,
                    args.rounds,
                    name,
                    int(c.rate),
                    f1(c.p50),
                    f1(c.p99)
                );
                results[ei][ci].push(c);
            }
        }
    }
    let mut table =
        Table::new(&["endpoint", "connections", "req/s", "p50 µs", "p99 µs", "server CPU (cores)", "errors"]);
    for (ei, (name, _, _)) in endpoints.iter().enumerate() {
        for (ci, &conc) in concurrency.iter().enumerate() {
            let m = median_cell(&results[ei][ci]);
            table.row(vec![
                (*name).into(),
                conc.to_string(),
                int(m.rate),
                f1(m.p50),
                f1(m.p99),
                f2(m.server_cpu),
                m.errors.to_string(),
            ]);
        }
    }
    let mut ratios = Table::new(&["connections", "servers list ÷ /healthz req/s"]);
    let mut figures = Vec::new();
    for (ci, &conc) in concurrency.iter().enumerate() {
        let rounds = results[0][ci].len();
        let r = median(&(0..rounds).map(|i| results[1][ci][i].rate / results[0][ci][i].rate).collect::<Vec<_>>());
        ratios.row(vec![conc.to_string(), f2(r)]);
        figures.push(r);
    }
    println!(
        "\ncontrol-plane reads: GET /api/v1/tenants/{{t}}/servers (10 servers, tenant `admin` key) vs GET /healthz"
    );
    println!("{header}");
    println!(
        "rounds: {} (medians), {} s per cell; Berth and its PostgreSQL share the server core",
        args.rounds, args.secs
    );
    println!("rounds started on a busy machine (other jobs ≥ {QUIET_CORES} cores): {noisy}");
    println!("\n{}\n\n{}", table.render(), ratios.render());
    println!(
        "\ncontrol-plane summary: servers list ÷ /healthz throughput {} (1 connection) / {} ({} connections); no target in perf-targets.md.",
        f2(figures[0]),
        f2(figures[1]),
        concurrency[1]
    );
    Ok(())
}
