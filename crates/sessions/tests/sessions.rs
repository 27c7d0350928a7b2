//! The session layer driven directly, with the fixture backend behind it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use berth_core::backend::Backend;
use berth_core::{ServerId, TenantId, VersionId};
use berth_protocol::ProtocolVersion;
use berth_protocol::jsonrpc::{Notification, Request, RequestId};
use berth_sessions::{OutKind, Owner, SessionConfig, SessionError, SessionRegistry};
use berth_test_support::fixture::{FixtureBackend, FixtureOptions};
use serde_json::{Map, Value, json};

fn config() -> SessionConfig {
    let mut config = SessionConfig::new("node-a", b"a test secret of some length");
    config.legacy_idle = Duration::from_millis(100);
    config.modern_idle = Duration::from_millis(100);
    config.sweep_interval = Duration::from_millis(25);
    config.max_sessions_per_tenant = 2;
    config
}

fn owner(tenant: TenantId, principal: &str) -> Owner {
    Owner {
        tenant,
        tenant_slug: "acme".into(),
        server: ServerId::new(),
        server_slug: "fixture".into(),
        version: VersionId::new(),
        principal: principal.into(),
    }
}

fn backend() -> Arc<dyn Backend> {
    Arc::new(FixtureBackend::with_options(FixtureOptions {
        watched_interval: Duration::from_millis(30),
        ..FixtureOptions::default()
    }))
}

fn request(id: i64, method: &str, params: Value) -> Request {
    let params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
    Request { id: RequestId::Number(id), method: method.into(), params }
}

#[actix_rt::test]
async fn idle_legacy_sessions_are_reaped_within_the_timeout_plus_one_sweep() {
    let registry = SessionRegistry::new(config());
    let tenant = TenantId::new();
    let handle = registry.initialize(owner(tenant, "k1"), backend(), ProtocolVersion::V2025_11_25, json!({})).unwrap();
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.tenant_sessions(tenant), 1);
    tokio::time::sleep(Duration::from_millis(100 + 25 + 60)).await;
    assert_eq!(registry.len(), 0, "the idle session must be gone");
    assert_eq!(registry.tenant_sessions(tenant), 0);
    assert!(matches!(handle.request(request(1, "ping", json!({}))).await, Err(SessionError::NotFound)));
}

#[actix_rt::test]
async fn a_session_with_an_open_stream_is_kept_and_reaped_once_the_stream_closes() {
    let registry = SessionRegistry::new(config());
    let handle =
        registry.initialize(owner(TenantId::new(), "k1"), backend(), ProtocolVersion::V2025_11_25, json!({})).unwrap();
    let stream = handle.open_stream(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(registry.len(), 1, "a client holding the GET stream is not idle");
    drop(stream);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(registry.len(), 0);
}

#[actix_rt::test]
async fn each_tenant_is_capped_separately() {
    let registry = SessionRegistry::new(config());
    let (acme, globex) = (TenantId::new(), TenantId::new());
    let open = |tenant| registry.initialize(owner(tenant, "k"), backend(), ProtocolVersion::V2025_11_25, json!({}));
    let first = open(acme).unwrap();
    open(acme).unwrap();
    assert_eq!(open(acme).err(), Some(SessionError::TooMany(2)));
    open(globex).expect("another tenant is not affected");
    first.terminate();
    tokio::time::sleep(Duration::from_millis(20)).await;
    open(acme).expect("a slot frees up when a session ends");
}

#[actix_rt::test]
async fn a_cancelled_legacy_request_gets_no_response() {
    let registry = SessionRegistry::new(config());
    let handle =
        registry.initialize(owner(TenantId::new(), "k"), backend(), ProtocolVersion::V2025_11_25, json!({})).unwrap();
    let params = json!({"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": 1}});
    let mut rx = handle.request(request(5, "tools/call", params)).await.unwrap();
    let cancel = json!({"requestId": 5, "reason": "user"}).as_object().cloned().unwrap();
    handle.notify(Notification { method: "notifications/cancelled".into(), params: cancel });
    let mut kinds = Vec::new();
    while let Some(out) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap() {
        kinds.push(out.kind);
    }
    assert!(!kinds.contains(&OutKind::Response), "a cancelled request must not be answered: {kinds:?}");
}

#[actix_rt::test]
async fn subscribed_resource_updates_reach_the_get_stream_with_event_ids() {
    let registry = SessionRegistry::new(config());
    let handle =
        registry.initialize(owner(TenantId::new(), "k"), backend(), ProtocolVersion::V2025_11_25, json!({})).unwrap();
    let mut stream = handle.open_stream(None).await.unwrap();
    let mut sub =
        handle.request(request(1, "resources/subscribe", json!({"uri": "test://watched-resource"}))).await.unwrap();
    while sub.recv().await.is_some() {}
    let mut updates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while updates < 2 {
        let out = tokio::time::timeout_at(deadline, stream.recv()).await.expect("updates arrive").unwrap();
        if out.json.contains("notifications/resources/updated") {
            assert!(out.json.contains("test://watched-resource"));
            assert!(out.event_id.is_some(), "GET stream events carry ids");
            updates += 1;
        }
    }
}

#[actix_rt::test]
async fn legacy_sessions_answer_only_their_owner() {
    let registry = SessionRegistry::new(config());
    let me = owner(TenantId::new(), "k1");
    let handle = registry.initialize(me.clone(), backend(), ProtocolVersion::V2025_11_25, json!({})).unwrap();
    let id = handle.id().unwrap().to_owned();
    assert!(registry.legacy(&id, &me).is_ok());
    let other_key = Owner { principal: "k2".into(), ..me.clone() };
    assert_eq!(registry.legacy(&id, &other_key).err(), Some(SessionError::NotFound));
    let other_server = Owner { server: ServerId::new(), ..me.clone() };
    assert_eq!(registry.legacy(&id, &other_server).err(), Some(SessionError::NotFound));
    let forged = format!("{id}x");
    assert_eq!(registry.legacy(&forged, &me).err(), Some(SessionError::NotFound));
    let other_node = SessionRegistry::new(SessionConfig::new("node-b", b"another node's secret"));
    assert_eq!(other_node.legacy(&id, &me).err(), Some(SessionError::NotFound));
}

#[actix_rt::test]
async fn modern_sessions_are_shared_by_one_principal_and_expire_when_idle() {
    let registry = SessionRegistry::new(config());
    let me = owner(TenantId::new(), "k1");
    let first = registry.modern(&me, backend).unwrap();
    let again = registry.modern(&me, backend).unwrap();
    assert!(first.is_alive() && again.is_alive());
    assert_eq!(registry.len(), 1, "one session per (tenant, server, version, principal)");
    registry.modern(&Owner { principal: "k2".into(), ..me.clone() }, backend).unwrap();
    assert_eq!(registry.len(), 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(registry.len(), 0);
}
