//! Modern standard headers: `Mcp-Method` and `Mcp-Name` must mirror the body.
//!
//! Values that are not plain visible ASCII are sent as `=?base64?<base64>?=`; they are decoded
//! before comparison. Comparison is case-sensitive.

use base64::Engine;
use serde_json::{Map, Value};

use crate::jsonrpc::RpcError;

/// `Mcp-Method` header name.
pub const MCP_METHOD: &str = "mcp-method";
/// `Mcp-Name` header name.
pub const MCP_NAME: &str = "mcp-name";

/// Decodes a header value, undoing the `=?base64?…?=` encoding.
pub fn decode_value(raw: &[u8]) -> Result<String, RpcError> {
    if !raw.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)) {
        return Err(RpcError::header_mismatch("header value has invalid characters"));
    }
    let text = std::str::from_utf8(raw).map_err(|_| RpcError::header_mismatch("header value is not ASCII"))?.trim();
    match text.strip_prefix("=?base64?").and_then(|t| t.strip_suffix("?=")) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| RpcError::header_mismatch("header value is not valid base64"))?;
            String::from_utf8(bytes).map_err(|_| RpcError::header_mismatch("decoded header value is not UTF-8"))
        }
        None => Ok(text.to_owned()),
    }
}

/// The body field `Mcp-Name` must mirror for `method`, if any.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// Checks `Mcp-Method` (every request) and `Mcp-Name` (calls, reads, gets) against the body.
/// `header` looks a header up by lowercase name and returns its raw bytes.
pub fn check<'h>(
    method: &str,
    params: &Map<String, Value>,
    header: impl Fn(&str) -> Option<&'h [u8]>,
) -> Result<(), RpcError> {
    let sent = header(MCP_METHOD).ok_or_else(|| RpcError::header_mismatch("missing required Mcp-Method header"))?;
    if decode_value(sent)? != method {
        return Err(RpcError::header_mismatch("Mcp-Method header does not match the request body's method"));
    }
    if let Some(field) = name_field(method) {
        let sent = header(MCP_NAME)
            .ok_or_else(|| RpcError::header_mismatch(format!("missing required Mcp-Name header for {method}")))?;
        let body = params.get(field).and_then(Value::as_str);
        if body != Some(decode_value(sent)?.as_str()) {
            return Err(RpcError::header_mismatch(format!(
                "Mcp-Name header does not match the request body's '{field}'"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a [u8]> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes())
    }

    #[test]
    fn matching_headers_pass() {
        let p = params(json!({"name": "echo"}));
        assert!(check("tools/call", &p, headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")])).is_ok());
        let p = params(json!({"uri": "test://x"}));
        assert!(
            check("resources/read", &p, headers(&[("mcp-method", "resources/read"), ("mcp-name", "test://x")])).is_ok()
        );
        assert!(check("tools/list", &Map::new(), headers(&[("mcp-method", "tools/list")])).is_ok());
    }

    #[test]
    fn missing_or_mismatched_headers_are_header_mismatch_errors() {
        let p = params(json!({"name": "echo"}));
        for pairs in [
            &[][..],
            &[("mcp-method", "tools/call")][..],
            &[("mcp-method", "tools/list"), ("mcp-name", "echo")][..],
            &[("mcp-method", "tools/call"), ("mcp-name", "Echo")][..],
        ] {
            assert_eq!(check("tools/call", &p, headers(pairs)).unwrap_err().code, -32020, "{pairs:?}");
        }
    }

    #[test]
    fn base64_values_are_decoded_before_comparison() {
        let p = params(json!({"name": "héllo"}));
        let encoded = format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode("héllo"));
        let pairs = [("mcp-method", "tools/call"), ("mcp-name", encoded.as_str())];
        assert!(check("tools/call", &p, headers(&pairs)).is_ok());
        assert!(decode_value(b"=?base64?!!!?=").is_err());
        assert!(decode_value(b"a\x01b").is_err());
    }
}
