//! `/api/v1/tenants/{tenant}/servers/{server}/versions`: publish, list, read, activate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code fails loudly

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{As, MAX_UPLOAD, TestApp, component_bytes, items, spawn_app};

const VERSIONS: &str = "/api/v1/tenants/acme/servers/calc/versions";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn stdio_container() -> Value {
    json!({"image": "ghcr.io/acme/tools:1", "transport": "stdio"})
}

/// The server's `active_version`, read as the platform administrator.
async fn active_version(app: &TestApp, tenant: &str, server: &str) -> Value {
    let reply = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/servers/{server}")).await;
    reply.assert_status(200);
    reply.body["active_version"].clone()
}

/// Version numbers of a server, newest first, as the platform administrator sees them.
async fn version_numbers(app: &TestApp, tenant: &str, server: &str) -> Vec<i64> {
    let reply = app.get(As::Admin, &format!("/api/v1/tenants/{tenant}/servers/{server}/versions")).await;
    reply.assert_status(200);
    items(&reply).iter().map(|v| v["version"].as_i64().unwrap()).collect()
}

#[actix_web::test]
async fn uploading_a_component_creates_version_1_addressed_by_its_sha256() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let bytes = component_bytes(1000, 42);
    let reply = app.publish_wasm(As::Key(&acme), "acme", "calc", bytes.clone()).await;
    reply.assert_status(201);
    assert_eq!(reply.headers["location"], format!("{VERSIONS}/1"));
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["kind"], "wasm");
    assert_eq!(reply.body["sha256"], sha256_hex(&bytes));
    assert_eq!(reply.body["size"], bytes.len());
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["enabled"], true);
    for absent in ["image", "transport", "url", "headers", "limits"] {
        assert!(reply.body.get(absent).is_none(), "{absent} must not appear on a wasm version: {}", reply.text);
    }
    assert_eq!(active_version(&app, "acme", "calc").await, 1);

    let read = app.get(As::Key(&acme), &format!("{VERSIONS}/1")).await;
    read.assert_status(200);
    assert_eq!(read.body, reply.body);
}

#[actix_web::test]
async fn publishing_activates_by_default_and_activate_false_keeps_the_current_version() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    app.server_with_version("globex", "calc", "wasm").await;

    app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, 1)).await.assert_status(201);
    let second = app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, 2)).await;
    second.assert_status(201);
    assert_eq!(second.body["version"], 2);
    assert_eq!(second.body["active"], true);
    assert_eq!(active_version(&app, "acme", "calc").await, 2);

    let staged = app
        .post_raw(As::Key(&acme), &format!("{VERSIONS}?activate=false"), "application/wasm", component_bytes(10, 3))
        .await;
    staged.assert_status(201);
    assert_eq!(staged.body["version"], 3);
    assert_eq!(staged.body["active"], false);
    assert_eq!(active_version(&app, "acme", "calc").await, 2);

    let explicit = app
        .post_raw(As::Key(&acme), &format!("{VERSIONS}?activate=true"), "application/wasm", component_bytes(10, 4))
        .await;
    explicit.assert_status(201);
    assert_eq!(explicit.body["version"], 4);
    assert_eq!(explicit.body["active"], true);
    assert_eq!(active_version(&app, "acme", "calc").await, 4);

    let bad_flag = app
        .post_raw(As::Key(&acme), &format!("{VERSIONS}?activate=maybe"), "application/wasm", component_bytes(10, 5))
        .await;
    bad_flag.assert_problem(400);
    assert_eq!(version_numbers(&app, "acme", "calc").await, [4, 3, 2, 1]);

    // Numbering is per server: globex's server is still on its only version.
    assert_eq!(version_numbers(&app, "globex", "calc").await, [1]);
    assert_eq!(active_version(&app, "globex", "calc").await, 1);
    let theirs = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/calc/versions/1").await;
    assert_eq!(theirs.body["active"], true);
}

#[actix_web::test]
async fn activating_an_older_version_rolls_back() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    for seed in 1..=3 {
        app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, seed)).await.assert_status(201);
    }
    assert_eq!(active_version(&app, "acme", "calc").await, 3);

    let rollback = app.post_json(As::Key(&acme), &format!("{VERSIONS}/1/activate"), &json!({})).await;
    rollback.assert_status(200);
    assert_eq!(rollback.body["version"], 1);
    assert_eq!(rollback.body["active"], true);
    assert_eq!(active_version(&app, "acme", "calc").await, 1);

    let list = app.get(As::Key(&acme), VERSIONS).await;
    let flags: Vec<(i64, bool)> =
        items(&list).iter().map(|v| (v["version"].as_i64().unwrap(), v["active"].as_bool().unwrap())).collect();
    assert_eq!(flags, [(3, false), (2, false), (1, true)]);

    // Activating the active version again is harmless.
    app.post_json(As::Key(&acme), &format!("{VERSIONS}/1/activate"), &json!({})).await.assert_status(200);
    assert_eq!(active_version(&app, "acme", "calc").await, 1);
    // Rolling forward works the same way.
    app.post_json(As::Key(&acme), &format!("{VERSIONS}/3/activate"), &json!({})).await.assert_status(200);
    assert_eq!(active_version(&app, "acme", "calc").await, 3);
    // Activation publishes nothing new.
    assert_eq!(version_numbers(&app, "acme", "calc").await, [3, 2, 1]);
}

#[actix_web::test]
async fn versions_are_listed_newest_first_with_active_flags_page_by_page() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    for seed in 1..=5 {
        app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, seed)).await.assert_status(201);
    }
    app.post_json(As::Key(&acme), &format!("{VERSIONS}/2/activate"), &json!({})).await.assert_status(200);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{VERSIONS}?limit=2&cursor={c}"),
            None => format!("{VERSIONS}?limit=2"),
        };
        let page = app.get(As::Key(&acme), &path).await;
        page.assert_status(200);
        assert!(items(&page).len() <= 2);
        for v in items(&page) {
            seen.push((v["version"].as_i64().unwrap(), v["active"].as_bool().unwrap()));
            assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
        }
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [(5, false), (4, false), (3, false), (2, true), (1, false)]);
    assert_eq!(pages, 3);
    let bad = app.get(As::Key(&acme), &format!("{VERSIONS}?cursor=abc")).await;
    bad.assert_problem(400);
    assert_eq!(bad.body["field"], "cursor");
}

#[actix_web::test]
async fn a_server_without_versions_lists_none() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    let list = app.get(As::Key(&acme), VERSIONS).await;
    list.assert_status(200);
    assert!(items(&list).is_empty());
    assert!(list.body["next_cursor"].is_null());
    app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/nope/versions").await.assert_problem(404);
}

#[actix_web::test]
async fn unknown_zero_and_non_numeric_versions_answer_404() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.server_with_version("acme", "calc", "wasm").await;
    for version in ["2", "0", "-1", "abc", "1.0", "99999999999", "%20"] {
        let read = app.get(As::Key(&acme), &format!("{VERSIONS}/{version}")).await;
        read.assert_problem(404);
        let activate = app.post_json(As::Key(&acme), &format!("{VERSIONS}/{version}/activate"), &json!({})).await;
        activate.assert_problem(404);
    }
    app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/nope/versions/1").await.assert_problem(404);
    app.post_json(As::Key(&acme), "/api/v1/tenants/acme/servers/nope/versions/1/activate", &json!({}))
        .await
        .assert_problem(404);
    app.publish_wasm(As::Key(&acme), "acme", "nope", component_bytes(10, 1)).await.assert_problem(404);
    assert_eq!(active_version(&app, "acme", "calc").await, 1);
    assert_eq!(version_numbers(&app, "acme", "calc").await, [1]);
}

#[actix_web::test]
async fn core_modules_and_random_bytes_are_refused_and_publish_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);

    let mut core = b"\0asm\x01\0\0\0".to_vec();
    core.extend([0u8; 32]);
    let refused = app.publish_wasm(As::Key(&acme), "acme", "calc", core).await;
    refused.assert_problem(400);
    assert!(refused.body["detail"].as_str().unwrap().contains("core WebAssembly module"), "{}", refused.text);

    for bytes in [b"hello world, not wasm at all".to_vec(), (0..=255u8).rev().collect(), Vec::new(), b"\0asm".to_vec()]
    {
        app.publish_wasm(As::Key(&acme), "acme", "calc", bytes).await.assert_problem(400);
    }
    assert!(version_numbers(&app, "acme", "calc").await.is_empty());
    assert!(active_version(&app, "acme", "calc").await.is_null());
    assert_eq!(app.tenant_rows("wasm_components", "acme").await, 0, "refused bytes must not be stored");

    // The next good upload is still version 1: failures leave no gaps.
    let ok = app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, 1)).await;
    ok.assert_status(201);
    assert_eq!(ok.body["version"], 1);
}

#[actix_web::test]
async fn uploads_over_the_limit_answer_413_and_publish_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);

    let header_len = component_bytes(0, 0).len();
    let too_big =
        app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(MAX_UPLOAD - header_len + 1, 9)).await;
    too_big.assert_problem(413);
    let much_too_big = app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(4 * MAX_UPLOAD, 9)).await;
    much_too_big.assert_problem(413);
    assert!(version_numbers(&app, "acme", "calc").await.is_empty());
    assert_eq!(app.tenant_rows("wasm_components", "acme").await, 0);

    // Exactly the limit is fine.
    let bytes = component_bytes(MAX_UPLOAD - header_len, 9);
    let at_limit = app.publish_wasm(As::Key(&acme), "acme", "calc", bytes.clone()).await;
    at_limit.assert_status(201);
    assert_eq!(at_limit.body["version"], 1);
    assert_eq!(at_limit.body["size"], MAX_UPLOAD);
    assert_eq!(at_limit.body["sha256"], sha256_hex(&bytes));
}

#[actix_web::test]
async fn the_body_must_match_the_servers_kind() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    for (slug, kind) in [("calc", "wasm"), ("tools", "container"), ("proxy", "remote")] {
        app.create_server(As::Key(&acme), "acme", slug, kind).await.assert_status(201);
    }
    let wasm_as_json = app.publish_json(As::Key(&acme), "acme", "calc", &stdio_container()).await;
    wasm_as_json.assert_problem(415);
    assert!(wasm_as_json.body["detail"].as_str().unwrap().contains("application/wasm"));
    let path = VERSIONS;
    app.post_raw(As::Key(&acme), path, "application/octet-stream", component_bytes(10, 1)).await.assert_problem(415);
    app.post_raw(As::Key(&acme), path, "", component_bytes(10, 1)).await.assert_problem(415);
    // Parameters and case of the media type do not matter.
    app.post_raw(As::Key(&acme), path, "Application/WASM; charset=binary", component_bytes(10, 1))
        .await
        .assert_status(201);

    for server in ["tools", "proxy"] {
        let reply = app.publish_wasm(As::Key(&acme), "acme", server, component_bytes(10, 1)).await;
        reply.assert_problem(415);
        assert!(reply.body["detail"].as_str().unwrap().contains("application/json"));
        assert!(version_numbers(&app, "acme", server).await.is_empty());
    }
    // A remote spec sent to a container server (and the reverse) is a bad request, not a version.
    app.publish_json(As::Key(&acme), "acme", "tools", &json!({"url": "https://mcp.example.com/mcp"}))
        .await
        .assert_problem(400);
    app.publish_json(As::Key(&acme), "acme", "proxy", &stdio_container()).await.assert_problem(400);
    assert_eq!(version_numbers(&app, "acme", "calc").await, [1]);
    assert!(version_numbers(&app, "acme", "tools").await.is_empty());
    assert!(version_numbers(&app, "acme", "proxy").await.is_empty());
}

#[actix_web::test]
async fn a_container_version_gets_default_limits() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "tools", "container").await.assert_status(201);
    let reply = app.publish_json(As::Key(&acme), "acme", "tools", &stdio_container()).await;
    reply.assert_status(201);
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["kind"], "container");
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["image"], "ghcr.io/acme/tools:1");
    assert_eq!(reply.body["transport"], "stdio");
    assert_eq!(reply.body["limits"], json!({"memory_mb": 256, "cpus": 1.0, "pids": 128}));
    assert_eq!(reply.body["args"], json!([]));
    assert_eq!(reply.body["env"], json!({}));
    assert!(reply.body.get("sha256").is_none());
    let read = app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/tools/versions/1").await;
    assert_eq!(read.body, reply.body);
    assert_eq!(active_version(&app, "acme", "tools").await, 1);

    let full = json!({
        "image": "ghcr.io/acme/tools@sha256:abc",
        "transport": "http",
        "port": 8080,
        "path": "/v1/mcp",
        "command": ["/bin/tools"],
        "args": ["--serve"],
        "env": {"LOG_LEVEL": "debug"},
        "limits": {"memory_mb": 512, "cpus": 0.5, "pids": 64}
    });
    let second = app.publish_json(As::Key(&acme), "acme", "tools", &full).await;
    second.assert_status(201);
    assert_eq!(second.body["version"], 2);
    assert_eq!(second.body["port"], 8080);
    assert_eq!(second.body["path"], "/v1/mcp");
    assert_eq!(second.body["command"], json!(["/bin/tools"]));
    assert_eq!(second.body["args"], json!(["--serve"]));
    assert_eq!(second.body["env"], json!({"LOG_LEVEL": "debug"}));
    assert_eq!(second.body["limits"], json!({"memory_mb": 512, "cpus": 0.5, "pids": 64}));
}

#[actix_web::test]
async fn invalid_container_specs_are_refused_and_publish_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "tools", "container").await.assert_status(201);
    let cases = [
        (json!({"image": "ghcr.io/acme/tools:1", "transport": "http"}), Some("port")),
        (json!({"image": "ghcr.io/acme/tools:1", "transport": "stdio", "port": 8080}), Some("port")),
        (json!({"image": "", "transport": "stdio"}), Some("image")),
        (json!({"image": "bad image", "transport": "stdio"}), Some("image")),
        (json!({"image": "a", "transport": "stdio", "env": {"1BAD": "x"}}), Some("env")),
        (json!({"image": "a", "transport": "http", "port": 80, "path": "/../etc"}), Some("path")),
        (json!({"image": "a", "transport": "stdio", "limits": {"memory_mb": 1}}), Some("limits.memory_mb")),
        (json!({"image": "a", "transport": "stdio", "command": []}), Some("command")),
        (json!({"image": "a", "transport": "carrier-pigeon"}), None),
        (json!({"image": "a", "transport": "stdio", "privileged": true}), None),
        (json!({"image": "a", "transport": "stdio", "limits": {"memory_mb": 256, "gpus": 1}}), None),
        (json!({"transport": "stdio"}), None),
        (json!(["not", "an", "object"]), None),
    ];
    for (spec, field) in cases {
        let reply = app.publish_json(As::Key(&acme), "acme", "tools", &spec).await;
        reply.assert_problem(400);
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{spec}: {}", reply.text);
        }
    }
    let path = "/api/v1/tenants/acme/servers/tools/versions";
    app.post_raw(As::Key(&acme), path, "application/json", b"{\"image\": ".to_vec()).await.assert_problem(400);
    app.post_raw(As::Key(&acme), path, "application/json", b"".to_vec()).await.assert_problem(400);
    let huge = json!({"image": "a", "transport": "stdio", "args": ["x".repeat(17 * 1024)]});
    app.publish_json(As::Key(&acme), "acme", "tools", &huge).await.assert_problem(413);
    assert!(version_numbers(&app, "acme", "tools").await.is_empty());
    assert!(active_version(&app, "acme", "tools").await.is_null());
}

#[actix_web::test]
async fn remote_header_values_are_never_shown() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "proxy", "remote").await.assert_status(201);
    let spec = json!({
        "url": "https://mcp.example.com/mcp",
        "headers": {"Authorization": "Bearer upstream-secret", "X-Team": "upstream-team-id"}
    });
    let reply = app.publish_json(As::Key(&acme), "acme", "proxy", &spec).await;
    reply.assert_status(201);
    assert_eq!(reply.body["kind"], "remote");
    assert_eq!(reply.body["url"], "https://mcp.example.com/mcp");
    assert_eq!(reply.body["headers"], json!(["Authorization", "X-Team"]));
    let versions = "/api/v1/tenants/acme/servers/proxy/versions";
    let reads = [
        reply,
        app.get(As::Key(&acme), versions).await,
        app.get(As::Key(&acme), &format!("{versions}/1")).await,
        app.get(As::Admin, versions).await,
        app.get(As::Admin, &format!("{versions}/1")).await,
        app.get(As::Key(&acme), "/api/v1/tenants/acme/servers/proxy").await,
    ];
    for read in &reads {
        assert!(read.status < 300, "{}", read.text);
        for secret in ["upstream-secret", "upstream-team-id"] {
            assert!(!read.text.contains(secret), "a header value leaked: {}", read.text);
        }
    }
    assert_eq!(items(&reads[1])[0]["headers"], json!(["Authorization", "X-Team"]));
    assert_eq!(reads[2].body["headers"], json!(["Authorization", "X-Team"]));

    // A remote version without headers lists none.
    let bare = app.publish_json(As::Key(&acme), "acme", "proxy", &json!({"url": "https://mcp2.example.com/mcp"})).await;
    bare.assert_status(201);
    assert_eq!(bare.body["headers"], json!([]));
}

#[actix_web::test]
async fn invalid_remote_specs_are_refused_and_publish_nothing() {
    let app = spawn_app().await;
    let (acme, _) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "proxy", "remote").await.assert_status(201);
    let cases = [
        (json!({"url": "ftp://mcp.example.com/mcp"}), Some("url")),
        (json!({"url": "file:///etc/passwd"}), Some("url")),
        (json!({"url": "/relative/mcp"}), Some("url")),
        (json!({"url": "https://user:pw@mcp.example.com/mcp"}), Some("url")),
        (json!({"url": "https://mcp.example.com/mcp", "headers": {"Host": "evil.example.com"}}), Some("headers")),
        (json!({"url": "https://mcp.example.com/mcp", "headers": {"bad name": "x"}}), Some("headers")),
        (json!({"url": "https://mcp.example.com/mcp", "headers": {"X-A": "line\nbreak"}}), Some("headers")),
        (json!({"url": "https://mcp.example.com/mcp", "timeout": 5}), None),
        (json!({"headers": {}}), None),
    ];
    for (spec, field) in cases {
        let reply = app.publish_json(As::Key(&acme), "acme", "proxy", &spec).await;
        reply.assert_problem(400);
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{spec}: {}", reply.text);
        }
    }
    assert!(version_numbers(&app, "acme", "proxy").await.is_empty());
}

#[actix_web::test]
async fn another_tenant_cannot_list_read_publish_or_activate_versions() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, 1)).await.assert_status(201);
    app.publish_wasm(As::Key(&acme), "acme", "calc", component_bytes(10, 2)).await.assert_status(201);
    // globex has a server of the same name, to make sure its slug does not open acme's.
    app.server_with_version("globex", "calc", "wasm").await;
    let before = app.get(As::Key(&acme), VERSIONS).await;

    let missing = app.get(As::Key(&globex), "/api/v1/tenants/initech/servers/calc/versions").await;
    missing.assert_problem(404);
    let replies = [
        app.get(As::Key(&globex), VERSIONS).await,
        app.get(As::Key(&globex), &format!("{VERSIONS}/1")).await,
        app.publish_wasm(As::Key(&globex), "acme", "calc", component_bytes(10, 66)).await,
        app.post_json(As::Key(&globex), &format!("{VERSIONS}/1/activate"), &json!({})).await,
        app.post_raw(
            As::Key(&globex),
            &format!("{VERSIONS}?activate=false"),
            "application/wasm",
            component_bytes(10, 67),
        )
        .await,
    ];
    for reply in &replies {
        reply.assert_problem(404);
        assert_eq!(reply.text, missing.text, "acme's versions must look missing to globex");
    }

    assert_eq!(active_version(&app, "acme", "calc").await, 2);
    let after = app.get(As::Key(&acme), VERSIONS).await;
    assert_eq!(after.body, before.body, "acme's versions changed");
    assert_eq!(version_numbers(&app, "globex", "calc").await, [1]);
    assert_eq!(app.tenant_rows("wasm_components", "acme").await, 2);
    assert_eq!(app.tenant_rows("wasm_components", "globex").await, 1);
}

#[actix_web::test]
async fn scopes_decide_who_reads_publishes_and_activates() {
    let app = spawn_app().await;
    app.two_tenants().await;
    app.server_with_version("acme", "calc", "wasm").await;
    let reader = app.key_with("acme", &["admin:read"]).await;
    let mcp = app.key_with("acme", &["mcp"]).await;
    let publisher = app.key_with("acme", &["publish"]).await;

    app.get(As::Key(&reader), VERSIONS).await.assert_status(200);
    app.get(As::Key(&reader), &format!("{VERSIONS}/1")).await.assert_status(200);
    app.publish_wasm(As::Key(&reader), "acme", "calc", component_bytes(10, 2)).await.assert_problem(403);
    app.post_json(As::Key(&reader), &format!("{VERSIONS}/1/activate"), &json!({})).await.assert_problem(403);

    app.get(As::Key(&mcp), VERSIONS).await.assert_problem(403);
    app.get(As::Key(&mcp), &format!("{VERSIONS}/1")).await.assert_problem(403);
    app.publish_wasm(As::Key(&mcp), "acme", "calc", component_bytes(10, 2)).await.assert_problem(403);
    app.publish_wasm(As::Anonymous, "acme", "calc", component_bytes(10, 2)).await.assert_problem(401);
    assert_eq!(version_numbers(&app, "acme", "calc").await, [1]);

    let published = app.publish_wasm(As::Key(&publisher), "acme", "calc", component_bytes(10, 2)).await;
    published.assert_status(201);
    assert_eq!(published.body["version"], 2);
    app.post_json(As::Key(&publisher), &format!("{VERSIONS}/1/activate"), &json!({})).await.assert_status(200);
    assert_eq!(active_version(&app, "acme", "calc").await, 1);
}

#[actix_web::test]
async fn identical_components_are_stored_once_per_tenant_and_never_shared() {
    let app = spawn_app().await;
    let (acme, globex) = app.two_tenants().await;
    app.create_server(As::Key(&acme), "acme", "calc", "wasm").await.assert_status(201);
    app.create_server(As::Key(&acme), "acme", "calc-copy", "wasm").await.assert_status(201);
    app.create_server(As::Key(&globex), "globex", "calc", "wasm").await.assert_status(201);
    let bytes = component_bytes(4096, 0xAB);
    let sha = sha256_hex(&bytes);

    let first = app.publish_wasm(As::Key(&acme), "acme", "calc", bytes.clone()).await;
    let again = app.publish_wasm(As::Key(&acme), "acme", "calc", bytes.clone()).await;
    let elsewhere = app.publish_wasm(As::Key(&acme), "acme", "calc-copy", bytes.clone()).await;
    for reply in [&first, &again, &elsewhere] {
        reply.assert_status(201);
        assert_eq!(reply.body["sha256"], sha);
        assert_eq!(reply.body["size"], bytes.len());
    }
    assert_eq!(again.body["version"], 2, "the same bytes still make a new version");
    assert_ne!(first.body["id"], again.body["id"]);
    assert_eq!(app.tenant_rows("wasm_components", "acme").await, 1);
    assert_eq!(app.execute("SELECT 1 FROM wasm_components").await, 1);

    let theirs = app.publish_wasm(As::Key(&globex), "globex", "calc", bytes.clone()).await;
    theirs.assert_status(201);
    assert_eq!(theirs.body["sha256"], sha);
    assert_eq!(app.tenant_rows("wasm_components", "acme").await, 1);
    assert_eq!(app.tenant_rows("wasm_components", "globex").await, 1);
    assert_eq!(app.execute("SELECT 1 FROM wasm_components").await, 2, "deduplication must not cross tenants");
    // Cross-check with an UPDATE, which reports the rows it touched.
    assert_eq!(app.execute("UPDATE wasm_components SET size = size").await, 2);
}

#[actix_web::test]
async fn deleting_a_tenant_removes_its_versions_and_components_but_not_the_other_tenants() {
    let app = spawn_app().await;
    let (_, globex) = app.two_tenants().await;
    let bytes = component_bytes(64, 3);
    for tenant in ["acme", "globex"] {
        app.create_server(As::Admin, tenant, "calc", "wasm").await.assert_status(201);
        app.publish_wasm(As::Admin, tenant, "calc", bytes.clone()).await.assert_status(201);
        app.publish_wasm(As::Admin, tenant, "calc", component_bytes(64, 4)).await.assert_status(201);
    }
    app.post_json(As::Admin, "/api/v1/tenants/acme/servers/calc/versions/1/activate", &json!({}))
        .await
        .assert_status(200);
    app.server_with_version("acme", "tools", "container").await;

    app.delete(As::Admin, "/api/v1/tenants/acme").await.assert_status(204);
    assert_eq!(app.execute("SELECT 1 FROM server_versions WHERE kind = 'container'").await, 0);
    assert_eq!(app.tenant_rows("server_versions", "globex").await, 2);
    assert_eq!(app.tenant_rows("wasm_components", "globex").await, 2);
    assert_eq!(app.execute("SELECT 1 FROM wasm_components").await, 2, "acme's components are gone");
    let theirs = app.get(As::Key(&globex), "/api/v1/tenants/globex/servers/calc/versions/1").await;
    theirs.assert_status(200);
    assert_eq!(theirs.body["sha256"], sha256_hex(&bytes));
    assert_eq!(active_version(&app, "globex", "calc").await, 2);
}
