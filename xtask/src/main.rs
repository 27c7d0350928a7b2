//! `cargo xtask <task>`: repository tasks.
//!
//! - `test`: every gate and every test, as CI runs them (the README's test command).
//! - `sqlx-prepare [--check]`: regenerate (or verify) the committed `.sqlx/` query cache.
//! - `tidy`: crate-boundary and documentation rules.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::indexing_slicing)]

mod sqlx_cache;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("sqlx-prepare") => sqlx_cache::prepare(args.iter().any(|a| a == "--check")),
        Some("tidy") => tidy::run(&root()),
        _ => {
            eprintln!("usage: cargo xtask <test [--no-gates] | sqlx-prepare [--check] | tidy>");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command from the workspace root, failing with its name when it fails.
pub(crate) fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let start = Instant::now();
    println!("==> {what}");
    let status = cmd.current_dir(root()).status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    println!("<== {what} ok ({:.0?})", start.elapsed());
    Ok(())
}

/// Builds (and with `gates`, formats and lints) the WebAssembly guests in `examples/`, a
/// workspace of its own for `wasm32-wasip2`, adding the target when it is missing.
fn build_guests(gates: bool) -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target = installed
        .as_ref()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2"));
    if !has_target {
        run("rustup target add wasm32-wasip2", Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))?;
    }
    let manifest = ["--manifest-path", "examples/Cargo.toml"];
    if gates {
        run("cargo fmt --check (examples)", cargo().arg("fmt").args(manifest).args(["--all", "--", "--check"]))?;
        run(
            "cargo clippy (examples, wasm32-wasip2)",
            cargo().arg("clippy").args(manifest).args(["--target", "wasm32-wasip2", "--", "-D", "warnings"]),
        )?;
    }
    run(
        "build WebAssembly guests (examples/)",
        cargo().arg("build").args(manifest).args(["--release", "--target", "wasm32-wasip2"]),
    )
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    let gates = !args.iter().any(|a| a == "--no-gates");
    if gates {
        run("cargo fmt --check", cargo().args(["fmt", "--all", "--", "--check"]))?;
        tidy::run(&root())?;
        run("cargo clippy", cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
        sqlx_cache::prepare(true)?;
    }
    build_guests(gates)?;
    run("install external MCP clients (.tools/)", Command::new("bash").arg("scripts/install-tools.sh"))?;
    println!("==> starting a private PostgreSQL cluster for this test run");
    let cluster = berth_test_support::start_private_cluster().context("cannot start the test PostgreSQL cluster")?;
    run(
        "cargo test",
        cargo()
            // `--include-ignored` runs the external-client tests, which need `.tools/`.
            .args(["test", "--workspace", "--all-targets", "--no-fail-fast", "--", "--include-ignored"])
            .env(berth_test_support::CLUSTER_URL_ENV, cluster.url("postgres")),
    )?;
    run(
        "cargo test --doc",
        cargo()
            .args(["test", "--workspace", "--doc"])
            .env(berth_test_support::CLUSTER_URL_ENV, cluster.url("postgres")),
    )?;
    let _ = cluster.stop();
    println!("all tests passed");
    Ok(())
}
