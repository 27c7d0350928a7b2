//! The sandbox against real components: the hostile guest (`examples/hostile`), whose tools
//! each misbehave, and small components written in the WebAssembly text format.
//!
//! Every misbehaviour must fail only its own call, with a clear error, and leave the runtime
//! serving the next call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code fails loudly

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use berth_core::backend::{Backend, BackendError, BackendRequest, Notice, Peer};
use berth_protocol::jsonrpc::code;
use berth_protocol::{LogLevel, RpcError};
use berth_runtime_wasm::{Error, LoadedComponent, ReadyStats, ServerSpec, WasmRuntime, WasmServer, WasmSettings};
use berth_test_support::ScriptedPeer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_millis(300);
const MEMORY: usize = 32 * 1024 * 1024;
const OUTPUT: usize = 1024 * 1024;

fn hostile() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = berth_test_support::guests::guest("berth_example_hostile");
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    })
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiled components shared by the tests (and kept between runs), so each test does not
/// compile the hostile component again.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("berth-wasm-cache")
}

fn settings() -> WasmSettings {
    WasmSettings {
        cache_dir: Some(shared_cache()),
        max_memory_bytes: MEMORY,
        call_timeout: TIMEOUT,
        max_output_bytes: OUTPUT,
        max_instances: 8,
        ready_instances: 32,
        egress_private_networks: Vec::new(),
    }
}

fn runtime() -> WasmRuntime {
    WasmRuntime::new(settings()).expect("runtime")
}

async fn load(runtime: &WasmRuntime) -> Arc<LoadedComponent> {
    let bytes = hostile();
    runtime.load(&sha256(bytes), bytes).await.expect("the hostile component loads")
}

async fn hostile_server(spec: ServerSpec) -> (WasmRuntime, Arc<WasmServer>) {
    hostile_server_in(runtime(), spec).await
}

async fn hostile_server_in(runtime: WasmRuntime, spec: ServerSpec) -> (WasmRuntime, Arc<WasmServer>) {
    let component = load(&runtime).await;
    let server = runtime.wasm_server(component, spec);
    (runtime, server)
}

fn request(method: &str, params: Value) -> BackendRequest {
    let Value::Object(params) = params else { panic!("params must be an object") };
    BackendRequest { method: method.to_owned(), params }
}

async fn call(server: &WasmServer, tool: &str, arguments: Value) -> Result<Value, BackendError> {
    let peer: Arc<dyn Peer> = ScriptedPeer::modern().shared();
    server.handle(request("tools/call", json!({ "name": tool, "arguments": arguments })), peer).await
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text content in {result}"))
}

fn internal_message(outcome: Result<Value, BackendError>) -> String {
    match outcome {
        Err(BackendError::Rpc(RpcError { code: code::INTERNAL_ERROR, message, .. })) => message,
        other => panic!("expected an internal error, got {other:?}"),
    }
}

async fn assert_still_fine(server: &WasmServer) {
    let result = call(server, "ok", json!({})).await.expect("the next call works");
    assert_eq!(text(&result), "fine");
}

// --- validation ---------------------------------------------------------------------------

fn invalid(outcome: Result<(), Error>) -> String {
    match outcome {
        Err(Error::Invalid(message)) => message,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn validate_accepts_the_hostile_component() {
    runtime().validate(hostile()).expect("valid");
}

#[test]
fn validate_rejects_a_core_module() {
    let module = wat::parse_str("(module (func (export \"f\")))").unwrap();
    let message = invalid(runtime().validate(&module));
    assert!(message.contains("core WebAssembly module, not a component"), "{message}");
}

#[test]
fn validate_rejects_random_bytes() {
    let message = invalid(runtime().validate(b"\x7fELF\x02\x01\x01 definitely not wasm"));
    assert!(message.contains("not a WebAssembly component"), "{message}");
    let message = invalid(runtime().validate(b""));
    assert!(message.contains("not a WebAssembly component"), "{message}");
}

#[test]
fn validate_rejects_a_component_that_does_not_export_the_world() {
    let empty = wat::parse_str("(component)").unwrap();
    let message = invalid(runtime().validate(&empty));
    assert_eq!(message, "the component does not export berth:mcp/server@0.1.0");
}

/// A component exporting `berth:mcp/server@0.1.0` with the given function names, all of type
/// `func()` (the wrong type for every one of them).
fn server_with(functions: &[&str]) -> Vec<u8> {
    let exports: String = functions.iter().map(|f| format!("(export \"{f}\" (func $f))")).collect();
    wat::parse_str(format!(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $server {exports})
            (export "berth:mcp/server@0.1.0" (instance $server))
        )"#
    ))
    .unwrap()
}

#[test]
fn validate_names_the_missing_exports() {
    let message = invalid(runtime().validate(&server_with(&[
        "info",
        "list-tools",
        "list-resources",
        "list-resource-templates",
        "read-resource",
        "list-prompts",
        "get-prompt",
        "complete",
    ])));
    assert_eq!(message, "missing export `call-tool` in berth:mcp/server@0.1.0");
    let message = invalid(runtime().validate(&server_with(&["info"])));
    assert!(message.starts_with("missing exports `list-tools`, `call-tool`"), "{message}");
}

#[test]
fn validate_rejects_exports_of_the_wrong_type() {
    let message = invalid(runtime().validate(&server_with(&[
        "info",
        "list-tools",
        "call-tool",
        "list-resources",
        "list-resource-templates",
        "read-resource",
        "list-prompts",
        "get-prompt",
        "complete",
    ])));
    assert!(
        message.starts_with("`info` in berth:mcp/server@0.1.0 has the wrong type: expected func() -> record"),
        "{message}"
    );
    assert!(message.ends_with("found func()"), "{message}");
}

#[test]
fn validate_rejects_socket_and_unknown_imports() {
    let sockets = wat::parse_str(r#"(component (import "wasi:sockets/tcp@0.2.0" (instance)))"#).unwrap();
    let message = invalid(runtime().validate(&sockets));
    assert!(message.starts_with("import `wasi:sockets/tcp@0.2.0` is not available to Berth servers"), "{message}");
    let other = wat::parse_str(r#"(component (import "acme:secrets/vault@1.0.0" (instance)))"#).unwrap();
    let message = invalid(runtime().validate(&other));
    assert_eq!(message, "import `acme:secrets/vault@1.0.0` is not available to Berth servers");
}

#[tokio::test]
async fn load_refuses_bytes_that_do_not_match_their_hash() {
    let runtime = runtime();
    let bytes = hostile();
    let wrong = sha256(b"something else");
    match runtime.load(&wrong, bytes).await {
        Err(Error::Invalid(message)) => assert!(message.contains("SHA-256"), "{message}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

// --- the backend --------------------------------------------------------------------------

#[tokio::test]
async fn a_loaded_component_describes_itself_and_is_cached_in_memory() {
    let runtime = runtime();
    let first = load(&runtime).await;
    let second = load(&runtime).await;
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(first.name(), "hostile");
    let server = runtime.server(first, ServerSpec::default());
    let description = server.describe();
    assert_eq!(description.name, "hostile");
    assert_eq!(description.version, "0.1.0");
    assert!(description.instructions.as_deref().is_some_and(|i| i.contains("misbehaves")));
    assert_eq!(
        description.capabilities,
        json!({"tools":{"listChanged":false},"resources":{"subscribe":false,"listChanged":false},"prompts":{"listChanged":false},"completions":{},"logging":{}})
    );
}

#[tokio::test]
async fn tools_are_listed_and_called() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let peer: Arc<dyn Peer> = ScriptedPeer::modern().shared();
    let listed = server.handle(request("tools/list", json!({})), peer).await.unwrap();
    let names: Vec<&str> = listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"ok") && names.contains(&"spin") && names.contains(&"egress"), "{names:?}");
    assert_eq!(listed["tools"][0]["inputSchema"], json!({"type": "object"}));
    assert_still_fine(&server).await;
}

#[tokio::test]
async fn unknown_methods_and_tools_are_errors() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let peer: Arc<dyn Peer> = ScriptedPeer::modern().shared();
    let outcome = server.handle(request("tasks/list", json!({})), peer).await;
    assert!(matches!(outcome, Err(BackendError::Rpc(RpcError { code: code::METHOD_NOT_FOUND, .. }))), "{outcome:?}");
    let outcome = call(&server, "no-such-tool", json!({})).await;
    assert!(matches!(outcome, Err(BackendError::Rpc(RpcError { code: code::INVALID_PARAMS, .. }))), "{outcome:?}");
}

#[tokio::test]
async fn missing_resources_answer_per_era() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let modern: Arc<dyn Peer> = ScriptedPeer::modern().shared();
    let outcome = server.handle(request("resources/read", json!({"uri": "x://nope"})), modern).await;
    assert_eq!(outcome, Err(BackendError::Rpc(RpcError::resource_not_found("x://nope", true))));
    let legacy: Arc<dyn Peer> = ScriptedPeer::legacy().shared();
    let outcome = server.handle(request("resources/read", json!({"uri": "x://nope"})), legacy).await;
    assert_eq!(outcome, Err(BackendError::Rpc(RpcError::resource_not_found("x://nope", false))));
}

// --- hostile guests -----------------------------------------------------------------------

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline_and_the_next_call_works() {
    let (runtime, server) = hostile_server(ServerSpec::default()).await;
    let started = Instant::now();
    let message = internal_message(call(&server, "spin", json!({})).await);
    let elapsed = started.elapsed();
    assert_eq!(message, "the server exceeded its 300 ms time limit");
    assert!(elapsed >= TIMEOUT && elapsed < TIMEOUT * 5, "stopped after {elapsed:?}");
    // The spin burnt CPU, and it was counted. How much depends on how busy the machine is
    // (a loaded CI host gave it 62 ms of its 300 ms), so only a floor well above noise is checked.
    assert!(server.cpu_total() >= Duration::from_millis(20), "cpu {:?}", server.cpu_total());
    assert!(runtime.usage().cpu >= server.cpu_total());
    assert_still_fine(&server).await;
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn a_guest_blocked_in_the_host_is_stopped_at_the_deadline() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let started = Instant::now();
    let message = internal_message(call(&server, "sleep", json!({})).await);
    let elapsed = started.elapsed();
    assert_eq!(message, "the server exceeded its 300 ms time limit");
    assert!(elapsed >= TIMEOUT && elapsed < TIMEOUT * 5, "stopped after {elapsed:?}");
    assert_still_fine(&server).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_does_not_starve_its_thread() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let spinner = server.clone();
    let spin = tokio::spawn(async move {
        let outcome = call(&spinner, "spin", json!({})).await;
        (outcome, Instant::now())
    });
    // Let the spinner start, then call `ok` on the same (only) thread.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let fine = call(&server, "ok", json!({})).await.expect("ok works while another call spins");
    let fine_at = Instant::now();
    assert_eq!(text(&fine), "fine");
    let (outcome, spin_ended) = spin.await.unwrap();
    assert!(outcome.is_err());
    assert!(fine_at < spin_ended, "`ok` waited for the spinning call to end");
}

#[tokio::test]
async fn a_memory_bomb_is_capped_and_the_next_call_works() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let message = internal_message(call(&server, "bomb", json!({})).await);
    assert_eq!(message, "the server ran out of memory (32 MiB limit)");
    assert_still_fine(&server).await;
}

#[tokio::test]
async fn unbounded_recursion_traps_cleanly() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let message = internal_message(call(&server, "recurse", json!({})).await);
    assert!(message.starts_with("the server crashed: stack overflow"), "{message}");
    assert_still_fine(&server).await;
}

#[tokio::test]
async fn a_panic_is_reported_as_a_crash() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let message = internal_message(call(&server, "trap", json!({})).await);
    assert!(message.starts_with("the server crashed: "), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert_still_fine(&server).await;
}

#[tokio::test]
async fn a_huge_response_is_refused() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let message = internal_message(call(&server, "huge", json!({})).await);
    assert_eq!(message, format!("the server's response exceeded {OUTPUT} bytes"));
    assert_still_fine(&server).await;
}

#[tokio::test]
async fn a_flood_of_stdout_is_captured_within_bounds() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let result = call(&server, "shout", json!({})).await.expect("writing past the capture limit is harmless");
    assert_eq!(text(&result), "shouted");
}

/// A loopback HTTP server answering `hello` to every request, counting connections and keeping
/// the head of each request it read.
async fn local_http() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, kept) = (connections.clone(), heads.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                kept.lock().unwrap().push(String::from_utf8_lossy(&request).into_owned());
                let _ =
                    socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello").await;
            });
        }
    });
    (port, connections, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_to_a_host_off_the_allowlist_is_refused() {
    let (port, connections, _) = local_http().await;
    let spec = ServerSpec { egress: vec!["api.example.com".into(), "*.example.org".into()], ..ServerSpec::default() };
    let (_runtime, server) = hostile_server(spec).await;
    let result = call(&server, "egress", json!({"url": format!("http://127.0.0.1:{port}/")})).await.unwrap();
    assert!(text(&result).contains("HttpRequestDenied"), "{}", text(&result));
    let result = call(&server, "egress", json!({"url": format!("http://localhost:{port}/")})).await.unwrap();
    assert!(text(&result).contains("HttpRequestDenied"), "{}", text(&result));
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a refused request reached the listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_to_an_allowed_host_at_a_non_public_address_is_refused() {
    let (port, connections, _) = local_http().await;
    // The tenant's allowlist names loopback, directly and through names; the operator named no
    // private network, so none of it is reached.
    let spec = ServerSpec {
        egress: vec!["127.0.0.1".into(), "localhost".into(), "[::ffff:127.0.0.1]".into()],
        ..ServerSpec::default()
    };
    let (_runtime, server) = hostile_server(spec).await;
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("https://localhost:{port}/"),
    ] {
        let result = call(&server, "egress", json!({ "url": url })).await.unwrap();
        assert!(text(&result).contains("DestinationIpProhibited"), "{url}: {}", text(&result));
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a refused request reached the listener");
    assert_still_fine(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_to_an_allowed_host_goes_through() {
    let (port, connections, heads) = local_http().await;
    let spec = ServerSpec { egress: vec!["127.0.0.1".into()], ..ServerSpec::default() };
    // Loopback is reachable only because the operator names it.
    let runtime =
        WasmRuntime::new(WasmSettings { egress_private_networks: vec!["127.0.0.1/32".parse().unwrap()], ..settings() })
            .expect("runtime");
    let (_runtime, server) = hostile_server_in(runtime, spec).await;
    let result = call(&server, "egress", json!({"url": format!("http://127.0.0.1:{port}/hi")})).await.unwrap();
    assert_eq!(text(&result), "status 200: hello");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /hi http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")), "{head}");

    // https goes through TLS: a listener answering plain HTTP at once fails the handshake.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = plain.accept().await {
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let result = call(&server, "egress", json!({"url": format!("https://127.0.0.1:{plain_port}/")})).await.unwrap();
    assert_eq!(text(&result), "error: ErrorCode::TlsProtocolError");
    assert_still_fine(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sends_a_bounded_number_of_requests() {
    let (port, connections, _) = local_http().await;
    let spec = ServerSpec { egress: vec!["127.0.0.1".into()], ..ServerSpec::default() };
    let runtime = WasmRuntime::new(WasmSettings {
        egress_private_networks: vec!["127.0.0.1/32".parse().unwrap()],
        call_timeout: Duration::from_secs(5),
        ..settings()
    })
    .expect("runtime");
    let (_runtime, server) = hostile_server_in(runtime, spec).await;
    let url = format!("http://127.0.0.1:{port}/");
    let result = call(&server, "swarm", json!({"url": url, "count": "80"})).await.unwrap();
    assert_eq!(text(&result), "64 answered; 16 x error: ErrorCode::ConnectionLimitReached");
    assert_eq!(connections.load(Ordering::SeqCst), 64);
    // The share is per call.
    let result = call(&server, "swarm", json!({"url": url, "count": "3"})).await.unwrap();
    assert_eq!(text(&result), "3 answered; ");
}

#[tokio::test]
async fn each_server_sees_only_its_own_config_and_secrets() {
    let runtime = runtime();
    let component = load(&runtime).await;
    let spec = |value: &str, secret: &str| ServerSpec {
        config: BTreeMap::from([("key".to_owned(), value.to_owned())]),
        secrets: BTreeMap::from([("key".to_owned(), secret.to_owned())]),
        egress: Vec::new(),
    };
    let a = runtime.wasm_server(component.clone(), spec("a-value", "a-secret"));
    let b = runtime.wasm_server(component.clone(), spec("b-value", "b-secret"));
    let bare = runtime.wasm_server(component, ServerSpec::default());
    let seen = |result: Value| result["structuredContent"].clone();
    assert_eq!(
        seen(call(&a, "config", json!({"key": "key"})).await.unwrap()),
        json!({"config": "a-value", "secret": "a-secret"})
    );
    assert_eq!(
        seen(call(&b, "config", json!({"key": "key"})).await.unwrap()),
        json!({"config": "b-value", "secret": "b-secret"})
    );
    assert_eq!(
        seen(call(&bare, "config", json!({"key": "key"})).await.unwrap()),
        json!({"config": null, "secret": null})
    );
}

#[tokio::test]
async fn no_state_survives_between_calls_or_servers() {
    let runtime = runtime();
    let component = load(&runtime).await;
    let a = runtime.wasm_server(component.clone(), ServerSpec::default());
    let b = runtime.wasm_server(component, ServerSpec::default());
    let previous = |result: Value| result["structuredContent"]["previous"].clone();
    assert_eq!(previous(call(&a, "remember", json!({"value": "a-secret"})).await.unwrap()), Value::Null);
    assert_eq!(previous(call(&b, "remember", json!({"value": "b"})).await.unwrap()), Value::Null);
    assert_eq!(previous(call(&a, "remember", json!({"value": "again"})).await.unwrap()), Value::Null);
}

#[tokio::test]
async fn a_guest_sees_no_environment_arguments_or_files() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let result = call(&server, "snoop", json!({})).await.unwrap();
    assert_eq!(result["structuredContent"], json!({"env": [], "args": [], "found": []}));
}

// --- the compilation cache ----------------------------------------------------------------

#[tokio::test]
async fn a_second_runtime_loads_from_the_disk_cache_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let cached = || WasmSettings { cache_dir: Some(dir.path().to_path_buf()), ..settings() };
    let bytes = hostile();

    let first = WasmRuntime::new(cached()).unwrap();
    first.load(&sha256(bytes), bytes).await.unwrap();
    assert_eq!(first.cache_stats().hits, 0);
    assert_eq!(first.cache_stats().misses, 1);
    drop(first);

    let second = WasmRuntime::new(cached()).unwrap();
    let component = second.load(&sha256(bytes), bytes).await.unwrap();
    assert_eq!(second.cache_stats().hits, 1);
    assert_eq!(second.cache_stats().misses, 0);
    let server = second.wasm_server(component, ServerSpec::default());
    assert_still_fine(&server).await;
}

// --- the client bridge --------------------------------------------------------------------

async fn ask(server: &WasmServer, peer: Arc<ScriptedPeer>) -> Result<Value, BackendError> {
    server.handle(request("tools/call", json!({ "name": "ask" })), peer).await
}

#[tokio::test]
async fn client_imports_reach_the_peer_of_the_call() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let peer = ScriptedPeer::modern().answer("confirm", json!({"action": "accept"})).shared();
    let result = ask(&server, peer.clone()).await.unwrap();
    assert_eq!(result["structuredContent"]["answer"], json!({"action": "accept"}));
    assert_eq!(result["structuredContent"]["capabilities"], *peer.client_capabilities());
    assert_eq!(
        peer.notices(),
        vec![
            Notice::Log { level: LogLevel::Info, logger: Some("hostile".into()), data: json!({"msg": "asking"}) },
            Notice::Log { level: LogLevel::Debug, logger: None, data: json!("not json") },
            Notice::Progress { progress: 0.5, total: Some(1.0), message: Some("half way".into()) },
        ]
    );
    let requests = peer.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "elicitation/create");
    assert_eq!(requests[0].key.as_deref(), Some("confirm"));
    assert_eq!(requests[0].params["message"], "Proceed?");
}

#[tokio::test]
async fn an_unanswered_client_request_asks_for_input() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    assert_eq!(ask(&server, ScriptedPeer::modern().shared()).await, Err(BackendError::InputRequired));
}

#[tokio::test]
async fn a_client_without_the_capability_gets_a_missing_capability_error() {
    let (_runtime, server) = hostile_server(ServerSpec::default()).await;
    let peer = ScriptedPeer::modern().with_capabilities(json!({})).shared();
    assert_eq!(
        ask(&server, peer).await,
        Err(BackendError::Rpc(RpcError::missing_client_capability(json!({"elicitation": {}}))))
    );
}

#[tokio::test]
async fn notices_are_capped_per_call() {
    // This checks a cap, not speed: a loaded CI machine must not hit the short test deadline.
    let runtime =
        WasmRuntime::new(WasmSettings { call_timeout: Duration::from_secs(20), ..settings() }).expect("runtime");
    let component = load(&runtime).await;
    let server = runtime.wasm_server(component, ServerSpec::default());
    let peer = ScriptedPeer::modern().shared();
    let result = server.handle(request("tools/call", json!({ "name": "chatty" })), peer.clone()).await.unwrap();
    assert_eq!(text(&result), "chatted");
    assert_eq!(peer.notices().len(), 1000);
}

// --- memory hygiene -----------------------------------------------------------------------

/// A call's instance is torn down after its answer, by a task of the runtime; the slot is held
/// until then. With a single slot, calls back to back and calls at once must all get it.
#[tokio::test(flavor = "current_thread")]
async fn a_single_slot_serves_calls_back_to_back_and_at_once() {
    let runtime = WasmRuntime::new(WasmSettings { max_instances: 1, ..settings() }).expect("runtime");
    let component = load(&runtime).await;
    let server = runtime.wasm_server(component, ServerSpec::default());
    for _ in 0..20 {
        assert_still_fine(&server).await;
    }
    let calls: Vec<_> = (0..8).map(|_| call(&server, "ok", json!({}))).collect();
    for outcome in futures::future::join_all(calls).await {
        assert_eq!(text(&outcome.expect("every call gets the slot in turn")), "fine");
    }
    // The slot is back once the deferred teardown ran: the next call finds it at once.
    let started = Instant::now();
    assert_still_fine(&server).await;
    assert!(started.elapsed() < TIMEOUT, "the slot came back late: {:?}", started.elapsed());
}

// --- instances made ahead of calls --------------------------------------------------------

/// Waits until the runtime holds `count` instances made ahead (they are made by a task after
/// each answer).
async fn until_ready(runtime: &WasmRuntime, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while runtime.ready_stats().held != count {
        assert!(Instant::now() < deadline, "still {:?}, expected {count} held", runtime.ready_stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_next_call_runs_in_an_instance_made_ahead_for_its_own_client() {
    let (runtime, server) = hostile_server(ServerSpec::default()).await;
    assert_eq!(runtime.ready_stats(), ReadyStats::default(), "loading makes none ahead");
    assert_still_fine(&server).await;
    until_ready(&runtime, 1).await;

    // The instance was made with no client; the call's own gets the guest's notices and
    // requests, and the capabilities it reads are the call's.
    let peer = ScriptedPeer::modern().answer("confirm", json!({"action": "accept"})).shared();
    let result = ask(&server, peer.clone()).await.unwrap();
    assert_eq!(result["structuredContent"]["answer"], json!({"action": "accept"}));
    assert_eq!(result["structuredContent"]["capabilities"], *peer.client_capabilities());
    assert_eq!(peer.notices().len(), 3);
    assert_eq!(peer.requests().len(), 1);
    let stats = runtime.ready_stats();
    assert_eq!((stats.made, stats.used), (1, 1), "{stats:?}");
    // Making it ahead was counted in that call's CPU time, not lost.
    assert_eq!(server.calls(), 2);
    assert!(runtime.usage().cpu >= server.cpu_total());
}

#[tokio::test]
async fn an_instance_made_ahead_is_fresh_and_keeps_to_its_server() {
    let runtime = runtime();
    let component = load(&runtime).await;
    let spec = |value: &str| ServerSpec {
        config: BTreeMap::from([("key".to_owned(), value.to_owned())]),
        secrets: BTreeMap::from([("key".to_owned(), format!("{value}-secret"))]),
        egress: Vec::new(),
    };
    let a = runtime.wasm_server(component.clone(), spec("a"));
    let b = runtime.wasm_server(component, spec("b"));
    let previous = |result: Value| result["structuredContent"]["previous"].clone();
    let seen = |result: Value| result["structuredContent"].clone();
    for round in 0..3 {
        assert_eq!(previous(call(&a, "remember", json!({"value": "a-data"})).await.unwrap()), Value::Null);
        assert_eq!(previous(call(&b, "remember", json!({"value": "b-data"})).await.unwrap()), Value::Null);
        until_ready(&runtime, 2).await;
        assert_eq!(
            seen(call(&a, "config", json!({"key": "key"})).await.unwrap()),
            json!({"config": "a", "secret": "a-secret"}),
            "round {round}"
        );
        assert_eq!(
            seen(call(&b, "config", json!({"key": "key"})).await.unwrap()),
            json!({"config": "b", "secret": "b-secret"}),
            "round {round}"
        );
        until_ready(&runtime, 2).await;
    }
    assert!(runtime.ready_stats().used >= 6, "{:?}", runtime.ready_stats());
}

#[tokio::test]
async fn the_deadline_of_an_instance_made_ahead_counts_from_its_call() {
    let (runtime, server) = hostile_server(ServerSpec::default()).await;
    assert_still_fine(&server).await;
    until_ready(&runtime, 1).await;
    tokio::time::sleep(TIMEOUT * 2).await;
    assert_still_fine(&server).await;
    // And a guest that computes in one is still stopped at the call's deadline.
    until_ready(&runtime, 1).await;
    let started = Instant::now();
    assert_eq!(internal_message(call(&server, "spin", json!({})).await), "the server exceeded its 300 ms time limit");
    assert!(started.elapsed() >= TIMEOUT, "stopped after {:?}", started.elapsed());
    assert_eq!(runtime.ready_stats().used, 2);
}

/// Instances made ahead hold pool slots; a call that finds none free takes one of theirs
/// instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_made_ahead_give_their_slots_up_to_calls() {
    let runtime = WasmRuntime::new(WasmSettings { max_instances: 2, ..settings() }).expect("runtime");
    let component = load(&runtime).await;
    let a = runtime.wasm_server(component.clone(), ServerSpec::default());
    let b = runtime.wasm_server(component, ServerSpec::default());
    assert_still_fine(&a).await;
    until_ready(&runtime, 1).await;

    // `b` spins in the one free slot; its `ok` finds none and takes `a`'s ready one.
    let spinner = b.clone();
    let spin = tokio::spawn(async move {
        let outcome = call(&spinner, "spin", json!({})).await;
        (outcome, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fine = call(&b, "ok", json!({})).await.expect("a slot was given up");
    let fine_at = Instant::now();
    assert_eq!(text(&fine), "fine");
    let (outcome, spin_ended) = spin.await.unwrap();
    assert!(outcome.is_err());
    assert!(fine_at < spin_ended, "`ok` waited for the spinning call's slot");
    // `a` still works: it instantiates for itself.
    assert_still_fine(&a).await;
}

/// While another call of the server runs, none is made ahead: under load it would only move
/// the work and be cold in the caches when used.
#[tokio::test(flavor = "current_thread")]
async fn none_are_made_ahead_while_the_server_has_other_calls_running() {
    let (runtime, server) = hostile_server(ServerSpec::default()).await;
    let spinner = server.clone();
    let spin = tokio::spawn(async move { call(&spinner, "spin", json!({})).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_still_fine(&server).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(runtime.ready_stats().made, 0, "made one while `spin` was running");
    assert!(spin.await.unwrap().is_err());
    // Alone again: the next call's answer is followed by one.
    assert_still_fine(&server).await;
    until_ready(&runtime, 1).await;
}

#[tokio::test]
async fn a_dropped_server_gives_up_its_instance_made_ahead() {
    let (runtime, server) = hostile_server(ServerSpec::default()).await;
    assert_still_fine(&server).await;
    until_ready(&runtime, 1).await;
    drop(server);
    assert_eq!(runtime.ready_stats().held, 0);
}

#[tokio::test]
async fn none_are_made_ahead_when_turned_off() {
    let runtime = WasmRuntime::new(WasmSettings { ready_instances: 0, ..settings() }).expect("runtime");
    let (runtime, server) = hostile_server_in(runtime, ServerSpec::default()).await;
    for _ in 0..3 {
        assert_still_fine(&server).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runtime.ready_stats(), ReadyStats::default());
}

#[tokio::test]
async fn memory_does_not_carry_over_between_instances() {
    let runtime = runtime();
    let component = load(&runtime).await;
    let a = runtime.wasm_server(component.clone(), ServerSpec::default());
    let b = runtime.wasm_server(component, ServerSpec::default());
    let value = "tenant-a-private-data";
    for _ in 0..3 {
        let filled = call(&a, "fill", json!({ "value": value })).await.unwrap();
        assert!(text(&filled).starts_with("filled 41"), "{}", text(&filled));
        let scanned = call(&b, "scan", json!({ "value": value })).await.unwrap();
        let seen = &scanned["structuredContent"];
        assert_eq!(seen["nonzero_fresh_bytes"], 0, "{seen}");
        assert!(seen["fresh_bytes"].as_u64().unwrap() > 0, "{seen}");
        // Only the needle `scan` itself builds.
        assert!(seen["hits"].as_u64().unwrap() <= 1, "{seen}");
    }
}

#[test]
fn every_example_component_is_a_valid_berth_server() {
    for name in ["berth_example_classic", "berth_example_fixture", "berth_example_hostile"] {
        let bytes = std::fs::read(berth_test_support::guests::guest(name)).unwrap();
        if let Err(e) = runtime().validate(&bytes) {
            panic!("{name}: {e}");
        }
    }
}
