//! `/api/v1/tenants/{tenant}/servers`: create, list, read, patch, delete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code fails loudly

use serde_json::json;

use crate::helpers::{As, TestApp, item_field, items, spawn_app};

const SERVERS: &str = "/api/v1/tenants/acme/servers";

/// Slugs of `tenant`'s servers, as the platform administrator sees them.
async fn server_slugs(app: &TestApp, tenant: &str) -> Vec<String> {
    let list = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/servers")).await;
    list.assert_status(200);
    item_field(&list, "slug").into_iter().map(str::to_owned).collect()
}

#[actix_web::test]
async fn creating_a_server_answers_201_with_its_location_and_mcp_url() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let reply = app
        .post_json(
            As::Key(&acme),
            SERVERS,
            &json!({"slug": "calc", "name": "Calculator", "kind": "wasm", "description": "Adds numbers"}),
        )
        .await;
    reply.assert_status(201);
    assert_eq!(reply.headers["location"], "/api/v1/tenants/acme/servers/calc");
    assert_eq!(reply.body["slug"], "calc");
    assert_eq!(reply.body["name"], "Calculator");
    assert_eq!(reply.body["description"], "Adds numbers");
    assert_eq!(reply.body["kind"], "wasm");
    assert_eq!(reply.body["enabled"], true);
    assert_eq!(reply.body["public"], false);
    assert_eq!(reply.body["disabled_tools"], json!([]));
    assert!(reply.body["active_version"].is_null(), "{}", reply.text);
    assert_eq!(reply.body["mcp_url"], format!("{}/t/acme/calc/mcp", app.address));

    let read = app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/calc").await;
    read.assert_status(200);
    assert_eq!(read.body, reply.body);
}

#[actix_web::test]
async fn every_kind_can_be_created_and_an_unknown_kind_is_rejected() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    for kind in ["wasm", "container", "remote"] {
        let reply = app.create_server(As::Key(&acme), "acme", &format!("s-{kind}"), kind).await;
        reply.assert_status(201);
        assert_eq!(reply.body["kind"], kind);
    }
    for kind in ["docker", "WASM", ""] {
        let reply = app.create_server(As::Key(&acme), "acme", "other", kind).await;
        reply.assert_problem(400);
        assert_eq!(reply.body["field"], "kind", "{kind:?}: {}", reply.text);
    }
    assert_eq!(server_slugs(&app, "acme").await, ["s-container", "s-remote", "s-wasm"]);
}

#[actix_web::test]
async fn the_same_slug_is_fine_in_two_tenants_but_a_conflict_within_one() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let first = app.create_server(As::Key(&acme), "acme", "calc", "wasm").await;
    first.assert_status(201);
    let other = app.create_server(As::Key(&globex), "globex", "calc", "remote").await;
    other.assert_status(201);
    assert_ne!(first.body["id"], other.body["id"]);
    assert_eq!(other.body["mcp_url"], format!("{}/t/globex/calc/mcp", app.address));

    let duplicate =
        app.post_json(As::Key(&acme), SERVERS, &json!({"slug": "calc", "name": "Impostor", "kind": "container"})).await;
    duplicate.assert_problem(409);
    // The original is untouched.
    let read = app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/calc").await;
    assert_eq!(read.body["name"], "Server calc");
    assert_eq!(read.body["kind"], "wasm");
    assert_eq!(read.body["id"], first.body["id"]);
    assert_eq!(server_slugs(&app, "acme").await, ["calc"]);
    assert_eq!(server_slugs(&app, "globex").await, ["calc"]);
}

#[actix_web::test]
async fn bad_server_slugs_are_rejected_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let long = "a".repeat(64);
    for slug in ["Calc", long.as_str(), "..", ".", "a/b", "a.b", "", "café", "-calc", "calc-", "a b", "a%2f"] {
        let reply = app.post_json(As::Key(&acme), SERVERS, &json!({"slug": slug, "name": "X", "kind": "wasm"})).await;
        reply.assert_problem(400);
        assert_eq!(reply.body["field"], "server", "{slug:?}: {}", reply.text);
    }
    // 63 characters is the longest allowed.
    let longest = "a".repeat(63);
    app.create_server(As::Key(&acme), "acme", &longest, "wasm").await.assert_status(201);
    assert_eq!(server_slugs(&app, "acme").await, [longest]);
}

#[actix_web::test]
async fn bad_names_descriptions_and_bodies_are_rejected_and_create_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let cases = [
        (json!({"slug": "calc", "name": "", "kind": "wasm"}), Some("name")),
        (json!({"slug": "calc", "name": "   ", "kind": "wasm"}), Some("name")),
        (json!({"slug": "calc", "name": "x".repeat(201), "kind": "wasm"}), Some("name")),
        (json!({"slug": "calc", "name": "a\u{7}b", "kind": "wasm"}), Some("name")),
        (json!({"slug": "calc", "name": "C", "kind": "wasm", "description": "d".repeat(4097)}), Some("description")),
        (json!({"slug": "calc", "name": "C"}), None),
        (json!({"slug": "calc", "name": "C", "kind": "wasm", "owner": "globex"}), None),
        (json!({"slug": "calc", "name": "C", "kind": "wasm", "public": "yes"}), None),
    ];
    for (body, field) in cases {
        let reply = app.post_json(As::Key(&acme), SERVERS, &body).await;
        reply.assert_problem(400);
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{body}: {}", reply.text);
        }
    }
    app.post_raw(As::Key(&acme), SERVERS, "application/json", b"{\"slug\": ".to_vec()).await.assert_problem(400);
    app.post_raw(As::Key(&acme), SERVERS, "text/plain", b"{}".to_vec()).await.assert_problem(415);
    assert!(server_slugs(&app, "acme").await.is_empty(), "nothing may have been created");
}

#[actix_web::test]
async fn a_tenant_lists_only_its_own_servers_page_by_page() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    for slug in ["a1", "a2", "a3", "a4", "a5"] {
        app.create_server(As::Key(&acme), "acme", slug, "wasm").await.assert_status(201);
    }
    for slug in ["a0", "a3", "g1"] {
        app.create_server(As::Key(&globex), "globex", slug, "remote").await.assert_status(201);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{SERVERS}?limit=2&cursor={c}"),
            None => format!("{SERVERS}?limit=2"),
        };
        let page = app.get(As::Key(&acme), &path).await;
        page.assert_status(200);
        assert!(items(&page).len() <= 2);
        for item in items(&page) {
            assert_eq!(item["kind"], "wasm", "globex's servers leaked into acme's list: {item}");
            assert!(item["mcp_url"].as_str().unwrap().contains("/t/acme/"));
        }
        seen.extend(item_field(&page, "slug").into_iter().map(str::to_owned));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(pages, 3);

    let theirs = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers").await;
    assert_eq!(item_field(&theirs, "slug"), ["a0", "a3", "g1"]);
    assert!(theirs.body["next_cursor"].is_null());
    // A bad cursor is a client error, not an empty page.
    let bad = app.get(As::Key(&acme), &format!("{SERVERS}?cursor=NOT..A..SLUG")).await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "cursor");
    app.get(As::Key(&acme), &format!("{SERVERS}?limit=abc")).await.assert_problem(400);
}

#[actix_web::test]
async fn another_tenants_server_answers_404_like_a_missing_one_and_stays_unchanged() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.server_with_version("globex", "calc", "wasm").await;
    let before = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/calc").await;
    before.assert_status(200);

    let existing = "/api/v1/tenants/globex/servers/calc";
    let reads = [
        app.get(As::Key(&acme), existing).await,
        app.get(As::Key(&acme), "/api/v1/tenants/globex/servers/nope").await,
        app.get(As::Key(&acme), "/api/v1/tenants/initech/servers/calc").await,
    ];
    for reply in &reads {
        reply.assert_problem(404);
        assert_eq!(reply.text, reads[0].text, "another tenant's server must look exactly like a missing one");
    }
    let patch = json!({"name": "Pwned", "enabled": false, "disabled_tools": ["add"]});
    let patches = [
        app.patch_json(As::Key(&acme), existing, &patch).await,
        app.patch_json(As::Key(&acme), "/api/v1/tenants/initech/servers/calc", &patch).await,
    ];
    for reply in &patches {
        reply.assert_problem(404);
        assert_eq!(reply.text, reads[0].text);
    }
    let deletes = [
        app.delete(As::Key(&acme), existing).await,
        app.delete(As::Key(&acme), "/api/v1/tenants/initech/servers/calc").await,
    ];
    for reply in &deletes {
        reply.assert_problem(404);
        assert_eq!(reply.text, reads[0].text);
    }
    // Creating a server inside the other tenant fails the same way.
    let create = app.create_server(As::Key(&acme), "globex", "evil", "wasm").await;
    create.assert_problem(404);
    assert_eq!(create.text, reads[0].text);
    // Listing the other tenant's servers too.
    let list = app.get(As::Key(&acme), "/api/v1/tenants/globex/servers").await;
    list.assert_problem(404);
    assert_eq!(list.text, reads[0].text);

    let after = app.get(As::Key(&globex), existing).await;
    assert_eq!(after.body, before.body, "globex's server changed");
    assert_eq!(after.body["active_version"], 1);
    assert_eq!(server_slugs(&app, "globex").await, ["calc"]);
    assert!(server_slugs(&app, "acme").await.is_empty());
}

#[actix_web::test]
async fn unknown_servers_answer_404_in_every_method() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let path = "/api/v1/tenants/acme/servers/nope";
    app.get(As::Key(&acme), path).await.assert_problem(404);
    app.patch_json(As::Key(&acme), path, &json!({"name": "X"})).await.assert_problem(404);
    app.delete(As::Key(&acme), path).await.assert_problem(404);
    app.get(As::Admin, path).await.assert_problem(404);
    // A malformed slug in the path is rejected before any lookup.
    let bad = app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/Nope").await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "server");
    assert!(server_slugs(&app, "acme").await.is_empty());
}

#[actix_web::test]
async fn patch_changes_name_description_enabled_and_disabled_tools() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let created = app.create_server(As::Key(&acme), "acme", "calc", "wasm").await;
    app.create_server(As::Key(&globex), "globex", "calc", "wasm").await.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc";

    let renamed = app.patch_json(As::Key(&acme), path, &json!({"name": "  Calculator  "})).await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["name"], "Calculator", "names are trimmed");
    assert_eq!(renamed.body["description"], "", "unmentioned fields keep their value");
    assert_eq!(renamed.body["id"], created.body["id"]);

    let changed = app
        .patch_json(
            As::Key(&acme),
            path,
            &json!({"description": "Adds numbers", "enabled": false, "disabled_tools": ["divide", "tools/rm-rf", "a.b_c-1"]}),
        )
        .await;
    changed.assert_status(200);
    assert_eq!(changed.body["name"], "Calculator");
    assert_eq!(changed.body["description"], "Adds numbers");
    assert_eq!(changed.body["enabled"], false);
    assert_eq!(changed.body["disabled_tools"], json!(["divide", "tools/rm-rf", "a.b_c-1"]));
    assert_eq!(changed.body["slug"], "calc");
    assert_eq!(changed.body["kind"], "wasm");

    let read = app.get(As::Key(&acme), path).await;
    assert_eq!(read.body, changed.body);

    let cleared =
        app.patch_json(As::Key(&acme), path, &json!({"enabled": true, "disabled_tools": [], "description": ""})).await;
    cleared.assert_status(200);
    assert_eq!(cleared.body["enabled"], true);
    assert_eq!(cleared.body["disabled_tools"], json!([]));
    assert_eq!(cleared.body["description"], "");
    assert_eq!(cleared.body["name"], "Calculator");

    // globex's server of the same slug is untouched by all of this.
    let theirs = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/calc").await;
    assert_eq!(theirs.body["name"], "Server calc");
    assert_eq!(theirs.body["enabled"], true);
    assert_eq!(theirs.body["disabled_tools"], json!([]));
}

#[actix_web::test]
async fn invalid_patches_are_rejected_and_change_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc";
    let before = app.get(As::Key(&acme), path).await;

    let too_many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    for tools in [
        json!([""]),
        json!(["has space"]),
        json!(["semi;colon"]),
        json!(["ümlaut"]),
        json!(["x".repeat(129)]),
        json!(["ok", "not ok"]),
        json!(too_many),
    ] {
        let reply = app.patch_json(As::Key(&acme), path, &json!({"name": "Changed", "disabled_tools": tools})).await;
        reply.assert_problem(400);
        assert_eq!(reply.body["field"], "disabled_tools", "{}", reply.text);
    }
    let cases = [
        (json!({"name": ""}), Some("name")),
        (json!({"description": "d".repeat(4097)}), Some("description")),
        (json!({"enabled": "no"}), None),
        (json!({"kind": "remote"}), None),
        (json!({"slug": "renamed"}), None),
    ];
    for (body, field) in cases {
        let reply = app.patch_json(As::Key(&acme), path, &body).await;
        reply.assert_problem(400);
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{body}: {}", reply.text);
        }
    }
    let after = app.get(As::Key(&acme), path).await;
    assert_eq!(after.body, before.body, "a rejected patch changed the server");
}

#[actix_web::test]
async fn making_a_server_public_needs_the_admin_scope() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    let publisher = app.key_with("acme", &["publish"]).await;

    let refused = app
        .post_json(
            As::Key(&publisher),
            SERVERS,
            &json!({"slug": "open", "name": "Open", "kind": "wasm", "public": true}),
        )
        .await;
    refused.assert_problem(403);
    assert!(server_slugs(&app, "acme").await.is_empty(), "a refused create must not create anything");

    // `public: false` is the default and needs nothing special.
    let private = app
        .post_json(
            As::Key(&publisher),
            SERVERS,
            &json!({"slug": "calc", "name": "Calc", "kind": "wasm", "public": false}),
        )
        .await;
    private.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc";
    app.patch_json(As::Key(&publisher), path, &json!({"public": true})).await.assert_problem(403);
    app.patch_json(As::Key(&publisher), path, &json!({"public": false, "name": "X"})).await.assert_problem(403);
    let unchanged = app.get(As::Key(&publisher), path).await;
    assert_eq!(unchanged.body["public"], false);
    assert_eq!(unchanged.body["name"], "Calc");
    // A publisher may still change everything else.
    let renamed = app.patch_json(As::Key(&publisher), path, &json!({"name": "Calculator"})).await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["public"], false);

    // A tenant admin key may, on create and on patch.
    let by_admin_key = app
        .post_json(As::Key(&acme), SERVERS, &json!({"slug": "open", "name": "Open", "kind": "wasm", "public": true}))
        .await;
    by_admin_key.assert_status(201);
    assert_eq!(by_admin_key.body["public"], true);
    let flipped = app.patch_json(As::Key(&acme), path, &json!({"public": true})).await;
    flipped.assert_status(200);
    assert_eq!(flipped.body["public"], true);

    // And so may the platform administrator, in any tenant.
    let by_platform = app
        .post_json(
            As::Admin,
            "/api/v1/tenants/globex/servers",
            &json!({"slug": "open", "name": "Open", "kind": "remote", "public": true}),
        )
        .await;
    by_platform.assert_status(201);
    assert_eq!(by_platform.body["public"], true);
    let hidden = app.patch_json(As::Admin, "/api/v1/tenants/globex/servers/open", &json!({"public": false})).await;
    hidden.assert_status(200);
    assert_eq!(hidden.body["public"], false);
    assert_eq!(app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/open").await.body["public"], false);
}

#[actix_web::test]
async fn an_mcp_only_key_cannot_use_the_admin_api_of_its_own_tenant() {
    let app = spawn_app().await;
    app.two_tenants().await;
    app.create_server(As::Admin, "acme", "calc", "wasm").await.assert_status(201);
    let mcp = app.key_with("acme", &["mcp"]).await;
    let path = "/api/v1/tenants/acme/servers/calc";
    app.get(As::Key(&mcp), SERVERS).await.assert_problem(403);
    app.get(As::Key(&mcp), path).await.assert_problem(403);
    app.create_server(As::Key(&mcp), "acme", "new", "wasm").await.assert_problem(403);
    app.patch_json(As::Key(&mcp), path, &json!({"enabled": false})).await.assert_problem(403);
    app.delete(As::Key(&mcp), path).await.assert_problem(403);
    let read = app.get(As::Admin, path).await;
    assert_eq!(read.body["enabled"], true);
    assert_eq!(server_slugs(&app, "acme").await, ["calc"]);
}

#[actix_web::test]
async fn an_admin_read_key_reads_but_cannot_write() {
    let app = spawn_app().await;
    app.two_tenants().await;
    app.create_server(As::Admin, "acme", "calc", "wasm").await.assert_status(201);
    let reader = app.key_with("acme", &["admin:read"]).await;
    let path = "/api/v1/tenants/acme/servers/calc";
    let list = app.get(As::Key(&reader), SERVERS).await;
    list.assert_status(200);
    assert_eq!(item_field(&list, "slug"), ["calc"]);
    app.get(As::Key(&reader), path).await.assert_status(200);

    let create = app.create_server(As::Key(&reader), "acme", "new", "wasm").await;
    create.assert_problem(403);
    assert!(create.body["detail"].as_str().unwrap().contains("publish"), "{}", create.text);
    app.patch_json(As::Key(&reader), path, &json!({"name": "X"})).await.assert_problem(403);
    app.delete(As::Key(&reader), path).await.assert_problem(403);
    assert_eq!(app.get(As::Admin, path).await.body["name"], "Server calc");
    assert_eq!(server_slugs(&app, "acme").await, ["calc"]);
}

#[actix_web::test]
async fn a_publish_key_creates_and_edits_servers_but_only_admin_deletes_them() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    let publisher = app.key_with("acme", &["publish"]).await;
    app.create_server(As::Key(&publisher), "acme", "calc", "wasm").await.assert_status(201);
    let path = "/api/v1/tenants/acme/servers/calc";
    app.patch_json(As::Key(&publisher), path, &json!({"enabled": false})).await.assert_status(200);
    app.delete(As::Key(&publisher), path).await.assert_problem(403);
    assert_eq!(server_slugs(&app, "acme").await, ["calc"]);
    app.delete(As::Key(&acme), path).await.assert_status(204);
}

#[actix_web::test]
async fn deleting_a_server_answers_204_then_404_and_removes_its_versions() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.server_with_version("acme", "calc", "wasm").await;
    app.server_with_version("acme", "keep", "container").await;
    app.server_with_version("globex", "calc", "wasm").await;
    assert_eq!(app.tenant_rows("server_versions", "acme").await, 2);
    let path = "/api/v1/tenants/acme/servers/calc";

    app.delete(As::Key(&acme), path).await.assert_status(204);
    app.get(As::Key(&acme), path).await.assert_problem(404);
    app.get(As::Key(&acme), &format!("{path}/versions")).await.assert_problem(404);
    app.delete(As::Key(&acme), path).await.assert_problem(404);
    assert_eq!(server_slugs(&app, "acme").await, ["keep"]);
    assert_eq!(app.tenant_rows("server_versions", "acme").await, 1);

    // The slug is free again, and starts from scratch.
    let again = app.create_server(As::Key(&acme), "acme", "calc", "wasm").await;
    again.assert_status(201);
    assert!(again.body["active_version"].is_null());

    // globex's server of the same name survived.
    let theirs = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/calc").await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["active_version"], 1);
    assert_eq!(app.tenant_rows("server_versions", "globex").await, 1);
}

#[actix_web::test]
async fn requests_without_valid_credentials_get_401_and_change_nothing() {
    let app = spawn_app().await;
    app.two_tenants().await;
    app.create_server(As::Admin, "acme", "calc", "wasm").await.assert_status(201);
    for who in [As::Anonymous, As::Key("not-a-token"), As::Key("berth_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")] {
        app.get(who, SERVERS).await.assert_problem(401);
        app.create_server(who, "acme", "new", "wasm").await.assert_problem(401);
        app.delete(who, "/api/v1/tenants/acme/servers/calc").await.assert_problem(401);
    }
    assert_eq!(server_slugs(&app, "acme").await, ["calc"]);
}
