//! `/api/v1/tenants/{tenant}/members`: the people who sign in at a tenant's login page.

use serde_json::{Value, json};

use crate::helpers::{As, TestApp, item_field, spawn_app};

pub const PASSWORD: &str = "correct horse battery staple";

/// Adds a member as the platform administrator and returns the reply.
pub async fn add_member(
    app: &TestApp,
    tenant: &str,
    email: &str,
    role: &str,
    password: Option<&str>,
) -> crate::helpers::Reply {
    let mut body = json!({"email": email, "role": role, "display_name": "Test Member"});
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    app.post_json(As::Admin, &format!("/api/v1/tenants/{tenant}/members"), &body).await
}

#[actix_web::test]
async fn members_can_be_added_listed_read_changed_and_removed() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let added = add_member(&app, "acme", "Ada@Example.com", "owner", Some(PASSWORD)).await;
    added.assert_status(201);
    assert_eq!(added.body["email"], "ada@example.com", "emails are stored lowercase");
    assert_eq!(added.body["role"], "owner");
    assert_eq!(added.body["has_password"], true);
    assert!(added.body.get("password").is_none() && added.body.get("password_hash").is_none());
    let id = added.body["id"].as_str().unwrap().to_owned();
    assert!(added.headers["location"].to_str().unwrap().ends_with(&id));
    add_member(&app, "acme", "bob@example.com", "publisher", None).await.assert_status(201);

    let list = app.get(As::Admin, "/api/v1/tenants/acme/members").await;
    list.assert_status(200);
    assert_eq!(item_field(&list, "email"), ["ada@example.com", "bob@example.com"]);
    let page = app.get(As::Admin, "/api/v1/tenants/acme/members?limit=1").await;
    assert_eq!(item_field(&page, "email"), ["ada@example.com"]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = app.get(As::Admin, &format!("/api/v1/tenants/acme/members?limit=1&cursor={cursor}")).await;
    assert_eq!(item_field(&next, "email"), ["bob@example.com"]);

    let path = format!("/api/v1/tenants/acme/members/{id}");
    app.get(As::Admin, &path).await.assert_status(200);
    let bob = item_field(&list, "id")[1].to_owned();
    let changed = app
        .patch_json(
            As::Admin,
            &format!("/api/v1/tenants/acme/members/{bob}"),
            &json!({"role": "admin", "display_name": "Bob"}),
        )
        .await;
    changed.assert_status(200);
    assert_eq!((changed.body["role"].as_str(), changed.body["display_name"].as_str()), (Some("admin"), Some("Bob")));
    let with_password =
        app.patch_json(As::Admin, &format!("/api/v1/tenants/acme/members/{bob}"), &json!({"password": PASSWORD})).await;
    assert_eq!(with_password.body["has_password"], true);

    app.delete(As::Admin, &format!("/api/v1/tenants/acme/members/{bob}")).await.assert_status(204);
    app.get(As::Admin, &format!("/api/v1/tenants/acme/members/{bob}")).await.assert_problem(404);
    assert_eq!(app.tenant_rows("members", "acme").await, 1);
}

#[actix_web::test]
async fn passwords_are_stored_as_argon2id_hashes_only() {
    let app = spawn_app().await;
    app.two_tenants().await;
    add_member(&app, "acme", "ada@example.com", "owner", Some(PASSWORD)).await.assert_status(201);
    let hashed = app
        .execute("SELECT 1 FROM members WHERE email = 'ada@example.com' AND password_hash LIKE '$argon2id$v=19$%'")
        .await;
    assert_eq!(hashed, 1);
    let plain = app.execute(&format!("SELECT 1 FROM members WHERE password_hash LIKE '%{PASSWORD}%'")).await;
    assert_eq!(plain, 0);
}

#[actix_web::test]
async fn bad_members_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let short = add_member(&app, "acme", "ada@example.com", "owner", Some("short")).await;
    short.assert_problem(400);
    assert_eq!(short.body["field"], "password");
    let email = add_member(&app, "acme", "not-an-email", "owner", None).await;
    email.assert_problem(400);
    assert_eq!(email.body["field"], "email");
    let role = add_member(&app, "acme", "ada@example.com", "root", None).await;
    role.assert_problem(400);
    assert_eq!(role.body["field"], "role");
    add_member(&app, "acme", "ada@example.com", "owner", None).await.assert_status(201);
    add_member(&app, "acme", "ADA@example.com", "admin", None).await.assert_problem(409);
    // The same email in another tenant is another person.
    add_member(&app, "globex", "ada@example.com", "owner", None).await.assert_status(201);
    let unknown = app
        .post_json(
            As::Admin,
            "/api/v1/tenants/acme/members",
            &json!({"email": "x@example.com", "role": "owner", "admin": true}),
        )
        .await;
    unknown.assert_problem(400);
}

#[actix_web::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = spawn_app().await;
    app.two_tenants().await;
    let owner = add_member(&app, "acme", "ada@example.com", "owner", None).await;
    let id = owner.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tenants/acme/members/{id}");
    app.patch_json(As::Admin, &path, &json!({"role": "admin"})).await.assert_problem(409);
    app.delete(As::Admin, &path).await.assert_problem(409);
    add_member(&app, "acme", "bob@example.com", "owner", None).await.assert_status(201);
    app.patch_json(As::Admin, &path, &json!({"role": "admin"})).await.assert_status(200);
    app.delete(As::Admin, &path).await.assert_status(204);
}

#[actix_web::test]
async fn members_need_admin_scopes_and_stay_inside_their_tenant() {
    let app = spawn_app().await;
    let (acme_admin, globex_admin) = app.two_tenants().await;
    let added = app
        .post_json(
            As::Key(&acme_admin),
            "/api/v1/tenants/acme/members",
            &json!({"email": "ada@example.com", "role": "owner"}),
        )
        .await;
    added.assert_status(201);
    let id = added.body["id"].as_str().unwrap().to_owned();
    let reader = app.key_with("acme", &["admin:read"]).await;
    app.get(As::Key(&reader), "/api/v1/tenants/acme/members").await.assert_status(200);
    let denied = app
        .post_json(
            As::Key(&reader),
            "/api/v1/tenants/acme/members",
            &json!({"email": "x@example.com", "role": "owner"}),
        )
        .await;
    denied.assert_problem(403);
    let mcp_only = app.key_with("acme", &["mcp"]).await;
    app.get(As::Key(&mcp_only), "/api/v1/tenants/acme/members").await.assert_problem(403);
    // Another tenant's key sees neither the tenant nor the member.
    let foreign = app.get(As::Key(&globex_admin), &format!("/api/v1/tenants/acme/members/{id}")).await;
    let missing =
        app.get(As::Key(&globex_admin), "/api/v1/tenants/initech/members/00000000-0000-0000-0000-000000000000").await;
    foreign.assert_problem(404);
    assert_eq!(foreign.text, missing.text);
    let across = app.get(As::Admin, &format!("/api/v1/tenants/globex/members/{id}")).await;
    across.assert_problem(404);
    let anonymous = app.get(As::Anonymous, "/api/v1/tenants/acme/members").await;
    anonymous.assert_problem(401);
    let _: Value = anonymous.body;
}
