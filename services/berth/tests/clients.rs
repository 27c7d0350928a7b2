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

#[path = "api/bridging.rs"]
#[allow(dead_code, unreachable_pub)]
mod bridging;

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

/// Berth with container servers: `acme/everything` (server-everything over stdio, one container
/// per client session) and `acme/py` (the FastMCP-style server over Streamable HTTP).
async fn container_app() -> (bridging::BridgingApp, String) {
    let t = bridging::spawn_bridging_app().await;
    t.app.create_tenant("acme").await.assert_status(201);
    bridging::container_server(&t.app, "acme", "everything", &bridging::stdio_spec("everything")).await;
    bridging::container_server(&t.app, "acme", "py", &bridging::fastmcp_spec()).await;
    let key = t.app.key_with("acme", &["mcp"]).await;
    (t, key)
}

/// The Python SDK in both eras against server-everything in a container: its tools (echo,
/// get-sum, the long-running one with progress), sampling and elicitation round trips (real
/// server→client requests for legacy clients, `input_required` for modern ones), resources and
/// prompts. The same for the FastMCP-style Python server over HTTP.
#[actix_web::test]
#[ignore = "needs docker and .tools/: run cargo xtask test"]
async fn the_python_sdk_uses_container_servers_in_both_eras() {
    let (t, key) = container_app().await;
    let python = root().join(".tools/venv/bin/python");
    assert!(python.exists(), "run scripts/install-tools.sh");
    let script = root().join("tests/clients/python_bridged.py");
    let script = script.to_str().unwrap();
    let everything = t.app.url("/t/acme/everything/mcp");
    for mode in ["legacy", "2026-07-28", "auto"] {
        let out =
            stdout_json(&run(&python, &[script, &everything, mode, "everything"], &[("BERTH_TOKEN", &key)]).await);
        for tool in ["echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request"] {
            assert!(out["tools"].as_array().unwrap().iter().any(|t| t == tool), "{mode}: {tool} missing");
        }
        assert_eq!(out["echo"], "Echo: hi", "{mode}");
        assert!(out["sum"].as_str().unwrap().contains('5'), "{mode}: {}", out["sum"]);
        assert!(out["long_running"].as_str().unwrap().contains("completed"), "{mode}: {}", out["long_running"]);
        assert_eq!(out["progress"].as_array().unwrap().len(), 3, "{mode}: {}", out["progress"]);
        assert!(out["sampling"].as_str().unwrap().contains("Paris"), "{mode}: {}", out["sampling"]);
        assert!(out["elicitation"].as_str().unwrap().contains("octocat"), "{mode}: {}", out["elicitation"]);
        assert!(out["resources"].as_u64().unwrap() > 0, "{mode}");
        assert!(out["resource"].as_str().unwrap().contains("Resource 1"), "{mode}: {}", out["resource"]);
        assert!(out["prompts"].as_array().unwrap().iter().any(|p| p == "args-prompt"), "{mode}");
        assert!(out["prompt"].as_str().unwrap().contains("Paris"), "{mode}: {}", out["prompt"]);
    }
    let py = t.app.url("/t/acme/py/mcp");
    for mode in ["legacy", "2026-07-28"] {
        let out = stdout_json(&run(&python, &[script, &py, mode, "fastmcp"], &[("BERTH_TOKEN", &key)]).await);
        assert_eq!(out["add"], "5", "{mode}");
        assert_eq!(out["greet"], "Hello, Ada!", "{mode}");
        assert_eq!(out["weather"]["celsius"], 21.5, "{mode}: {}", out["weather"]);
        assert_eq!(out["count"], "counted to 3", "{mode}");
        assert_eq!(out["progress"].as_array().unwrap().len(), 3, "{mode}: {}", out["progress"]);
        assert_eq!(out["templates"], json!(["notes://{topic}"]), "{mode}");
        assert_eq!(out["resource"], "Notes about rust", "{mode}");
        assert!(out["prompt"].as_str().unwrap().contains("fn main()"), "{mode}: {}", out["prompt"]);
    }
    t.containers.shutdown().await;
}

/// The Inspector CLI in both eras against server-everything and the FastMCP-style server.
#[actix_web::test]
#[ignore = "needs docker and .tools/: run cargo xtask test"]
async fn the_inspector_cli_uses_container_servers_in_both_eras() {
    let (t, key) = container_app().await;
    let inspector = tool("mcp-inspector");
    let home = tempfile::tempdir().unwrap();
    let home = home.path().to_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {key}");
    for (server, tool_name, args, expect) in
        [("everything", "get-sum", ["a=2", "b=3"], "5"), ("py", "add", ["a=2", "b=3"], "5")]
    {
        let url = t.app.url(&format!("/t/acme/{server}/mcp"));
        for era in ["legacy", "modern"] {
            let base = ["--cli", url.as_str(), "--transport", "http", "--protocol-era", era, "--header", auth.as_str()];
            let mut list = base.to_vec();
            list.extend(["--method", "tools/list", "--format", "json"]);
            let out = stdout_json(&run(&inspector, &list, &[("HOME", &home)]).await);
            assert!(
                out["result"]["tools"].as_array().unwrap().iter().any(|t| t["name"] == tool_name),
                "{server} {era}"
            );
            let mut call = base.to_vec();
            call.extend([
                "--method",
                "tools/call",
                "--tool-name",
                tool_name,
                "--tool-arg",
                args[0],
                "--tool-arg",
                args[1],
            ]);
            call.extend(["--format", "json"]);
            let out = stdout_json(&run(&inspector, &call, &[("HOME", &home)]).await);
            let text = out["result"]["content"][0]["text"].as_str().unwrap_or_default().to_owned();
            assert!(text.contains(expect), "{server} {era}: {out}");
            let mut resources = base.to_vec();
            resources.extend(["--method", "resources/templates/list", "--format", "json"]);
            let out = stdout_json(&run(&inspector, &resources, &[("HOME", &home)]).await);
            assert!(!out["result"]["resourceTemplates"].as_array().unwrap().is_empty(), "{server} {era}: {out}");
            let mut prompts = base.to_vec();
            prompts.extend(["--method", "prompts/list", "--format", "json"]);
            let out = stdout_json(&run(&inspector, &prompts, &[("HOME", &home)]).await);
            assert!(!out["result"]["prompts"].as_array().unwrap().is_empty(), "{server} {era}: {out}");
        }
    }
    t.containers.shutdown().await;
}

#[path = "api/browser.rs"]
#[allow(dead_code, unreachable_pub)]
mod browser;

const MEMBER_PASSWORD: &str = "correct horse battery staple";

/// `acme` gets a member who can sign in at its login page.
async fn oauth_member(app: &TestApp) {
    let member = json!({"email": "ada@example.com", "role": "owner", "password": MEMBER_PASSWORD});
    app.post_json(As::Admin, "/api/v1/tenants/acme/members", &member).await.assert_status(201);
}

/// The Python SDK's `OAuthClientProvider` runs the whole flow against a private server: PRM and
/// metadata discovery, Dynamic Client Registration, login and consent (followed by the script,
/// no browser), the code exchange, a tool call and a refresh. The final access token is then
/// revoked and refused within a second.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_python_sdk_runs_the_oauth_flow_calls_a_tool_and_refreshes() {
    let (app, _) = fixture_app().await;
    oauth_member(&app).await;
    let python = root().join(".tools/venv/bin/python");
    let script = root().join("tests/clients/python_oauth.py");
    let url = app.url("/t/acme/private/mcp");
    let output = run(&python, &[script.to_str().unwrap(), &url, "ada@example.com", MEMBER_PASSWORD], &[]).await;
    let out = stdout_json(&output);
    assert_eq!(out["pages"], json!(["login", "consent"]));
    assert!(out["tools"].as_array().unwrap().iter().any(|t| t == "echo"), "{out}");
    assert_eq!(out["echo"], "hi");
    assert_eq!(out["add"]["sum"], 5);
    assert_eq!(out["scope"], "mcp");
    assert_eq!(out["refreshed"], true, "a new access token after the forced expiry");
    assert_eq!(out["refresh_rotated"], true, "refresh tokens rotate");

    let access = out["access_token"].as_str().unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let call = |token: String| {
        app.client.post(&url).bearer_auth(token).header("accept", "application/json, text/event-stream").json(&init)
    };
    assert_eq!(app.send(call(access.to_owned())).await.status, 200);
    let revoke = app
        .client
        .post(app.url("/t/acme/oauth/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={access}&client_id={}", out["client_id"].as_str().unwrap()));
    app.send(revoke).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(app.send(call(access.to_owned())).await.status, 401, "revoked within a second");
}

/// One check of a conformance run.
#[derive(Debug, serde::Deserialize)]
struct Check {
    id: String,
    status: String,
    #[serde(default, rename = "errorMessage")]
    error: Option<String>,
}

fn checks_under(dir: &Path, found: &mut Vec<Check>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            checks_under(&path, found);
        } else if path.file_name().is_some_and(|n| n == "checks.json") {
            let checks: Vec<Check> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            found.extend(checks);
        }
    }
}

/// The conformance suite's `authorization` scenarios against acme's issuer, with a pre-registered
/// public client. `authorization-code-grant` prints an authorization URL for a person: the test
/// signs in and approves like one, and the redirect reaches the suite's callback server.
/// Checks expected to fail (or not to run here) are listed, with reasons, in
/// `tests/conformance/baseline-authorization.yml`.
#[actix_web::test]
#[ignore = "needs .tools/: run cargo xtask test"]
async fn the_conformance_suite_authorization_scenarios_pass_against_a_tenant_issuer() {
    use tokio::io::AsyncBufReadExt;
    let (app, _) = fixture_app().await;
    oauth_member(&app).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let client = app
        .post_json(
            As::Admin,
            "/api/v1/tenants/acme/oauth/clients",
            &json!({"name": "Conformance suite", "redirect_uris": [redirect]}),
        )
        .await;
    client.assert_status(201);
    let client_id = client.body["client_id"].as_str().unwrap().to_owned();
    let issuer = app.url("/t/acme");
    let resource = app.url("/t/acme/private/mcp");
    let out = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(tool("conformance"))
        .args(["authorization", "--url", &issuer, "--client-id", &client_id, "--resource", &resource, "--port", &port])
        .args(["-o", out.path().to_str().unwrap()])
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the conformance suite");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let authorize = format!("{issuer}/oauth/authorize?");
    let drive = async {
        let mut approved = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("{line}");
            if !approved && line.trim().starts_with(&authorize) {
                let callback = browser::sign_in_and_approve(line.trim(), "ada@example.com", MEMBER_PASSWORD).await;
                assert!(callback.starts_with(&redirect), "{callback}");
                app.client.get(&callback).send().await.expect("the suite's callback server answers");
                approved = true;
            }
        }
        approved
    };
    let approved = tokio::time::timeout(std::time::Duration::from_secs(120), drive).await.expect("the suite finished");
    child.wait().await.unwrap();
    assert!(approved, "the suite never printed an authorization URL");

    let mut checks = Vec::new();
    checks_under(out.path(), &mut checks);
    assert!(checks.iter().any(|c| c.id == "authorization-code-grant"), "{checks:?}");
    let baseline = std::fs::read_to_string(root().join("tests/conformance/baseline-authorization.yml")).unwrap();
    let expected: Vec<&str> = baseline
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    let failing: Vec<&Check> = checks.iter().filter(|c| c.status == "FAILURE").collect();
    let unexpected: Vec<&&Check> = failing.iter().filter(|c| !expected.contains(&c.id.as_str())).collect();
    assert!(unexpected.is_empty(), "conformance failures beyond the baseline: {unexpected:?}");
    let fixed: Vec<&&str> = expected.iter().filter(|id| !failing.iter().any(|c| c.id == **id)).collect();
    assert!(fixed.is_empty(), "these now pass: remove them from the baseline: {fixed:?}");
    for check in &checks {
        println!("{:<45} {:<8} {}", check.id, check.status, check.error.as_deref().unwrap_or(""));
    }
}
