//! Legacy session ids: `<node>.<nonce>.<tag>`.
//!
//! The nonce holds 128 random bits; the tag is a truncated HMAC of node and nonce under the
//! session key. A forged or mangled id is rejected before any lookup, and the node part lets a
//! multi-node deployment forward a request to the session's owner. Ids are visible ASCII.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_protocol::state::StateKey;
use rand::RngExt;

const TAG_LEN: usize = 16;

/// Mints a new session id owned by `node`.
pub fn mint(key: &StateKey, node: &str) -> String {
    let nonce: [u8; 16] = rand::rng().random();
    let nonce = URL_SAFE_NO_PAD.encode(nonce);
    let tag = key.mac(&[node.as_bytes(), nonce.as_bytes()]);
    let tag = URL_SAFE_NO_PAD.encode(tag.get(..TAG_LEN).unwrap_or_default());
    format!("{node}.{nonce}.{tag}")
}

/// The owning node of an authentic id, or `None` for a forged or malformed one.
pub fn verify<'a>(key: &StateKey, id: &'a str) -> Option<&'a str> {
    if id.len() > 128 {
        return None;
    }
    let mut parts = id.split('.');
    let (node, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || nonce.len() != 22 {
        return None;
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let full = key.mac(&[node.as_bytes(), nonce.as_bytes()]);
    let expected = full.get(..TAG_LEN)?;
    // Constant-time comparison of the truncated tag.
    let diff = expected.iter().zip(tag.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (tag.len() == TAG_LEN && diff == 0).then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::derive(b"secret", "sessions")
    }

    #[test]
    fn minted_ids_verify_name_their_node_and_are_visible_ascii() {
        let id = mint(&key(), "node-1");
        assert_eq!(verify(&key(), &id), Some("node-1"));
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_ne!(id, mint(&key(), "node-1"));
    }

    #[test]
    fn forged_mangled_and_foreign_ids_do_not_verify() {
        let id = mint(&key(), "node-1");
        let other = StateKey::derive(b"other", "sessions");
        assert_eq!(verify(&other, &id), None);
        let swapped = id.replacen("node-1", "node-2", 1);
        assert_eq!(verify(&key(), &swapped), None);
        let mut flipped = id.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(verify(&key(), std::str::from_utf8(&flipped).unwrap()), None);
        for bad in ["", "a.b", "a.b.c.d", "node.short.tag"] {
            assert_eq!(verify(&key(), bad), None, "{bad}");
        }
    }
}
