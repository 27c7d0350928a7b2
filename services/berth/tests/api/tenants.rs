use serde_json::json;

use crate::helpers::{As, spawn_app};

#[actix_web::test]
async fn admin_creates_a_tenant_and_reads_it_back() {
    let app = spawn_app().await;
    let reply = app.create_tenant("acme").await;
    reply.assert_status(201);
    assert_eq!(reply.headers["location"], "/api/v1/tenants/acme");
    assert_eq!(reply.body["slug"], "acme");
    assert_eq!(reply.body["enabled"], true);
    let read = app.get(As::Admin, "/api/v1/tenants/acme").await;
    read.assert_status(200);
    assert_eq!(read.body["id"], reply.body["id"]);
}

#[actix_web::test]
async fn bad_slugs_are_rejected_and_create_nothing() {
    let app = spawn_app().await;
    let long = "a".repeat(64);
    for slug in ["Acme", long.as_str(), "..", "a/b", "", "café", "-a", "a b"] {
        let reply = app.post_json(As::Admin, "/api/v1/tenants", &json!({"slug": slug, "name": "X"})).await;
        reply.assert_problem(400);
        assert_eq!(reply.body["field"], "tenant", "{slug:?}: {}", reply.text);
    }
    let list = app.get(As::Admin, "/api/v1/tenants").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
}

#[actix_web::test]
async fn a_duplicate_slug_is_a_conflict() {
    let app = spawn_app().await;
    app.create_tenant("acme").await.assert_status(201);
    app.create_tenant("acme").await.assert_problem(409);
}

#[actix_web::test]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_refused() {
    let app = spawn_app().await;
    app.post_raw(As::Admin, "/api/v1/tenants", "application/json", b"{\"slug\": ".to_vec()).await.assert_problem(400);
    app.post_raw(As::Admin, "/api/v1/tenants", "text/plain", b"{}".to_vec()).await.assert_problem(415);
    let huge = json!({"slug": "acme", "name": "x".repeat(64 * 1024)});
    app.post_json(As::Admin, "/api/v1/tenants", &huge).await.assert_problem(413);
    app.post_json(As::Admin, "/api/v1/tenants", &json!({"slug": "acme"})).await.assert_problem(400);
    app.post_json(As::Admin, "/api/v1/tenants", &json!({"slug": "acme", "name": "A", "x": 1}))
        .await
        .assert_problem(400);
    let list = app.get(As::Admin, "/api/v1/tenants").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0, "nothing may have been created");
}

#[actix_web::test]
async fn missing_or_wrong_credentials_get_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    for who in [As::Anonymous, As::Key("not-a-token"), As::Key("berth_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")] {
        let reply = app.get(who, "/api/v1/tenants").await;
        reply.assert_problem(401);
        assert!(reply.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    }
}

#[actix_web::test]
async fn tenant_keys_see_only_their_own_tenant() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let all = app.get(As::Admin, "/api/v1/tenants").await;
    let slugs: Vec<&str> = all.body["items"].as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme", "globex"]);
    for (key, own) in [(&acme, "acme"), (&globex, "globex")] {
        let mine = app.get(As::Key(key), "/api/v1/tenants").await;
        let slugs: Vec<&str> =
            mine.body["items"].as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
        assert_eq!(slugs, [own]);
    }
    // Another tenant answers exactly like one that does not exist.
    let other = app.get(As::Key(&acme), "/api/v1/tenants/globex").await;
    let missing = app.get(As::Key(&acme), "/api/v1/tenants/initech").await;
    other.assert_problem(404);
    assert_eq!(other.text, missing.text);
    app.patch_json(As::Key(&acme), "/api/v1/tenants/globex", &json!({"name": "Pwned"})).await.assert_problem(404);
    app.delete(As::Key(&acme), "/api/v1/tenants/globex").await.assert_problem(404);
    let globex_now = app.get(As::Admin, "/api/v1/tenants/globex").await;
    assert_eq!(globex_now.body["name"], "Tenant globex");
}

#[actix_web::test]
async fn only_the_platform_admin_creates_deletes_and_disables_tenants() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let create = app.post_json(As::Key(&acme), "/api/v1/tenants", &json!({"slug": "new", "name": "New"})).await;
    create.assert_problem(403);
    app.patch_json(As::Key(&acme), "/api/v1/tenants/acme", &json!({"enabled": false})).await.assert_problem(403);
    app.delete(As::Key(&acme), "/api/v1/tenants/acme").await.assert_problem(403);
    let renamed = app.patch_json(As::Key(&acme), "/api/v1/tenants/acme", &json!({"name": "Acme Corp"})).await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["name"], "Acme Corp");
}

#[actix_web::test]
async fn a_disabled_tenants_keys_are_refused_and_deleting_removes_everything() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let disabled = app.patch_json(As::Admin, "/api/v1/tenants/acme", &json!({"enabled": false})).await;
    disabled.assert_status(200);
    assert_eq!(disabled.body["enabled"], false);
    app.get(As::Key(&acme), "/api/v1/tenants/acme").await.assert_problem(403);
    app.get(As::Key(&globex), "/api/v1/tenants/globex").await.assert_status(200);
    app.delete(As::Admin, "/api/v1/tenants/acme").await.assert_status(204);
    app.get(As::Admin, "/api/v1/tenants/acme").await.assert_problem(404);
    app.get(As::Key(&acme), "/api/v1/tenants").await.assert_problem(401);
    app.get(As::Key(&globex), "/api/v1/tenants/globex").await.assert_status(200);
}

#[actix_web::test]
async fn tenant_lists_are_paginated_by_cursor() {
    let app = spawn_app().await;
    for slug in ["a1", "a2", "a3"] {
        app.create_tenant(slug).await.assert_status(201);
    }
    let first = app.get(As::Admin, "/api/v1/tenants?limit=2").await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app.get(As::Admin, &format!("/api/v1/tenants?limit=2&cursor={cursor}")).await;
    let items = second.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["slug"], "a3");
    assert!(second.body["next_cursor"].is_null());
}
