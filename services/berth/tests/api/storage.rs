//! Storage-level invariants checked against the real schema.

use crate::helpers::{As, component_bytes, spawn_app};

#[actix_web::test]
async fn every_table_but_tenants_carries_tenant_id() {
    let app = spawn_app().await;
    let missing = berth_storage::tables_without_tenant_id(&app.db.pool).await.unwrap();
    let missing: Vec<&str> = missing.iter().map(String::as_str).filter(|t| *t != "_sqlx_migrations").collect();
    assert_eq!(missing, vec!["tenants"], "tenant-owned tables must carry tenant_id");
}

#[actix_web::test]
async fn versions_cannot_be_rewritten_in_place() {
    let app = spawn_app().await;
    app.create_tenant("acme").await.assert_status(201);
    app.create_server(As::Admin, "acme", "calc", "wasm").await.assert_status(201);
    app.publish_wasm(As::Admin, "acme", "calc", component_bytes(16, 1)).await.assert_status(201);
    let mut conn = app.db.pool.acquire().await.unwrap();
    let rewrite = berth_storage::testing::execute(&mut conn, "UPDATE server_versions SET number = 7").await;
    assert!(rewrite.is_err(), "an immutable version was rewritten");
    let toggle = berth_storage::testing::execute(&mut conn, "UPDATE server_versions SET enabled = false").await;
    assert!(toggle.is_ok(), "the kill-switch flag must stay writable: {toggle:?}");
}
