//! The macros and the dispatch, driven on the host through a `server!` like a guest's.

// `server!` expands to the component's `unsafe extern "C"` exports.
#![allow(unsafe_code)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::prelude::*;

/// Adds two numbers.
#[tool(read_only, idempotent)]
fn add(
    /// The first addend.
    a: f64,
    #[arg(description = "The second addend.")] b: f64,
) -> f64 {
    a + b
}

#[derive(Serialize, JsonSchema)]
struct WordCount {
    /// How many words.
    words: usize,
}

/// Counts the words in a text.
#[tool(title = "Word count")]
fn word_count(text: &str) -> WordCount {
    WordCount { words: text.split_whitespace().count() }
}

/// Echoes a message.
#[tool]
fn echo(message: String, #[arg(name = "upperCase")] upper_case: Option<bool>) -> String {
    if upper_case.unwrap_or(false) { message.to_uppercase() } else { message }
}

/// Fails in every way.
#[tool(name = "fail.modes")]
fn fail(mode: String) -> Result<String, Error> {
    match mode.as_str() {
        "parse" => Ok(format!("{}", "x".parse::<u32>()?)),
        "params" => Err(Error::invalid_params("bad mode")),
        "input" => Err(Error::InputRequired),
        _ => Err(Error::tool("plain failure")),
    }
}

#[derive(Deserialize, JsonSchema)]
struct Search {
    /// What to look for.
    query: String,
    limit: Option<u32>,
}

/// Searches.
#[tool]
fn search(ctx: &Context, #[args] args: Search) -> Result<Vec<String>, Error> {
    ctx.info("searching");
    Ok(vec![args.query; args.limit.unwrap_or(1) as usize])
}

/// Several blocks.
#[tool]
fn blocks() -> Vec<Content> {
    vec![Content::text("a"), Content::image(b"png", "image/png")]
}

/// Custom text.
#[tool]
fn custom(message: String) -> Structured<Echoed> {
    Structured::new(Echoed { message: message.clone() }, message)
}

#[derive(Serialize, JsonSchema)]
struct Echoed {
    message: String,
}

fn raw_schema() -> Value {
    json!({"type": "object", "properties": {"x": {"type": "integer"}}, "additionalProperties": false})
}

/// Raw schema.
#[tool(input_schema = raw_schema)]
fn raw(#[args] args: serde_json::Map<String, Value>) -> String {
    Value::Object(args).to_string()
}

/// Static text.
#[resource(uri = "test://static", name = "static", mime_type = "text/plain")]
fn static_text() -> &'static str {
    "static body"
}

/// Binary.
#[resource(uri = "test://binary", mime_type = "application/octet-stream")]
fn binary() -> Vec<u8> {
    vec![0, 1, 2]
}

/// Hidden.
#[resource(uri = "test://hidden", unlisted)]
fn hidden() -> String {
    "hidden".into()
}

/// Items by id.
#[resource(uri = "test://items/{id}/data", mime_type = "application/json")]
fn item(id: u32) -> Json<Value> {
    Json(json!({ "id": id }))
}

/// Files.
#[resource(uri = "file:///{+path}")]
fn file(path: &str) -> Result<String, Error> {
    if path == "missing" { Err(Error::resource_not_found(format!("file:///{path}"))) } else { Ok(path.to_owned()) }
}

/// Review code.
#[prompt(title = "Code review")]
fn code_review(
    /// The code.
    code: &str,
    #[arg(name = "lang")] language: Option<String>,
    times: Option<u32>,
) -> Vec<PromptMessage> {
    let language = language.unwrap_or_else(|| "code".into());
    vec![PromptMessage::user(format!("Review this {language} ({}x): {code}", times.unwrap_or(1)))]
}

#[prompt]
fn plain() -> &'static str {
    "hello"
}

#[completion(prompt = "code_review", argument = "lang")]
fn complete_language(request: &CompletionRequest) -> Vec<String> {
    request.filter_prefix(["rust", "python", "ruby"])
}

#[completion(resource = "test://items/{id}/data", argument = "id")]
fn complete_id(value: &str) -> Vec<String> {
    (0..150).map(|i| i.to_string()).filter(|i| i.starts_with(value)).collect()
}

crate::server! {
    name: "test-server",
    version: "1.2.3",
    instructions: "For tests.",
    tools: [add, word_count, echo, fail, search, blocks, custom, raw],
    resources: [static_text, binary, hidden, item, file],
    prompts: [code_review, plain],
    completions: [complete_language, complete_id],
}

fn call(name: &str, arguments: Value) -> Result<Value, Error> {
    BERTH_SERVER.call_tool(&Context::new(), name, &arguments.to_string())
}

fn tool(name: &str) -> &'static crate::ToolDef {
    BERTH_SERVER.tools().iter().find(|t| t.name() == name).unwrap()
}

#[test]
fn doc_comments_and_parameters_become_the_tool_descriptor() {
    let add = tool("add");
    assert_eq!(add.description(), Some("Adds two numbers."));
    let schema = add.input_schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["a"]["type"], "number");
    assert_eq!(schema["properties"]["a"]["description"], "The first addend.");
    assert_eq!(schema["properties"]["b"]["description"], "The second addend.");
    assert_eq!(schema["required"], json!(["a", "b"]));
    assert!(schema.get("title").is_none(), "{schema}");
    let output = add.output_schema().unwrap();
    assert_eq!(output["properties"]["result"]["type"], "number");
    let listed = crate::__private::export::list_tools(&BERTH_SERVER);
    let annotations: Value = serde_json::from_str(listed[0].annotations.as_deref().unwrap()).unwrap();
    assert_eq!(annotations, json!({"readOnlyHint": true, "idempotentHint": true}));
    assert_eq!(listed[1].title.as_deref(), Some("Word count"));
    assert!(listed[2].output_schema.is_none(), "text tools have no output schema");
}

#[test]
fn optional_and_renamed_parameters_are_not_required() {
    let schema = tool("echo").input_schema();
    assert_eq!(schema["required"], json!(["message"]));
    assert!(schema["properties"]["upperCase"].is_object(), "{schema}");
    assert_eq!(call("echo", json!({"message": "hi", "upperCase": true})).unwrap()["content"][0]["text"], "HI");
    assert_eq!(call("echo", json!({"message": "hi"})).unwrap(), json!({"content": [{"type": "text", "text": "hi"}]}));
}

#[test]
fn scalar_results_are_wrapped_structured_content_with_json_text() {
    let out = call("add", json!({"a": 2, "b": 3})).unwrap();
    assert_eq!(out["structuredContent"], json!({"result": 5.0}));
    assert_eq!(out["content"], json!([{"type": "text", "text": "5.0"}]));
    let out = call("word_count", json!({"text": "one two three"})).unwrap();
    assert_eq!(out["structuredContent"], json!({"words": 3}));
    assert_eq!(tool("word_count").output_schema().unwrap()["properties"]["words"]["description"], "How many words.");
    let out = call("search", json!({"query": "q", "limit": 2})).unwrap();
    assert_eq!(out["structuredContent"], json!({"result": ["q", "q"]}));
    assert_eq!(tool("search").input_schema()["properties"]["query"]["description"], "What to look for.");
}

#[test]
fn hand_built_results_pass_through() {
    let out = call("blocks", json!({})).unwrap();
    assert_eq!(out["content"][1], json!({"type": "image", "data": "cG5n", "mimeType": "image/png"}));
    assert_eq!(tool("blocks").input_schema(), json!({"type": "object", "properties": {}}));
    let out = call("custom", json!({"message": "hi"})).unwrap();
    assert_eq!(out, json!({"content": [{"type": "text", "text": "hi"}], "structuredContent": {"message": "hi"}}));
    assert_eq!(
        tool("custom").output_schema().unwrap(),
        json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]})
    );
}

#[test]
fn raw_schemas_and_whole_arguments_are_kept() {
    assert_eq!(tool("raw").input_schema(), raw_schema());
    assert_eq!(call("raw", json!({"x": 1})).unwrap()["content"][0]["text"], r#"{"x":1}"#);
}

#[test]
fn bad_arguments_are_tool_execution_errors() {
    let out = call("add", json!({"a": 1})).unwrap();
    assert_eq!(out["isError"], true);
    let text = out["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("Invalid arguments for tool add") && text.contains("missing field `b`"), "{text}");
    let out = call("add", json!({"a": "x", "b": 1})).unwrap();
    assert_eq!(out["isError"], true);
}

#[test]
fn errors_map_to_results_or_protocol_errors() {
    let out = call("fail.modes", json!({"mode": "parse"})).unwrap();
    assert_eq!(out["isError"], true);
    assert_eq!(call("fail.modes", json!({"mode": "x"})).unwrap()["content"][0]["text"], "plain failure");
    assert_eq!(call("fail.modes", json!({"mode": "params"})), Err(Error::invalid_params("bad mode")));
    assert_eq!(call("fail.modes", json!({"mode": "input"})), Err(Error::InputRequired));
    assert_eq!(call("nope", json!({})), Err(Error::invalid_params("Unknown tool: nope")));
    assert!(matches!(
        BERTH_SERVER.call_tool(&Context::new(), "echo", "[1]"),
        Err(Error::InvalidParams(m)) if m.contains("object")
    ));
    assert!(BERTH_SERVER.call_tool(&Context::new(), "blocks", "").is_ok(), "empty arguments are {{}}");
}

#[test]
fn resources_and_templates_are_listed_apart() {
    let resources = crate::__private::export::list_resources(&BERTH_SERVER);
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["test://static", "test://binary"]);
    assert_eq!(resources[0].name, "static");
    assert_eq!(resources[1].name, "binary");
    assert_eq!(resources[0].description.as_deref(), Some("Static text."));
    let templates = crate::__private::export::list_resource_templates(&BERTH_SERVER);
    let uris: Vec<&str> = templates.iter().map(|r| r.uri_template.as_str()).collect();
    assert_eq!(uris, ["test://items/{id}/data", "file:///{+path}"]);
}

#[test]
fn resources_read_by_uri_and_template() {
    let ctx = Context::new();
    assert_eq!(
        BERTH_SERVER.read_resource(&ctx, "test://static").unwrap(),
        json!({"contents": [{"uri": "test://static", "mimeType": "text/plain", "text": "static body"}]})
    );
    assert_eq!(BERTH_SERVER.read_resource(&ctx, "test://binary").unwrap()["contents"][0]["blob"], "AAEC");
    assert_eq!(BERTH_SERVER.read_resource(&ctx, "test://hidden").unwrap()["contents"][0]["text"], "hidden");
    assert_eq!(
        BERTH_SERVER.read_resource(&ctx, "test://items/7/data").unwrap(),
        json!({"contents": [{"uri": "test://items/7/data", "mimeType": "application/json", "text": "{\"id\":7}"}]})
    );
    assert_eq!(BERTH_SERVER.read_resource(&ctx, "file:///a/b").unwrap()["contents"][0]["text"], "a/b");
    assert_eq!(
        BERTH_SERVER.read_resource(&ctx, "test://nonexistent"),
        Err(Error::resource_not_found("test://nonexistent"))
    );
    assert!(matches!(BERTH_SERVER.read_resource(&ctx, "test://items/x/data"), Err(Error::InvalidParams(_))));
    assert_eq!(BERTH_SERVER.read_resource(&ctx, "file:///missing"), Err(Error::resource_not_found("file:///missing")));
}

#[test]
fn prompts_take_string_arguments() {
    let prompts = crate::__private::export::list_prompts(&BERTH_SERVER);
    assert_eq!(prompts[0].name, "code_review");
    assert_eq!(prompts[0].title.as_deref(), Some("Code review"));
    let args: Vec<(&str, Option<&str>, bool)> =
        prompts[0].arguments.iter().map(|a| (a.name.as_str(), a.description.as_deref(), a.required)).collect();
    assert_eq!(args, [("code", Some("The code.")), ("lang", None), ("times", None)].map(|(n, d)| (n, d, n == "code")));
    let ctx = Context::new();
    let out = BERTH_SERVER.get_prompt(&ctx, "code_review", r#"{"code": "fn x() {}", "lang": "rust", "times": "2"}"#);
    assert_eq!(
        out.unwrap(),
        json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Review this rust (2x): fn x() {}"}}]})
    );
    assert_eq!(
        BERTH_SERVER.get_prompt(&ctx, "code_review", "{}"),
        Err(Error::invalid_params("Missing required argument: code"))
    );
    assert!(matches!(
        BERTH_SERVER.get_prompt(&ctx, "code_review", r#"{"code": "x", "times": "many"}"#),
        Err(Error::InvalidParams(m)) if m.contains("times")
    ));
    assert_eq!(BERTH_SERVER.get_prompt(&ctx, "plain", "").unwrap()["messages"][0]["content"]["text"], "hello");
    assert_eq!(BERTH_SERVER.get_prompt(&ctx, "nope", ""), Err(Error::invalid_params("Unknown prompt: nope")));
}

#[test]
fn completion_finds_the_completer_by_reference_and_argument() {
    let ctx = Context::new();
    let complete = |request: Value| BERTH_SERVER.complete(&ctx, &request.to_string());
    let out = complete(
        json!({"ref": {"type": "ref/prompt", "name": "code_review"}, "argument": {"name": "lang", "value": "r"}}),
    );
    assert_eq!(out.unwrap(), json!({"completion": {"values": ["rust", "ruby"], "total": 2, "hasMore": false}}));
    let out = complete(
        json!({"ref": {"type": "ref/prompt", "name": "code_review"}, "argument": {"name": "code", "value": ""}}),
    );
    assert_eq!(out.unwrap()["completion"]["values"], json!([]));
    let out = complete(json!({"ref": {"type": "ref/resource", "uri": "test://items/{id}/data"}, "argument": {"name": "id", "value": ""}}))
        .unwrap();
    assert_eq!(out["completion"]["values"].as_array().unwrap().len(), 100);
    assert_eq!((out["completion"]["total"].clone(), out["completion"]["hasMore"].clone()), (json!(150), json!(true)));
    let out = complete(json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "x", "value": ""}}));
    assert_eq!(out, Err(Error::invalid_params("Unknown reference")));
}

#[test]
fn info_reports_the_declared_identity() {
    let info = crate::__private::export::info(&BERTH_SERVER);
    assert_eq!((info.name.as_str(), info.version.as_str()), ("test-server", "1.2.3"));
    assert_eq!(info.instructions.as_deref(), Some("For tests."));
}

#[test]
fn the_context_has_no_client_on_the_host() {
    let ctx = Context::new();
    assert!(matches!(ctx.elicit(Some("k"), json!({})), Err(Error::Unsupported(_))));
    assert!(!ctx.supports("sampling"));
    assert_eq!(ctx.config("x"), None);
}

/// The exports write each result's JSON text straight from the result; it must be the JSON of
/// the `Value` the dispatch methods return, and fail the same way.
#[test]
fn exports_return_the_json_of_the_dispatch_results() {
    use crate::__private::export;
    let ctx = Context::new();
    let same = |text: Result<String, crate::bindings::berth::mcp::types::Error>, value: Result<Value, Error>| match (
        text, value,
    ) {
        (Ok(text), Ok(value)) => assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value, "{text}"),
        (Err(e), Err(expected)) => assert_eq!(format!("{e:?}"), format!("{:?}", expected.into_wit())),
        (text, value) => panic!("the export gave {text:?}, the dispatch {value:?}"),
    };
    let calls = [
        ("add", json!({"a": 1.5, "b": 2})),
        ("word_count", json!({"text": "a b\nc \"quoted\" \u{e9}"})),
        ("echo", json!({"message": "line\nbreak \u{1f600}", "upperCase": true})),
        ("fail", json!({"mode": "tool"})),
        ("fail", json!({"mode": "params"})),
        ("fail", json!({"mode": "parse"})),
        ("search", json!({"query": "x"})),
        ("blocks", json!({})),
        ("custom", json!({"message": "m"})),
        ("raw", json!({"anything": [1, 2]})),
        ("add", json!({"a": "not a number"})),
        ("nope", json!({})),
    ];
    for (name, arguments) in calls {
        let arguments = arguments.to_string();
        same(export::call_tool(&BERTH_SERVER, name, &arguments), BERTH_SERVER.call_tool(&ctx, name, &arguments));
    }
    for uri in ["test://static", "test://binary", "test://items/7/data", "file:///a/b", "test://nonexistent"] {
        same(export::read_resource(&BERTH_SERVER, uri), BERTH_SERVER.read_resource(&ctx, uri));
    }
    for (name, arguments) in
        [("code_review", r#"{"code": "fn x() {}", "lang": "rust"}"#), ("plain", ""), ("code_review", "{}")]
    {
        same(export::get_prompt(&BERTH_SERVER, name, arguments), BERTH_SERVER.get_prompt(&ctx, name, arguments));
    }
    let request =
        json!({"ref": {"type": "ref/prompt", "name": "code_review"}, "argument": {"name": "lang", "value": "r"}});
    let request = request.to_string();
    same(export::complete(&BERTH_SERVER, &request), BERTH_SERVER.complete(&ctx, &request));
}
