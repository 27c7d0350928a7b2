//! Sealed `requestState` for Multi Round-Trip Requests (modern era).
//!
//! The state a client echoes back is attacker-controlled, so Berth seals it: the token is
//! `base64url(payload JSON) "." base64url(HMAC-SHA256)`, where the MAC also covers a
//! [`Binding`] that is *not* in the token: tenant, server, authenticated principal, method and a
//! digest of the request's parameters. A token replayed by another principal, on another server
//! or tenant, on a different request, after its expiry, or with any byte changed fails to open.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::canonical;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A 256-bit key for sealing and authenticating.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Derives a purpose-specific key from a longer secret.
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        Self(Self::mac_with(secret, &[purpose.as_bytes()]))
    }

    fn mac_with(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = match HmacSha256::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => return [0; 32],
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 over length-prefixed `parts` (unambiguous concatenation).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        Self::mac_with(&self.0, parts)
    }

    /// Constant-time check of a MAC over `parts`.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.0) else { return false };
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.verify_slice(tag).is_ok()
    }
}

/// What a sealed state is bound to; never stored in the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// Tenant slug.
    pub tenant: &'a str,
    /// Server slug.
    pub server: &'a str,
    /// Authenticated principal label.
    pub principal: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// [`request_digest`] of the request's parameters.
    pub params_digest: [u8; 32],
}

/// Why a state token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not a token Berth produced.
    #[error("requestState is malformed")]
    Malformed,
    /// Changed, or presented by another principal, server, tenant or request.
    #[error("requestState failed verification")]
    Forged,
    /// Past its expiry.
    #[error("requestState has expired")]
    Expired,
}

/// Digest of a request's salient parameters: everything but `_meta`, `inputResponses` and
/// `requestState`, in canonical form.
pub fn request_digest(params: &Map<String, Value>) -> [u8; 32] {
    let salient: Map<String, Value> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_meta" | "inputResponses" | "requestState"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    canonical::digest(&Value::Object(salient))
}

fn mac_parts<'a>(binding: &'a Binding<'_>, body: &'a [u8]) -> [&'a [u8]; 7] {
    [
        b"berth-request-state-v1",
        binding.tenant.as_bytes(),
        binding.server.as_bytes(),
        binding.principal.as_bytes(),
        binding.method.as_bytes(),
        &binding.params_digest,
        body,
    ]
}

/// Seals `payload`, valid until `expires_at` (Unix seconds).
pub fn seal(key: &StateKey, binding: &Binding<'_>, payload: &Value, expires_at: u64) -> String {
    let body = json!({ "exp": expires_at, "p": payload }).to_string();
    let tag = key.mac(&mac_parts(binding, body.as_bytes()));
    format!("{}.{}", URL_SAFE_NO_PAD.encode(body.as_bytes()), URL_SAFE_NO_PAD.encode(tag))
}

/// Opens a token sealed for exactly this `binding`, at time `now` (Unix seconds).
pub fn open(key: &StateKey, binding: &Binding<'_>, token: &str, now: u64) -> Result<Value, StateError> {
    if token.len() > 1024 * 1024 {
        return Err(StateError::Malformed);
    }
    let (body, tag) = token.split_once('.').ok_or(StateError::Malformed)?;
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| StateError::Malformed)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| StateError::Malformed)?;
    if !key.verify(&mac_parts(binding, &body), &tag) {
        return Err(StateError::Forged);
    }
    let mut value: Value = serde_json::from_slice(&body).map_err(|_| StateError::Malformed)?;
    let expires_at = value.get("exp").and_then(Value::as_u64).ok_or(StateError::Malformed)?;
    if now >= expires_at {
        return Err(StateError::Expired);
    }
    Ok(value.get_mut("p").map(Value::take).unwrap_or(Value::Null))
}

/// [`open`] under `current` or, while the deployment secret is being rotated, under `previous`:
/// a token sealed before a node restarted with a new secret still opens until it expires.
pub fn open_rotating(
    current: &StateKey,
    previous: Option<&StateKey>,
    binding: &Binding<'_>,
    token: &str,
    now: u64,
) -> Result<Value, StateError> {
    match (open(current, binding, token, now), previous) {
        (Err(StateError::Forged), Some(previous)) => open(previous, binding, token, now),
        (opened, _) => opened,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::derive(b"a test secret", "request-state")
    }

    fn binding(principal: &str) -> Binding<'_> {
        Binding { tenant: "acme", server: "calc", principal, method: "tools/call", params_digest: [7; 32] }
    }

    #[test]
    fn a_sealed_state_opens_for_its_binding_before_expiry() {
        let token = seal(&key(), &binding("key:1"), &json!({"answers": {"a": 1}}), 100);
        assert_eq!(open(&key(), &binding("key:1"), &token, 99), Ok(json!({"answers": {"a": 1}})));
        assert_eq!(open(&key(), &binding("key:1"), &token, 100), Err(StateError::Expired));
    }

    #[test]
    fn another_principal_server_request_or_key_cannot_open_it() {
        let token = seal(&key(), &binding("key:1"), &json!(1), 100);
        assert_eq!(open(&key(), &binding("key:2"), &token, 0), Err(StateError::Forged));
        let other_server = Binding { server: "other", ..binding("key:1") };
        assert_eq!(open(&key(), &other_server, &token, 0), Err(StateError::Forged));
        let other_request = Binding { params_digest: [8; 32], ..binding("key:1") };
        assert_eq!(open(&key(), &other_request, &token, 0), Err(StateError::Forged));
        let other_key = StateKey::derive(b"another secret", "request-state");
        assert_eq!(open(&other_key, &binding("key:1"), &token, 0), Err(StateError::Forged));
    }

    #[test]
    fn during_a_rotation_tokens_of_the_previous_key_open_and_others_do_not() {
        let old = StateKey::derive(b"the old secret", "request-state");
        let new = StateKey::derive(b"the new secret", "request-state");
        let sealed_before = seal(&old, &binding("key:1"), &json!({"n": 1}), 100);
        let sealed_after = seal(&new, &binding("key:1"), &json!({"n": 2}), 100);
        let open = |previous, token: &str, principal| open_rotating(&new, previous, &binding(principal), token, 0);
        assert_eq!(open(Some(&old), &sealed_before, "key:1"), Ok(json!({"n": 1})));
        assert_eq!(open(Some(&old), &sealed_after, "key:1"), Ok(json!({"n": 2})));
        assert_eq!(open(None, &sealed_before, "key:1"), Err(StateError::Forged));
        // The binding still holds under the previous key, and a third key opens nothing.
        assert_eq!(open(Some(&old), &sealed_before, "key:2"), Err(StateError::Forged));
        let third = StateKey::derive(b"a third secret", "request-state");
        assert_eq!(open(Some(&third), &sealed_before, "key:1"), Err(StateError::Forged));
        let expired = open_rotating(&new, Some(&old), &binding("key:1"), &sealed_before, 100);
        assert_eq!(expired, Err(StateError::Expired));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = seal(&key(), &binding("key:1"), &json!({"n": 1}), 100);
        let (body, tag) = token.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"exp":100,"p":{"n":2}}"#);
        assert_eq!(open(&key(), &binding("key:1"), &format!("{forged_body}.{tag}"), 0), Err(StateError::Forged));
        assert_eq!(open(&key(), &binding("key:1"), body, 0), Err(StateError::Malformed));
        assert_eq!(open(&key(), &binding("key:1"), "not base64!.x", 0), Err(StateError::Malformed));
    }

    #[test]
    fn the_request_digest_ignores_meta_and_mrtr_fields_but_not_arguments() {
        let a =
            json!({"name": "t", "arguments": {"x": 1}, "_meta": {"a": 1}, "requestState": "s", "inputResponses": {}});
        let b = json!({"arguments": {"x": 1}, "name": "t"});
        let c = json!({"arguments": {"x": 2}, "name": "t"});
        let digest = |v: &Value| request_digest(v.as_object().unwrap());
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&b), digest(&c));
    }
}
