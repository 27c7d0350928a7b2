//! A small MCP server over stdio (protocol `2025-11-25`), written as plainly as possible so the
//! container runtime's tests control every byte it writes: tools that echo, add, report
//! progress, ask the client (elicitation, sampling), inspect their own sandbox, probe the
//! network, crash, and flood stdout; one resource, one resource template and one prompt.
//!
//! It reads one JSON-RPC message per line and answers one call at a time. While a tool waits for
//! the client's answer to a server→client request it keeps reading lines and answers only that.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{Value, json};

fn send(out: &mut impl Write, message: &Value) {
    let _ = writeln!(out, "{message}");
    let _ = out.flush();
}

fn text(s: impl Into<String>) -> Value {
    json!({ "content": [{ "type": "text", "text": s.into() }] })
}

struct Server<R, W> {
    input: R,
    out: W,
    next_id: u64,
}

fn tools() -> Value {
    let string = |d: &str| json!({ "type": "string", "description": d });
    let object =
        |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required });
    json!({ "tools": [
        { "name": "echo", "description": "Echoes the message back",
          "inputSchema": object(json!({ "message": string("what to echo") }), &["message"]) },
        { "name": "add", "description": "Adds two numbers",
          "inputSchema": object(json!({ "a": { "type": "number" }, "b": { "type": "number" } }), &["a", "b"]) },
        { "name": "slow", "description": "Counts to steps, reporting progress and logging each step",
          "inputSchema": object(json!({ "steps": { "type": "integer" }, "delay_ms": { "type": "integer" } }), &[]) },
        { "name": "ask_name", "description": "Asks the user for a name (elicitation)",
          "inputSchema": object(json!({}), &[]) },
        { "name": "sample", "description": "Asks the client's model (sampling)",
          "inputSchema": object(json!({ "prompt": string("the prompt") }), &["prompt"]) },
        { "name": "sandbox", "description": "Reports user, capabilities, no_new_privs, writable paths and interfaces",
          "inputSchema": object(json!({}), &[]) },
        { "name": "probe", "description": "Tries TCP connections; non-loopback targets only when no interface but lo exists",
          "inputSchema": object(json!({ "targets": { "type": "array", "items": { "type": "string" } } }), &["targets"]) },
        { "name": "crash", "description": "Exits the process in the middle of the call",
          "inputSchema": object(json!({}), &[]) },
        { "name": "flood", "description": "Writes one line of the given size to stdout, then answers",
          "inputSchema": object(json!({ "bytes": { "type": "integer" } }), &["bytes"]) },
        { "name": "env", "description": "Returns an environment variable",
          "inputSchema": object(json!({ "name": string("variable") }), &["name"]) },
    ]})
}

fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        // /sys may be absent: fall back to /proc/net/dev.
        if let Ok(dev) = std::fs::read_to_string("/proc/net/dev") {
            names = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim().to_owned()).collect();
        }
    }
    names.sort();
    names
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned()))
        .unwrap_or_default()
}

fn writable(path: &str) -> bool {
    let file = format!("{path}/.berth-probe");
    let ok = std::fs::write(&file, b"x").is_ok();
    let _ = std::fs::remove_file(&file);
    ok
}

impl<R: BufRead, W: Write> Server<R, W> {
    fn read(&mut self) -> Option<Value> {
        loop {
            let mut line = String::new();
            match self.input.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if let Ok(value) = serde_json::from_str::<Value>(line.trim()) {
                return Some(value);
            }
        }
    }

    /// Sends a server→client request and waits for its response.
    fn ask(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = format!("s-{}", self.next_id);
        send(&mut self.out, &json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.read().ok_or("stdin closed")?;
            if message.get("id").and_then(Value::as_str) == Some(id.as_str()) && message.get("method").is_none() {
                if let Some(error) = message.get("error") {
                    return Err(error.to_string());
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
            if let Some(rid) = message.get("id").cloned() {
                if message.get("method").and_then(Value::as_str) == Some("ping") {
                    send(&mut self.out, &json!({ "jsonrpc": "2.0", "id": rid, "result": {} }));
                } else if message.get("method").is_some() {
                    let error = json!({ "code": -32603, "message": "busy: one call at a time" });
                    send(&mut self.out, &json!({ "jsonrpc": "2.0", "id": rid, "error": error }));
                }
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        send(&mut self.out, &json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn call(&mut self, params: &Value) -> Result<Value, (i64, String)> {
        let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
        let args = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
        let token = params.get("_meta").and_then(|m| m.get("progressToken")).cloned();
        let arg_str = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        match name {
            "echo" => {
                let message = arg_str("message");
                let mut out = text(message.clone());
                out["structuredContent"] = json!({ "message": message });
                Ok(out)
            }
            "add" => {
                let a = args.get("a").and_then(Value::as_f64).unwrap_or(0.0);
                let b = args.get("b").and_then(Value::as_f64).unwrap_or(0.0);
                Ok(text(format!("{}", a + b)))
            }
            "slow" => {
                let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3).min(1000);
                let delay = args.get("delay_ms").and_then(Value::as_u64).unwrap_or(50).min(60_000);
                for step in 1..=steps {
                    std::thread::sleep(Duration::from_millis(delay));
                    if let Some(token) = &token {
                        let p = json!({ "progressToken": token, "progress": step, "total": steps, "message": format!("step {step}") });
                        self.notify("notifications/progress", p);
                    }
                    self.notify(
                        "notifications/message",
                        json!({ "level": "info", "logger": "slow", "data": format!("step {step}") }),
                    );
                }
                Ok(text(format!("counted to {steps}")))
            }
            "ask_name" => {
                let schema =
                    json!({ "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] });
                let answer = self
                    .ask("elicitation/create", json!({ "message": "What is your name?", "requestedSchema": schema }))
                    .map_err(|e| (-32603, format!("elicitation failed: {e}")))?;
                let action = answer.get("action").and_then(Value::as_str).unwrap_or("?");
                let name = answer.get("content").and_then(|c| c.get("name")).and_then(Value::as_str).unwrap_or("");
                Ok(text(format!("{action}: hello {name}")))
            }
            "sample" => {
                let prompt = arg_str("prompt");
                let answer = self
                    .ask(
                        "sampling/createMessage",
                        json!({ "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }], "maxTokens": 50 }),
                    )
                    .map_err(|e| (-32603, format!("sampling failed: {e}")))?;
                let said = answer.get("content").and_then(|c| c.get("text")).and_then(Value::as_str).unwrap_or("");
                Ok(text(format!("model said: {said}")))
            }
            "sandbox" => {
                let report = json!({
                    "uid": status_field("Uid:").split_whitespace().next().unwrap_or("").to_owned(),
                    "cap_eff": status_field("CapEff:"),
                    "no_new_privs": status_field("NoNewPrivs:"),
                    "root_writable": writable(""),
                    "tmp_writable": writable("/tmp"),
                    "interfaces": interfaces(),
                });
                let mut out = text(report.to_string());
                out["structuredContent"] = report;
                Ok(out)
            }
            "probe" => {
                let only_lo = interfaces().iter().all(|i| i == "lo");
                let mut results = serde_json::Map::new();
                for target in args.get("targets").and_then(Value::as_array).into_iter().flatten() {
                    let target = target.as_str().unwrap_or_default();
                    let Ok(addr) = target.parse::<std::net::SocketAddr>() else {
                        results.insert(target.into(), json!("bad address"));
                        continue;
                    };
                    // Never send a packet off the machine: without a lone `lo`, only loopback.
                    if !addr.ip().is_loopback() && !only_lo {
                        results.insert(target.into(), json!("skipped: the container has a network"));
                        continue;
                    }
                    let outcome = match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                        Ok(_) => "connected".to_owned(),
                        Err(e) => format!("error: {e}"),
                    };
                    results.insert(target.into(), json!(outcome));
                }
                let report = json!({ "interfaces": interfaces(), "results": results });
                let mut out = text(report.to_string());
                out["structuredContent"] = report;
                Ok(out)
            }
            "crash" => {
                self.notify("notifications/message", json!({ "level": "error", "data": "crashing now" }));
                std::thread::sleep(Duration::from_millis(50));
                std::process::exit(3);
            }
            "flood" => {
                let bytes = args.get("bytes").and_then(Value::as_u64).unwrap_or(0).min(256 << 20) as usize;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if self.out.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
                let _ = self.out.write_all(b"\n");
                let _ = self.out.flush();
                Ok(text(format!("flooded {bytes} bytes")))
            }
            "env" => Ok(text(std::env::var(arg_str("name")).unwrap_or_default())),
            other => Err((-32602, format!("unknown tool {other}"))),
        }
    }

    fn handle(&mut self, method: &str, params: &Value) -> Option<Result<Value, (i64, String)>> {
        Some(match method {
            "initialize" => Ok(json!({
                "protocolVersion": params.get("protocolVersion").and_then(Value::as_str)
                    .filter(|v| ["2025-03-26", "2025-06-18", "2025-11-25"].contains(v)).unwrap_or("2025-11-25"),
                "capabilities": { "tools": {}, "resources": {}, "prompts": {}, "logging": {} },
                "serverInfo": { "name": "berth-test-stdio", "version": "0.1.0" },
                "instructions": "A test server for Berth's container runtime."
            })),
            "ping" | "logging/setLevel" => Ok(json!({})),
            "tools/list" => Ok(tools()),
            "tools/call" => self.call(params),
            "resources/list" => Ok(json!({ "resources": [
                { "uri": "mem://hello", "name": "hello", "mimeType": "text/plain" }
            ]})),
            "resources/templates/list" => Ok(json!({ "resourceTemplates": [
                { "uriTemplate": "mem://greeting/{name}", "name": "greeting", "mimeType": "text/plain" }
            ]})),
            "resources/read" => {
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or_default();
                let body = if uri == "mem://hello" {
                    Some("hello from a container".to_owned())
                } else {
                    uri.strip_prefix("mem://greeting/").map(|name| format!("greetings, {name}"))
                };
                match body {
                    Some(text) => Ok(json!({ "contents": [{ "uri": uri, "mimeType": "text/plain", "text": text }] })),
                    None => Err((-32002, format!("resource not found: {uri}"))),
                }
            }
            "prompts/list" => Ok(json!({ "prompts": [
                { "name": "greet", "description": "Greets someone", "arguments": [{ "name": "name", "required": true }] }
            ]})),
            "prompts/get" => {
                let name = params.get("arguments").and_then(|a| a.get("name")).and_then(Value::as_str).unwrap_or("you");
                Ok(
                    json!({ "messages": [{ "role": "user", "content": { "type": "text", "text": format!("Say hello to {name}") } }] }),
                )
            }
            _ if method.starts_with("notifications/") => return None,
            other => Err((-32601, format!("method not found: {other}"))),
        })
    }

    fn run(&mut self) {
        while let Some(message) = self.read() {
            let Some(method) = message.get("method").and_then(Value::as_str).map(str::to_owned) else { continue };
            let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
            let outcome = self.handle(&method, &params);
            let (Some(id), Some(outcome)) = (message.get("id").cloned(), outcome) else { continue };
            let reply = match outcome {
                Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
                Err((code, text)) => json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": text } }),
            };
            send(&mut self.out, &reply);
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("berth-test-stdio 0.1.0");
        return;
    }
    eprintln!("berth-test-stdio: ready");
    if std::env::var_os("BERTH_TEST_FAIL_START").is_some() {
        eprintln!("berth-test-stdio: refusing to start (BERTH_TEST_FAIL_START is set)");
        std::process::exit(2);
    }
    let stdin = std::io::stdin();
    let mut server = Server { input: stdin.lock(), out: std::io::stdout().lock(), next_id: 0 };
    server.run();
}
