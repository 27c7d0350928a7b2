//! Canonical JSON: object keys sorted, no insignificant whitespace.
//!
//! Used wherever a digest of JSON must not depend on how a client ordered its keys
//! (sealed request state, audit argument digests).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` canonically.
pub fn to_string(value: &Value) -> String {
    // Only whole JSON text, which is UTF-8, was written.
    String::from_utf8(to_vec(value)).unwrap_or_default()
}

fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                scalar(key, out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        other => scalar(other, out),
    }
}

/// Appends a string or a scalar as `serde_json` writes it.
fn scalar<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // A string, a number, a boolean or null always serializes.
    let _ = serde_json::to_writer(out, value);
}

/// SHA-256 of the canonical form.
pub fn digest(value: &Value) -> [u8; 32] {
    Sha256::digest(to_vec(value)).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_canonical_form() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":"é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(to_string(&a), to_string(&b));
        assert_eq!(to_string(&a), r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#);
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"b": 2})));
    }
}
