//! JSON-RPC 2.0 framing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Standard and MCP error codes.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Server-side failure.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Legacy resource-not-found (2025-11-25 and earlier only).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Modern: a standard header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// Modern: the request needs a client capability it did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// Modern: the requested protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC request id: a string or an integer (MCP forbids `null`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl RequestId {
    /// Reads an id; fractional numbers, booleans, objects, arrays and `null` are not ids.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Number(n) => n.as_i64().map(Self::Number),
            _ => None,
        }
    }

    /// The id as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(n) => Value::from(*n),
            Self::String(s) => Value::from(s.as_str()),
        }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A short sentence.
    pub message: String,
    /// Extra detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with an arbitrary code (codes from a backend are passed through).
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The body is not JSON.
    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("Parse error: {detail}"))
    }

    /// Not a valid JSON-RPC message.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(code::INVALID_REQUEST, detail)
    }

    /// Unknown or unsupported method.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(code::METHOD_NOT_FOUND, "Method not found").with_data(Value::from(method))
    }

    /// Bad parameters.
    pub fn invalid_params(detail: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, detail)
    }

    /// A server-side failure; `detail` must not leak internals.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, detail)
    }

    /// Modern: a standard header disagrees with the body (HTTP 400).
    pub fn header_mismatch(detail: impl Into<String>) -> Self {
        Self::new(code::HEADER_MISMATCH, detail)
    }

    /// Modern: the request needs client capabilities the client did not declare (HTTP 400).
    pub fn missing_client_capability(required: Value) -> Self {
        Self::new(code::MISSING_REQUIRED_CLIENT_CAPABILITY, "Missing required client capability")
            .with_data(json!({ "requiredCapabilities": required }))
    }

    /// Modern: unsupported protocol version (HTTP 400).
    pub fn unsupported_version(requested: &str, supported: &[&str]) -> Self {
        Self::new(code::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
            .with_data(json!({ "supported": supported, "requested": requested }))
    }

    /// A quota refused the request (sent with HTTP 429). The code is `-32600`, as for every
    /// other refusal before a request reaches its server: the MCP spec reserves `-32020..-32099`
    /// and allocates nothing for quotas. `data` names the limit (`limit`, `scope`, `allowed`,
    /// `retryAfter`).
    pub fn quota_exceeded(message: impl Into<String>, data: Value) -> Self {
        Self::new(code::INVALID_REQUEST, message).with_data(data)
    }

    /// A resource that does not exist: `-32002` for legacy clients, `-32602` for modern ones.
    pub fn resource_not_found(uri: &str, modern: bool) -> Self {
        let code = if modern { code::INVALID_PARAMS } else { code::RESOURCE_NOT_FOUND };
        Self::new(code, "Resource not found").with_data(json!({ "uri": uri }))
    }
}

/// A request: it expects a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id to answer with.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// Parameters (an empty object when absent).
    pub params: Map<String, Value>,
}

/// A notification: no response.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// Parameters (an empty object when absent).
    pub params: Map<String, Value>,
}

/// A response from the client to a server-initiated request (legacy era).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the server's request.
    pub id: RequestId,
    /// The result or the error.
    pub outcome: Result<Value, RpcError>,
}

/// One incoming JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response to one of our requests.
    Response(Response),
}

/// Why one message was rejected, with the id to answer when one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The request id, when the message had a valid one.
    pub id: Option<RequestId>,
    /// The error to send.
    pub error: RpcError,
}

/// The body of a POST.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// One message.
    Single(Message),
    /// A JSON array (only `2025-03-26` allows batches); each element parsed on its own.
    Batch(Vec<Result<Message, Rejected>>),
}

/// Parses a POST body. A body that is not JSON, or an empty batch, is rejected whole.
pub fn parse(body: &[u8]) -> Result<Incoming, Rejected> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Rejected { id: None, error: RpcError::parse_error(e) })?;
    match value {
        Value::Array(items) if items.is_empty() => {
            Err(Rejected { id: None, error: RpcError::invalid_request("Invalid Request: empty batch") })
        }
        Value::Array(items) => Ok(Incoming::Batch(items.into_iter().map(parse_message).collect())),
        other => parse_message(other).map(Incoming::Single),
    }
}

/// Parses one message object.
pub fn parse_message(value: Value) -> Result<Message, Rejected> {
    let Value::Object(mut object) = value else {
        return Err(Rejected { id: None, error: RpcError::invalid_request("Invalid Request: not an object") });
    };
    let raw_id = object.remove("id");
    let id = match &raw_id {
        None => None,
        Some(v) => match RequestId::from_value(v) {
            Some(id) => Some(id),
            None => {
                return Err(Rejected {
                    id: None,
                    error: RpcError::invalid_request("Invalid Request: id must be a string or an integer"),
                });
            }
        },
    };
    let reject = |detail: &str| Rejected { id: id.clone(), error: RpcError::invalid_request(detail) };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(reject("Invalid Request: jsonrpc must be \"2.0\""));
    }
    let params = match object.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Rejected { id: id.clone(), error: RpcError::invalid_params("params must be an object") });
        }
    };
    match object.remove("method") {
        Some(Value::String(method)) => Ok(match id {
            Some(id) => Message::Request(Request { id, method, params }),
            None => Message::Notification(Notification { method, params }),
        }),
        Some(_) => Err(reject("Invalid Request: method must be a string")),
        None => {
            let outcome = match (object.remove("result"), object.remove("error")) {
                (Some(result), None) => Ok(result),
                (None, Some(error)) => Err(serde_json::from_value::<RpcError>(error)
                    .map_err(|_| reject("Invalid Request: malformed error object"))?),
                _ => return Err(reject("Invalid Request: a response needs exactly one of result and error")),
            };
            let Some(id) = id else { return Err(reject("Invalid Request: no method and no id")) };
            Ok(Message::Response(Response { id, outcome }))
        }
    }
}

/// `value` as compact JSON text, the same text as `value.to_string()`, serialized straight into
/// a byte buffer instead of through `fmt::Display`, whose formatter adds a dynamic call for
/// every token (every message Berth sends is written by this).
pub fn text(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its keys are strings and its numbers are finite.
    serde_json::to_string(value).unwrap_or_default()
}

/// A success response.
pub fn response(id: &RequestId, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.to_value(), "result": result })
}

/// An error response; `id` is `null` when the request's id could not be read.
pub fn error_response(id: Option<&RequestId>, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.map_or(Value::Null, RequestId::to_value), "error": error })
}

/// A notification message.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

/// A server-initiated request (legacy era).
pub fn request(id: &RequestId, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.to_value(), "method": method, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_compact_json_display_writes() {
        let value: Value = serde_json::from_str(
            r#"{"z":[1,-2.5,1e300,null,true,{"é":"\u0000\n\"\\\u001f\u2028 ok"}],"a":{},"m":[],"n":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(text(&value), value.to_string());
        assert!(text(&value).contains(r#""é":"\u0000\n\"\\\u001f"#), "{}", text(&value));
        assert_eq!(text(&Value::String("x".into())), r#""x""#);
    }

    fn single(body: &str) -> Result<Message, Rejected> {
        match parse(body.as_bytes())? {
            Incoming::Single(m) => Ok(m),
            Incoming::Batch(_) => panic!("unexpected batch"),
        }
    }

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let m = single(r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#).unwrap();
        assert_eq!(
            m,
            Message::Request(Request { id: RequestId::Number(0), method: "tools/list".into(), params: Map::new() })
        );
        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification(n) if n.method == "notifications/initialized"));
        let m = single(r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#).unwrap();
        assert!(matches!(m, Message::Response(Response { outcome: Ok(_), .. })));
        let m = single(r#"{"jsonrpc":"2.0","id":"s-1","error":{"code":-1,"message":"no"}}"#).unwrap();
        assert!(matches!(m, Message::Response(Response { outcome: Err(e), .. }) if e.code == -1));
    }

    #[test]
    fn malformed_json_is_a_parse_error_without_id() {
        let r = parse(b"{not json").unwrap_err();
        assert_eq!((r.id, r.error.code), (None, code::PARSE_ERROR));
    }

    #[test]
    fn wrong_jsonrpc_version_keeps_the_id() {
        let r = single(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).unwrap_err();
        assert_eq!(r.id, Some(RequestId::Number(7)));
        assert_eq!(r.error.code, code::INVALID_REQUEST);
    }

    #[test]
    fn ids_of_the_wrong_type_are_invalid_requests() {
        for id in ["null", "true", "1.5", "{}", "[1]"] {
            let r = single(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)).unwrap_err();
            assert_eq!(r.error.code, code::INVALID_REQUEST, "id {id}");
        }
    }

    #[test]
    fn non_object_params_are_invalid_params() {
        let r = single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#).unwrap_err();
        assert_eq!(r.error.code, code::INVALID_PARAMS);
    }

    #[test]
    fn batches_parse_each_element_and_empty_batches_are_rejected() {
        let Incoming::Batch(items) = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]"#).unwrap() else {
            panic!("expected a batch")
        };
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
        assert_eq!(parse(b"[]").unwrap_err().error.code, code::INVALID_REQUEST);
    }

    #[test]
    fn responses_echo_string_and_integer_ids() {
        let r = response(&RequestId::String("a".into()), json!({}));
        assert_eq!(r["id"], "a");
        let e = error_response(None, &RpcError::parse_error("x"));
        assert!(e["id"].is_null());
        assert_eq!(e["error"]["code"], code::PARSE_ERROR);
    }
}
