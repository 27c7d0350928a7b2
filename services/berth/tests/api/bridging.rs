//! An app with the bridging runtimes: containers on the local Docker daemon (started by the
//! test harness when absent) and remote upstreams, with a known data-plane secret so tests can
//! check what is sealed at rest. Shared by the API tests and `clients.rs`.

use std::sync::Arc;

use berth::startup::{Application, Planes, Wiring};
use berth_runtime_container::{ContainerRuntime, ContainerSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{As, TestApp, test_client, test_settings};

/// The app and its container runtime (to count containers).
pub struct BridgingApp {
    pub app: TestApp,
    pub containers: ContainerRuntime,
}

pub async fn spawn_bridging_app() -> BridgingApp {
    spawn_bridging_app_with(ContainerSettings::default()).await
}

pub async fn spawn_bridging_app_with(container_settings: ContainerSettings) -> BridgingApp {
    berth_test_support::docker::daemon();
    let db = berth_test_support::database().await;
    let secret = format!("test-secret-{}", uuid::Uuid::new_v4());
    let wasm = berth_runtime_wasm::WasmRuntime::new(berth_runtime_wasm::WasmSettings::default()).expect("wasm runtime");
    let containers = ContainerRuntime::new(container_settings).await.expect("the container runtime starts");
    let resolver = berth_data_plane::Runtimes::new(db.pool.clone(), wasm.clone())
        .with_containers(containers.clone())
        .with_secret(secret.as_bytes());
    let admin_token = format!("berth_admin_test_{}", uuid::Uuid::new_v4().simple());
    let wiring = Wiring {
        pool: db.pool.clone(),
        admin_token: SecretString::from(admin_token.clone()),
        secret_key: SecretString::from(secret.clone()),
        resolver: Arc::new(resolver),
        validator: Arc::new(berth_data_plane::WasmValidator(wasm)),
    };
    let app = Application::build(&test_settings(), wiring, Planes::Both).expect("failed to build the app");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    BridgingApp { app: TestApp { address, admin_token, db, client: test_client(), secret_key: secret }, containers }
}

/// A container server `tenant/slug` running `spec`, published and active.
pub async fn container_server(app: &TestApp, tenant: &str, slug: &str, spec: &Value) {
    app.create_server(As::Admin, tenant, slug, "container").await.assert_status(201);
    app.publish_json(As::Admin, tenant, slug, spec).await.assert_status(201);
}

/// The spec of a test image speaking MCP over stdio.
pub fn stdio_spec(image: &str) -> Value {
    json!({ "image": berth_test_support::docker::image(image), "transport": "stdio",
            "limits": { "memory_mb": 256, "cpus": 1.0, "pids": 64 } })
}

/// The spec of the FastMCP-style test image over Streamable HTTP.
pub fn fastmcp_spec() -> Value {
    json!({ "image": berth_test_support::docker::image("fastmcp"), "transport": "http", "port": 8000,
            "limits": { "memory_mb": 256, "cpus": 1.0, "pids": 64 } })
}
