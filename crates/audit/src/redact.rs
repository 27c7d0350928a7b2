//! Redaction of captured payloads: values under secret-looking keys become `"[REDACTED]"`.
//!
//! A key matches a name when, lowercased with `-` read as `_`, it equals the name or ends with
//! `_<name>` (`github_token` matches `token`; `max_tokens` does not). The defaults are
//! [`DEFAULT_SECRET_KEYS`]; a server adds its own names.

use serde_json::Value;

/// Keys redacted for every server.
pub const DEFAULT_SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "private_key",
    "credentials",
];

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

fn matches(key: &str, name: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    let name = name.to_ascii_lowercase().replace('-', "_");
    key == name || key.ends_with(&format!("_{name}"))
}

fn is_secret(key: &str, extra: &[String]) -> bool {
    DEFAULT_SECRET_KEYS.iter().any(|n| matches(key, n)) || extra.iter().any(|n| matches(key, n))
}

/// A copy of `value` with secrets redacted at any depth.
pub fn redact(value: &Value, extra: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret(k, extra) { Value::from(REDACTED) } else { redact(v, extra) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact(v, extra)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_lookalikes_are_kept() {
        let value = json!({"name": "deploy", "arguments": {"github_token": "ghp_x", "max_tokens": 5,
            "nested": [{"Password": "p", "ssn": "1"}]}});
        let out = redact(&value, &["ssn".to_owned()]);
        assert_eq!(
            out,
            json!({"name": "deploy", "arguments": {"github_token": REDACTED, "max_tokens": 5,
            "nested": [{"Password": REDACTED, "ssn": REDACTED}]}})
        );
    }
}
