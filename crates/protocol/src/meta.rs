//! The modern per-request `_meta` envelope, and log levels.

use serde_json::{Map, Value};

use crate::jsonrpc::RpcError;

/// `_meta` key: the request's protocol revision.
pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request.
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's self-description.
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: the lowest log level the client wants on this request's stream.
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// Result `_meta` key: the server's self-description.
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key on `subscriptions/listen` stream messages.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Syslog-style levels used by `logging/setLevel` and `notifications/message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Notice.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Alert.
    Alert,
    /// Emergency.
    Emergency,
}

impl LogLevel {
    /// Every level, least severe first (`ALL[level as usize] == level`).
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Notice,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Alert,
        LogLevel::Emergency,
    ];

    const NAMES: [(&'static str, LogLevel); 8] = [
        ("debug", LogLevel::Debug),
        ("info", LogLevel::Info),
        ("notice", LogLevel::Notice),
        ("warning", LogLevel::Warning),
        ("error", LogLevel::Error),
        ("critical", LogLevel::Critical),
        ("alert", LogLevel::Alert),
        ("emergency", LogLevel::Emergency),
    ];

    /// Parses a level name.
    pub fn parse(value: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == value).map(|(_, l)| *l)
    }

    /// The level name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES.iter().find(|(_, l)| *l == self).map_or("info", |(n, _)| n)
    }
}

/// The validated modern envelope of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub protocol_version: String,
    /// `io.modelcontextprotocol/clientCapabilities` (an object).
    pub client_capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`, when sent.
    pub client_info: Option<Value>,
    /// `io.modelcontextprotocol/logLevel`, when sent.
    pub log_level: Option<LogLevel>,
    /// `progressToken`, when sent.
    pub progress_token: Option<Value>,
}

/// Whether `params._meta` carries a modern protocol version (marks the request as modern).
pub fn has_modern_marker(params: &Map<String, Value>) -> bool {
    params.get("_meta").and_then(|m| m.get(PROTOCOL_VERSION)).is_some()
}

/// The progress token of any request (both eras), when present.
pub fn progress_token(params: &Map<String, Value>) -> Option<Value> {
    params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
        .cloned()
}

/// Reads and validates the modern `_meta` envelope (`-32602` when required keys are missing).
pub fn modern_meta(params: &Map<String, Value>) -> Result<RequestMeta, RpcError> {
    let Some(Value::Object(meta)) = params.get("_meta") else {
        return Err(RpcError::invalid_params(format!(
            "params._meta must be an object carrying the required '{PROTOCOL_VERSION}' and '{CLIENT_CAPABILITIES}' keys"
        )));
    };
    let missing: Vec<&str> =
        [PROTOCOL_VERSION, CLIENT_CAPABILITIES].into_iter().filter(|k| !meta.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing the required key(s): {}",
            missing.join(", ")
        )));
    }
    let Some(protocol_version) = meta.get(PROTOCOL_VERSION).and_then(Value::as_str) else {
        return Err(RpcError::invalid_params(format!("{PROTOCOL_VERSION} must be a string")));
    };
    let client_capabilities = match meta.get(CLIENT_CAPABILITIES) {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => return Err(RpcError::invalid_params(format!("{CLIENT_CAPABILITIES} must be an object"))),
    };
    let client_info = match meta.get(CLIENT_INFO) {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(RpcError::invalid_params(format!("{CLIENT_INFO} must be an object"))),
    };
    let log_level = match meta.get(LOG_LEVEL) {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(LogLevel::parse)
                .ok_or_else(|| RpcError::invalid_params(format!("{LOG_LEVEL} must be a valid log level")))?,
        ),
    };
    Ok(RequestMeta {
        protocol_version: protocol_version.to_owned(),
        client_capabilities,
        client_info,
        log_level,
        progress_token: progress_token(params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_full_envelope_is_read() {
        let p = params(
            json!({"_meta": {PROTOCOL_VERSION: "2026-07-28", CLIENT_CAPABILITIES: {}, LOG_LEVEL: "debug", "progressToken": "p1"}}),
        );
        let meta = modern_meta(&p).unwrap();
        assert_eq!(meta.protocol_version, "2026-07-28");
        assert_eq!(meta.log_level, Some(LogLevel::Debug));
        assert_eq!(meta.progress_token, Some(json!("p1")));
        assert!(meta.client_info.is_none());
    }

    #[test]
    fn missing_or_malformed_envelopes_are_invalid_params() {
        for p in [
            json!({}),
            json!({"_meta": {PROTOCOL_VERSION: "2026-07-28"}}),
            json!({"_meta": {CLIENT_CAPABILITIES: {}}}),
            json!({"_meta": {PROTOCOL_VERSION: 1, CLIENT_CAPABILITIES: {}}}),
            json!({"_meta": {PROTOCOL_VERSION: "2026-07-28", CLIENT_CAPABILITIES: []}}),
            json!({"_meta": {PROTOCOL_VERSION: "2026-07-28", CLIENT_CAPABILITIES: {}, LOG_LEVEL: "loud"}}),
        ] {
            assert_eq!(modern_meta(&params(p.clone())).unwrap_err().code, -32602, "{p}");
        }
    }

    #[test]
    fn log_levels_are_ordered_by_severity() {
        assert!(LogLevel::Debug < LogLevel::Info && LogLevel::Error < LogLevel::Emergency);
        assert_eq!(LogLevel::parse("warning").map(LogLevel::as_str), Some("warning"));
    }
}
