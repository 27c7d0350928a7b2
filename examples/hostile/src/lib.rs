//! A hostile MCP server for the sandbox tests of `berth-runtime-wasm`.
//!
//! One component whose tools each misbehave in their own way:
//!
//! - `ok`: returns "fine" (the call after a misbehaving one must work);
//! - `spin`: loops forever (stopped at the epoch deadline);
//! - `bomb`: allocates until the allocator fails (capped by the memory limit);
//! - `recurse`: recurses without bound (a stack-overflow trap);
//! - `trap`: panics, which aborts (`unreachable`);
//! - `huge`: returns a 16 MiB result (bounded by the output limit);
//! - `egress`: `{"url": "..."}`, an outgoing `wasi:http` GET; returns the status or the error;
//! - `swarm`: `{"url": "...", "count": "N"}`, N such GETs started at once, then awaited;
//! - `config`: `{"key": "..."}`, returns this server's `config.get(key)` and `config.secret(key)`;
//! - `snoop`: tries the environment, arguments and filesystem, and reports what it saw;
//! - `remember`: `{"value": "..."}`, stores a value in a static and returns the previous one
//!   (always `null` when every call gets a fresh instance);
//! - `shout`: writes 1 MiB to stdout and stderr (captured in bounded pipes), then returns;
//! - `fill`: `{"value": "..."}`, fills 4 MiB of its heap with an encoding of the value;
//! - `scan`: `{"value": "..."}`, grows its memory and reports whether the fresh pages hold
//!   anything, and how often the encoding `fill` writes appears anywhere in its memory (memory
//!   must not carry over from another instance, even when the pooling allocator reuses a slot);
//! - `ask`: logs, reports progress, then elicits (key `confirm`) and returns the client's answer;
//! - `chatty`: sends 100 000 log notices (the host caps them per call);
//! - `sleep`: sleeps for an hour, blocked in the host (no epoch deadline can fire there).
//!
//! It uses `wit-bindgen` directly against `crates/guest/wit`, not the Berth SDK.

wit_bindgen::generate!({
    path: "../../crates/guest/wit",
    world: "mcp-server",
});

use std::cell::RefCell;

use berth::mcp::config;
use berth::mcp::types::{Error, Prompt, Resource, ResourceTemplate, ServerInfo, Tool};
use exports::berth::mcp::server::Guest;

struct Hostile;

export!(Hostile);

const TOOLS: &[(&str, &str)] = &[
    ("ok", "Returns \"fine\"."),
    ("spin", "Loops forever."),
    ("bomb", "Allocates until out of memory."),
    ("recurse", "Recurses without bound."),
    ("trap", "Panics."),
    ("huge", "Returns a 16 MiB result."),
    ("egress", "GETs `url` through wasi:http."),
    ("swarm", "Starts `count` GETs of `url` at once."),
    ("config", "Returns config.get(key) and config.secret(key)."),
    ("snoop", "Looks for the host's environment, arguments and files."),
    ("remember", "Stores `value` in a static, returns the previous one."),
    ("shout", "Writes 1 MiB to stdout and stderr."),
    ("fill", "Fills 4 MiB of heap with an encoding of `value`."),
    ("scan", "Looks for leftovers of another instance in its memory."),
    ("ask", "Logs, reports progress, and asks the client to confirm."),
    ("chatty", "Sends 100 000 log notices."),
    ("sleep", "Sleeps for an hour."),
];

const FILL_BYTES: usize = 4 << 20;
const PAGE: usize = 64 * 1024;

/// What `fill` writes: the value's bytes XOR 0x5A (so the arguments, which hold the plain
/// value, never match).
fn encode(value: &str) -> Vec<u8> {
    value.bytes().map(|b| b ^ 0x5A).collect()
}

fn fill(value: &str) -> usize {
    let needle = encode(value);
    if needle.is_empty() {
        return 0;
    }
    let mut heap = Vec::with_capacity(FILL_BYTES);
    while heap.len() + needle.len() <= FILL_BYTES {
        heap.extend_from_slice(&needle);
    }
    std::hint::black_box(&heap);
    heap.len()
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(target_arch = "wasm32")]
fn scan(value: &str) -> String {
    let needle = encode(value);
    let fresh_pages = FILL_BYTES / PAGE;
    let before = core::arch::wasm32::memory_grow(0, fresh_pages);
    if before == usize::MAX {
        return r#"{"content":[{"type":"text","text":"cannot grow"}],"isError":true}"#.to_owned();
    }
    let total = core::arch::wasm32::memory_size(0) * PAGE;
    // Linear memory from address 1 (a slice may not start at null) to its end.
    let base = core::ptr::with_exposed_provenance::<u8>(1);
    // SAFETY: every byte of linear memory is readable, and the guest only reads them as bytes.
    let memory = unsafe { core::slice::from_raw_parts(base, total - 1) };
    let fresh = &memory[before * PAGE - 1..];
    let nonzero = fresh.iter().filter(|b| **b != 0).count();
    let hits = count(memory, &needle);
    format!(
        r#"{{"content":[{{"type":"text","text":"scanned"}}],"structuredContent":{{"fresh_bytes":{},"nonzero_fresh_bytes":{nonzero},"hits":{hits}}}}}"#,
        fresh.len()
    )
}

#[cfg(not(target_arch = "wasm32"))]
fn scan(_value: &str) -> String {
    unimplemented!("wasm32 only")
}

fn ask() -> Result<String, Error> {
    use berth::mcp::client;
    use berth::mcp::types::LogLevel;
    client::log(LogLevel::Info, Some("hostile"), r#"{"msg":"asking"}"#);
    client::log(LogLevel::Debug, None, "not json");
    client::progress(0.5, Some(1.0), Some("half way"));
    let answer = client::elicit(
        Some("confirm"),
        r#"{"message":"Proceed?","requestedSchema":{"type":"object","properties":{}}}"#,
    )?;
    Ok(format!(
        r#"{{"content":[{{"type":"text","text":"answered"}}],"structuredContent":{{"answer":{answer},"capabilities":{}}}}}"#,
        client::capabilities()
    ))
}

thread_local! {
    static REMEMBERED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A `CallToolResult` with one text block.
fn text(text: &str) -> String {
    format!(r#"{{"content":[{{"type":"text","text":{}}}]}}"#, quote(text))
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_or_null(value: Option<String>) -> String {
    value.as_deref().map_or_else(|| "null".to_owned(), quote)
}

/// Reads a top-level string member of a flat JSON object (enough for these tests).
fn string_arg(arguments: &str, name: &str) -> Option<String> {
    let needle = format!("\"{name}\"");
    let start = arguments.find(&needle)? + needle.len();
    let rest = arguments[start..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[inline(never)]
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn bomb() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so nothing is optimised away.
        let block = vec![0xA5u8; 1 << 20];
        hoard.push(std::hint::black_box(block));
        if hoard.len() == usize::MAX {
            return hoard.len();
        }
    }
}

/// Recursion on scalars only, so every frame lives on the wasm stack (not the shadow stack in
/// linear memory) and the engine's stack limit is what stops it.
#[inline(never)]
#[allow(unconditional_recursion)] // on purpose: the sandbox must turn this into a clean trap
fn recurse(depth: u64) -> u64 {
    let below = recurse(std::hint::black_box(depth.wrapping_add(1)));
    std::hint::black_box(below.wrapping_mul(3).wrapping_add(depth))
}

/// A `CallToolResult` whose text is `len` bytes of `x`, built in place (no copies).
fn huge(len: usize) -> String {
    let (head, tail) = (r#"{"content":[{"type":"text","text":""#, r#""}]}"#);
    let mut out = String::with_capacity(head.len() + len + tail.len());
    out.push_str(head);
    out.extend(std::iter::repeat_n('x', len));
    out.push_str(tail);
    out
}

fn egress(url: &str) -> String {
    match send(url) {
        Ok(future) => answer(&future),
        Err(e) => e,
    }
}

/// Starts a GET of `url`.
fn send(url: &str) -> Result<wasip2::http::types::FutureIncomingResponse, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};

    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(format!("error: unsupported url {url}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    if request.set_method(&Method::Get).is_err()
        || request.set_scheme(Some(&scheme)).is_err()
        || request.set_authority(Some(authority)).is_err()
        || request.set_path_with_query(Some(path)).is_err()
    {
        return Err("error: invalid request".to_owned());
    }
    outgoing_handler::handle(request, None).map_err(|e| format!("error: {e:?}"))
}

/// Waits for the response of `future` and reads its body (up to 1 MiB).
fn answer(future: &wasip2::http::types::FutureIncomingResponse) -> String {
    use wasip2::http::types::IncomingBody;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return format!("error: {e:?}"),
        Some(Err(())) => return "error: response already taken".to_owned(),
        None => return "error: not ready".to_owned(),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume() {
        if let Ok(stream) = incoming.stream() {
            while let Ok(chunk) = stream.blocking_read(64 * 1024) {
                body.extend_from_slice(&chunk);
                if body.len() > 1 << 20 {
                    break;
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
    }
    format!("status {status}: {}", String::from_utf8_lossy(&body))
}

/// Starts `count` GETs of `url` at once, then waits for them all; reports how many were
/// answered and each distinct error with how often it occurred.
fn swarm(url: &str, count: usize) -> String {
    let started: Vec<_> = (0..count).map(|_| send(url)).collect();
    let mut answered = 0;
    let mut errors: Vec<(String, usize)> = Vec::new();
    for outcome in started {
        let result = match outcome {
            Ok(future) => answer(&future),
            Err(e) => e,
        };
        if result.starts_with("status") {
            answered += 1;
        } else if let Some(seen) = errors.iter_mut().find(|(e, _)| *e == result) {
            seen.1 += 1;
        } else {
            errors.push((result, 1));
        }
    }
    let errors: Vec<String> = errors.iter().map(|(e, n)| format!("{n} x {e}")).collect();
    format!("{answered} answered; {}", errors.join("; "))
}

fn snoop() -> String {
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<String> = std::env::args().collect();
    let mut found = Vec::new();
    for path in ["/", ".", "/etc/passwd", "/proc/self/environ", "/tmp"] {
        match std::fs::read_dir(path) {
            Ok(entries) => found.push(format!("dir {path}: {} entries", entries.count())),
            Err(_) => {
                if let Ok(bytes) = std::fs::read(path) {
                    found.push(format!("file {path}: {} bytes", bytes.len()));
                }
            }
        }
    }
    format!(
        r#"{{"content":[{{"type":"text","text":"snooped"}}],"structuredContent":{{"env":{},"args":{},"found":{}}}}}"#,
        list(&env),
        list(&args),
        list(&found)
    )
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(","))
}

impl Guest for Hostile {
    fn info() -> ServerInfo {
        ServerInfo {
            name: "hostile".to_owned(),
            version: "0.1.0".to_owned(),
            instructions: Some("Every tool misbehaves; do not call them in production.".to_owned()),
        }
    }

    fn list_tools() -> Vec<Tool> {
        TOOLS
            .iter()
            .map(|(name, description)| Tool {
                name: (*name).to_owned(),
                title: None,
                description: Some((*description).to_owned()),
                input_schema: r#"{"type":"object"}"#.to_owned(),
                output_schema: None,
                annotations: None,
            })
            .collect()
    }

    fn call_tool(name: String, arguments: String) -> Result<String, Error> {
        match name.as_str() {
            "ok" => Ok(text("fine")),
            "spin" => spin(),
            "bomb" => Ok(text(&format!("survived {} MiB", bomb()))),
            "recurse" => Ok(text(&format!("bottomed out at {}", recurse(0)))),
            "trap" => panic!("the hostile guest panics on purpose"),
            "huge" => Ok(huge(16 << 20)),
            "egress" => {
                let url = string_arg(&arguments, "url").ok_or_else(|| Error::InvalidParams("missing url".into()))?;
                Ok(text(&egress(&url)))
            }
            "swarm" => {
                let url = string_arg(&arguments, "url").ok_or_else(|| Error::InvalidParams("missing url".into()))?;
                let count = string_arg(&arguments, "count").and_then(|c| c.parse().ok()).unwrap_or(1);
                Ok(text(&swarm(&url, count)))
            }
            "config" => {
                let key = string_arg(&arguments, "key").ok_or_else(|| Error::InvalidParams("missing key".into()))?;
                let value = config::get(&key);
                let secret = config::secret(&key);
                Ok(format!(
                    r#"{{"content":[{{"type":"text","text":"config"}}],"structuredContent":{{"config":{},"secret":{}}}}}"#,
                    json_or_null(value),
                    json_or_null(secret)
                ))
            }
            "snoop" => Ok(snoop()),
            "remember" => {
                let value = string_arg(&arguments, "value");
                let previous = REMEMBERED.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), value));
                Ok(format!(
                    r#"{{"content":[{{"type":"text","text":"remembered"}}],"structuredContent":{{"previous":{}}}}}"#,
                    json_or_null(previous)
                ))
            }
            "shout" => {
                let line = "y".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                    eprintln!("{line}");
                }
                Ok(text("shouted"))
            }
            "fill" => {
                let value =
                    string_arg(&arguments, "value").ok_or_else(|| Error::InvalidParams("missing value".into()))?;
                Ok(text(&format!("filled {} bytes", fill(&value))))
            }
            "scan" => {
                let value =
                    string_arg(&arguments, "value").ok_or_else(|| Error::InvalidParams("missing value".into()))?;
                Ok(scan(&value))
            }
            "ask" => ask(),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(text("woke up"))
            }
            "chatty" => {
                for i in 0..100_000u32 {
                    berth::mcp::client::log(berth::mcp::types::LogLevel::Info, None, &i.to_string());
                }
                Ok(text("chatted"))
            }
            other => Err(Error::InvalidParams(format!("unknown tool {other}"))),
        }
    }

    fn list_resources() -> Vec<Resource> {
        Vec::new()
    }

    fn list_resource_templates() -> Vec<ResourceTemplate> {
        Vec::new()
    }

    fn read_resource(uri: String) -> Result<String, Error> {
        Err(Error::ResourceNotFound(uri))
    }

    fn list_prompts() -> Vec<Prompt> {
        Vec::new()
    }

    fn get_prompt(name: String, _arguments: String) -> Result<String, Error> {
        Err(Error::InvalidParams(format!("unknown prompt {name}")))
    }

    fn complete(_request: String) -> Result<String, Error> {
        Ok(r#"{"completion":{"values":[]}}"#.to_owned())
    }
}
