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

fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "client failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let line =
        text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_else(|| panic!("no JSON in {text}"));
    serde_json::from_str(line).unwrap()
}

/// The Python SDK in all three connection modes, with elicitation, sampling and progress.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_python_sdk_uses_a_hosted_server_in_auto_legacy_and_modern_modes() {
    let (app, key) = fixture_app().await;
    let python = root().join(".tools/venv/bin/python");
    assert!(python.exists(), "run scripts/install-tools.sh");
    let script = root().join("tests/clients/python_client.py");
    let url = app.url("/t/acme/private/mcp");
    for (mode, version) in [("auto", "2026-07-28"), ("legacy", "2025-11-25"), ("2026-07-28", "2026-07-28")] {
        let output = run(&python, &[script.to_str().unwrap(), &url, mode], &[("BERTH_TOKEN", &key)]).await;
        let out = stdout_json(&output);
        assert_eq!(out["protocol_version"], version, "{mode}");
        assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{mode}");
        assert_eq!(out["echo"], "hi", "{mode}");
        assert_eq!(out["add"]["sum"], 5, "{mode}");
        assert!(out["elicitation"].as_str().unwrap().contains("octocat"), "{mode}: {}", out["elicitation"]);
        assert!(out["sampling"].as_str().unwrap().contains("Paris"), "{mode}: {}", out["sampling"]);
        assert_eq!(out["progress"], json!([0.0, 50.0, 100.0]), "{mode}");
        assert_eq!(out["templates"], json!(["test://template/{id}/data"]), "{mode}");
        assert_eq!(out["prompt_messages"], 1, "{mode}");
    }
    // Without the key the private server refuses the SDK.
    let output = run(&python, &[script.to_str().unwrap(), &url, "legacy"], &[]).await;
    assert!(!output.status.success());
}

/// The TypeScript SDK 1.32 (legacy era only) with a bearer key.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_typescript_sdk_lists_and_calls_tools() {
    let (app, key) = fixture_app().await;
    let script = root().join("scripts/tools/ts_client.mjs");
    let url = app.url("/t/acme/private/mcp");
    let output = run(
        &tool("node"),
        &[script.to_str().unwrap(), &url, "echo", r#"{"message":"from ts"}"#],
        &[("BERTH_TOKEN", &key)],
    )
    .await;
    let out = stdout_json(&output);
    assert_eq!(out["protocolVersion"], "2025-11-25");
    assert_eq!(out["serverInfo"]["name"], "berth-fixture");
    assert_eq!(out["call"]["result"]["content"][0]["text"], "from ts");
}

/// The Inspector CLI in its legacy default and pinned to the modern era.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_inspector_cli_lists_and_calls_tools_in_both_eras() {
    let (app, key) = fixture_app().await;
    let inspector = tool("mcp-inspector");
    let url = app.url("/t/acme/private/mcp");
    let home = tempfile::tempdir().unwrap();
    let home = home.path().to_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {key}");
    for era in ["legacy", "modern"] {
        let list = [
            "--cli",
            &url,
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--header",
            &auth,
            "--method",
            "tools/list",
            "--format",
            "json",
        ];
        let out = stdout_json(&run(&inspector, &list, &[("HOME", &home)]).await);
        assert!(out["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "echo"), "{era}");
        let call = [
            "--cli",
            &url,
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--header",
            &auth,
            "--method",
            "tools/call",
            "--tool-name",
            "echo",
            "--tool-arg",
            "message=hi",
            "--format",
            "json",
        ];
        let out = stdout_json(&run(&inspector, &call, &[("HOME", &home)]).await);
        assert_eq!(out["result"]["content"][0]["text"], "hi", "{era}");
    }
    let denied =
        ["--cli", &url, "--transport", "http", "--method", "tools/list", "--format", "json", "--stored-auth-only"];
    let output = run(&inspector, &denied, &[("HOME", &home)]).await;
    assert_eq!(output.status.code(), Some(3), "the Inspector reports 401 as exit code 3");
}

/// An app with the real runtimes and the example components published through the admin API:
/// `acme/fixture` (public: the conformance fixture as a WASM guest) and `acme/classic`.
async fn wasm_app() -> (TestApp, String) {
    let app = helpers::spawn_app_with_runtimes().await;
    app.create_tenant("acme").await.assert_status(201);
    app.create_tenant("globex").await.assert_status(201);
    let public = json!({"slug": "fixture", "name": "Conformance fixture (WASM)", "kind": "wasm", "public": true});
    app.post_json(As::Admin, "/api/v1/tenants/acme/servers", &public).await.assert_status(201);
    app.create_server(As::Admin, "acme", "classic", "wasm").await.assert_status(201);
    for (server, guest) in [("fixture", "berth_example_fixture"), ("classic", "berth_example_classic")] {
        let bytes = std::fs::read(berth_test_support::guests::guest(guest)).unwrap();
        let path = format!("/api/v1/tenants/acme/servers/{server}/versions");
        app.post_raw(As::Admin, &path, "application/wasm", bytes).await.assert_status(201);
    }
    let key = app.key_with("acme", &["mcp"]).await;
    (app, key)
}

/// Both full requirement sets against the conformance fixture running as a WASM component.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_conformance_suite_passes_against_the_fixture_as_a_wasm_component() {
    let (app, _) = wasm_app().await;
    let url = app.url("/t/acme/fixture/mcp");
    let conformance = tool("conformance");
    let baseline = root().join("tests/conformance/baseline-wasm.yml");
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
        if !run(&conformance, &args, &[]).await.status.success() {
            failures.push(format!("--requirements {requirements}"));
        }
    }
    assert!(failures.is_empty(), "conformance failures beyond the baseline: {failures:?}");
}

/// The classic examples, published through the admin API, answer the Python SDK in both eras
/// and the Inspector CLI.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_classic_wasm_examples_answer_the_python_sdk_and_the_inspector() {
    let (app, key) = wasm_app().await;
    let url = app.url("/t/acme/classic/mcp");
    let python = root().join(".tools/venv/bin/python");
    let script = root().join("tests/clients/python_classic.py");
    for mode in ["legacy", "2026-07-28"] {
        let out = stdout_json(&run(&python, &[script.to_str().unwrap(), &url, mode], &[("BERTH_TOKEN", &key)]).await);
        assert_eq!(out["add"], json!({"result": 5.0}), "{mode}");
        assert_eq!(out["word_count"]["words"], 3, "{mode}: {}", out["word_count"]);
        assert!(out["greeting"].as_str().unwrap().contains("Ada"), "{mode}");
        assert!(out["prompt"].as_str().unwrap().contains("rust"), "{mode}: {}", out["prompt"]);
        assert!(out["progress"].as_array().is_some_and(|p| p.len() >= 2), "{mode}: {}", out["progress"]);
    }
    let inspector = tool("mcp-inspector");
    let home = tempfile::tempdir().unwrap();
    let home = home.path().to_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {key}");
    for era in ["legacy", "modern"] {
        let call = [
            "--cli",
            &url,
            "--transport",
            "http",
            "--protocol-era",
            era,
            "--header",
            &auth,
            "--method",
            "tools/call",
            "--tool-name",
            "add",
            "--tool-arg",
            "a=2",
            "--tool-arg",
            "b=3",
            "--format",
            "json",
        ];
        let out = stdout_json(&run(&inspector, &call, &[("HOME", &home)]).await);
        assert_eq!(out["result"]["structuredContent"]["result"], 5.0, "{era}");
    }
}
