//! The modern era (2026-07-28): stateless requests, header checks, MRTR.

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::test_settings;
use crate::mcp_client::{McpApp, modern_meta};

#[actix_web::test]
async fn discover_lists_versions_capabilities_and_cache_hints() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let reply = t.modern(&url, Some(&t.acme), json!("d-1"), "server/discover", json!({}), json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.last()["id"], "d-1", "string ids are echoed");
    let result = reply.result();
    assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "private");
    assert!(result["ttlMs"].as_u64().is_some());
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "berth-fixture");
}

#[actix_web::test]
async fn tools_are_listed_and_called_statelessly() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let list = t.modern(&url, Some(&t.acme), json!(1), "tools/list", json!({}), json!({})).await;
    assert_eq!(list.result()["resultType"], "complete");
    assert!(list.result()["ttlMs"].is_u64());
    let call = t
        .modern(
            &url,
            Some(&t.acme),
            json!(2),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
            json!({}),
        )
        .await;
    assert_eq!(call.status, 200, "{}", call.text);
    assert_eq!(call.result()["resultType"], "complete");
    assert!(call.result()["content"][0]["text"].as_str().unwrap().contains('5'));
    assert!(call.session().is_none(), "modern responses carry no session id");
}

#[actix_web::test]
async fn header_body_mismatches_and_bad_envelopes_are_400_with_the_request_id() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let body = |meta: Value| json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}, "_meta": meta}});
    let good = modern_meta(json!({}));
    type Case<'a> = (Vec<(&'a str, &'a str)>, Value, i64);
    let cases: Vec<Case<'_>> = vec![
        (vec![("mcp-protocol-version", "2026-07-28"), ("mcp-name", "echo")], body(good.clone()), -32020),
        (vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call")], body(good.clone()), -32020),
        (
            vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "other")],
            body(good.clone()),
            -32020,
        ),
        (
            vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list"), ("mcp-name", "echo")],
            body(good.clone()),
            -32020,
        ),
        (vec![("mcp-method", "tools/call"), ("mcp-name", "echo")], body(good.clone()), -32020),
        (
            vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
            body(
                json!({"io.modelcontextprotocol/protocolVersion": "2025-11-25", "io.modelcontextprotocol/clientCapabilities": {}}),
            ),
            -32020,
        ),
        (
            vec![("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
            body(
                json!({"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}),
            ),
            -32022,
        ),
        (
            vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
            body(json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"})),
            -32602,
        ),
    ];
    for (headers, body, code) in cases {
        let reply = t.post(&url, Some(&t.acme), &headers, &body).await;
        assert_eq!(reply.status, 400, "{headers:?}: {}", reply.text);
        assert_eq!(reply.error_code(), code, "{headers:?}: {}", reply.text);
        assert_eq!(reply.last()["id"], 9, "errors carry the request id");
    }
    let unsupported = t
        .post(
            &url,
            Some(&t.acme),
            &[("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/call"), ("mcp-name", "echo")],
            &body(json!({"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}})),
        )
        .await;
    assert_eq!(unsupported.last()["error"]["data"]["requested"], "2099-01-01");
    assert_eq!(unsupported.last()["error"]["data"]["supported"], json!(["2026-07-28"]));
}

#[actix_web::test]
async fn removed_and_unknown_methods_are_404_method_not_found() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    for method in ["initialize", "ping", "logging/setLevel", "resources/subscribe", "no/such"] {
        let params = if method == "initialize" {
            json!({"protocolVersion": "2026-07-28", "capabilities": {}})
        } else {
            json!({})
        };
        let reply = t.modern(&url, Some(&t.acme), json!(3), method, params, json!({})).await;
        assert_eq!(reply.status, 404, "{method}: {}", reply.text);
        assert_eq!(reply.error_code(), -32601, "{method}");
        assert_eq!(reply.last()["id"], 3);
    }
}

#[actix_web::test]
async fn batches_and_the_get_stream_do_not_exist_in_the_modern_era() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let batch =
        json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta(json!({}))}}]);
    let reply = t
        .post(&url, Some(&t.acme), &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")], &batch)
        .await;
    assert_eq!(reply.status, 400);
    let get =
        t.app.client.get(&url).bearer_auth(&t.acme).header("mcp-protocol-version", "2026-07-28").send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[actix_web::test]
async fn logs_and_progress_go_only_to_requests_that_asked_for_them() {
    let t = McpApp::spawn().await;
    let url = t.url("acme", "fixture");
    let quiet = t
        .modern(
            &url,
            Some(&t.acme),
            json!(1),
            "tools/call",
            json!({"name": "test_tool_with_logging", "arguments": {}}),
            json!({}),
        )
        .await;
    assert!(
        quiet.messages.iter().all(|m| m["method"] != "notifications/message"),
        "no logs without logLevel: {}",
        quiet.text
    );
    let mut params = json!({"name": "test_tool_with_logging", "arguments": {}});
    params["_meta"] = modern_meta(json!({}));
    params["_meta"]["io.modelcontextprotocol/logLevel"] = json!("debug");
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params});
    let headers =
        [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "test_tool_with_logging")];
    let loud = t.post(&url, Some(&t.acme), &headers, &body).await;
    assert!(loud.content_type.starts_with("text/event-stream"), "{}", loud.text);
    assert!(loud.messages.iter().any(|m| m["method"] == "notifications/message"), "{}", loud.text);
    assert_eq!(loud.result()["resultType"], "complete");
}

async fn elicit(t: &McpApp, token: &str, id: i64, extra: Value) -> crate::mcp_client::McpReply {
    let mut params = json!({"name": "test_elicitation", "arguments": {"message": "Who are you?"}});
    if let Value::Object(map) = extra {
        for (k, v) in map {
            params[k] = v;
        }
    }
    t.modern(&t.url("acme", "fixture"), Some(token), json!(id), "tools/call", params, json!({"elicitation": {}})).await
}

#[actix_web::test]
async fn input_required_results_carry_sealed_state_and_complete_on_retry() {
    let t = McpApp::spawn().await;
    let first = elicit(&t, &t.acme, 1, json!({})).await;
    let result = first.result();
    assert_eq!(result["resultType"], "input_required", "{}", first.text);
    let requests = result["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1);
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create");
    let state = result["requestState"].as_str().unwrap().to_owned();
    let answer = json!({"action": "accept", "content": {"name": "octocat"}});
    let retry = elicit(&t, &t.acme, 2, json!({"requestState": state, "inputResponses": {key: answer}})).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.result()["resultType"], "complete", "{}", retry.text);

    // Tampered, foreign-principal and wrong-request states are refused.
    let mut tampered = state.clone();
    tampered.insert(3, if state.as_bytes()[3] == b'A' { 'B' } else { 'A' });
    let reply = elicit(&t, &t.acme, 3, json!({"requestState": tampered, "inputResponses": {key: answer}})).await;
    assert_eq!(reply.error_code(), -32602, "{}", reply.text);
    let other_key = t.app.key_with("acme", &["mcp"]).await;
    let stolen = elicit(&t, &other_key, 4, json!({"requestState": state, "inputResponses": {key: answer}})).await;
    assert_eq!(stolen.error_code(), -32602, "state is bound to its principal: {}", stolen.text);
    let mut other_args = json!({"name": "test_elicitation", "arguments": {"message": "Something else"}});
    other_args["requestState"] = json!(state);
    let moved = t
        .modern(
            &t.url("acme", "fixture"),
            Some(&t.acme),
            json!(5),
            "tools/call",
            other_args,
            json!({"elicitation": {}}),
        )
        .await;
    assert_eq!(moved.error_code(), -32602, "state is bound to its request: {}", moved.text);
}

#[actix_web::test]
async fn a_client_without_the_capability_gets_missing_capability() {
    let t = McpApp::spawn().await;
    let reply = t
        .modern(
            &t.url("acme", "fixture"),
            Some(&t.acme),
            json!(1),
            "tools/call",
            json!({"name": "test_elicitation", "arguments": {"message": "hi"}}),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.error_code(), -32021);
}

#[actix_web::test]
async fn request_state_sealed_before_a_secret_rotation_opens_while_the_old_secret_is_previous() {
    let t = McpApp::spawn().await;
    let rotated = format!("test-secret-rotated-{}", uuid::Uuid::new_v4());
    let fixture = || Arc::new(berth_test_support::fixture::FixtureResolver::new());
    // This node restarted with a new secret, the old one kept as previous; and once the
    // rotation is over, with the new secret alone.
    let mut rotating = test_settings();
    rotating.secret_key_previous = Some(SecretString::from(t.app.secret_key.clone()));
    let during = t.app.sibling(&rotating, fixture(), &rotated).await;
    let after = t.app.sibling(&test_settings(), fixture(), &rotated).await;
    let answer = json!({"action": "accept", "content": {"name": "octocat"}});
    let call = |base: &str, tenant: &str, extra: Value| {
        let mut params = json!({"name": "test_elicitation", "arguments": {"message": "Who are you?"}});
        if let Value::Object(map) = extra {
            for (k, v) in map {
                params[k] = v;
            }
        }
        (format!("{base}/t/{tenant}/fixture/mcp"), params)
    };
    for (tenant, token) in [("acme", t.acme.clone()), ("globex", t.globex.clone())] {
        let (url, params) = call(&t.app.address, tenant, json!({}));
        let first = t.modern(&url, Some(&token), json!(1), "tools/call", params, json!({"elicitation": {}})).await;
        let result = first.result();
        assert_eq!(result["resultType"], "input_required", "{}", first.text);
        let key = result["inputRequests"].as_object().unwrap().keys().next().unwrap().clone();
        let retry = json!({"requestState": result["requestState"], "inputResponses": {&key: answer}});

        let (url, params) = call(&after, tenant, retry.clone());
        let refused = t.modern(&url, Some(&token), json!(2), "tools/call", params, json!({"elicitation": {}})).await;
        assert_eq!(refused.error_code(), -32602, "the new secret alone opens nothing older: {}", refused.text);

        let (url, params) = call(&during, tenant, retry);
        let done = t.modern(&url, Some(&token), json!(3), "tools/call", params, json!({"elicitation": {}})).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.result()["resultType"], "complete", "{tenant}: {}", done.text);
    }
}
