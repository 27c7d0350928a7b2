//! Decorating backend results for the era of the request.

use serde_json::{Map, Value, json};

use crate::meta::SERVER_INFO;

/// Methods whose complete results carry cache hints (`ttlMs`, `cacheScope`) in the modern era.
pub fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Methods that may answer with `input_required` (MRTR).
pub fn allows_input_required(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// Makes `result` a valid modern result: `resultType` (default `complete`), cache hints on
/// cacheable complete results (`private`: Berth's lists depend on the caller's credentials),
/// and `_meta.serverInfo`.
pub fn modern(method: &str, mut result: Map<String, Value>, server_info: &Value, ttl_ms: u64) -> Map<String, Value> {
    let complete = !matches!(result.get("resultType").and_then(Value::as_str), Some("input_required"));
    result.entry("resultType").or_insert_with(|| Value::from("complete"));
    if complete && is_cacheable(method) {
        result.entry("ttlMs").or_insert_with(|| Value::from(ttl_ms));
        result.entry("cacheScope").or_insert_with(|| Value::from("private"));
    }
    let meta = result.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.entry(SERVER_INFO).or_insert_with(|| server_info.clone());
    }
    result
}

/// Strips modern-only fields from a result sent to a legacy client.
pub fn legacy(mut result: Map<String, Value>) -> Map<String, Value> {
    for key in ["resultType", "ttlMs", "cacheScope"] {
        result.remove(key);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn modern_lists_get_result_type_cache_hints_and_server_info() {
        let out = modern("tools/list", map(json!({"tools": []})), &json!({"name": "b", "version": "1"}), 0);
        assert_eq!(out["resultType"], "complete");
        assert_eq!(out["ttlMs"], 0);
        assert_eq!(out["cacheScope"], "private");
        assert_eq!(out["_meta"][SERVER_INFO]["name"], "b");
    }

    #[test]
    fn input_required_and_calls_get_no_cache_hints() {
        let out =
            modern("resources/read", map(json!({"resultType": "input_required", "requestState": "s"})), &json!({}), 0);
        assert!(out.get("ttlMs").is_none());
        let out = modern("tools/call", map(json!({"content": []})), &json!({}), 0);
        assert!(out.get("cacheScope").is_none());
        assert_eq!(out["resultType"], "complete");
    }

    #[test]
    fn legacy_results_lose_modern_fields() {
        let out = legacy(map(json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "public"})));
        assert_eq!(Value::Object(out), json!({"tools": []}));
    }
}
