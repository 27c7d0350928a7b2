//! What an audit event records.
//!
//! One shape for every kind: admin mutations, authentication, client sessions and MCP calls.
//! Fields that do not apply are `None`. Producers build an [`AuditEvent`]; the sink seals it
//! into its tenant's chain ([`SealedEvent`](crate::chain::SealedEvent)).

use berth_core::TenantId;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A change through the admin API (`method` is `PATCH /api/v1/tenants/{tenant}/…`).
    Admin,
    /// A credential was accepted or refused (`method` is `authenticate`).
    Auth,
    /// A client session opened or closed (`method` is `open` or `close`).
    Session,
    /// An MCP call (`method` is `tools/call`, `resources/read`, `prompts/get`).
    Call,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Admin => "admin",
            Kind::Auth => "auth",
            Kind::Session => "session",
            Kind::Call => "call",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Kind::Admin),
            "auth" => Some(Kind::Auth),
            "session" => Some(Kind::Session),
            "call" => Some(Kind::Call),
            _ => None,
        }
    }
}

/// One audit event before it joins its tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUIDv7, assigned when the event happens; storing it twice is a no-op (replay).
    pub id: Uuid,
    /// When it happened (microsecond precision, as PostgreSQL stores it).
    pub at: DateTime<Utc>,
    /// The tenant whose chain it joins.
    pub tenant_id: TenantId,
    /// What kind of event.
    pub kind: Kind,
    /// The MCP method, the admin route (`PATCH /api/v1/tenants/{tenant}`), `authenticate`,
    /// `open` or `close`.
    pub method: String,
    /// The tool, prompt or resource URI; the admin request path; the legacy session id.
    pub name: Option<String>,
    /// Principal label (`api-key:<id>`, `oauth:<client>:<subject>`, `platform-admin`,
    /// `anonymous`; for refused credentials `unknown` or `api-key-prefix:<prefix>`).
    pub principal: String,
    /// The MCP client (`clientInfo` name and version).
    pub client: Option<String>,
    /// Server slug.
    pub server: Option<String>,
    /// Server version number.
    pub version: Option<i32>,
    /// SHA-256 (hex) of the canonical JSON of the call's arguments.
    pub args_sha256: Option<String>,
    /// The call's parameters as canonical JSON with secrets redacted, only when the server
    /// opted in to payload capture.
    pub payload: Option<String>,
    /// `ok`, `error`, `tool_error`, `input_required`, `cancelled`, `killed`, `denied`,
    /// `quota_exceeded`.
    pub outcome: String,
    /// JSON-RPC error code (MCP calls) or HTTP status (admin and auth events) of a failure.
    pub error_code: Option<i64>,
    /// Microseconds from dispatch to response.
    pub latency_us: Option<i64>,
    /// Microseconds of CPU the backend reported (WASM).
    pub cpu_us: Option<i64>,
    /// Request bytes.
    pub bytes_in: Option<i64>,
    /// Response bytes.
    pub bytes_out: Option<i64>,
    /// Free text: why a credential was refused, why a session closed, a quota's name.
    pub detail: Option<String>,
    /// The node that recorded it.
    pub node: String,
}

impl AuditEvent {
    /// A new event of `kind` happening now, with every optional field empty.
    pub fn new(tenant_id: TenantId, kind: Kind, method: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            at: now(),
            tenant_id,
            kind,
            method: method.into(),
            name: None,
            principal: principal.into(),
            client: None,
            server: None,
            version: None,
            args_sha256: None,
            payload: None,
            outcome: "ok".to_owned(),
            error_code: None,
            latency_us: None,
            cpu_us: None,
            bytes_in: None,
            bytes_out: None,
            detail: None,
            node: String::new(),
        }
    }
}

/// The current time at the precision PostgreSQL keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Saturating conversion for counters.
pub fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What a call's digest covers: `arguments` (or `{}`) for `tools/call` and `prompts/get`,
/// `{"uri": …}` for `resources/read`, the whole parameters otherwise.
pub fn digest_input(method: &str, params: &Map<String, Value>) -> Value {
    match method {
        "tools/call" | "prompts/get" => {
            params.get("arguments").filter(|a| !a.is_null()).cloned().unwrap_or_else(|| Value::Object(Map::new()))
        }
        "resources/read" => {
            let mut map = Map::new();
            if let Some(uri) = params.get("uri") {
                map.insert("uri".into(), uri.clone());
            }
            Value::Object(map)
        }
        _ => Value::Object(params.clone()),
    }
}

/// SHA-256 (hex) of the canonical JSON of `value`.
pub fn sha256_hex(value: &Value) -> String {
    lower_hex(&berth_protocol::canonical::digest(value))
}

/// SHA-256 (hex) of bytes.
pub fn sha256_bytes_hex(bytes: &[u8]) -> String {
    lower_hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`, as `hex::encode` writes it, into one allocation (`hex::encode`
/// pushes one `char` at a time; every audited call encodes three or four digests).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    // The output is exactly twice the input's length, and holds only ASCII hex digits.
    match hex::encode_to_slice(bytes, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => hex::encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lower_hex_writes_what_hex_encode_writes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(lower_hex(&all), hex::encode(&all));
        assert_eq!(lower_hex(&[]), "");
        assert_eq!(lower_hex(&[0x0f, 0xa0]), "0fa0");
    }

    #[test]
    fn the_argument_digest_ignores_key_order_and_absent_arguments_are_empty() {
        let a = json!({"name": "add", "arguments": {"a": 1, "b": 2}});
        let b = json!({"arguments": {"b": 2, "a": 1}, "name": "add"});
        let (Value::Object(a), Value::Object(b)) = (a, b) else { return };
        assert_eq!(sha256_hex(&digest_input("tools/call", &a)), sha256_hex(&digest_input("tools/call", &b)));
        assert_eq!(digest_input("tools/call", &Map::new()), json!({}));
        assert_eq!(digest_input("resources/read", &b), json!({}));
    }

    #[test]
    fn timestamps_keep_microseconds_only() {
        let at = now();
        assert_eq!(at.timestamp_subsec_nanos() % 1000, 0);
    }
}
