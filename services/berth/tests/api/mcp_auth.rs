//! Who may reach a hosted server.

use serde_json::json;

use crate::helpers::As;
use crate::mcp_client::McpApp;

fn init() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}})
}

#[actix_web::test]
async fn a_private_server_needs_a_valid_key_and_says_so_with_a_challenge() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let anonymous = t.post(&url, None, &[], &init()).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let forged = t.post(&url, Some("berth_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), &[], &init()).await;
    assert_eq!(forged.status, 401);
    assert!(forged.headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(t.post(&url, Some(&t.acme), &[], &init()).await.status, 200);
}

#[actix_web::test]
async fn a_key_of_one_tenant_sees_the_other_tenants_servers_as_unknown() {
    let t = McpApp::spawn().await;
    let foreign = t.post(&t.url("globex", "fixture"), Some(&t.acme), &[], &init()).await;
    let missing = t.post(&t.url("acme", "no-such"), Some(&t.acme), &[], &init()).await;
    let no_tenant = t.post(&t.url("initech", "fixture"), Some(&t.acme), &[], &init()).await;
    assert_eq!(foreign.status, 404);
    assert_eq!((foreign.status, &foreign.text), (missing.status, &missing.text));
    assert_eq!((foreign.status, &foreign.text), (no_tenant.status, &no_tenant.text));
    // Anonymous callers cannot tell a private server from a missing one either.
    let private = t.post(&t.url("globex", "fixture"), None, &[], &init()).await;
    let absent = t.post(&t.url("globex", "no-such"), None, &[], &init()).await;
    assert_eq!((private.status, &private.text), (absent.status, &absent.text));
}

#[actix_web::test]
async fn scopes_and_server_restrictions_are_enforced() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let admin_only = t.app.key_with("acme", &["admin"]).await;
    let reply = t.post(&url, Some(&admin_only), &[], &init()).await;
    assert_eq!(reply.status, 403, "an admin key without `mcp` cannot call tools");
    assert!(reply.headers["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    let limited = t.app.create_key(As::Admin, "acme", &json!({"name": "only-open", "servers": ["open"]})).await;
    let limited = limited.body["key"].as_str().unwrap().to_owned();
    assert_eq!(t.post(&url, Some(&limited), &[], &init()).await.status, 403);
    assert_eq!(t.post(&t.url("acme", "open"), Some(&limited), &[], &init()).await.status, 200);
}

#[actix_web::test]
async fn public_servers_take_anonymous_calls() {
    let t = McpApp::spawn().await;
    let reply = t.post(&t.url("acme", "open"), None, &[], &init()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.session().is_some());
}

#[actix_web::test]
async fn revoked_keys_and_disabled_servers_or_tenants_are_refused_within_a_second() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let key = t.app.create_key(As::Admin, "acme", &json!({"name": "soon-revoked"})).await;
    let (id, secret) = (key.body["id"].as_str().unwrap().to_owned(), key.body["key"].as_str().unwrap().to_owned());
    assert_eq!(t.post(&url, Some(&secret), &[], &init()).await.status, 200);
    t.app.delete(As::Admin, &format!("/api/v1/tenants/acme/api-keys/{id}")).await.assert_status(204);
    t.app
        .patch_json(As::Admin, "/api/v1/tenants/acme/servers/open", &json!({"enabled": false}))
        .await
        .assert_status(200);
    t.app.patch_json(As::Admin, "/api/v1/tenants/globex", &json!({"enabled": false})).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(t.post(&url, Some(&secret), &[], &init()).await.status, 401);
    assert_eq!(t.post(&t.url("acme", "open"), None, &[], &init()).await.status, 403);
    assert_eq!(t.post(&t.url("globex", "fixture"), Some(&t.globex), &[], &init()).await.status, 403);
    assert_eq!(t.post(&url, Some(&t.acme), &[], &init()).await.status, 200, "others are unaffected");
}
