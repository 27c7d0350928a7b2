//! Berth's benchmarks (B1-B3 of `perf-targets.md`, plus control-plane reads), each against a
//! baseline measured in the same run. `docs/benchmarks.md` has the commands and last results.
//!
//! Every server runs in its own child process (`berth-bench serve <kind>`, hidden), pinned with
//! `taskset` to the first core; the load generator pins itself to the last core before any
//! thread starts and runs on one current-thread tokio runtime.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::cast_precision_loss)]
#![allow(clippy::cast_sign_loss)]

mod b1;
mod b2;
mod b3;
mod b5;
mod b6;
mod b7;
mod client;
mod control_plane;
mod harness;
mod killswitch;
mod serve;
mod stats;

use clap::{Parser, Subcommand};

use crate::harness::Pinning;

// The allocator `berth` ships with: the Berth servers measured here run in this process.
#[global_allocator]
static GLOBAL: berth::Allocator = berth::Allocator;

#[derive(Debug, Parser)]
#[command(name = "berth-bench", about = "Berth benchmarks; see docs/benchmarks.md")]
struct Cli {
    /// Do not pin servers and the load generator to separate cores.
    #[arg(long, global = true)]
    no_pin: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// B1: `tools/call` through Berth vs rmcp direct vs a raw actix-web echo.
    B1(b1::Args),
    /// B2: legacy session creation rate vs rmcp direct, and a storm of concurrent opens.
    B2(b2::Args),
    /// B3: RSS per idle legacy session, a second wave, and idle reaping.
    B3(b3::Args),
    /// B5: container-backed calls: cold start vs `docker run` floor, warm calls, pool refill.
    B5(b5::Args),
    /// B6: audit throughput: Berth's writer vs `psql` `COPY` of the same rows, and the cost per call.
    B6(b6::Args),
    /// B7: token checks (API key and cached JWT; EdDSA and RS256 verification) in process.
    B7(b7::Args),
    /// Control-plane read throughput vs `/healthz` on the same server.
    ControlPlane(control_plane::Args),
    /// Kill-switch propagation across two `berth data-plane` processes.
    Killswitch(killswitch::Args),
    /// Runs one server (used by the benchmarks themselves).
    #[command(hide = true)]
    Serve(serve::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        return serve::run(args);
    }
    // reqwest's rustls has no crypto provider of its own in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let machine = harness::machine();
    let pinning = Pinning::apply(!cli.no_pin);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let header = format!("machine: {machine}\npinning: {}", pinning.describe());
    runtime.block_on(async move {
        match cli.command {
            Command::B1(args) => b1::run(&args, &pinning, &header).await,
            Command::B2(args) => b2::run(&args, &pinning, &header).await,
            Command::B3(args) => b3::run(&args, &pinning, &header).await,
            Command::B5(args) => b5::run(&args, &pinning, &header).await,
            Command::B6(args) => b6::run(&args, &pinning, &header).await,
            Command::B7(args) => b7::run(&args, &pinning, &header).await,
            Command::ControlPlane(args) => control_plane::run(&args, &pinning, &header).await,
            Command::Killswitch(args) => killswitch::run(&args, &pinning, &header).await,
            Command::Serve(_) => Ok(()),
        }
    })
}
