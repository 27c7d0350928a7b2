//! The audit trail: what is recorded, the query and export API, `berth audit verify`, and
//! exactly-once storage across a database outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::TenantScope;
use berth_test_support::fixture::FixtureResolver;
use serde_json::{Value, json};

use crate::helpers::{As, TestApp, spawn_app_on, test_settings};
use crate::killswitch::fixture_tenants;
use crate::mcp_client::McpApp;
use crate::pgproxy::PgProxy;

/// The tenant's events matching `query` (newest first), waiting up to 3 s for at least `n`.
pub async fn audit_events(app: &TestApp, tenant: &str, query: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let reply = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/audit?limit=500&{query}")).await;
        reply.assert_status(200);
        let items = reply.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n || started.elapsed() > Duration::from_secs(3) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every `echo` call event of `tenant`, through the export (no page limit).
async fn export_calls(app: &TestApp, tenant: &str) -> Vec<Value> {
    let export = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/audit/export?kind=call&tool=echo")).await;
    export.assert_status(200);
    export.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The tenant's events matching `query`, once `ready` holds for them (at most 3 s).
pub async fn audit_where(app: &TestApp, tenant: &str, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let items = audit_events(app, tenant, query, 0).await;
        if ready(&items) || started.elapsed() > Duration::from_secs(3) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn sha256_hex(value: &Value) -> String {
    berth_audit::event::sha256_hex(value)
}

async fn scope(app: &TestApp, slug: &str) -> TenantScope {
    let mut conn = app.db.pool.acquire().await.unwrap();
    let slug = berth_core::Slug::parse("tenant", slug).unwrap();
    let tenant = berth_storage::tenants::find_by_slug_for_routing(&mut conn, &slug).await.unwrap();
    TenantScope::from_verified_credentials(tenant.id, tenant.slug)
}

async fn verify_db(app: &TestApp, slug: &str) -> berth::audit_verify::Report {
    berth::audit_verify::verify_tenant(&app.db.pool, slug).await.unwrap()
}

#[actix_web::test]
async fn calls_sessions_mutations_and_refused_keys_are_audited_in_their_own_tenant_chain() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let args = json!({"message": "hi", "extra": {"b": 1, "a": 2}});
    let call =
        t.legacy(&url, Some(&t.acme), &session, 1, "tools/call", json!({"name": "echo", "arguments": args})).await;
    assert_eq!(call.status, 200, "{}", call.text);
    t.legacy(&url, Some(&t.acme), &session, 2, "resources/read", json!({"uri": "test://static-text"})).await;
    t.legacy(&url, Some(&t.acme), &session, 3, "prompts/get", json!({"name": "test_simple_prompt"})).await;
    t.legacy(&url, Some(&t.acme), &session, 4, "tools/list", json!({})).await;
    let modern = t
        .modern(
            &url,
            Some(&t.acme),
            json!(5),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
            json!({}),
        )
        .await;
    assert_eq!(modern.status, 200);
    t.app
        .patch_json(As::Admin, "/api/v1/tenants/acme/servers/fixture", &json!({"description": "audited"}))
        .await
        .assert_status(200);
    let forged = "berth_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    assert_eq!(
        t.post(&url, Some(forged), &[], &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await.status,
        401
    );
    let globex = t
        .modern(
            &t.url("globex", "fixture"),
            Some(&t.globex),
            json!(1),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "globex"}}),
            json!({}),
        )
        .await;
    assert_eq!(globex.status, 200);
    t.app
        .delete(As::Admin, "/api/v1/tenants/acme/api-keys/00000000-0000-0000-0000-000000000000")
        .await
        .assert_status(404);

    let calls = audit_events(&t.app, "acme", "kind=call", 4).await;
    assert_eq!(calls.len(), 4, "{calls:?}");
    let echo = calls.iter().find(|e| e["name"] == "echo").expect("the echo call");
    assert_eq!(echo["method"], "tools/call");
    assert_eq!(echo["outcome"], "ok");
    assert_eq!(echo["server"], "fixture");
    assert_eq!(echo["version"], 1);
    assert_eq!(echo["args_sha256"], sha256_hex(&json!({"extra": {"a": 2, "b": 1}, "message": "hi"})));
    assert!(echo["principal"].as_str().unwrap().starts_with("api-key:"));
    assert_eq!(echo["client"], "t/1");
    assert!(echo["latency_us"].as_i64().is_some() && echo["bytes_in"].as_i64().unwrap() > 0);
    assert!(echo["bytes_out"].as_i64().unwrap() > 0);
    assert!(echo["payload"].is_null(), "no payload without opt-in");
    assert!(calls.iter().any(|e| e["method"] == "resources/read" && e["name"] == "test://static-text"));
    assert!(calls.iter().any(|e| e["method"] == "prompts/get" && e["name"] == "test_simple_prompt"));
    assert!(calls.iter().any(|e| e["name"] == "add" && e["client"] == "berth-tests/1"), "modern call: {calls:?}");
    assert!(!calls.iter().any(|e| e["method"] == "tools/list"), "only calls, reads and prompts are audited");
    assert!(
        !calls.iter().any(|e| e["name"] == "echo" && e["principal"] == echo["principal"] && e["seq"] != echo["seq"])
    );

    let sessions = audit_events(&t.app, "acme", "kind=session", 2).await;
    assert!(sessions.iter().any(|e| e["method"] == "open" && e["name"] == session.as_str() && e["client"] == "t/1"));
    let admin = audit_where(&t.app, "acme", "kind=admin", |items| {
        items
            .iter()
            .filter(|e| e["method"].as_str().is_some_and(|m| m.starts_with("PATCH") || m.starts_with("DELETE")))
            .count()
            == 2
    })
    .await;
    let patch = admin
        .iter()
        .find(|e| e["method"] == "PATCH /api/v1/tenants/{tenant}/servers/{server}")
        .unwrap_or_else(|| panic!("the PATCH in {admin:?}"));
    assert_eq!(patch["principal"], "platform-admin");
    assert_eq!(patch["name"], "/api/v1/tenants/acme/servers/fixture");
    assert_eq!(patch["outcome"], "ok");
    assert_eq!(patch["server"], "fixture");
    let failed = admin.iter().find(|e| e["method"].as_str().unwrap().starts_with("DELETE")).expect("the failed DELETE");
    assert_eq!((failed["outcome"].as_str(), failed["error_code"].as_i64()), (Some("error"), Some(404)));
    let auth = audit_events(&t.app, "acme", "kind=auth&outcome=denied", 1).await;
    assert_eq!(auth[0]["principal"], "api-key-prefix:AAAAAAAAAAAA");
    assert_eq!(auth[0]["error_code"], 401);
    assert_eq!(audit_events(&t.app, "acme", "kind=auth&outcome=ok", 1).await.len(), 1, "one success a minute");

    let globex_events = audit_events(&t.app, "globex", "", 1).await;
    assert!(globex_events.iter().all(|e| e["tenant_id"] == globex_events[0]["tenant_id"]));
    assert!(
        !globex_events
            .iter()
            .any(|e| e["name"] == "echo" && e["server"] == "fixture" && e["args_sha256"] == echo["args_sha256"])
    );
    let acme_all = audit_events(&t.app, "acme", "", 1).await;
    assert!(!acme_all.iter().any(|e| e["tenant_id"] == globex_events[0]["tenant_id"]), "nothing crosses tenants");
    let globex_admin = t.app.key_with("globex", &["admin"]).await;
    let other = t.app.get(As::Key(&globex_admin), "/api/v1/tenants/acme/audit").await;
    other.assert_problem(404);
    let missing = t.app.get(As::Key(&globex_admin), "/api/v1/tenants/nope/audit").await;
    assert_eq!(other.text, missing.text, "another tenant's trail answers like a missing tenant");

    for tenant in ["acme", "globex"] {
        let report = verify_db(&t.app, tenant).await;
        assert!(report.intact, "{}", report.message);
    }
}

#[actix_web::test]
async fn the_audit_query_filters_and_pages_with_a_keyset_cursor() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let before = chrono::Utc::now();
    for n in 0..5 {
        let reply = t
            .modern(
                &url,
                Some(&t.acme),
                json!(n),
                "tools/call",
                json!({"name": "echo", "arguments": {"message": n.to_string()}}),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    t.modern(&url, Some(&t.acme), json!(9), "tools/call", json!({"name": "nope", "arguments": {}}), json!({})).await;
    let all = audit_events(&t.app, "acme", "kind=call&tool=echo", 5).await;
    assert_eq!(all.len(), 5);
    let errors = audit_events(&t.app, "acme", "kind=call&outcome=error", 1).await;
    assert_eq!(
        (errors.len(), errors[0]["name"].as_str(), errors[0]["error_code"].as_i64()),
        (1, Some("nope"), Some(-32602))
    );

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page =
            t.app.get(As::Admin, &format!("/api/v1/tenants/acme/audit?kind=call&tool=echo&limit=2{cursor}")).await;
        page.assert_status(200);
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(seen.len(), 5, "every event once across pages");

    let principal = all[0]["principal"].as_str().unwrap();
    let by_principal = audit_events(&t.app, "acme", &format!("kind=call&principal={principal}"), 6).await;
    assert_eq!(by_principal.len(), 6);
    let from = urlencode(&before.to_rfc3339());
    assert_eq!(audit_events(&t.app, "acme", &format!("kind=call&from={from}"), 6).await.len(), 6);
    assert_eq!(audit_events(&t.app, "acme", &format!("kind=call&to={from}"), 0).await.len(), 0);
    assert_eq!(audit_events(&t.app, "acme", "kind=call&server=other", 0).await.len(), 0);
    t.app.get(As::Admin, "/api/v1/tenants/acme/audit?kind=weird").await.assert_problem(400);
    t.app.get(As::Admin, "/api/v1/tenants/acme/audit?from=yesterday").await.assert_problem(400);
    t.app.get(As::Admin, "/api/v1/tenants/acme/audit?cursor=x").await.assert_problem(400);
    let mcp_only = t.app.get(As::Key(&t.acme), "/api/v1/tenants/acme/audit").await;
    mcp_only.assert_problem(403);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Runs the real `berth audit verify --file`.
fn verify_cli(file: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["audit", "verify", "--file"])
        .arg(file)
        .env("BERTH_LOG", "off")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[actix_web::test]
async fn an_export_verifies_offline_and_a_changed_removed_or_reordered_line_is_named() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    for n in 0..4 {
        t.modern(
            &url,
            Some(&t.acme),
            json!(n),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
            json!({}),
        )
        .await;
    }
    audit_events(&t.app, "acme", "kind=call", 4).await;
    let export = t.app.get(As::Admin, "/api/v1/tenants/acme/audit/export?format=jsonl").await;
    export.assert_status(200);
    assert!(export.content_type().starts_with("application/jsonl"));
    assert!(export.headers["content-disposition"].to_str().unwrap().contains("audit-acme.jsonl"));
    let lines: Vec<String> = export.text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 5, "{}", export.text);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    };
    let (ok, out) = verify_cli(&write("intact.jsonl", &lines));
    assert!(ok, "{out}");
    assert!(out.contains("intact"), "{out}");

    let event = |n: usize| serde_json::from_str::<Value>(&lines[n]).unwrap();
    let mut edited = lines.clone();
    let mut third = event(2);
    third["outcome"] = json!("error");
    edited[2] = third.to_string();
    let (ok, out) = verify_cli(&write("edited.jsonl", &edited));
    assert!(!ok);
    assert!(
        out.contains(&format!("seq 3 (id {})", event(2)["id"].as_str().unwrap())) && out.contains("edited"),
        "{out}"
    );

    let mut removed = lines.clone();
    removed.remove(1);
    let (ok, out) = verify_cli(&write("removed.jsonl", &removed));
    assert!(!ok);
    assert!(
        out.contains(&format!("seq 3 (id {})", event(2)["id"].as_str().unwrap())) && out.contains("event 2 is missing"),
        "{out}"
    );

    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    let (ok, out) = verify_cli(&write("reordered.jsonl", &reordered));
    assert!(!ok && out.contains("seq 3"), "{out}");

    let csv = t.app.get(As::Admin, "/api/v1/tenants/acme/audit/export?format=csv&kind=call").await;
    csv.assert_status(200);
    assert!(csv.content_type().starts_with("text/csv"));
    let rows: Vec<&str> = csv.text.lines().collect();
    assert!(rows[0].starts_with("seq,id,at,tenant_id,kind,method,name,principal"));
    assert_eq!(rows.len(), 5, "{}", csv.text);
    t.app.get(As::Admin, "/api/v1/tenants/acme/audit/export?format=xml").await.assert_problem(400);
}

/// A third tenant, `initech`, with a `fixture` server and an `mcp` key.
async fn third_tenant(t: &McpApp) -> String {
    t.app.create_tenant("initech").await.assert_status(201);
    t.app.create_server(As::Admin, "initech", "fixture", "wasm").await.assert_status(201);
    t.app.publish_wasm(As::Admin, "initech", "fixture", crate::helpers::component_bytes(8, 1)).await.assert_status(201);
    t.app.key_with("initech", &["mcp"]).await
}

/// The id of event `seq` of `tenant`.
async fn id_of(app: &TestApp, tenant: &str, seq: i64) -> String {
    let scope = scope(app, tenant).await;
    let mut conn = app.db.pool.acquire().await.unwrap();
    let filter = berth_storage::audit::AuditFilter::default();
    let page = berth_storage::audit::page_forward(&mut conn, &scope, &filter, Some(seq - 1), 1).await.unwrap();
    page[0].event.id.to_string()
}

#[actix_web::test]
async fn berth_audit_verify_names_a_row_edited_removed_or_reordered_in_sql() {
    let t = McpApp::spawn().await;
    let initech = third_tenant(&t).await;
    for (tenant, key) in [("acme", &t.acme), ("globex", &t.globex), ("initech", &initech)] {
        for n in 0..6 {
            let reply = t
                .modern(
                    &t.url(tenant, "fixture"),
                    Some(key),
                    json!(n),
                    "tools/call",
                    json!({"name": "echo", "arguments": {"message": "x"}}),
                    json!({}),
                )
                .await;
            assert_eq!(reply.status, 200);
        }
        audit_events(&t.app, tenant, "kind=call", 6).await;
        let report = verify_db(&t.app, tenant).await;
        assert!(report.intact, "{}", report.message);
    }
    let row = |tenant: &str| format!("tenant_id = (SELECT id FROM tenants WHERE slug = '{tenant}')");
    // The trigger keeps honest code from rewriting the trail; the chain catches everyone else.
    let blocked = berth_storage::testing::execute(
        &mut t.app.db.pool.acquire().await.unwrap(),
        &format!("UPDATE audit_events SET outcome = 'error' WHERE {} AND seq = 3", row("acme")),
    )
    .await;
    assert!(blocked.is_err(), "audit rows are append-only");
    t.app.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only").await;

    let edited = id_of(&t.app, "acme", 3).await;
    t.app
        .execute(&format!(
            "UPDATE audit_events SET principal = 'api-key:someone-else' WHERE {} AND seq = 3",
            row("acme")
        ))
        .await;
    let report = verify_db(&t.app, "acme").await;
    assert!(!report.intact);
    assert!(
        report.message.contains(&format!("seq 3 (id {edited})")) && report.message.contains("edited"),
        "{}",
        report.message
    );

    let successor = id_of(&t.app, "globex", 4).await;
    t.app.execute(&format!("DELETE FROM audit_events WHERE {} AND seq = 3", row("globex"))).await;
    let report = verify_db(&t.app, "globex").await;
    assert!(!report.intact);
    assert!(
        report.message.contains(&format!("seq 4 (id {successor})")) && report.message.contains("event 3 is missing"),
        "{}",
        report.message
    );

    let moved = id_of(&t.app, "initech", 4).await;
    t.app
        .execute(&format!("UPDATE audit_events SET seq = seq + 1000 WHERE {} AND seq IN (3, 4)", row("initech")))
        .await;
    t.app
        .execute(&format!(
            "UPDATE audit_events SET seq = CASE seq WHEN 1003 THEN 4 ELSE 3 END WHERE {} AND seq IN (1003, 1004)",
            row("initech")
        ))
        .await;
    let report = verify_db(&t.app, "initech").await;
    assert!(!report.intact);
    assert!(
        report.message.contains(&format!("seq 3 (id {moved})")),
        "the event moved into place 3 is named: {}",
        report.message
    );

    t.app.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only").await;
}

#[actix_web::test]
async fn deleting_a_tenant_deletes_its_trail_even_one_being_written_and_keeps_the_others() {
    let t = McpApp::spawn().await;
    for (tenant, key) in [("acme", &t.acme), ("globex", &t.globex)] {
        for n in 0..3 {
            let call = json!({"name": "echo", "arguments": {"message": "x"}});
            let reply = t.modern(&t.url(tenant, "fixture"), Some(key), json!(n), "tools/call", call, json!({})).await;
            assert_eq!(reply.status, 200);
        }
        audit_events(&t.app, tenant, "kind=call", 3).await;
    }
    let acme = scope(&t.app, "acme").await;
    let rows = |tenant: uuid::Uuid| format!("SELECT 1 FROM audit_events WHERE tenant_id = '{tenant}'");
    let acme_rows = rows(acme.tenant_id().as_uuid());
    assert!(t.app.execute(&acme_rows).await >= 3);

    // A writer is in the middle of a batch for acme: its chain head locked, its event inserted.
    let mut writer = t.app.db.pool.begin().await.unwrap();
    let event = berth_audit::event::AuditEvent::new(
        acme.tenant_id(),
        berth_audit::event::Kind::Admin,
        "DELETE /api/v1/tenants/acme",
        "platform-admin",
    );
    assert_eq!(berth_storage::audit::write_batch(&mut writer, &[event], false).await.unwrap(), 1);
    let delete = t.app.delete(As::Admin, "/api/v1/tenants/acme");
    let commit_once_the_delete_waits = async {
        let waiting = "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
                       AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM tenants%'";
        let deadline = Instant::now() + Duration::from_secs(10);
        while t.app.execute(waiting).await == 0 {
            assert!(Instant::now() < deadline, "the tenant's deletion never waited for the writer");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.commit().await.unwrap();
    };
    let (deleted, ()) = tokio::join!(delete, commit_once_the_delete_waits);
    deleted.assert_status(204);
    assert_eq!(t.app.execute(&acme_rows).await, 0, "no event of the deleted tenant is left behind");
    let heads = format!("SELECT 1 FROM audit_chain_heads WHERE tenant_id = '{}'", acme.tenant_id().as_uuid());
    assert_eq!(t.app.execute(&heads).await, 0);

    assert!(t.app.tenant_rows("audit_events", "globex").await >= 3);
    let report = verify_db(&t.app, "globex").await;
    assert!(report.intact, "{}", report.message);
    // The other tenant's trail stays append-only.
    let mut conn = t.app.db.pool.acquire().await.unwrap();
    let globex_delete = "DELETE FROM audit_events WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'globex')";
    assert!(berth_storage::testing::execute(&mut conn, globex_delete).await.is_err());
}

#[actix_web::test]
async fn a_database_outage_under_load_loses_no_audit_event_and_stores_none_twice() {
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
    let (acme, globex) = (t.url("acme", "fixture"), t.url("globex", "fixture"));
    let mut ok = 0usize;
    let started = Instant::now();
    // The acceptance scenario's length: 30 s without the database (`BERTH_TEST_OUTAGE_SECS`
    // shortens it for a quick local run).
    let outage_secs: u64 = std::env::var("BERTH_TEST_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let outage = Duration::from_secs(outage_secs);
    let mut down_at = None;
    let mut n = 0;
    let mut during = 0usize;
    while started.elapsed() < outage + Duration::from_secs(3) {
        if down_at.is_none() && started.elapsed() > Duration::from_millis(1500) {
            proxy.down();
            down_at = Some(Instant::now());
        }
        if down_at.is_some_and(|d| d.elapsed() > outage) {
            proxy.up();
        }
        let (url, key) = if n % 4 == 3 { (&globex, &t.globex) } else { (&acme, &t.acme) };
        let reply = t
            .modern(
                url,
                Some(key),
                json!(n),
                "tools/call",
                json!({"name": "echo", "arguments": {"message": format!("call {n}")}}),
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 200, "call {n} failed during the outage: {}", reply.text);
        ok += 1;
        if down_at.is_some_and(|d| d.elapsed() <= outage) {
            during += 1;
        }
        n += 1;
    }
    proxy.up();
    assert!(ok > 50 && during > 10, "steady load: {ok} calls, {during} while the database was down");
    eprintln!("outage of {outage:?}: {ok} calls, {during} while the database was down");
    // The writer replays the spool within a second of the database coming back.
    let expected_acme = (0..n).filter(|n| n % 4 != 3).count();
    for (tenant, expected) in [("acme", expected_acme), ("globex", n - expected_acme)] {
        // Count on a direct connection (the app's goes through the proxy, on this thread).
        let deadline = Instant::now() + Duration::from_secs(10 + outage_secs);
        let count = format!(
            "SELECT 1 FROM audit_events WHERE tenant_id = (SELECT id FROM tenants WHERE slug = '{tenant}') \
             AND kind = 'call' AND name = 'echo'"
        );
        loop {
            let mut conn = db.pool.acquire().await.unwrap();
            let stored = berth_storage::testing::execute(&mut conn, &count).await.unwrap();
            if stored as usize >= expected || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let events = export_calls(&t.app, tenant).await;
        let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        let digests: HashSet<&str> = events.iter().map(|e| e["args_sha256"].as_str().unwrap()).collect();
        assert_eq!(events.len(), expected, "every {tenant} call stored");
        assert_eq!((ids.len(), digests.len()), (expected, expected), "no {tenant} call stored twice");
    }
    for tenant in ["acme", "globex"] {
        let report = berth::audit_verify::verify_tenant(&db.pool, tenant).await.unwrap();
        assert!(report.intact, "{}", report.message);
    }
}

/// An event of every shape the store must keep exactly: every optional field set (non-ASCII
/// text, extreme numbers) or every one empty.
fn event_of(tenant: berth_core::TenantId, n: i64, full: bool) -> berth_audit::event::AuditEvent {
    use berth_audit::event::{AuditEvent, Kind};
    let mut event = AuditEvent::new(tenant, if full { Kind::Call } else { Kind::Session }, "tools/call", "api-key:k1");
    event.node = format!("node-{n}");
    if full {
        event.name = Some(format!("échø-{n} 🚢"));
        event.client = Some("Inspector 0.1 \"quoted\" \\ back\nslash".to_owned());
        event.server = Some("classic".to_owned());
        event.version = Some(i32::MAX);
        event.args_sha256 = Some("0".repeat(64));
        event.payload = Some(format!("{{\"n\":{n},\"big\":\"{}\"}}", "x".repeat(10_000)));
        event.outcome = "tool_error".to_owned();
        event.error_code = Some(-32_602);
        event.latency_us = Some(i64::MAX);
        event.cpu_us = Some(0);
        event.bytes_in = Some(i64::MIN);
        event.bytes_out = Some(n);
        event.detail = Some(String::new());
    }
    event
}

#[actix_web::test]
async fn the_store_keeps_every_field_as_written_and_refuses_a_whole_batch_with_a_bad_event() {
    use berth_audit::sink::{AuditSink, SinkError};
    let t = McpApp::spawn().await;
    let sink = berth_storage::audit::PgSink::new(t.app.db.pool.clone());
    let (acme, globex) = (scope(&t.app, "acme").await, scope(&t.app, "globex").await);
    // The tenants' rows with these ids, in chain order (the app audits on its own meanwhile).
    let stored = |scope: &TenantScope, ids: Vec<uuid::Uuid>| {
        let (pool, scope) = (t.app.db.pool.clone(), scope.clone());
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let filter = berth_storage::audit::AuditFilter::default();
            let rows = berth_storage::audit::page_forward(&mut conn, &scope, &filter, None, 10_000).await.unwrap();
            rows.into_iter().filter(|r| ids.contains(&r.event.id)).collect::<Vec<_>>()
        }
    };
    // Both tenants in one batch, interleaved, every field set and every field empty.
    let batch: Vec<_> = (0..40)
        .map(|n| event_of(if n % 3 == 0 { globex.tenant_id() } else { acme.tenant_id() }, n, n % 2 == 0))
        .collect();
    assert_eq!(sink.write(&batch, false).await.unwrap(), batch.len());
    for scope in [&acme, &globex] {
        let written: Vec<_> = batch.iter().filter(|e| e.tenant_id == scope.tenant_id()).collect();
        let rows = stored(scope, written.iter().map(|e| e.id).collect()).await;
        assert_eq!(rows.len(), written.len());
        for (n, (row, event)) in rows.iter().zip(&written).enumerate() {
            assert_eq!(&row.event, *event, "event {n} of {} read back as written", scope.slug());
            // One transaction: the batch's events are consecutive in each chain.
            assert_eq!(row.seq, rows[0].seq + n as i64);
        }
        let report = verify_db(&t.app, &scope.slug().to_string()).await;
        assert!(report.intact, "{}", report.message);
    }

    // A NUL byte is not text to PostgreSQL: the batch is refused whole, nothing of it stored.
    let mut bad = vec![event_of(acme.tenant_id(), 100, true), event_of(globex.tenant_id(), 101, false)];
    bad[0].detail = Some("nul \0 inside".to_owned());
    assert!(matches!(sink.write(&bad, false).await, Err(SinkError::Rejected(_))));
    let bad_ids = || bad.iter().map(|e| e.id).collect::<Vec<_>>();
    assert!(stored(&acme, bad_ids()).await.is_empty() && stored(&globex, bad_ids()).await.is_empty());
    // An id stored already: refused without `replay`, skipped with it.
    let again = vec![batch[1].clone(), event_of(acme.tenant_id(), 102, true)];
    let again_ids = || again.iter().map(|e| e.id).collect::<Vec<_>>();
    assert!(matches!(sink.write(&again, false).await, Err(SinkError::Rejected(_))));
    assert_eq!(stored(&acme, again_ids()).await.len(), 1, "only the earlier copy");
    assert_eq!(sink.write(&again, true).await.unwrap(), 1);
    let rows = stored(&acme, again_ids()).await;
    assert_eq!(rows.iter().map(|r| &r.event).collect::<Vec<_>>(), [&again[0], &again[1]]);
    for tenant in ["acme", "globex"] {
        let report = verify_db(&t.app, tenant).await;
        assert!(report.intact, "{}", report.message);
    }
}
