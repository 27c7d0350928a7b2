//! `/api/v1/tenants/{tenant}/api-keys`: create (secret shown once), list, read, revoke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code fails loudly

use serde_json::{Value, json};

use crate::helpers::{As, Reply, TestApp, item_field, items, spawn_app};

const KEYS: &str = "/api/v1/tenants/acme/api-keys";

fn key_path(tenant: &str, id: &str) -> String {
    format!("/api/v1/tenants/{tenant}/api-keys/{id}")
}

/// The secret part of `berth_<prefix>_<secret>`.
fn secret_part(key: &str) -> &str {
    key.rsplit('_').next().unwrap()
}

#[track_caller]
fn assert_no_secret(reply: &Reply, key: &str) {
    assert!(!reply.text.contains(key), "the whole key leaked: {}", reply.text);
    assert!(!reply.text.contains(secret_part(key)), "the key's secret leaked: {}", reply.text);
    assert!(!reply.text.contains("secret_hash"), "{}", reply.text);
}

/// Ids of `tenant`'s keys, as the platform administrator sees them.
async fn key_ids(app: &TestApp, tenant: &str) -> Vec<String> {
    let list = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/api-keys")).await;
    list.assert_status(200);
    item_field(&list, "id").into_iter().map(str::to_owned).collect()
}

#[actix_web::test]
async fn creating_a_key_shows_its_secret_once_with_default_scope_mcp() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let reply = app.create_key(As::Key(&acme), "acme", &json!({"name": "ci"})).await;
    reply.assert_status(201);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let key = reply.body["key"].as_str().unwrap();
    assert!(key.starts_with("berth_"), "{key}");
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(reply.headers["location"], key_path("acme", id));
    assert_eq!(reply.body["name"], "ci");
    assert_eq!(reply.body["scopes"], json!(["mcp"]));
    assert!(reply.body["servers"].is_null());
    assert!(reply.body["expires_at"].is_null());
    assert!(reply.body["revoked_at"].is_null());
    assert!(reply.body["last_used_at"].is_null());
    let prefix = reply.body["prefix"].as_str().unwrap();
    assert!(key.starts_with(&format!("berth_{prefix}_")), "the prefix is the key's public part");

    let one = app.get(As::Key(&acme), &key_path("acme", id)).await;
    one.assert_status(200);
    assert_no_secret(&one, key);
    assert!(one.body.get("key").is_none());
    assert_eq!(one.body["prefix"], prefix);
    assert_eq!(one.body["scopes"], json!(["mcp"]));
    let list = app.get(As::Key(&acme), KEYS).await;
    list.assert_status(200);
    assert_no_secret(&list, key);
    assert!(item_field(&list, "id").contains(&id));
    assert!(items(&list).iter().all(|k| k.get("key").is_none()));
    let admin_list = app.get(As::Admin, KEYS).await;
    assert_no_secret(&admin_list, key);
    assert_no_secret(&admin_list, &acme);
}

#[actix_web::test]
async fn every_key_is_different() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let keys = [
        app.key_with("acme", &["mcp"]).await,
        app.key_with("acme", &["mcp"]).await,
        app.key_with("globex", &["mcp"]).await,
    ];
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_ne!(keys[1], keys[2]);
}

#[actix_web::test]
async fn scopes_are_validated_sorted_and_deduplicated() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let before = key_ids(&app, "acme").await;
    for scopes in [json!(["root"]), json!(["mcp", "Admin"]), json!(["admin:write"]), json!([""]), json!([])] {
        let reply = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "scopes": scopes})).await;
        reply.assert_problem(400);
        assert_eq!(reply.body["field"], "scopes", "{scopes}: {}", reply.text);
    }
    for body in [
        json!({"name": "k", "scopes": "admin"}),
        json!({"name": "k", "scopes": [1]}),
        json!({"name": "", "scopes": ["mcp"]}),
        json!({"name": "k", "scopes": ["mcp"], "tenant": "globex"}),
        json!({"scopes": ["mcp"]}),
    ] {
        app.create_key(As::Key(&acme), "acme", &body).await.assert_problem(400);
    }
    assert_eq!(key_ids(&app, "acme").await, before, "a rejected key must not be created");

    let all = app
        .create_key(
            As::Key(&acme),
            "acme",
            &json!({"name": "k", "scopes": ["admin", "mcp", "publish", "admin:read", "mcp"]}),
        )
        .await;
    all.assert_status(201);
    assert_eq!(all.body["scopes"], json!(["mcp", "admin:read", "publish", "admin"]));
}

#[actix_web::test]
async fn server_restrictions_must_name_servers_of_the_keys_own_tenant() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    app.create_server(As::Key(&acme), "acme", "alpha", "wasm").await.assert_status(201);
    app.create_server(As::Key(&globex), "globex", "secret-db", "remote").await.assert_status(201);
    let before = key_ids(&app, "acme").await;

    let unknown = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "servers": ["calc", "nope"]})).await;
    unknown.assert_problem(400);
    assert_eq!(unknown.body["field"], "servers");
    let detail = unknown.body["detail"].as_str().unwrap();
    assert!(detail.contains("nope"), "{detail}");
    assert!(!detail.contains("calc"), "only the unknown slug is named: {detail}");
    // Another tenant's server is just as unknown.
    let foreign = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "servers": ["secret-db"]})).await;
    foreign.assert_problem(400);
    assert!(foreign.body["detail"].as_str().unwrap().contains("secret-db"));
    for servers in [json!([]), json!(["Bad"])] {
        let reply = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "servers": servers})).await;
        reply.assert_problem(400);
    }
    assert_eq!(key_ids(&app, "acme").await, before);

    let limited = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "servers": ["calc", "alpha"]})).await;
    limited.assert_status(201);
    assert_eq!(limited.body["servers"], json!(["alpha", "calc"]));
    let id = limited.body["id"].as_str().unwrap();
    let read = app.get(As::Key(&acme), &key_path("acme", id)).await;
    assert_eq!(read.body["servers"], json!(["alpha", "calc"]));
    let listed = app.get(As::Key(&acme), KEYS).await;
    let entry = items(&listed).iter().find(|k| k["id"] == id).unwrap();
    assert_eq!(entry["servers"], json!(["alpha", "calc"]));
}

#[actix_web::test]
async fn expiry_must_be_in_the_future() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let before = key_ids(&app, "acme").await;
    let past = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let reply = app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "expires_at": past})).await;
    reply.assert_problem(400);
    assert_eq!(reply.body["field"], "expires_at");
    app.create_key(As::Key(&acme), "acme", &json!({"name": "k", "expires_at": "tomorrow"})).await.assert_problem(400);
    assert_eq!(key_ids(&app, "acme").await, before);

    let future = chrono::Utc::now() + chrono::Duration::days(30);
    let created = app
        .create_key(
            As::Key(&acme),
            "acme",
            &json!({"name": "k", "scopes": ["admin:read"], "expires_at": future.to_rfc3339()}),
        )
        .await;
    created.assert_status(201);
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(created.body["expires_at"].clone()).unwrap();
    assert!((expires - future).num_seconds().abs() < 1, "{expires} vs {future}");
    let key = created.body["key"].as_str().unwrap();
    app.get(As::Key(key), KEYS).await.assert_status(200);
}

#[actix_web::test]
async fn a_created_admin_key_works_on_its_own_tenant_only() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let created = app.create_key(As::Key(&acme), "acme", &json!({"name": "ops", "scopes": ["admin"]})).await;
    created.assert_status(201);
    let ops = created.body["key"].as_str().unwrap();
    app.create_server(As::Key(ops), "acme", "calc", "wasm").await.assert_status(201);
    app.patch_json(As::Key(ops), "/api/v1/tenants/acme/servers/calc", &json!({"public": true}))
        .await
        .assert_status(200);
    let nested = app.create_key(As::Key(ops), "acme", &json!({"name": "nested"})).await;
    nested.assert_status(201);
    app.get(As::Key(ops), KEYS).await.assert_status(200);
    app.delete(As::Key(ops), "/api/v1/tenants/acme/servers/calc").await.assert_status(204);
    // `admin` does not reach other tenants, nor platform operations.
    app.get(As::Key(ops), "/api/v1/tenants/globex/servers").await.assert_problem(404);
    app.post_json(As::Key(ops), "/api/v1/tenants", &json!({"slug": "new", "name": "New"})).await.assert_problem(403);
}

#[actix_web::test]
async fn only_admin_keys_manage_keys() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let (victim, _) = app.new_key("acme", &json!({"name": "victim"})).await;
    let before = key_ids(&app, "acme").await;
    for scopes in [&["mcp"][..], &["admin:read"], &["publish"]] {
        let key = app.key_with("acme", scopes).await;
        let create = app.create_key(As::Key(&key), "acme", &json!({"name": "escalate", "scopes": ["admin"]})).await;
        create.assert_problem(403);
        app.delete(As::Key(&key), &key_path("acme", &victim)).await.assert_problem(403);
    }
    let reader = app.key_with("acme", &["admin:read"]).await;
    app.get(As::Key(&reader), KEYS).await.assert_status(200);
    app.get(As::Key(&reader), &key_path("acme", &victim)).await.assert_status(200);
    let mcp = app.key_with("acme", &["mcp"]).await;
    app.get(As::Key(&mcp), KEYS).await.assert_problem(403);

    let after = key_ids(&app, "acme").await;
    assert_eq!(after.len(), before.len() + 5, "only the five test keys were added: {after:?}");
    let victim_now = app.get(As::Admin, &key_path("acme", &victim)).await;
    assert!(victim_now.body["revoked_at"].is_null());
}

#[actix_web::test]
async fn a_revoked_key_stops_working_and_revoking_again_is_harmless() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let (id, key) = app.new_key("acme", &json!({"name": "ci", "scopes": ["admin:read"]})).await;
    let (_, sibling) = app.new_key("acme", &json!({"name": "other", "scopes": ["admin:read"]})).await;
    app.get(As::Key(&key), KEYS).await.assert_status(200);

    app.delete(As::Key(&acme), &key_path("acme", &id)).await.assert_status(204);
    let refused = app.get(As::Key(&key), KEYS).await;
    refused.assert_problem(401);
    assert!(refused.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    app.get(As::Key(&key), "/api/v1/tenants/acme").await.assert_problem(401);

    let read = app.get(As::Key(&acme), &key_path("acme", &id)).await;
    read.assert_status(200);
    let revoked_at = read.body["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{}", read.text);

    app.delete(As::Key(&acme), &key_path("acme", &id)).await.assert_status(204);
    let again = app.get(As::Key(&acme), &key_path("acme", &id)).await;
    assert_eq!(again.body["revoked_at"], revoked_at, "revoking twice keeps the first time");
    app.get(As::Key(&key), KEYS).await.assert_problem(401);

    // Revocation is surgical: the tenant's other keys and the other tenant's keys still work.
    app.get(As::Key(&sibling), KEYS).await.assert_status(200);
    app.get(As::Key(&acme), KEYS).await.assert_status(200);
    app.get(As::Key(&globex), "/api/v1/tenants/globex/api-keys").await.assert_status(200);
    // Revoked keys stay listed, marked revoked.
    let listed = app.get(As::Key(&acme), KEYS).await;
    let entry = items(&listed).iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(entry["revoked_at"], revoked_at);
}

#[actix_web::test]
async fn a_key_can_revoke_itself() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let (id, key) = app.new_key("acme", &json!({"name": "self", "scopes": ["admin"]})).await;
    app.delete(As::Key(&key), &key_path("acme", &id)).await.assert_status(204);
    app.get(As::Key(&key), KEYS).await.assert_problem(401);
}

#[actix_web::test]
async fn an_expired_key_gets_401() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (id, key) = app.new_key("acme", &json!({"name": "temp", "scopes": ["admin:read"], "expires_at": future})).await;
    let (_, other) = app.new_key("acme", &json!({"name": "other", "scopes": ["admin:read"]})).await;
    app.get(As::Key(&key), KEYS).await.assert_status(200);

    let touched =
        app.execute(&format!("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = '{id}'")).await;
    assert_eq!(touched, 1);
    let refused = app.get(As::Key(&key), KEYS).await;
    refused.assert_problem(401);
    assert!(refused.body["detail"].as_str().unwrap().contains("expired"), "{}", refused.text);
    app.get(As::Key(&other), KEYS).await.assert_status(200);
    app.get(As::Key(&acme), KEYS).await.assert_status(200);
    let read = app.get(As::Key(&acme), &key_path("acme", &id)).await;
    assert!(read.body["revoked_at"].is_null(), "expiry is not revocation");
}

#[actix_web::test]
async fn another_tenants_keys_answer_404_and_keep_working() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let (globex_id, globex_key) = app.new_key("globex", &json!({"name": "theirs", "scopes": ["admin:read"]})).await;
    let (acme_id, _) = app.new_key("acme", &json!({"name": "ours"})).await;
    let globex_before = app.get(As::Admin, &key_path("globex", &globex_id)).await;

    let missing = app.get(As::Key(&acme), "/api/v1/tenants/initech/api-keys").await;
    missing.assert_problem(404);
    let replies = [
        app.get(As::Key(&acme), "/api/v1/tenants/globex/api-keys").await,
        app.get(As::Key(&acme), &key_path("globex", &globex_id)).await,
        app.delete(As::Key(&acme), &key_path("globex", &globex_id)).await,
        app.create_key(As::Key(&acme), "globex", &json!({"name": "planted", "scopes": ["admin"]})).await,
    ];
    for reply in &replies {
        reply.assert_problem(404);
        assert_eq!(reply.text, missing.text, "globex's keys must look missing to acme");
        assert!(!reply.text.contains(&globex_id));
    }
    // globex's key id under acme's own tenant is just an unknown key.
    let id_in_own_tenant = app.get(As::Key(&acme), &key_path("acme", &globex_id)).await;
    id_in_own_tenant.assert_problem(404);
    let unknown = app.get(As::Key(&acme), &key_path("acme", &uuid::Uuid::new_v4().to_string())).await;
    assert_eq!(id_in_own_tenant.text, unknown.text);
    app.delete(As::Key(&acme), &key_path("acme", &globex_id)).await.assert_problem(404);
    // Even the platform administrator reaches a key only under its own tenant.
    app.get(As::Admin, &key_path("acme", &globex_id)).await.assert_problem(404);
    app.delete(As::Admin, &key_path("acme", &globex_id)).await.assert_problem(404);

    // Nothing changed for globex: its key still works and is not revoked, and nothing was planted.
    app.get(As::Key(&globex_key), "/api/v1/tenants/globex/api-keys").await.assert_status(200);
    let globex_after = app.get(As::Admin, &key_path("globex", &globex_id)).await;
    assert!(globex_after.body["revoked_at"].is_null());
    assert_eq!(globex_after.body["name"], globex_before.body["name"]);
    let globex_names = app.get(As::Key(&globex), "/api/v1/tenants/globex/api-keys").await;
    assert!(!item_field(&globex_names, "name").contains(&"planted"));
    assert!(!item_field(&globex_names, "id").contains(&acme_id.as_str()));
    let acme_list = app.get(As::Key(&acme), KEYS).await;
    assert!(!item_field(&acme_list, "id").contains(&globex_id.as_str()));
}

#[actix_web::test]
async fn unknown_and_malformed_key_ids_answer_404() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let before = key_ids(&app, "acme").await;
    for id in [uuid::Uuid::new_v4().to_string(), "nope".to_owned(), "1".to_owned()] {
        app.get(As::Key(&acme), &key_path("acme", &id)).await.assert_problem(404);
        app.delete(As::Key(&acme), &key_path("acme", &id)).await.assert_problem(404);
    }
    assert_eq!(key_ids(&app, "acme").await, before);
}

#[actix_web::test]
async fn last_used_at_is_set_once_a_key_is_used() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let (id, key) = app.new_key("acme", &json!({"name": "ci", "scopes": ["admin:read"]})).await;
    let (idle_id, _) = app.new_key("acme", &json!({"name": "idle", "scopes": ["admin:read"]})).await;
    let fresh = app.get(As::Admin, &key_path("acme", &id)).await;
    assert!(fresh.body["last_used_at"].is_null());

    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    app.get(As::Key(&key), "/api/v1/tenants/acme").await.assert_status(200);
    let used = app.get(As::Key(&acme), &key_path("acme", &id)).await;
    let last_used: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(used.body["last_used_at"].clone()).unwrap_or_else(|e| panic!("{e}: {}", used.text));
    assert!(last_used >= started, "{last_used}");
    let idle = app.get(As::Admin, &key_path("acme", &idle_id)).await;
    assert!(idle.body["last_used_at"].is_null(), "only the key that was used is marked");

    // A failed attempt with a wrong secret on the same prefix does not count as use.
    let prefix = used.body["prefix"].as_str().unwrap();
    let forged = format!("berth_{prefix}_{}", "x".repeat(32));
    app.execute(&format!("UPDATE api_keys SET last_used_at = NULL WHERE id = '{id}'")).await;
    app.get(As::Key(&forged), KEYS).await.assert_problem(401);
    let after_forgery = app.get(As::Admin, &key_path("acme", &id)).await;
    assert!(after_forgery.body["last_used_at"].is_null(), "{}", after_forgery.text);
}

#[actix_web::test]
async fn keys_are_listed_page_by_page_within_their_tenant() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(app.new_key("acme", &json!({"name": format!("k{i}")})).await.0);
    }
    app.new_key("globex", &json!({"name": "theirs"})).await;
    let all = key_ids(&app, "acme").await;
    assert_eq!(all.len(), 5, "acme's admin key plus four: {all:?}");

    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{KEYS}?limit=2&cursor={c}"),
            None => format!("{KEYS}?limit=2"),
        };
        let page = app.get(As::Admin, &path).await;
        page.assert_status(200);
        assert!(items(&page).len() <= 2);
        for key in items(&page) {
            assert_ne!(key["name"], "theirs", "globex's key leaked into acme's list");
            assert!(key.get("key").is_none());
        }
        seen.extend(item_field(&page, "id").into_iter().map(str::to_owned));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "paging must visit every key once, in list order");
    for id in &created {
        assert!(seen.contains(id));
    }
    let bad = app.get(As::Admin, &format!("{KEYS}?cursor=not-a-cursor")).await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "cursor");
    let first: Value = app.get(As::Admin, &format!("{KEYS}?limit=0")).await.body;
    assert_eq!(first["items"].as_array().unwrap().len(), 1, "the limit is clamped to at least 1");
}
