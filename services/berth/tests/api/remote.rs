//! Remote servers: an existing MCP server URL proxied by Berth, with upstream credentials
//! sealed at rest and injected by Berth. The upstream here is a second Berth on loopback
//! hosting the conformance fixture behind an API key of its own.

use std::sync::Arc;

use serde_json::json;

use crate::bridging::spawn_bridging_app;
use crate::helpers::{As, component_bytes, spawn_app_with};
use crate::mcp_client::McpApp;

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_remote_server_is_proxied_with_sealed_upstream_credentials_injected_by_berth() {
    // The upstream: a private fixture server that needs its own key.
    let upstream = spawn_app_with(Arc::new(berth_test_support::fixture::FixtureResolver::new())).await;
    upstream.create_tenant("up").await.assert_status(201);
    upstream.create_server(As::Admin, "up", "fixture", "wasm").await.assert_status(201);
    upstream.publish_wasm(As::Admin, "up", "fixture", component_bytes(8, 1)).await.assert_status(201);
    let upstream_key = upstream.key_with("up", &["mcp"]).await;
    let upstream_url = upstream.url("/t/up/fixture/mcp");

    let t = spawn_bridging_app().await;
    t.app.create_tenant("acme").await.assert_status(201);
    t.app.create_server(As::Admin, "acme", "proxy", "remote").await.assert_status(201);
    let spec = json!({"url": upstream_url, "headers": {"Authorization": format!("Bearer {upstream_key}")}});
    let published = t.app.publish_json(As::Admin, "acme", "proxy", &spec).await;
    published.assert_status(201);
    assert!(!published.text.contains(&upstream_key), "the admin API never shows header values");
    // Without credentials the same upstream refuses Berth.
    t.app.create_server(As::Admin, "acme", "nocreds", "remote").await.assert_status(201);
    t.app.publish_json(As::Admin, "acme", "nocreds", &json!({"url": upstream_url})).await.assert_status(201);

    let clear =
        t.app.execute(&format!("SELECT 1 FROM server_versions WHERE headers::text LIKE '%{upstream_key}%'")).await;
    assert_eq!(clear, 0, "the upstream key is stored in the clear");
    let sealed = t.app.execute("SELECT 1 FROM server_versions WHERE headers::text LIKE '%berth:sealed:v1:%'").await;
    assert_eq!(sealed, 1, "the upstream header is stored sealed");

    let key = t.app.key_with("acme", &["mcp"]).await;
    let mcp = McpApp { app: t.app, acme: key.clone(), globex: key.clone() };
    let url = mcp.url("acme", "proxy");
    let modern = mcp
        .modern(
            &url,
            Some(&key),
            json!(1),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "via"}}),
            json!({}),
        )
        .await;
    assert_eq!(modern.status, 200, "{}", modern.text);
    assert!(modern.text.contains("via"), "{}", modern.text);
    let session = mcp.initialize(&url, Some(&key), "2025-11-25", json!({})).await;
    let listed = mcp.legacy(&url, Some(&key), &session, 2, "tools/list", json!({})).await;
    assert!(listed.text.contains("echo"), "{}", listed.text);

    let refused =
        mcp.modern(&mcp.url("acme", "nocreds"), Some(&key), json!(3), "tools/list", json!({}), json!({})).await;
    assert!(refused.text.contains("unavailable"), "{}", refused.text);
    assert!(!refused.text.contains(&key), "the client's key never appears upstream or in errors");
}
