//! Per-server configuration and secrets, and WASM egress allowlists.

use serde_json::json;

use crate::helpers::{As, component_bytes, spawn_app};

#[actix_web::test]
async fn config_is_replaced_whole_and_secrets_are_never_shown() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc/config";
    let empty = app.get(As::Key(&acme), path).await;
    empty.assert_status(200);
    assert_eq!(empty.body, json!({"config": {}, "secrets": []}));
    let body = json!({"config": {"region": "eu", "units": "metric"}, "secrets": {"API_TOKEN": "s3cr3t-value"}});
    let put = app.send(app.request(As::Key(&acme), reqwest::Method::PUT, path).json(&body)).await;
    put.assert_status(200);
    assert_eq!(put.body["secrets"], json!(["API_TOKEN"]));
    assert!(!put.text.contains("s3cr3t-value"));
    let read = app.get(As::Key(&acme), path).await;
    assert_eq!(read.body["config"], json!({"region": "eu", "units": "metric"}));
    assert!(!read.text.contains("s3cr3t-value"), "secret values are never shown");
    let replaced = json!({"config": {"region": "us"}});
    app.send(app.request(As::Key(&acme), reqwest::Method::PUT, path).json(&replaced)).await.assert_status(200);
    let read = app.get(As::Key(&acme), path).await;
    assert_eq!(read.body, json!({"config": {"region": "us"}, "secrets": []}));
}

#[actix_web::test]
async fn bad_config_keys_and_another_tenants_server_are_refused() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc/config";
    for body in [
        json!({"config": {"bad key": "x"}}),
        json!({"config": {"1x": "x"}}),
        json!({"config": {"a": "x"}, "secrets": {"a": "y"}}),
        json!({"unknown": {}}),
    ] {
        let reply = app.send(app.request(As::Key(&acme), reqwest::Method::PUT, path).json(&body)).await;
        reply.assert_problem(400);
    }
    let huge = json!({"config": {"a": "x".repeat(70_000)}});
    app.send(app.request(As::Key(&acme), reqwest::Method::PUT, path).json(&huge)).await.assert_problem(413);
    let foreign =
        app.send(app.request(As::Key(&globex), reqwest::Method::PUT, path).json(&json!({"config": {"x": "1"}}))).await;
    foreign.assert_problem(404);
    app.get(As::Key(&globex), path).await.assert_problem(404);
    let read_only = app.key_with("acme", &["admin:read"]).await;
    let denied =
        app.send(app.request(As::Key(&read_only), reqwest::Method::PUT, path).json(&json!({"config": {}}))).await;
    denied.assert_problem(403);
    assert_eq!(app.get(As::Key(&acme), path).await.body["config"], json!({}), "nothing changed");
}

#[actix_web::test]
async fn wasm_versions_carry_a_validated_egress_allowlist() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let url = "/api/v1/tenants/acme/servers/calc/versions?egress=API.example.com,*.github.com";
    let published = app.post_raw(As::Key(&acme), url, "application/wasm", component_bytes(8, 1)).await;
    published.assert_status(201);
    assert_eq!(published.body["egress"], json!(["api.example.com", "*.github.com"]));
    let none = app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(8, 2)).await;
    assert_eq!(none.body["egress"], json!([]));
    let bad = "/api/v1/tenants/acme/servers/calc/versions?egress=http://evil.example/";
    app.post_raw(As::Key(&acme), bad, "application/wasm", component_bytes(8, 3)).await.assert_problem(400);
    app.create_server(As::Key(&acme), "acme", "box", "container").await.assert_status(201);
    let spec = json!({"image": "acme/box:1", "transport": "stdio"});
    let container = app
        .send(
            app.request(
                As::Key(&acme),
                reqwest::Method::POST,
                "/api/v1/tenants/acme/servers/box/versions?egress=a.com",
            )
            .json(&spec),
        )
        .await;
    container.assert_problem(400);
}

#[test]
fn the_wasm_runtime_gets_the_operators_private_networks() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings();
    settings.data_dir = dir.path().to_path_buf();
    let runtime = berth::startup::wasm_runtime(&settings).unwrap();
    assert!(runtime.settings().egress_private_networks.is_empty(), "none unless configured");
    settings.wasm_egress_private_networks = vec!["10.20.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()];
    let runtime = berth::startup::wasm_runtime(&settings).unwrap();
    assert_eq!(runtime.settings().egress_private_networks, settings.wasm_egress_private_networks);
}

#[test]
fn the_wasm_runtime_gets_the_operators_ready_instances() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings();
    settings.data_dir = dir.path().to_path_buf();
    for ready in [0, 5] {
        settings.wasm_ready_instances = ready;
        let runtime = berth::startup::wasm_runtime(&settings).unwrap();
        assert_eq!(runtime.settings().ready_instances, ready);
    }
}

#[test]
fn berth_raises_its_open_file_limit_to_the_hard_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // Every test in this process shares the limit: lower it by one only, then raise it.
    setrlimit(Resource::RLIMIT_NOFILE, hard - 1, hard).unwrap();
    let (before, after) = berth::startup::raise_open_file_limit().unwrap();
    assert_eq!((before, after), (hard - 1, hard));
    assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    // Already at the hard limit: nothing changes.
    assert_eq!(berth::startup::raise_open_file_limit().unwrap(), (hard, hard));
}
