//! WebAssembly servers end to end: published through the admin API, validated, run by wasmtime.

use serde_json::json;

use crate::helpers::{As, TestApp, spawn_app_with_runtimes};
use crate::mcp_client::McpApp;

fn component(name: &str) -> Vec<u8> {
    std::fs::read(berth_test_support::guests::guest(name)).unwrap()
}

async fn publish(app: &TestApp, who: As<'_>, tenant: &str, server: &str, bytes: Vec<u8>) -> crate::helpers::Reply {
    app.post_raw(who, &format!("/api/v1/tenants/{tenant}/servers/{server}/versions"), "application/wasm", bytes).await
}

/// Wraps an app with keys the way the MCP tests expect.
async fn wasm_app() -> McpApp {
    let app = spawn_app_with_runtimes().await;
    let (acme_admin, globex_admin) = app.two_tenants().await;
    for (tenant, admin) in [("acme", &acme_admin), ("globex", &globex_admin)] {
        app.create_server(As::Key(admin), tenant, "classic", "wasm").await.assert_status(201);
        publish(&app, As::Key(admin), tenant, "classic", component("berth_example_classic")).await.assert_status(201);
        app.create_server(As::Key(admin), tenant, "hostile", "wasm").await.assert_status(201);
        publish(&app, As::Key(admin), tenant, "hostile", component("berth_example_hostile")).await.assert_status(201);
    }
    let acme = app.key_with("acme", &["mcp"]).await;
    let globex = app.key_with("globex", &["mcp"]).await;
    McpApp { app, acme, globex }
}

#[actix_web::test]
async fn uploads_that_are_not_berth_components_are_refused_naming_the_problem() {
    let app = spawn_app_with_runtimes().await;
    app.create_tenant("acme").await.assert_status(201);
    app.create_server(As::Admin, "acme", "calc", "wasm").await.assert_status(201);
    let mut garbage = b"\0asm\x0d\0\x01\0".to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    let reply = publish(&app, As::Admin, "acme", "calc", garbage).await;
    reply.assert_problem(400);
    assert_eq!(reply.body["field"], "body");
    let versions = app.get(As::Admin, "/api/v1/tenants/acme/servers/calc/versions").await;
    assert_eq!(versions.body["items"].as_array().unwrap().len(), 0, "nothing was published");
    publish(&app, As::Admin, "acme", "calc", component("berth_example_classic")).await.assert_status(201);
}

#[actix_web::test]
async fn a_published_component_answers_in_both_eras() {
    let t = wasm_app().await;
    let url = t.url("acme", "classic");
    let modern = t
        .modern(
            &url,
            Some(&t.acme),
            json!(1),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
            json!({}),
        )
        .await;
    assert_eq!(modern.status, 200, "{}", modern.text);
    assert_eq!(modern.result()["structuredContent"]["result"], 5.0);
    assert_eq!(modern.result()["resultType"], "complete");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let read = t.legacy(&url, Some(&t.acme), &session, 2, "resources/read", json!({"uri": "greeting://Ada"})).await;
    assert!(read.result()["contents"][0]["text"].as_str().unwrap().contains("Ada"), "{}", read.text);
    let prompts = t.legacy(&url, Some(&t.acme), &session, 3, "prompts/list", json!({})).await;
    assert!(prompts.result()["prompts"].as_array().unwrap().iter().any(|p| p["name"] == "code_review"));
    // Each export's CPU and wall time reach /metrics.
    let metrics = t.app.get(As::Anonymous, "/metrics").await;
    for series in [
        "berth_wasm_call_cpu_seconds_count{export=\"call-tool\"}",
        "berth_wasm_call_wall_seconds_count{export=\"call-tool\"}",
        "berth_wasm_call_cpu_seconds_count{export=\"read-resource\"}",
    ] {
        assert!(metrics.text.contains(series), "{series} missing from {}", metrics.text);
    }
}

#[actix_web::test]
async fn a_looping_guest_is_stopped_at_the_deadline_and_the_next_call_works() {
    let t = wasm_app().await;
    let url = t.url("acme", "hostile");
    let started = std::time::Instant::now();
    let spin = t
        .modern(&url, Some(&t.acme), json!(1), "tools/call", json!({"name": "spin", "arguments": {}}), json!({}))
        .await;
    assert!(spin.last().get("error").is_some() || spin.result()["isError"] == true, "{}", spin.text);
    assert!(spin.text.contains("time limit"), "a clear error: {}", spin.text);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let ok =
        t.modern(&url, Some(&t.acme), json!(2), "tools/call", json!({"name": "ok", "arguments": {}}), json!({})).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.text.contains("fine"), "{}", ok.text);
    let other = t.modern(&t.url("acme", "classic"), Some(&t.acme), json!(3), "tools/list", json!({}), json!({})).await;
    assert_eq!(other.status, 200, "other servers are unaffected");
}

#[actix_web::test]
async fn a_memory_bomb_and_a_crash_are_contained() {
    let t = wasm_app().await;
    let url = t.url("acme", "hostile");
    for tool in ["bomb", "trap", "recurse", "huge"] {
        let reply = t
            .modern(&url, Some(&t.acme), json!(1), "tools/call", json!({"name": tool, "arguments": {}}), json!({}))
            .await;
        let failed = reply.last().get("error").is_some() || reply.result()["isError"] == true;
        assert!(failed, "{tool} must fail: {}", &reply.text[..reply.text.len().min(300)]);
        assert!(reply.text.len() < 64 * 1024, "{tool}: the error is bounded");
    }
    let ok =
        t.modern(&url, Some(&t.acme), json!(2), "tools/call", json!({"name": "ok", "arguments": {}}), json!({})).await;
    assert!(ok.text.contains("fine"), "{}", ok.text);
}

#[actix_web::test]
async fn guests_read_only_their_own_servers_config_and_secrets() {
    let t = wasm_app().await;
    let admin = |tenant: &str| format!("/api/v1/tenants/{tenant}/servers/hostile/config");
    for (tenant, value) in [("acme", "acme-value"), ("globex", "globex-value")] {
        let body = json!({"config": {"region": value}, "secrets": {"TOKEN": format!("{value}-secret")}});
        t.app.send(t.app.request(As::Admin, reqwest::Method::PUT, &admin(tenant)).json(&body)).await.assert_status(200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for (tenant, key, value) in [("acme", &t.acme, "acme-value"), ("globex", &t.globex, "globex-value")] {
        let reply = t
            .modern(
                &t.url(tenant, "hostile"),
                Some(key),
                json!(1),
                "tools/call",
                json!({"name": "config", "arguments": {"key": "region"}}),
                json!({}),
            )
            .await;
        assert!(reply.text.contains(value), "{tenant}: {}", reply.text);
        let other = if tenant == "acme" { "globex-value" } else { "acme-value" };
        assert!(!reply.text.contains(other), "{tenant} sees another tenant's config: {}", reply.text);
        let secret = t
            .modern(
                &t.url(tenant, "hostile"),
                Some(key),
                json!(2),
                "tools/call",
                json!({"name": "config", "arguments": {"key": "TOKEN"}}),
                json!({}),
            )
            .await;
        assert!(secret.text.contains(&format!("{value}-secret")), "{tenant}: {}", secret.text);
    }
    let classic =
        t.modern(&t.url("acme", "classic"), Some(&t.acme), json!(3), "tools/list", json!({}), json!({})).await;
    assert!(!classic.text.contains("acme-value"), "config never leaks into another server");
}

/// What the `hostile` guest of `tenant` reads as its secret `TOKEN`.
async fn read_token(t: &McpApp, tenant: &str) -> crate::mcp_client::McpReply {
    let key = if tenant == "acme" { &t.acme } else { &t.globex };
    let call = json!({"name": "config", "arguments": {"key": "TOKEN"}});
    t.modern(&t.url(tenant, "hostile"), Some(key), json!(1), "tools/call", call, json!({})).await
}

/// Sets the secret `TOKEN` of `tenant`'s `hostile` server (its whole configuration).
async fn put_token(t: &McpApp, tenant: &str, value: &str) {
    let body = json!({"secrets": {"TOKEN": value}});
    let path = format!("/api/v1/tenants/{tenant}/servers/hostile/config");
    t.app.send(t.app.request(As::Admin, reqwest::Method::PUT, &path).json(&body)).await.assert_status(200);
}

/// Makes the data plane load `tenant`'s `hostile` server again (its configuration with it).
async fn reload_hostile(t: &McpApp, tenant: &str) {
    let touched = t
        .app
        .execute(&format!(
            "UPDATE servers SET updated_at = now() WHERE slug = 'hostile' \
             AND tenant_id = (SELECT id FROM tenants WHERE slug = '{tenant}')"
        ))
        .await;
    assert_eq!(touched, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

#[actix_web::test]
async fn secrets_are_sealed_at_rest_and_open_only_for_their_own_server() {
    let t = wasm_app().await;
    for tenant in ["acme", "globex"] {
        put_token(&t, tenant, &format!("{tenant}-token-value")).await;
    }
    let sealed = t.app.execute("SELECT 1 FROM server_config WHERE secret AND value LIKE 'berth:sealed:v1:%'").await;
    assert_eq!(sealed, 2, "both tenants' secrets are stored sealed");
    assert_eq!(t.app.execute("SELECT 1 FROM server_config WHERE value LIKE '%token-value%'").await, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for tenant in ["acme", "globex"] {
        let reply = read_token(&t, tenant).await;
        assert!(reply.text.contains(&format!("{tenant}-token-value")), "{tenant}: {}", reply.text);
    }

    // Someone who can write the database but not read the key copies acme's sealed secret into
    // globex's row: it is bound to acme's server, so globex's guest gets no secret at all.
    let copied = t
        .app
        .execute(
            "UPDATE server_config g SET value = a.value FROM server_config a \
             WHERE a.key = 'TOKEN' AND g.key = 'TOKEN' \
             AND a.tenant_id = (SELECT id FROM tenants WHERE slug = 'acme') \
             AND g.tenant_id = (SELECT id FROM tenants WHERE slug = 'globex')",
        )
        .await;
    assert_eq!(copied, 1);
    reload_hostile(&t, "globex").await;
    let refused = read_token(&t, "globex").await;
    assert!(!refused.text.contains("acme-token-value"), "{}", refused.text);
    assert!(refused.text.contains("cannot be decrypted"), "{}", refused.text);
    let acme = read_token(&t, "acme").await;
    assert!(acme.text.contains("acme-token-value"), "the owner still reads it: {}", acme.text);
}

#[actix_web::test]
async fn secrets_stored_unsealed_are_sealed_at_start_and_still_read() {
    let t = wasm_app().await;
    // Rows as written before sealing existed (or by a control plane without BERTH_SECRET_KEY).
    let inserted = t
        .app
        .execute(
            "INSERT INTO server_config (tenant_id, server_id, key, value, secret) \
             SELECT s.tenant_id, s.id, 'TOKEN', 'old-' || t.slug, true \
             FROM servers s JOIN tenants t ON t.id = s.tenant_id WHERE s.slug = 'hostile'",
        )
        .await;
    assert_eq!(inserted, 2);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(read_token(&t, "acme").await.text.contains("old-acme"), "plain rows keep working");

    let secret = secrecy::SecretString::from(t.app.secret_key.clone());
    assert_eq!(berth::startup::seal_stored_secrets(&t.app.db.pool, &secret, None).await.unwrap().sealed, 2);
    assert_eq!(t.app.execute("SELECT 1 FROM server_config WHERE value LIKE 'old-%'").await, 0);
    assert_eq!(t.app.execute("SELECT 1 FROM server_config WHERE value LIKE 'berth:sealed:v1:%'").await, 2);
    assert_eq!(
        berth::startup::seal_stored_secrets(&t.app.db.pool, &secret, None).await.unwrap().sealed,
        0,
        "once only"
    );
    for tenant in ["acme", "globex"] {
        reload_hostile(&t, tenant).await;
        let reply = read_token(&t, tenant).await;
        assert!(reply.text.contains(&format!("old-{tenant}")), "{tenant}: {}", reply.text);
        let other = if tenant == "acme" { "old-globex" } else { "old-acme" };
        assert!(!reply.text.contains(other), "{tenant}: {}", reply.text);
    }
}

#[actix_web::test]
async fn rotating_the_secret_key_seals_everything_stored_again_under_the_new_one() {
    let t = wasm_app().await;
    for tenant in ["acme", "globex"] {
        put_token(&t, tenant, &format!("{tenant}-token")).await;
        // Creates the tenant's signing key, stored sealed.
        t.app.get(As::Anonymous, &format!("/t/{tenant}/oauth/jwks")).await.assert_status(200);
    }
    // Every stored secret as text, kept aside to compare with afterwards.
    let stored = "SELECT value FROM server_config UNION ALL SELECT encode(private_der, 'hex') FROM oauth_signing_keys";
    t.app.execute(&format!("CREATE TABLE before_rotation AS {stored}")).await;

    let pool = &t.app.db.pool;
    let old = secrecy::SecretString::from(t.app.secret_key.clone());
    let new = secrecy::SecretString::from(format!("rotated-secret-{}", uuid::Uuid::new_v4()));
    // The new secret alone opens nothing stored: nothing is touched, everything is reported.
    let blind = berth::startup::seal_stored_secrets(pool, &new, None).await.unwrap();
    assert_eq!((blind.sealed, blind.unreadable), (0, 4), "2 secrets and 2 signing keys");
    // With the previous one, everything is sealed again under the new one.
    let rotated = berth::startup::seal_stored_secrets(pool, &new, Some(&old)).await.unwrap();
    assert_eq!((rotated.sealed, rotated.unreadable), (4, 0));
    let unchanged = format!("SELECT 1 FROM ({stored}) s(v) WHERE v IN (SELECT * FROM before_rotation)");
    assert_eq!(t.app.execute(&unchanged).await, 0, "every value was rewritten");
    let after = berth::startup::seal_stored_secrets(pool, &new, None).await.unwrap();
    assert_eq!((after.sealed, after.unreadable), (0, 0), "everything opens under the new secret alone");
    assert_eq!(t.app.execute("SELECT 1 FROM server_config WHERE value LIKE '%-token%'").await, 0);

    // The app still runs with the old secret only: what is stored no longer opens there.
    reload_hostile(&t, "acme").await;
    let refused = read_token(&t, "acme").await;
    assert!(refused.text.contains("cannot be decrypted"), "{}", refused.text);
    assert!(!refused.text.contains("acme-token"), "{}", refused.text);
}
