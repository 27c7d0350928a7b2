//! The container runtime against a real Docker daemon and the test images of `tests/images/`.
//! Ignored by a plain `cargo test`; `cargo xtask test` runs them (starting dockerd if needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::time::Duration;

use berth_core::backend::{Backend, BackendError, BackendRequest, Notice};
use berth_core::{ContainerSpec, TenantId, VersionId};
use berth_runtime_container::{ContainerRuntime, ContainerSettings, VersionKey};
use berth_test_support::ScriptedPeer;
use serde_json::{Value, json};

fn key(server: &str) -> VersionKey {
    VersionKey {
        tenant_id: TenantId::new(),
        tenant: "acme".into(),
        server: server.into(),
        version: VersionId::new(),
        number: 1,
    }
}

fn stdio_spec(env: &[(&str, &str)]) -> ContainerSpec {
    let env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    serde_json::from_value(json!({
        "image": berth_test_support::docker::image("stdio-rust"),
        "transport": "stdio",
        "env": env,
        "limits": { "memory_mb": 64, "cpus": 0.5, "pids": 32 },
    }))
    .unwrap()
}

async fn runtime(settings: ContainerSettings) -> ContainerRuntime {
    berth_test_support::docker::daemon();
    ContainerRuntime::new(settings).await.expect("the container runtime starts")
}

fn call(name: &str, arguments: Value) -> BackendRequest {
    let params = json!({ "name": name, "arguments": arguments });
    BackendRequest { method: "tools/call".into(), params: params.as_object().unwrap().clone() }
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {result}"))
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_stdio_container_serves_one_session_hardened_and_goes_with_it() {
    let runtime = runtime(ContainerSettings::default()).await;
    let server = runtime.server(key("tools"), stdio_spec(&[])).await.unwrap();
    assert_eq!(server.describe().name, "berth-test-stdio");
    assert!(server.describe().capabilities.get("tools").is_some());
    // The container that answered the description waits in the warm pool.
    assert_eq!(runtime.containers().await.unwrap().len(), 1);

    let session = server.session().unwrap();
    let peer = ScriptedPeer::legacy().shared();
    let echoed = session.handle(call("echo", json!({ "message": "hi" })), peer.clone()).await.unwrap();
    assert_eq!(text(&echoed), "hi");
    assert_eq!(echoed["structuredContent"], json!({ "message": "hi" }));

    let sandbox = session.handle(call("sandbox", json!({})), peer.clone()).await.unwrap();
    let report = &sandbox["structuredContent"];
    assert_eq!(report["uid"], "65534", "{report}");
    assert_eq!(report["cap_eff"], "0000000000000000", "{report}");
    assert_eq!(report["no_new_privs"], "1", "{report}");
    assert_eq!(report["root_writable"], false, "{report}");
    assert_eq!(report["tmp_writable"], true, "{report}");
    assert_eq!(report["interfaces"], json!(["lo"]), "{report}");

    // The session took the warm container; the pool refills to one.
    wait_for("two containers", async || runtime.containers().await.unwrap().len() == 2).await;
    drop(session);
    wait_for("the session's container to go", async || runtime.containers().await.unwrap().len() == 1).await;
    runtime.shutdown().await;
    assert!(runtime.containers().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_container_without_egress_reaches_neither_the_hosts_loopback_nor_anywhere_else() {
    let runtime = runtime(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let server = runtime.server(key("probe"), stdio_spec(&[])).await.unwrap();
    let session = server.session().unwrap();
    // 192.0.2.1 is TEST-NET-1: the probe only dials it when the container has no interface but
    // `lo`, so no packet can leave the machine.
    let targets = json!([format!("127.0.0.1:{host_port}"), "192.0.2.1:80", "[::1]:5432"]);
    let probed =
        session.handle(call("probe", json!({ "targets": targets })), ScriptedPeer::legacy().shared()).await.unwrap();
    let report = &probed["structuredContent"];
    assert_eq!(report["interfaces"], json!(["lo"]), "{report}");
    let results = report["results"].as_object().unwrap();
    let host = results[&format!("127.0.0.1:{host_port}")].as_str().unwrap();
    assert!(host.contains("refused"), "the host's loopback listener was reachable: {report}");
    assert!(results["192.0.2.1:80"].as_str().unwrap().contains("unreachable"), "{report}");
    drop(session);
    runtime.shutdown().await;
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_backend_that_dies_mid_call_fails_that_call_clearly_and_the_next_call_works() {
    let runtime = runtime(ContainerSettings::default()).await;
    let server = runtime.server(key("crash"), stdio_spec(&[])).await.unwrap();
    let session = server.session().unwrap();
    let peer = ScriptedPeer::legacy().shared();
    let error = session.handle(call("crash", json!({})), peer.clone()).await.unwrap_err();
    let BackendError::Unavailable(message) = &error else { panic!("expected Unavailable, got {error:?}") };
    assert!(message.contains("broke mid-call"), "{message}");
    let echoed = session.handle(call("echo", json!({ "message": "again" })), peer.clone()).await.unwrap();
    assert_eq!(text(&echoed), "again");

    // Killed from outside (docker kill) in the middle of a slow call.
    let slow = session.handle(call("slow", json!({ "steps": 100, "delay_ms": 100 })), peer.clone());
    let killer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for id in runtime.containers().await.unwrap() {
            berth_test_support::docker::cli(&["kill", &id]);
        }
    };
    let (outcome, ()) = tokio::join!(slow, killer);
    let error = outcome.unwrap_err();
    assert!(matches!(&error, BackendError::Unavailable(m) if m.contains("mid-call")), "{error:?}");
    let echoed = session.handle(call("echo", json!({ "message": "after kill" })), peer).await.unwrap();
    assert_eq!(text(&echoed), "after kill");
    drop(session);
    runtime.shutdown().await;
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn progress_logs_and_server_requests_reach_the_calls_peer() {
    let runtime = runtime(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    let server = runtime.server(key("relay"), stdio_spec(&[])).await.unwrap();
    let session = server.session().unwrap();

    let peer = ScriptedPeer::legacy().shared();
    let done = session.handle(call("slow", json!({ "steps": 3, "delay_ms": 10 })), peer.clone()).await.unwrap();
    assert_eq!(text(&done), "counted to 3");
    let notices = peer.notices();
    let progress: Vec<f64> = notices
        .iter()
        .filter_map(|n| if let Notice::Progress { progress, .. } = n { Some(*progress) } else { None })
        .collect();
    assert_eq!(progress, vec![1.0, 2.0, 3.0], "{notices:?}");
    assert!(notices.iter().any(|n| matches!(n, Notice::Log { .. })), "{notices:?}");

    // Legacy client: a real server→client request, answered.
    let peer = ScriptedPeer::legacy()
        .answer_method("elicitation/create", json!({ "action": "accept", "content": { "name": "Ada" } }))
        .shared();
    let asked = session.handle(call("ask_name", json!({})), peer.clone()).await.unwrap();
    assert_eq!(text(&asked), "accept: hello Ada");
    assert_eq!(peer.requests()[0].method, "elicitation/create");

    // Modern client without the answer yet: the call ends with input required (MRTR by replay).
    let peer = ScriptedPeer::modern().shared();
    let outcome = session.handle(call("sample", json!({ "prompt": "hi" })), peer.clone()).await;
    assert_eq!(outcome.unwrap_err(), BackendError::InputRequired);
    assert_eq!(peer.requests()[0].method, "sampling/createMessage");
    // ...and on the retry, with the answer, the replayed call completes.
    let peer = ScriptedPeer::modern()
        .answer_method(
            "sampling/createMessage",
            json!({ "role": "assistant", "content": { "type": "text", "text": "hello" }, "model": "m" }),
        )
        .shared();
    let sampled = session.handle(call("sample", json!({ "prompt": "hi" })), peer).await.unwrap();
    assert_eq!(text(&sampled), "model said: hello");
    drop(session);
    runtime.shutdown().await;
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn an_oversized_message_stops_the_container_with_a_clear_error() {
    let settings = ContainerSettings { warm_pool: 0, max_message_bytes: 64 * 1024, ..ContainerSettings::default() };
    let runtime = runtime(settings).await;
    let server = runtime.server(key("flood"), stdio_spec(&[])).await.unwrap();
    let session = server.session().unwrap();
    let peer = ScriptedPeer::legacy().shared();
    let error = session.handle(call("flood", json!({ "bytes": 1_000_000 })), peer.clone()).await.unwrap_err();
    assert!(matches!(&error, BackendError::Unavailable(m) if m.contains("larger than 65536 bytes")), "{error:?}");
    let echoed = session.handle(call("echo", json!({ "message": "ok" })), peer).await.unwrap();
    assert_eq!(text(&echoed), "ok");
    drop(session);
    runtime.shutdown().await;
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_failed_start_keeps_the_containers_logs() {
    let runtime = runtime(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    let key = key("broken");
    let version = key.version;
    let error = runtime.server(key, stdio_spec(&[("BERTH_TEST_FAIL_START", "1")])).await.unwrap_err();
    assert!(error.to_string().contains("failed to start"), "{error}");
    let failures = runtime.failures(version);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].logs.contains("refusing to start"), "{failures:?}");
    assert!(failures[0].reason.contains("exited with code 2"), "{failures:?}");
    assert!(runtime.containers().await.unwrap().is_empty(), "the failed container is removed");
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn reconciling_removes_containers_whose_berth_process_is_gone() {
    let runtime = runtime(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let image = berth_test_support::docker::image("stdio-rust");
    let orphan = berth_test_support::docker::cli(&[
        "create",
        "--label",
        "io.berth.managed=true",
        "--label",
        &format!("io.berth.owner={}:999999999:1", boot.trim()),
        &image,
    ]);
    let orphan = orphan.trim().to_owned();
    assert!(runtime.reconcile().await.unwrap() >= 1);
    let left = berth_test_support::docker::cli(&["ps", "-aq", "--no-trunc", "--filter", &format!("id={orphan}")]);
    assert!(left.trim().is_empty(), "the orphan {orphan} is still there");
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn an_http_container_is_shared_and_reached_without_a_network() {
    let runtime = runtime(ContainerSettings::default()).await;
    let spec: ContainerSpec = serde_json::from_value(json!({
        "image": berth_test_support::docker::image("fastmcp"),
        "transport": "http",
        "port": 8000,
        "limits": { "memory_mb": 256, "cpus": 1.0, "pids": 64 },
    }))
    .unwrap();
    let server = runtime.server(key("fastmcp"), spec).await.unwrap();
    assert_eq!(server.describe().name, "berth-test-fastmcp");
    let (a, b) = (server.session().unwrap(), server.session().unwrap());
    let peer = ScriptedPeer::legacy().shared();
    let sum = a.handle(call("add", json!({ "a": 2, "b": 3 })), peer.clone()).await.unwrap();
    assert_eq!(text(&sum), "5");
    let counted = b.handle(call("count", json!({ "steps": 3 })), peer.clone()).await.unwrap();
    assert_eq!(text(&counted), "counted to 3");
    assert!(peer.notices().iter().any(|n| matches!(n, Notice::Progress { .. })), "{:?}", peer.notices());
    // One replica serves both sessions.
    assert_eq!(runtime.containers().await.unwrap().len(), 1);
    let inspect = berth_test_support::docker::cli(&[
        "inspect",
        "-f",
        "{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.Config.User}}",
        &runtime.containers().await.unwrap()[0],
    ]);
    assert_eq!(inspect.trim(), "none true 65534:65534");
    drop((a, b));
    runtime.shutdown().await;
}

#[tokio::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn an_http_container_with_egress_is_reached_on_a_port_published_on_loopback_only() {
    let runtime = runtime(ContainerSettings::default()).await;
    let spec: ContainerSpec = serde_json::from_value(json!({
        "image": berth_test_support::docker::image("fastmcp"),
        "transport": "http",
        "port": 8000,
        "egress": true,
        "limits": { "memory_mb": 256, "cpus": 1.0, "pids": 64 },
    }))
    .unwrap();
    assert!(spec.egress);
    let server = runtime.server(key("fastmcp-egress"), spec).await.unwrap();
    let session = server.session().unwrap();
    let peer = ScriptedPeer::legacy().shared();
    let sum = session.handle(call("add", json!({ "a": 20, "b": 22 })), peer).await.unwrap();
    assert_eq!(text(&sum), "42");
    let id = runtime.containers().await.unwrap()[0].clone();
    let inspect = berth_test_support::docker::cli(&[
        "inspect",
        "-f",
        "{{.HostConfig.NetworkMode}} {{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{range $b}}{{.HostIp}};{{end}}{{end}}",
        &id,
    ]);
    assert_eq!(inspect.trim(), "bridge 8000/tcp=127.0.0.1;", "published on the host's loopback only");
    let published = berth_test_support::docker::cli(&["port", &id, "8000/tcp"]);
    for line in published.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.starts_with("127.0.0.1:"), "bound beyond loopback: {published}");
    }
    drop(session);
    runtime.shutdown().await;
}
