//! The legacy era (2025-03-26 … 2025-11-25): sessions, streams, resumption, batches.

use serde_json::{Value, json};

use crate::mcp_client::{McpApp, parse_sse};

#[actix_web::test]
async fn initialize_negotiates_a_version_and_issues_a_visible_ascii_session_id() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    for (asked, got) in [("2025-11-25", "2025-11-25"), ("2025-03-26", "2025-03-26"), ("2024-11-05", "2025-11-25")] {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let reply = t.post(&url, Some(&t.acme), &[], &init).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.result()["protocolVersion"], got);
        assert_eq!(reply.result()["serverInfo"]["name"], "berth-fixture");
        assert!(reply.result().get("resultType").is_none(), "legacy results carry no resultType");
        let session = reply.session().unwrap();
        assert!(session.starts_with("test."), "the id names its node: {session}");
        assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}

#[actix_web::test]
async fn a_session_lists_and_calls_tools_and_answers_ping() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let tools = t.legacy(&url, Some(&t.acme), &session, 1, "tools/list", json!({})).await;
    let names: Vec<&str> =
        tools.result()["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"echo") && names.contains(&"test_simple_text"), "{names:?}");
    let call = t
        .legacy(&url, Some(&t.acme), &session, 2, "tools/call", json!({"name": "echo", "arguments": {"message": "hi"}}))
        .await;
    assert_eq!(call.result()["content"][0]["text"], "hi");
    let ping = t.legacy(&url, Some(&t.acme), &session, 3, "ping", json!({})).await;
    assert_eq!(ping.result(), &json!({}));
    let unknown = t.legacy(&url, Some(&t.acme), &session, 4, "no/such", json!({})).await;
    assert_eq!(unknown.error_code(), -32601);
}

#[actix_web::test]
async fn requests_without_or_with_a_bad_session_are_refused() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let missing = t.post(&url, Some(&t.acme), &[], &body).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    for forged in ["nope", "test.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "other.x.y"] {
        let reply = t.post(&url, Some(&t.acme), &[("mcp-session-id", forged)], &body).await;
        assert_eq!(reply.status, 404, "{forged}: {}", reply.text);
    }
}

#[actix_web::test]
async fn a_session_belongs_to_its_principal_server_and_tenant() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let other_key = t.app.key_with("acme", &["mcp"]).await;
    let stolen = t.legacy(&url, Some(&other_key), &session, 1, "tools/list", json!({})).await;
    assert_eq!(stolen.status, 404, "another key of the same tenant must not use the session");
    let other_server = t.legacy(&t.url("acme", "open"), Some(&t.acme), &session, 1, "tools/list", json!({})).await;
    assert_eq!(other_server.status, 404, "a session is bound to its server");
    let other_tenant =
        t.legacy(&t.url("globex", "fixture"), Some(&t.globex), &session, 1, "tools/list", json!({})).await;
    assert_eq!(other_tenant.status, 404, "another tenant's session id is unknown");
    let mine = t.legacy(&url, Some(&t.acme), &session, 2, "tools/list", json!({})).await;
    assert_eq!(mine.status, 200);
}

#[actix_web::test]
async fn delete_ends_the_session_and_later_requests_get_404() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let deleted =
        t.app.client.delete(&url).bearer_auth(&t.acme).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    let after = t.legacy(&url, Some(&t.acme), &session, 1, "tools/list", json!({})).await;
    assert_eq!(after.status, 404);
}

#[actix_web::test]
async fn batches_are_refused_except_in_2025_03_26() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "b"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]);
    let new = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let refused = t.post(&url, Some(&t.acme), &[("mcp-session-id", &new)], &batch).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.error_code(), -32600);
    let old = t.initialize(&url, Some(&t.acme), "2025-03-26", json!({})).await;
    let answered =
        t.post(&url, Some(&t.acme), &[("mcp-session-id", &old), ("mcp-protocol-version", "2025-03-26")], &batch).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    let responses = answered.last().as_array().unwrap().clone();
    assert_eq!(responses.len(), 2, "one response per request, none for the notification");
    assert!(responses.iter().any(|r| r["id"] == 2 && r["result"]["content"][0]["text"] == "b"));
}

#[actix_web::test]
async fn malformed_messages_get_the_spec_errors_without_a_panic() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let headers = [("mcp-session-id", session.as_str())];
    let raw = |body: &'static str| {
        let request = t
            .app
            .client
            .post(&url)
            .bearer_auth(&t.acme)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(body);
        async move { crate::mcp_client::McpReply::read(request.send().await.unwrap()).await }
    };
    let parse = raw("{not json").await;
    assert_eq!((parse.status, parse.error_code()), (400, -32700));
    let version = t.post(&url, Some(&t.acme), &headers, &json!({"jsonrpc": "1.0", "id": 5, "method": "ping"})).await;
    assert_eq!((version.status, version.error_code()), (400, -32600));
    assert_eq!(version.last()["id"], 5);
    let bad_id =
        t.post(&url, Some(&t.acme), &headers, &json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"})).await;
    assert_eq!((bad_id.status, bad_id.error_code()), (400, -32600));
    let ping = t.legacy(&url, Some(&t.acme), &session, 6, "ping", json!({})).await;
    assert_eq!(ping.status, 200, "the session survives bad input");
}

#[actix_web::test]
async fn wrong_content_type_oversized_bodies_and_foreign_hosts_are_refused() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let text = t
        .app
        .client
        .post(&url)
        .bearer_auth(&t.acme)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status().as_u16(), 415);
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x".repeat(70 * 1024)}});
    assert_eq!(t.post(&url, Some(&t.acme), &[], &huge).await.status, 413);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let host = t.post(&url, Some(&t.acme), &[("host", "evil.example")], &init).await;
    assert_eq!(host.status, 403, "DNS rebinding: foreign Host");
    let origin = t.post(&url, Some(&t.acme), &[("origin", "http://evil.example")], &init).await;
    assert_eq!(origin.status, 403, "foreign Origin");
}

#[actix_web::test]
async fn a_stream_cut_mid_response_resumes_with_last_event_id_losing_and_duplicating_nothing() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let session = t.initialize(&url, Some(&t.acme), "2025-11-25", json!({})).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "p"}}});
    let mut response = t
        .app
        .client
        .post(&url)
        .bearer_auth(&t.acme)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    // Read until the first progress notification has arrived, then drop the connection.
    let mut seen = String::new();
    while !seen.contains("notifications/progress") {
        let chunk = response.chunk().await.unwrap().expect("stream ended early");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let (before, before_ids) = parse_sse(&seen);
    let last_id = before_ids.iter().rev().find_map(Clone::clone).expect("events carry ids");
    let resumed = t
        .app
        .client
        .get(&url)
        .bearer_auth(&t.acme)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 200);
    let (after, after_ids) = parse_sse(&resumed.text().await.unwrap());
    let all: Vec<&Value> = before.iter().chain(after.iter()).collect();
    let progress: Vec<f64> = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(progress, vec![0.0, 50.0, 100.0], "every progress event exactly once, in order");
    assert_eq!(all.iter().filter(|m| m["id"] == 7).count(), 1, "the response exactly once");
    let mut ids: Vec<String> = before_ids.into_iter().chain(after_ids).flatten().collect();
    let count = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), count, "no event delivered twice");
}
