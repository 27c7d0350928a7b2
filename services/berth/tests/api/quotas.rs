//! Quotas: the plan and key APIs, 429s for the request rate, monthly tool calls and
//! concurrent sessions in both protocol eras, quotas holding through a database outage, and
//! the usage report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_test_support::fixture::FixtureResolver;
use serde_json::{Value, json};

use crate::helpers::{As, Reply, TestApp, spawn_app_on, test_settings};
use crate::killswitch::fixture_tenants;
use crate::mcp_client::{McpApp, McpReply};
use crate::pgproxy::PgProxy;

async fn set_plan(app: &TestApp, tenant: &str, plan: Value) -> Reply {
    app.send(app.request(As::Admin, reqwest::Method::PUT, &format!("/api/v1/tenants/{tenant}/quotas")).json(&plan))
        .await
}

async fn set_key_quotas(app: &TestApp, who: As<'_>, tenant: &str, key_id: &str, quotas: Value) -> Reply {
    let path = format!("/api/v1/tenants/{tenant}/api-keys/{key_id}/quotas");
    app.send(app.request(who, reqwest::Method::PUT, &path).json(&quotas)).await
}

/// Gives a node time to apply a quota change to a policy it already cached (the change is
/// announced with NOTIFY and applied within milliseconds; at the latest within a second).
async fn propagated() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn echo(t: &McpApp, tenant: &str, key: &str, id: i64) -> McpReply {
    t.modern(
        &t.url(tenant, "fixture"),
        Some(key),
        json!(id),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
        json!({}),
    )
    .await
}

/// Asserts a 429 naming `policy` (`tenant:requests_per_minute`) with the rate-limit headers.
#[track_caller]
fn assert_refused(reply: &McpReply, policy: &str, id: Option<i64>) {
    assert_eq!(reply.status, 429, "{}", reply.text);
    let retry: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let (scope, limit) = policy.split_once(':').unwrap();
    let rate_policy = reply.headers["ratelimit-policy"].to_str().unwrap();
    assert!(rate_policy.starts_with(&format!("\"{policy}\";q=")), "{rate_policy}");
    let rate = reply.headers["ratelimit"].to_str().unwrap();
    assert!(rate.starts_with(&format!("\"{policy}\";r=")) && rate.ends_with(&format!(";t={retry}")), "{rate}");
    let error = &reply.last()["error"];
    assert_eq!(error["code"], -32600);
    assert!(error["message"].as_str().unwrap().contains(limit), "{error}");
    assert_eq!(error["data"]["limit"], limit);
    assert_eq!(error["data"]["scope"], scope);
    assert_eq!(error["data"]["retryAfter"], retry);
    assert_eq!(reply.last()["id"], id.map_or(Value::Null, Value::from));
}

#[actix_web::test]
async fn the_plan_is_set_by_the_platform_admin_and_keys_by_tenant_admins() {
    let t = McpApp::spawn().await;
    let (acme_admin, globex_admin) =
        (t.app.key_with("acme", &["admin"]).await, t.app.key_with("globex", &["admin"]).await);
    let plan = json!({"requests_per_minute": 600, "tool_calls_per_month": 100000, "max_sessions": 50,
        "wasm_cpu_ms_per_month": 3600000, "max_containers": 4});
    let put = set_plan(&t.app, "acme", plan.clone()).await;
    put.assert_status(200);
    assert_eq!(put.body, plan);
    let read = t.app.get(As::Key(&acme_admin), "/api/v1/tenants/acme/quotas").await;
    read.assert_status(200);
    assert_eq!(read.body, plan);
    let own = t
        .app
        .send(t.app.request(As::Key(&acme_admin), reqwest::Method::PUT, "/api/v1/tenants/acme/quotas").json(&json!({})))
        .await;
    own.assert_problem(403);
    set_plan(&t.app, "acme", json!({"tool_calls_per_month": 0})).await.assert_problem(400);
    set_plan(&t.app, "acme", json!({"calls": 1})).await.assert_problem(400);
    let other = t.app.get(As::Key(&globex_admin), "/api/v1/tenants/acme/quotas").await;
    other.assert_problem(404);
    let unset = t.app.get(As::Admin, "/api/v1/tenants/globex/quotas").await;
    assert!(unset.body.as_object().unwrap().values().all(Value::is_null), "unlimited by default: {}", unset.text);

    let (key_id, _) = t.app.new_key("acme", &json!({"name": "metered"})).await;
    let quotas =
        json!({"requests_per_minute": 10, "tool_calls_per_month": 5, "max_sessions": 1, "wasm_cpu_ms_per_month": 1000});
    let put = set_key_quotas(&t.app, As::Key(&acme_admin), "acme", &key_id, quotas.clone()).await;
    put.assert_status(200);
    assert_eq!(
        t.app.get(As::Key(&acme_admin), &format!("/api/v1/tenants/acme/api-keys/{key_id}/quotas")).await.body,
        quotas
    );
    set_key_quotas(&t.app, As::Key(&globex_admin), "globex", &key_id, json!({})).await.assert_problem(404);
    set_key_quotas(&t.app, As::Key(&acme_admin), "acme", &key_id, json!({"max_containers": 1}))
        .await
        .assert_problem(400);
}

#[actix_web::test]
async fn the_request_rate_is_limited_per_tenant_and_per_key_in_both_eras() {
    let t = McpApp::spawn().await;
    set_plan(&t.app, "acme", json!({"requests_per_minute": 3})).await.assert_status(200);
    set_plan(&t.app, "globex", json!({"requests_per_minute": 4})).await.assert_status(200);
    for id in 1..=3 {
        assert_eq!(echo(&t, "acme", &t.acme, id).await.status, 200);
    }
    let refused = echo(&t, "acme", &t.acme, 4).await;
    assert_refused(&refused, "tenant:requests_per_minute", Some(4));
    assert!(refused.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() <= 20, "a token every 20 s");
    assert_eq!(echo(&t, "globex", &t.globex, 1).await.status, 200, "another tenant is not limited");

    // Legacy: the echo above, initialize, initialized and one call use the four tokens.
    let url = t.url("globex", "fixture");
    let session = t.initialize(&url, Some(&t.globex), "2025-11-25", json!({})).await;
    let call = json!({"name": "echo", "arguments": {"message": "hi"}});
    assert_eq!(t.legacy(&url, Some(&t.globex), &session, 1, "tools/call", call.clone()).await.status, 200);
    let refused = t.legacy(&url, Some(&t.globex), &session, 2, "tools/call", call).await;
    assert_refused(&refused, "tenant:requests_per_minute", Some(2));

    // A key's own rate, under an unlimited plan.
    set_plan(&t.app, "acme", json!({})).await.assert_status(200);
    let (key_id, key) = t.app.new_key("acme", &json!({"name": "slow"})).await;
    set_key_quotas(&t.app, As::Admin, "acme", &key_id, json!({"requests_per_minute": 1})).await.assert_status(200);
    propagated().await;
    assert_eq!(echo(&t, "acme", &key, 1).await.status, 200);
    assert_refused(&echo(&t, "acme", &key, 2).await, "key:requests_per_minute", Some(2));
    assert_eq!(echo(&t, "acme", &t.acme, 3).await.status, 200, "other keys keep their rate");
}

#[actix_web::test]
async fn monthly_tool_calls_are_refused_once_used_up_in_both_eras() {
    let t = McpApp::spawn().await;
    set_plan(&t.app, "acme", json!({"tool_calls_per_month": 2})).await.assert_status(200);
    let url = t.url("acme", "fixture");
    assert_eq!(echo(&t, "acme", &t.acme, 1).await.status, 200);
    let list = t.modern(&url, Some(&t.acme), json!(2), "tools/list", json!({}), json!({})).await;
    assert_eq!(list.status, 200, "listing is not a tool call");
    assert_eq!(echo(&t, "acme", &t.acme, 3).await.status, 200);
    let refused = echo(&t, "acme", &t.acme, 4).await;
    assert_refused(&refused, "tenant:tool_calls_per_month", Some(4));
    let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry <= 31 * 86_400, "until the first of next month: {retry}");
    let read = t
        .modern(&url, Some(&t.acme), json!(5), "resources/read", json!({"uri": "test://static-text"}), json!({}))
        .await;
    assert_eq!(read.status, 200, "reads are not tool calls");

    // Legacy, with a key's own monthly allowance.
    let (key_id, key) = t.app.new_key("globex", &json!({"name": "metered"})).await;
    set_key_quotas(&t.app, As::Admin, "globex", &key_id, json!({"tool_calls_per_month": 1})).await.assert_status(200);
    let gurl = t.url("globex", "fixture");
    let session = t.initialize(&gurl, Some(&key), "2025-11-25", json!({})).await;
    let call = json!({"name": "echo", "arguments": {"message": "hi"}});
    assert_eq!(t.legacy(&gurl, Some(&key), &session, 1, "tools/call", call.clone()).await.status, 200);
    assert_refused(
        &t.legacy(&gurl, Some(&key), &session, 2, "tools/call", call).await,
        "key:tool_calls_per_month",
        Some(2),
    );
    assert_eq!(echo(&t, "globex", &t.globex, 3).await.status, 200, "the tenant's other keys go on");

    let refusals = crate::audit::audit_where(&t.app, "acme", "outcome=quota_exceeded", |e| !e.is_empty()).await;
    assert_eq!(refusals.len(), 1, "the refused call is audited");
    assert_eq!(refusals[0]["detail"], "tenant:tool_calls_per_month");
    let usage = usage_until(&t.app, "acme", |u| u["totals"]["tool_calls"] == 2).await;
    assert_eq!(usage["totals"]["tool_calls"], 2, "{usage}");
}

/// The usage report once `ready` holds (counters are flushed every second).
async fn usage_until(app: &TestApp, tenant: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let reply = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/usage")).await;
        reply.assert_status(200);
        if ready(&reply.body) || started.elapsed() > Duration::from_secs(5) {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn concurrent_sessions_are_capped_per_tenant_and_per_key_in_both_eras() {
    let t = McpApp::spawn().await;
    set_plan(&t.app, "acme", json!({"max_sessions": 1})).await.assert_status(200);
    let url = t.url("acme", "fixture");
    let first = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = t.post(&url, Some(&t.acme), &[], &init).await;
    assert_refused(&refused, "tenant:max_sessions", None);
    let refused_modern = echo(&t, "acme", &t.acme, 1).await;
    assert_refused(&refused_modern, "tenant:max_sessions", None);
    let closed = t.app.client.delete(&url).bearer_auth(&t.acme).header("mcp-session-id", &first).send().await.unwrap();
    assert_eq!(closed.status().as_u16(), 200);
    let started = Instant::now();
    loop {
        let reply = t.post(&url, Some(&t.acme), &[], &init).await;
        if reply.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "the session was not released: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Modern: one session per key of a key capped at one, under an unlimited plan.
    let (capped_id, capped) = t.app.new_key("globex", &json!({"name": "capped"})).await;
    set_key_quotas(&t.app, As::Admin, "globex", &capped_id, json!({"max_sessions": 1})).await.assert_status(200);
    assert_eq!(echo(&t, "globex", &capped, 1).await.status, 200);
    assert_eq!(echo(&t, "globex", &capped, 2).await.status, 200, "the same modern session");
    let open = t
        .modern(&t.app.url("/t/globex/fixture/mcp"), Some(&capped), json!(3), "tools/list", json!({}), json!({}))
        .await;
    assert_eq!(open.status, 200);
    let gurl = t.url("globex", "fixture");
    let legacy = t.post(&gurl, Some(&capped), &[], &init).await;
    assert_refused(&legacy, "key:max_sessions", None);
    assert_eq!(echo(&t, "globex", &t.globex, 4).await.status, 200, "other keys open sessions");
}

#[actix_web::test]
async fn quotas_hold_while_the_database_is_down() {
    let db = berth_test_support::database().await;
    let proxy = PgProxy::start(&db.options).await;
    let app = spawn_app_on(
        test_settings(),
        proxy.database(&db).await,
        Arc::new(FixtureResolver::new()),
        Arc::new(berth_core::backend::HeaderOnly),
    )
    .await;
    let t = fixture_tenants(app).await;
    set_plan(&t.app, "acme", json!({"tool_calls_per_month": 30})).await.assert_status(200);
    for id in 0..10 {
        assert_eq!(echo(&t, "acme", &t.acme, id).await.status, 200);
    }
    usage_until(&t.app, "acme", |u| u["totals"]["tool_calls"] == 10).await;
    assert_eq!(echo(&t, "globex", &t.globex, 0).await.status, 200, "globex's route and key are cached");
    proxy.down();
    let mut admitted = 0;
    for id in 10..40 {
        let reply = echo(&t, "acme", &t.acme, id).await;
        match reply.status {
            200 => admitted += 1,
            429 => assert_refused(&reply, "tenant:tool_calls_per_month", Some(id)),
            other => panic!("call {id} answered {other} during the outage: {}", reply.text),
        }
    }
    assert_eq!(admitted, 20, "the monthly limit holds without the database");
    assert_eq!(echo(&t, "globex", &t.globex, 1).await.status, 200, "other tenants go on");
    proxy.up();
    let usage = usage_until(&t.app, "acme", |u| u["totals"]["tool_calls"] == 30).await;
    assert_eq!(usage["totals"]["tool_calls"], 30, "counted during the outage, stored after: {usage}");
}

#[actix_web::test]
async fn usage_is_reported_per_day_server_and_key_and_never_across_tenants() {
    let t = McpApp::spawn().await;
    let (key_id, key) = t.app.new_key("acme", &json!({"name": "second"})).await;
    for id in 0..3 {
        assert_eq!(echo(&t, "acme", &t.acme, id).await.status, 200);
    }
    assert_eq!(echo(&t, "acme", &key, 9).await.status, 200);
    let open = t
        .modern(
            &t.url("acme", "open"),
            None,
            json!(1),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "anon"}}),
            json!({}),
        )
        .await;
    assert_eq!(open.status, 200);
    t.modern(&t.url("acme", "fixture"), Some(&key), json!(2), "tools/call", json!({"name": "nope"}), json!({})).await;
    assert_eq!(echo(&t, "globex", &t.globex, 1).await.status, 200);

    let usage = usage_until(&t.app, "acme", |u| u["totals"]["tool_calls"] == 6).await;
    let items = usage["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "fixture × two keys, open × no key: {usage}");
    let row = |server: &str, key: Option<&str>| {
        items.iter().find(|i| i["server"] == server && i["key_id"] == key.map_or(Value::Null, Value::from)).cloned()
    };
    let second = row("fixture", Some(&key_id)).expect("the second key's row");
    assert_eq!((second["tool_calls"].as_u64(), second["errors"].as_u64()), (Some(2), Some(1)));
    assert!(second["bytes_in"].as_u64().unwrap() > 0 && second["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(row("open", None).expect("anonymous calls")["tool_calls"], 1);
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(items.iter().all(|i| i["day"] == today.as_str()));

    let filtered = t.app.get(As::Admin, &format!("/api/v1/tenants/acme/usage?server=fixture&key={key_id}")).await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 1);
    let globex = usage_until(&t.app, "globex", |u| u["totals"]["tool_calls"] == 1).await;
    assert_eq!(globex["items"].as_array().unwrap().len(), 1, "globex sees only its own usage: {globex}");
    t.app.get(As::Admin, "/api/v1/tenants/acme/usage?from=2026-02-01&to=2026-01-01").await.assert_problem(400);
    t.app.get(As::Admin, "/api/v1/tenants/acme/usage?server=nope").await.assert_problem(404);
    let globex_admin = t.app.key_with("globex", &["admin"]).await;
    t.app.get(As::Key(&globex_admin), "/api/v1/tenants/acme/usage").await.assert_problem(404);
}

async fn anonymous_echo(t: &McpApp, id: i64) -> McpReply {
    let params = json!({"name": "echo", "arguments": {"message": format!("anon {id}")}});
    t.modern(&t.url("acme", "open"), None, json!(id), "tools/call", params, json!({})).await
}

#[actix_web::test]
async fn anonymous_calls_to_a_public_server_are_rate_limited_and_audited() {
    let t = McpApp::spawn().await;
    set_plan(&t.app, "acme", json!({"requests_per_minute": 2})).await.assert_status(200);
    assert_eq!(anonymous_echo(&t, 1).await.status, 200);
    assert_eq!(anonymous_echo(&t, 2).await.status, 200);
    assert_refused(&anonymous_echo(&t, 3).await, "tenant:requests_per_minute", Some(3));
    assert_eq!(echo(&t, "globex", &t.globex, 1).await.status, 200, "another tenant is not limited");

    let calls = crate::audit::audit_where(&t.app, "acme", "kind=call&server=open", |items| items.len() >= 3).await;
    assert_eq!(calls.len(), 3, "two answered calls and the refused one: {calls:?}");
    assert!(calls.iter().all(|e| e["principal"] == "anonymous" && e["server"] == "open"), "{calls:?}");
    assert_eq!(calls.iter().filter(|e| e["outcome"] == "ok").count(), 2, "{calls:?}");
    let globex = crate::audit::audit_where(&t.app, "globex", "kind=call", |items| !items.is_empty()).await;
    assert_eq!(globex.len(), 1, "globex's own call: {globex:?}");
    assert!(globex.iter().all(|e| e["principal"] != "anonymous"), "acme's anonymous calls stay in acme's trail");
}
