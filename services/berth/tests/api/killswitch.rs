//! The kill switch: disabling a tenant, server, version, tool or key refuses new calls and ends
//! in-flight streams on every node within a second; a node that cannot confirm its cached
//! configuration fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_test_support::fixture::{FixtureBackend, FixtureOptions, FixtureResolver};
use serde_json::{Value, json};

use crate::helpers::{As, TestApp, component_bytes, spawn_app_on, spawn_app_with, test_settings};
use crate::mcp_client::{ACCEPT_BOTH, McpApp, McpReply, modern_meta, parse_sse};
use crate::pgproxy::PgProxy;

/// An app whose fixture pauses `step` between the steps of `test_tool_with_progress`, so a call
/// stays in flight long enough to be killed. Tenants as in [`McpApp::spawn`].
pub async fn slow_app(step: Duration) -> McpApp {
    let options = FixtureOptions { step_delay: step, ..FixtureOptions::default() };
    let resolver = FixtureResolver::with_backend(Arc::new(FixtureBackend::with_options(options)));
    let app = spawn_app_with(Arc::new(resolver)).await;
    fixture_tenants(app).await
}

/// Tenants `acme` and `globex` with a `fixture` server and an `mcp` key each.
pub async fn fixture_tenants(app: TestApp) -> McpApp {
    let (acme_admin, globex_admin) = app.two_tenants().await;
    for (tenant, admin) in [("acme", &acme_admin), ("globex", &globex_admin)] {
        app.create_server(As::Key(admin), tenant, "fixture", "wasm").await.assert_status(201);
        app.publish_wasm(As::Key(admin), tenant, "fixture", component_bytes(8, 1)).await.assert_status(201);
    }
    let acme = app.key_with("acme", &["mcp"]).await;
    let globex = app.key_with("globex", &["mcp"]).await;
    McpApp { app, acme, globex }
}

/// A streaming call whose first progress notification has arrived.
pub struct Streaming {
    response: reqwest::Response,
    seen: String,
}

impl Streaming {
    async fn open(request: reqwest::RequestBuilder) -> Self {
        let mut response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let mut seen = String::new();
        while !seen.contains("notifications/progress") {
            let chunk = response.chunk().await.unwrap().expect("the stream ended before any progress");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        Self { response, seen }
    }

    /// Reads until the stream ends (at most `limit`); returns the messages and when it ended.
    pub async fn finish(mut self, limit: Duration) -> (Vec<Value>, Instant) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => break,
                Err(_) => panic!("the stream did not end within {limit:?}: {}", self.seen),
            }
        }
        (parse_sse(&self.seen).0, Instant::now())
    }
}

/// A legacy `test_tool_with_progress` call on `session`, streaming.
pub async fn legacy_slow_call(t: &McpApp, url: &str, key: &str, session: &str, id: i64) -> Streaming {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p"}}});
    Streaming::open(
        t.app
            .client
            .post(url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string()),
    )
    .await
}

/// A modern `test_tool_with_progress` call, streaming.
pub async fn modern_slow_call(t: &McpApp, url: &str, key: &str, id: i64) -> Streaming {
    let mut meta = modern_meta(json!({}));
    meta["progressToken"] = json!("p");
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": meta}});
    Streaming::open(
        t.app
            .client
            .post(url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "test_tool_with_progress")
            .body(body.to_string()),
    )
    .await
}

/// The final message's error message, if it is an error.
fn error_message(messages: &[Value]) -> String {
    messages.last().and_then(|m| m["error"]["message"].as_str()).unwrap_or_default().to_owned()
}

/// Calls `echo` until it answers `status`, for at most a second (the kill switch's bound).
pub async fn echo_until(t: &McpApp, url: &str, key: &str, status: u16) -> McpReply {
    let started = Instant::now();
    loop {
        let reply = echo(t, url, key).await;
        if reply.status == status || started.elapsed() > Duration::from_secs(1) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn echo(t: &McpApp, url: &str, key: &str) -> McpReply {
    t.modern(url, Some(key), json!(1), "tools/call", json!({"name": "echo", "arguments": {"message": "hi"}}), json!({}))
        .await
}

#[actix_web::test]
async fn disabling_a_server_ends_in_flight_streams_in_both_eras_within_a_second() {
    let t = slow_app(Duration::from_millis(1500)).await;
    let (acme, globex) = (t.url("acme", "fixture"), t.url("globex", "fixture"));
    let session = t.initialize(&acme, Some(&t.acme), "2025-11-25", json!({})).await;
    let legacy = legacy_slow_call(&t, &acme, &t.acme, &session, 7).await;
    let modern = modern_slow_call(&t, &acme, &t.acme, 8).await;
    let other = modern_slow_call(&t, &globex, &t.globex, 9).await;

    let started = Instant::now();
    t.app
        .patch_json(As::Admin, "/api/v1/tenants/acme/servers/fixture", &json!({"enabled": false}))
        .await
        .assert_status(200);
    let (legacy, legacy_end) = legacy.finish(Duration::from_secs(3)).await;
    let (modern, modern_end) = modern.finish(Duration::from_secs(3)).await;
    assert!(legacy_end - started < Duration::from_secs(1), "legacy stream ended after {:?}", legacy_end - started);
    assert!(modern_end - started < Duration::from_secs(1), "modern stream ended after {:?}", modern_end - started);
    assert_eq!(error_message(&legacy), "the server was disabled", "{legacy:?}");
    assert_eq!(legacy.last().unwrap()["id"], 7);
    assert_eq!(error_message(&modern), "the server was disabled", "{modern:?}");
    assert_eq!(modern.last().unwrap()["id"], 8);

    let refused = echo(&t, &acme, &t.acme).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let (other, _) = other.finish(Duration::from_secs(10)).await;
    assert!(other.last().unwrap()["result"]["content"].is_array(), "another tenant's call completes: {other:?}");
    assert_eq!(echo(&t, &globex, &t.globex).await.status, 200);
}

#[actix_web::test]
async fn a_disabled_version_refuses_calls_until_it_is_enabled_again() {
    let t = McpApp::spawn().await;
    let (acme, globex) = (t.url("acme", "fixture"), t.url("globex", "fixture"));
    let session = t.initialize(&acme, Some(&t.acme), "2025-11-25", json!({})).await;
    let path = "/api/v1/tenants/acme/servers/fixture/versions/1";

    let globex_admin = t.app.key_with("globex", &["admin"]).await;
    t.app.patch_json(As::Key(&globex_admin), path, &json!({"enabled": false})).await.assert_problem(404);
    let off = t.app.patch_json(As::Admin, path, &json!({"enabled": false})).await;
    off.assert_status(200);
    assert_eq!(off.body["enabled"], false);
    assert_eq!(off.body["active"], true);
    t.app.patch_json(As::Admin, path, &json!({"enabled": false, "number": 3})).await.assert_problem(400);

    let refused = echo_until(&t, &acme, &t.acme, 403).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.text.contains("version is disabled"), "{}", refused.text);
    assert_eq!(echo(&t, &globex, &t.globex).await.status, 200, "globex's version 1 is another version");

    t.app.patch_json(As::Admin, path, &json!({"enabled": true})).await.assert_status(200);
    assert_eq!(echo_until(&t, &acme, &t.acme, 200).await.status, 200);
    let old = t.legacy(&acme, Some(&t.acme), &session, 2, "tools/list", json!({})).await;
    assert_eq!(old.status, 404, "the session that ran the disabled version was ended: {}", old.text);
}

#[actix_web::test]
async fn a_disabled_tool_is_refused_hidden_and_its_calls_ended_in_both_eras() {
    let t = slow_app(Duration::from_millis(1500)).await;
    let acme = t.url("acme", "fixture");
    let session = t.initialize(&acme, Some(&t.acme), "2025-11-25", json!({})).await;
    let in_flight = legacy_slow_call(&t, &acme, &t.acme, &session, 3).await;
    let body = json!({"disabled_tools": ["add", "test_tool_with_progress"]});
    let started = Instant::now();
    t.app.patch_json(As::Admin, "/api/v1/tenants/acme/servers/fixture", &body).await.assert_status(200);
    let (ended, at) = in_flight.finish(Duration::from_secs(3)).await;
    assert!(at - started < Duration::from_secs(1), "ended after {:?}", at - started);
    assert_eq!(error_message(&ended), "the tool was disabled");

    let add = json!({"name": "add", "arguments": {"a": 1, "b": 2}});
    let legacy = t.legacy(&acme, Some(&t.acme), &session, 4, "tools/call", add.clone()).await;
    assert_eq!(legacy.error_code(), -32602);
    assert!(legacy.last()["error"]["message"].as_str().unwrap().contains("disabled"));
    let modern = t.modern(&acme, Some(&t.acme), json!(5), "tools/call", add, json!({})).await;
    assert_eq!(modern.error_code(), -32602);
    for list in [
        t.legacy(&acme, Some(&t.acme), &session, 6, "tools/list", json!({})).await,
        t.modern(&acme, Some(&t.acme), json!(7), "tools/list", json!({}), json!({})).await,
    ] {
        let names: Vec<&str> =
            list.result()["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"echo") && !names.contains(&"add"), "{names:?}");
    }
    assert_eq!(echo(&t, &acme, &t.acme).await.status, 200, "other tools still work");
    let globex = t
        .modern(
            &t.url("globex", "fixture"),
            Some(&t.globex),
            json!(8),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
            json!({}),
        )
        .await;
    assert_eq!(globex.result()["structuredContent"]["sum"], 3.0, "globex's add is untouched: {}", globex.text);
}

#[actix_web::test]
async fn revoking_a_key_ends_its_sessions_and_leaves_other_keys_alone() {
    let t = slow_app(Duration::from_millis(1500)).await;
    let acme = t.url("acme", "fixture");
    let (doomed_id, doomed) = t.app.new_key("acme", &json!({"name": "doomed", "scopes": ["mcp"]})).await;
    let session = t.initialize(&acme, Some(&doomed), "2025-11-25", json!({})).await;
    let legacy = legacy_slow_call(&t, &acme, &doomed, &session, 1).await;
    let modern = modern_slow_call(&t, &acme, &doomed, 2).await;
    let survivor = modern_slow_call(&t, &acme, &t.acme, 3).await;

    let started = Instant::now();
    t.app.delete(As::Admin, &format!("/api/v1/tenants/acme/api-keys/{doomed_id}")).await.assert_status(204);
    for call in [legacy, modern] {
        let (ended, at) = call.finish(Duration::from_secs(3)).await;
        assert!(at - started < Duration::from_secs(1), "ended after {:?}", at - started);
        assert_eq!(error_message(&ended), "the API key was revoked");
    }
    assert_eq!(echo(&t, &acme, &doomed).await.status, 401);
    let (survived, _) = survivor.finish(Duration::from_secs(10)).await;
    assert!(survived.last().unwrap()["result"].is_object(), "{survived:?}");
}

#[actix_web::test]
async fn disabling_a_tenant_refuses_its_calls_and_not_the_other_tenants() {
    let t = slow_app(Duration::from_millis(1500)).await;
    let (acme, globex) = (t.url("acme", "fixture"), t.url("globex", "fixture"));
    let in_flight = modern_slow_call(&t, &acme, &t.acme, 1).await;
    let started = Instant::now();
    t.app.patch_json(As::Admin, "/api/v1/tenants/acme", &json!({"enabled": false})).await.assert_status(200);
    let (ended, at) = in_flight.finish(Duration::from_secs(3)).await;
    assert!(at - started < Duration::from_secs(1), "ended after {:?}", at - started);
    assert_eq!(error_message(&ended), "the tenant was disabled");
    assert_eq!(echo(&t, &acme, &t.acme).await.status, 403);
    assert_eq!(echo(&t, &globex, &t.globex).await.status, 200);
}

#[actix_web::test]
async fn a_revoked_key_is_refused_by_a_second_node_within_a_second() {
    let db = berth_test_support::database().await;
    let backend = Arc::new(FixtureBackend::with_options(FixtureOptions {
        step_delay: Duration::from_millis(1500),
        ..FixtureOptions::default()
    }));
    let resolver = || Arc::new(FixtureResolver::with_backend(backend.clone()));
    let node_a = spawn_app_on(test_settings(), db.clone(), resolver(), Arc::new(berth_core::backend::HeaderOnly)).await;
    let node_b = spawn_app_on(test_settings(), db.clone(), resolver(), Arc::new(berth_core::backend::HeaderOnly)).await;
    let address_b = node_b.address.clone();
    let t = fixture_tenants(node_a).await;
    let b_url = format!("{address_b}/t/acme/fixture/mcp");
    let (key_id, key) = t.app.new_key("acme", &json!({"name": "shared", "scopes": ["mcp"]})).await;
    assert_eq!(echo(&t, &b_url, &key).await.status, 200, "node b knows the key");
    let in_flight = modern_slow_call(&t, &b_url, &key, 1).await;

    let started = Instant::now();
    t.app.delete(As::Admin, &format!("/api/v1/tenants/acme/api-keys/{key_id}")).await.assert_status(204);
    let mut refused_after = None;
    while started.elapsed() < Duration::from_secs(2) {
        if echo(&t, &b_url, &key).await.status == 401 {
            refused_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused_after = refused_after.expect("node b still accepts the revoked key after 2 s");
    let (ended, at) = in_flight.finish(Duration::from_secs(3)).await;
    eprintln!("kill switch across nodes: refused after {refused_after:?}, stream ended after {:?}", at - started);
    assert!(refused_after < Duration::from_secs(1), "{refused_after:?}");
    assert!(at - started < Duration::from_secs(1));
    assert_eq!(error_message(&ended), "the API key was revoked");
    assert_eq!(echo(&t, &b_url, &t.acme).await.status, 200, "other keys still work on node b");
}

#[actix_web::test]
async fn a_node_that_cannot_confirm_its_configuration_fails_closed_after_the_bound() {
    let db = berth_test_support::database().await;
    let proxy = PgProxy::start(&db.options).await;
    let mut settings = test_settings();
    settings.fail_closed_after_secs = 3;
    let resolver = Arc::new(FixtureResolver::new());
    let app =
        spawn_app_on(settings, proxy.database(&db).await, resolver, Arc::new(berth_core::backend::HeaderOnly)).await;
    let t = fixture_tenants(app).await;
    let url = t.url("acme", "fixture");
    assert_eq!(echo(&t, &url, &t.acme).await.status, 200);

    proxy.down();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = echo(&t, &url, &t.acme).await;
    assert_eq!(during.status, 200, "confirmed entries are served during the bound: {}", during.text);
    assert!(down.elapsed() < Duration::from_secs(2), "serving stale entries costs no latency");
    let unknown = echo(&t, &t.url("acme", "nowhere"), &t.acme).await;
    assert_eq!(unknown.status, 503, "nothing unconfirmed is served: {}", unknown.text);

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(down.elapsed()) + Duration::from_millis(200)).await;
    let after = echo(&t, &url, &t.acme).await;
    assert_eq!(after.status, 503, "fails closed after the bound: {}", after.text);

    proxy.up();
    let back = Instant::now();
    loop {
        if echo(&t, &url, &t.acme).await.status == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "the node never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn sessions_killed_while_a_node_was_not_listening_end_when_it_listens_again() {
    let db = berth_test_support::database().await;
    let proxy = PgProxy::start(&db.options).await;
    let options = FixtureOptions { step_delay: Duration::from_secs(4), ..FixtureOptions::default() };
    let resolver = FixtureResolver::with_backend(Arc::new(FixtureBackend::with_options(options)));
    let app = spawn_app_on(
        test_settings(),
        proxy.database(&db).await,
        Arc::new(resolver),
        Arc::new(berth_core::backend::HeaderOnly),
    )
    .await;
    let t = fixture_tenants(app).await;
    let (acme, globex) = (t.url("acme", "fixture"), t.url("globex", "fixture"));
    let doomed = modern_slow_call(&t, &acme, &t.acme, 7).await;
    let other = modern_slow_call(&t, &globex, &t.globex, 8).await;

    // The node loses its database; meanwhile acme's server is disabled behind its back (the
    // notification is sent to nobody: this node is not listening).
    proxy.down();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let disabled = berth_storage::testing::execute(
        &mut conn,
        "UPDATE servers SET enabled = false WHERE slug = 'fixture' \
         AND tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')",
    )
    .await
    .unwrap();
    assert_eq!(disabled, 1);
    proxy.up();
    let back = Instant::now();
    let (doomed, ended) = doomed.finish(Duration::from_secs(6)).await;
    assert!(ended - back < Duration::from_secs(4), "the stream ended {:?} after the node was back", ended - back);
    assert_eq!(error_message(&doomed), "the server was disabled", "{doomed:?}");
    assert_eq!(doomed.last().unwrap()["id"], 7);
    assert_eq!(echo(&t, &acme, &t.acme).await.status, 403);
    let (other, _) = other.finish(Duration::from_secs(15)).await;
    assert!(other.last().unwrap()["result"]["content"].is_array(), "another tenant's call completes: {other:?}");
    assert_eq!(echo(&t, &globex, &t.globex).await.status, 200);
}
