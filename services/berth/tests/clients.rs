//! External, unmodified MCP clients against Berth with the fixture backend behind it:
//! the official conformance suite, the Inspector CLI, the Python SDK and the TypeScript SDK.
//!
//! These tests need the pinned tools in `.tools/` (`scripts/install-tools.sh`, which
//! `cargo xtask test` runs first), so they are `#[ignore]`d in a plain `cargo test`;
//! `cargo xtask test` runs them with `--include-ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::print_stdout)]

#[path = "api/helpers.rs"]
#[allow(dead_code, unreachable_pub)]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use helpers::{As, TestApp, component_bytes, spawn_app_with};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn tool(name: &str) -> PathBuf {
    let path = root().join(".tools/bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/install-tools.sh (cargo xtask test does)", path.display());
    path
}

/// An app with the fixture behind a public server `acme/fixture` and a private `acme/private`;
/// returns the app and an `mcp` key.
async fn fixture_app() -> (TestApp, String) {
    let app = spawn_app_with(Arc::new(berth_test_support::fixture::FixtureResolver::new())).await;
    app.create_tenant("acme").await.assert_status(201);
    app.create_tenant("globex").await.assert_status(201);
    let public = json!({"slug": "fixture", "name": "Conformance fixture", "kind": "wasm", "public": true});
    app.post_json(As::Admin, "/api/v1/tenants/acme/servers", &public).await.assert_status(201);
    app.publish_wasm(As::Admin, "acme", "fixture", component_bytes(8, 1)).await.assert_status(201);
    app.create_server(As::Admin, "acme", "private", "wasm").await.assert_status(201);
    app.publish_wasm(As::Admin, "acme", "private", component_bytes(8, 2)).await.assert_status(201);
    let key = app.key_with("acme", &["mcp"]).await;
    (app, key)
}

async fn run(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).current_dir(root()).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} timed out", program.display()))
        .expect("run tool");
    println!(
        "--- {} {}\n{}\n{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The conformance scenarios that need no fixtures, in both eras, plus the full requirement
/// sets of both revisions against the hosted fixture. Expected failures live in
/// `tests/conformance/baseline.yml` and may only shrink.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_official_conformance_suite_passes_against_the_hosted_fixture() {
    let (app, _) = fixture_app().await;
    let url = app.url("/t/acme/fixture/mcp");
    let conformance = tool("conformance");
    let baseline = root().join("tests/conformance/baseline.yml");
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap().to_owned();
    let mut failures = Vec::new();
    for requirements in ["2025-11-25", "2026-07-28"] {
        let args = [
            "server",
            "--url",
            &url,
            "--requirements",
            requirements,
            "--expected-failures",
            baseline.to_str().unwrap(),
            "-o",
            &out,
        ];
        let output = run(&conformance, &args, &[]).await;
        if !output.status.success() {
            failures.push(format!("--requirements {requirements}"));
        }
    }
    for (scenario, version) in [
        ("server-session-lifecycle", "2025-11-25"),
        ("http-header-validation", "2026-07-28"),
        ("server-stateless", "2026-07-28"),
    ] {
        let args = [
            "server",
            "--url",
            &url,
            "--scenario",
            scenario,
            "--spec-version",
            version,
            "--expected-failures",
            baseline.to_str().unwrap(),
            "-o",
            &out,
        ];
        let output = run(&conformance, &args, &[]).await;
        if !output.status.success() {
            failures.push(format!("{scenario} ({version})"));
        }
    }
    assert!(failures.is_empty(), "conformance failures beyond the baseline: {failures:?}");
}
