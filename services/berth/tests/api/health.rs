use crate::helpers::{As, spawn_app};

#[actix_web::test]
async fn healthz_answers_ok_and_echoes_a_request_id() {
    let app = spawn_app().await;
    let reply = app.get(As::Anonymous, "/healthz").await;
    reply.assert_status(200);
    assert_eq!(reply.body["status"], "ok");
    assert!(reply.headers.get("x-request-id").is_some_and(|v| !v.is_empty()));
}

#[actix_web::test]
async fn readyz_reports_the_database_reachable() {
    let app = spawn_app().await;
    let reply = app.get(As::Anonymous, "/readyz").await;
    reply.assert_status(200);
    assert_eq!(reply.body["database"], "ok");
}

#[actix_web::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db.pool.close().await;
    let reply = app.get(As::Anonymous, "/readyz").await;
    reply.assert_status(503);
    assert_eq!(reply.body["status"], "unavailable");
}

#[actix_web::test]
async fn metrics_are_prometheus_text_counting_requests() {
    let app = spawn_app().await;
    app.get(As::Anonymous, "/healthz").await.assert_status(200);
    let reply = app.get(As::Anonymous, "/metrics").await;
    reply.assert_status(200);
    assert!(reply.content_type().starts_with("text/plain"));
    assert!(reply.text.contains("berth_http_requests_total"), "{}", reply.text);
    assert!(reply.text.contains("route=\"/healthz\""), "{}", reply.text);
}

#[actix_web::test]
async fn openapi_document_lists_every_admin_path() {
    let app = spawn_app().await;
    let reply = app.get(As::Anonymous, "/api/v1/openapi.json").await;
    reply.assert_status(200);
    assert!(reply.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = reply.body["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant}",
        "/api/v1/tenants/{tenant}/servers",
        "/api/v1/tenants/{tenant}/servers/{server}",
        "/api/v1/tenants/{tenant}/servers/{server}/versions",
        "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}",
        "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}/activate",
        "/api/v1/tenants/{tenant}/api-keys",
        "/api/v1/tenants/{tenant}/api-keys/{id}",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
}

#[actix_web::test]
async fn unknown_admin_paths_answer_a_problem_404() {
    let app = spawn_app().await;
    app.get(As::Admin, "/api/v1/nope").await.assert_problem(404);
}
