//! The example guests built for `wasm32-wasip2` and run in wasmtime against a scripted client:
//! what the SDK exports through the `berth:mcp` world, end to end (the bindings, the `export!`
//! wiring, the imports and MRTR's `input-required` round trip).
//!
//! The test builds `examples/` (`berth-example-classic`, `berth-example-fixture`) with the
//! cargo running it; the `wasm32-wasip2` target must be installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ path: "wit", world: "mcp-server" });

use berth::mcp::types::{Error, LogLevel};

/// A scripted client: answers by key, records what the guest sent.
struct Client {
    wasi: WasiCtx,
    table: ResourceTable,
    capabilities: Value,
    answers: HashMap<String, Value>,
    asked: Vec<(String, Option<String>, Value)>,
    logs: Vec<(LogLevel, Value)>,
    progress: Vec<(f64, Option<f64>, Option<String>)>,
    config: HashMap<String, String>,
}

impl Client {
    fn new() -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            capabilities: json!({ "sampling": {}, "elicitation": {}, "roots": {} }),
            answers: HashMap::new(),
            asked: Vec::new(),
            logs: Vec::new(),
            progress: Vec::new(),
            config: HashMap::new(),
        }
    }

    fn answer(mut self, key: &str, answer: Value) -> Self {
        self.answers.insert(key.to_owned(), answer);
        self
    }

    fn ask(&mut self, method: &str, key: Option<String>, params: Value) -> Result<String, Error> {
        let capability = match method {
            "elicitation/create" => "elicitation",
            "sampling/createMessage" => "sampling",
            _ => "roots",
        };
        if self.capabilities.get(capability).is_none() {
            return Err(Error::Unsupported(capability.to_owned()));
        }
        self.asked.push((method.to_owned(), key.clone(), params));
        match key.and_then(|k| self.answers.get(&k)) {
            Some(answer) => Ok(answer.to_string()),
            None => Err(Error::InputRequired),
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.asked.iter().filter_map(|(_, key, _)| key.as_deref()).collect()
    }
}

impl WasiView for Client {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl berth::mcp::types::Host for Client {}

impl berth::mcp::client::Host for Client {
    fn log(&mut self, level: LogLevel, _logger: Option<String>, data: String) {
        self.logs.push((level, serde_json::from_str(&data).unwrap()));
    }

    fn progress(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        self.progress.push((progress, total, message));
    }

    fn elicit(&mut self, key: Option<String>, params: String) -> Result<String, Error> {
        self.ask("elicitation/create", key, serde_json::from_str(&params).unwrap())
    }

    fn sample(&mut self, key: Option<String>, params: String) -> Result<String, Error> {
        self.ask("sampling/createMessage", key, serde_json::from_str(&params).unwrap())
    }

    fn list_roots(&mut self, key: Option<String>) -> Result<String, Error> {
        self.ask("roots/list", key, json!({}))
    }

    fn capabilities(&mut self) -> String {
        self.capabilities.to_string()
    }
}

impl berth::mcp::config::Host for Client {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn secret(&mut self, _key: String) -> Option<String> {
        None
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds both example guests once per test binary and returns the directory of the `.wasm`s.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let examples = root().join("examples");
        let target = examples.join("target");
        let output = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(examples.join("Cargo.toml"))
            .args(["-p", "berth-example-classic", "-p", "berth-example-fixture", "--target-dir"])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("cannot run cargo");
        assert!(
            output.status.success(),
            "building the example guests failed (is the wasm32-wasip2 target installed?):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2/release")
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

fn component(name: &str) -> &'static Component {
    static CLASSIC: OnceLock<Component> = OnceLock::new();
    static FIXTURE: OnceLock<Component> = OnceLock::new();
    let cell = if name == "classic" { &CLASSIC } else { &FIXTURE };
    cell.get_or_init(|| {
        let path = built().join(format!("berth_example_{name}.wasm"));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\0asm\x0d\0\x01\0"), "{} is not a component", path.display());
        Component::new(engine(), bytes).unwrap()
    })
}

/// A fresh instance (as Berth makes one per call) with this client.
fn instance(name: &str, client: Client) -> (Store<Client>, McpServer) {
    let mut linker = Linker::<Client>::new(engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    McpServer::add_to_linker::<Client, HasSelf<Client>>(&mut linker, |client| client).unwrap();
    let mut store = Store::new(engine(), client);
    let server = McpServer::instantiate(&mut store, component(name), &linker).unwrap();
    (store, server)
}

fn call(name: &str, client: Client, tool: &str, arguments: Value) -> (Result<Value, Error>, Client) {
    let (mut store, server) = instance(name, client);
    let out = server.berth_mcp_server().call_call_tool(&mut store, tool, &arguments.to_string()).unwrap();
    (out.map(|text| serde_json::from_str(&text).unwrap()), store.into_data())
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap()
}

#[test]
fn the_classic_guest_lists_typed_tools_with_schemas_from_their_signatures() {
    let (mut store, server) = instance("classic", Client::new());
    let api = server.berth_mcp_server();
    let info = api.call_info(&mut store).unwrap();
    assert_eq!(info.name, "berth-example-classic");
    let tools = api.call_list_tools(&mut store).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["add", "word_count", "slow_count", "echo"]);
    let add = &tools[0];
    assert_eq!(add.description.as_deref(), Some("Adds two numbers."));
    let input: Value = serde_json::from_str(&add.input_schema).unwrap();
    assert_eq!(input["type"], "object");
    assert_eq!(input["properties"]["a"]["description"], "The first addend.");
    assert_eq!(input["required"], json!(["a", "b"]));
    let output: Value = serde_json::from_str(add.output_schema.as_deref().unwrap()).unwrap();
    assert_eq!(output["properties"]["result"]["type"], "number");
    let annotations: Value = serde_json::from_str(add.annotations.as_deref().unwrap()).unwrap();
    assert_eq!(annotations, json!({"readOnlyHint": true, "idempotentHint": true}));
    assert!(tools[3].output_schema.is_none(), "echo returns text");
}

#[test]
fn the_classic_guest_adds_counts_and_echoes() {
    let (out, _) = call("classic", Client::new(), "add", json!({"a": 2, "b": 3}));
    let out = out.unwrap();
    assert_eq!(out["structuredContent"], json!({"result": 5.0}));
    assert_eq!(text(&out), "5.0");
    let (out, _) = call("classic", Client::new(), "word_count", json!({"text": "one two\nthree"}));
    assert_eq!(out.unwrap()["structuredContent"], json!({"words": 3, "lines": 2, "characters": 13}));
    let (out, _) = call("classic", Client::new(), "echo", json!({"message": "hi"}));
    assert_eq!(out.unwrap(), json!({"content": [{"type": "text", "text": "hi"}]}));
    let (out, _) = call("classic", Client::new(), "add", json!({"a": 2}));
    let out = out.unwrap();
    assert_eq!(out["isError"], true);
    assert!(text(&out).contains("missing field `b`"), "{out}");
    let (out, _) = call("classic", Client::new(), "nope", json!({}));
    assert!(matches!(out, Err(Error::InvalidParams(m)) if m == "Unknown tool: nope"));
}

#[test]
fn the_classic_progress_tool_reports_each_step_and_logs() {
    let (out, client) = call("classic", Client::new(), "slow_count", json!({"steps": 3}));
    assert_eq!(text(&out.unwrap()), "Counted to 3.");
    let steps: Vec<(f64, Option<f64>)> = client.progress.iter().map(|(p, t, _)| (*p, *t)).collect();
    assert_eq!(steps, [(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))]);
    assert_eq!(client.progress[0].2.as_deref(), Some("Step 1 of 3"));
    assert_eq!(client.logs, [(LogLevel::Info, json!("counted to 3"))]);
    let (out, _) = call("classic", Client::new(), "slow_count", json!({"steps": 0}));
    assert_eq!(out.unwrap()["isError"], true);
}

#[test]
fn the_classic_greeting_template_prompt_and_completions_work() {
    let (mut store, server) = instance("classic", Client::new());
    let api = server.berth_mcp_server();
    assert!(api.call_list_resources(&mut store).unwrap().is_empty());
    let templates = api.call_list_resource_templates(&mut store).unwrap();
    assert_eq!(templates[0].uri_template, "greeting://{name}");
    assert_eq!(templates[0].description.as_deref(), Some("A personalised greeting."));
    let read: Value =
        serde_json::from_str(&api.call_read_resource(&mut store, "greeting://Ada%20Lovelace").unwrap().unwrap())
            .unwrap();
    assert_eq!(
        read,
        json!({"contents": [{"uri": "greeting://Ada%20Lovelace", "mimeType": "text/plain", "text": "Hello, Ada Lovelace!"}]})
    );
    assert!(matches!(api.call_read_resource(&mut store, "other://x").unwrap(), Err(Error::ResourceNotFound(_))));

    let prompts = api.call_list_prompts(&mut store).unwrap();
    assert_eq!(prompts[0].name, "code_review");
    let args: Vec<(&str, bool)> = prompts[0].arguments.iter().map(|a| (a.name.as_str(), a.required)).collect();
    assert_eq!(args, [("code", true), ("language", false)]);
    let got = api
        .call_get_prompt(&mut store, "code_review", &json!({"code": "fn main() {}", "language": "rust"}).to_string())
        .unwrap();
    let got: Value = serde_json::from_str(&got.unwrap()).unwrap();
    assert!(got["messages"][0]["content"]["text"].as_str().unwrap().contains("review this rust"), "{got}");
    assert!(matches!(
        api.call_get_prompt(&mut store, "code_review", &"{}".to_owned()).unwrap(),
        Err(Error::InvalidParams(_))
    ));

    let request =
        json!({"ref": {"type": "ref/prompt", "name": "code_review"}, "argument": {"name": "language", "value": "ru"}});
    let done: Value =
        serde_json::from_str(&api.call_complete(&mut store, &request.to_string()).unwrap().unwrap()).unwrap();
    assert_eq!(done, json!({"completion": {"values": ["ruby", "rust"], "total": 2, "hasMore": false}}));
}

#[test]
fn the_fixture_guest_exposes_every_conformance_fixture() {
    let (mut store, server) = instance("fixture", Client::new());
    let api = server.berth_mcp_server();
    let tools: Vec<String> = api.call_list_tools(&mut store).unwrap().into_iter().map(|t| t.name).collect();
    for name in [
        "test_simple_text",
        "test_image_content",
        "test_audio_content",
        "test_embedded_resource",
        "test_multiple_content_types",
        "test_tool_with_logging",
        "test_tool_with_progress",
        "test_error_handling",
        "test_sampling",
        "test_elicitation",
        "test_elicitation_sep1034_defaults",
        "test_elicitation_sep1330_enums",
        "test_reconnection",
        "test_logging_tool",
        "test_missing_capability",
        "test_streaming_elicitation",
        "test_trigger_tool_change",
        "test_trigger_prompt_change",
        "test_input_required_result_elicitation",
        "test_input_required_result_sampling",
        "test_input_required_result_list_roots",
        "test_input_required_result_request_state",
        "test_input_required_result_multiple_inputs",
        "test_input_required_result_multi_round",
        "test_input_required_result_capabilities",
        "test_input_required_result_tampered_state",
        "json_schema_2020_12_tool",
        "echo",
        "add",
    ] {
        assert!(tools.iter().any(|t| t == name), "{name} missing from {tools:?}");
    }
    let resources: Vec<String> = api.call_list_resources(&mut store).unwrap().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        resources,
        ["test://static-text", "test://static-binary", "test://watched-resource", "test://stateless-static-text"]
    );
    let templates = api.call_list_resource_templates(&mut store).unwrap();
    assert_eq!(templates[0].uri_template, "test://template/{id}/data");
    let prompts: Vec<String> = api.call_list_prompts(&mut store).unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(
        prompts,
        [
            "test_simple_prompt",
            "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource",
            "test_prompt_with_image",
            "test_input_required_result_prompt"
        ]
    );
}

#[test]
fn the_fixture_tools_answer_like_the_native_fixture() {
    let (out, _) = call("fixture", Client::new(), "test_simple_text", json!({}));
    assert_eq!(text(&out.unwrap()), "This is a simple text response for testing.");
    let (out, _) = call("fixture", Client::new(), "test_multiple_content_types", json!({}));
    let out = out.unwrap();
    assert_eq!(out["content"][1]["type"], "image");
    assert_eq!(out["content"][2]["resource"]["uri"], "test://mixed-content-resource");
    let (out, _) = call("fixture", Client::new(), "test_error_handling", json!({}));
    assert_eq!(out.unwrap()["isError"], true);
    let (out, client) = call("fixture", Client::new(), "test_tool_with_progress", json!({}));
    assert_eq!(text(&out.unwrap()), "Progress reported: 0, 50 and 100 of 100");
    let steps: Vec<f64> = client.progress.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(steps, [0.0, 50.0, 100.0]);
    let (_, client) = call("fixture", Client::new(), "test_tool_with_logging", json!({}));
    assert_eq!(client.logs.len(), 3);
    let (out, _) = call("fixture", Client::new(), "echo", json!({"message": "hi"}));
    assert_eq!(
        out.unwrap(),
        json!({"content": [{"type": "text", "text": "hi"}], "structuredContent": {"message": "hi"}})
    );
    let (out, _) = call("fixture", Client::new(), "add", json!({"a": 2, "b": 3}));
    assert_eq!(out.unwrap(), json!({"content": [{"type": "text", "text": "5"}], "structuredContent": {"sum": 5}}));
    let (out, _) = call("fixture", Client::new(), "json_schema_2020_12_tool", json!({"name": "x"}));
    assert_eq!(text(&out.unwrap()), r#"JSON Schema 2020-12 tool called with: {"name":"x"}"#);
    let mut client = Client::new();
    client.capabilities = json!({});
    let (out, _) = call("fixture", client, "test_missing_capability", json!({}));
    assert!(matches!(out, Err(Error::Unsupported(c)) if c == "sampling"));
}

#[test]
fn the_fixture_asks_for_input_by_key_and_completes_when_answered() {
    let (out, client) = call("fixture", Client::new(), "test_input_required_result_elicitation", json!({}));
    assert!(matches!(out, Err(Error::InputRequired)));
    assert_eq!(client.keys(), ["user_name"]);
    let client = Client::new().answer("user_name", json!({"action": "accept", "content": {"name": "Alice"}}));
    let (out, _) = call("fixture", client, "test_input_required_result_elicitation", json!({}));
    assert_eq!(text(&out.unwrap()), "Hello, Alice!");
    let client = Client::new().answer("user_name", json!("not an ElicitResult"));
    let (out, _) = call("fixture", client, "test_input_required_result_elicitation", json!({}));
    assert!(matches!(out, Err(Error::InvalidParams(m)) if m.contains("inputResponses.user_name")));
}

#[test]
fn the_fixture_asks_several_questions_in_one_round() {
    let (out, client) = call("fixture", Client::new(), "test_input_required_result_multiple_inputs", json!({}));
    assert!(matches!(out, Err(Error::InputRequired)));
    assert_eq!(client.keys(), ["user_name", "greeting", "client_roots"]);
    let client = Client::new()
        .answer("user_name", json!({"action": "accept", "content": {"name": "Bob"}}))
        .answer("greeting", json!({"role": "assistant", "content": {"type": "text", "text": "Hi"}, "model": "m"}))
        .answer("client_roots", json!({"roots": [{"uri": "file:///a"}]}));
    let (out, _) = call("fixture", client, "test_input_required_result_multiple_inputs", json!({}));
    assert_eq!(text(&out.unwrap()), "Name: Bob; Greeting: Hi; Roots: 1");
}

#[test]
fn the_fixture_multi_round_tool_asks_one_step_per_round() {
    let (_, client) = call("fixture", Client::new(), "test_input_required_result_multi_round", json!({}));
    assert_eq!(client.keys(), ["step1"]);
    let client = Client::new().answer("step1", json!({"action": "accept", "content": {"name": "Eve"}}));
    let (out, client) = call("fixture", client, "test_input_required_result_multi_round", json!({}));
    assert!(matches!(out, Err(Error::InputRequired)));
    assert_eq!(client.keys(), ["step1", "step2"]);
    let client = client.answer("step2", json!({"action": "accept", "content": {"color": "green"}}));
    let client = Client { asked: Vec::new(), ..client };
    let (out, _) = call("fixture", client, "test_input_required_result_multi_round", json!({}));
    assert_eq!(text(&out.unwrap()), "Multi-round complete for Eve who likes green");
}

#[test]
fn the_fixture_resources_and_prompts_match_the_conformance_fixtures() {
    let (mut store, server) = instance("fixture", Client::new());
    let api = server.berth_mcp_server();
    let read = |store: &mut Store<Client>, uri: &str| {
        api.call_read_resource(store, uri).unwrap().map(|t| serde_json::from_str::<Value>(&t).unwrap())
    };
    let out = read(&mut store, "test://static-binary").unwrap();
    assert_eq!(out["contents"][0]["mimeType"], "image/png");
    assert!(out["contents"][0]["blob"].is_string());
    let out = read(&mut store, "test://template/42/data").unwrap();
    assert_eq!(out["contents"][0]["text"], r#"{"id":"42","templateTest":true,"data":"Data for ID: 42"}"#);
    assert!(matches!(
        read(&mut store, "test://nonexistent-resource-for-conformance-testing"),
        Err(Error::ResourceNotFound(uri)) if uri == "test://nonexistent-resource-for-conformance-testing"
    ));
    let got = api
        .call_get_prompt(&mut store, "test_prompt_with_arguments", &json!({"arg1": "a", "arg2": "b"}).to_string())
        .unwrap();
    let got: Value = serde_json::from_str(&got.unwrap()).unwrap();
    assert_eq!(got["messages"][0]["content"]["text"], "Prompt with arguments: arg1='a', arg2='b'");
    let got = api.call_get_prompt(
        &mut store,
        "test_prompt_with_embedded_resource",
        &json!({"resourceUri": "test://x"}).to_string(),
    );
    let got: Value = serde_json::from_str(&got.unwrap().unwrap()).unwrap();
    assert_eq!(got["messages"][0]["content"]["resource"]["uri"], "test://x");
    let request = json!({"ref": {"type": "ref/resource", "uri": "test://template/{id}/data"}, "argument": {"name": "id", "value": "1"}});
    let done: Value =
        serde_json::from_str(&api.call_complete(&mut store, &request.to_string()).unwrap().unwrap()).unwrap();
    assert_eq!(done["completion"]["values"], json!(["1", "123"]));
}

#[test]
fn the_fixture_prompt_asks_for_input_too() {
    let (mut store, server) = instance("fixture", Client::new());
    let out = server
        .berth_mcp_server()
        .call_get_prompt(&mut store, "test_input_required_result_prompt", &"{}".to_owned())
        .unwrap();
    assert!(matches!(out, Err(Error::InputRequired)));
    assert_eq!(store.data().keys(), ["user_context"]);
    let client = Client::new().answer("user_context", json!({"action": "accept", "content": {"context": "tests"}}));
    let (mut store, server) = instance("fixture", client);
    let out = server
        .berth_mcp_server()
        .call_get_prompt(&mut store, "test_input_required_result_prompt", &"{}".to_owned())
        .unwrap();
    let out: Value = serde_json::from_str(&out.unwrap()).unwrap();
    assert_eq!(out["messages"][0]["content"]["text"], "Prompt with context: tests");
}
