//! Credentials: how API keys look, how they are hashed, and how a presented credential
//! becomes a [`Principal`](berth_core::Principal); member passwords (argon2id); and OAuth 2.1:
//! the public URLs, opaque secrets, PKCE, redirect URI rules ([`oauth`]) and JWT access tokens
//! with per-tenant keys ([`jwt`]); the rules for Client ID Metadata Documents ([`cimd`]).
//!
//! This crate holds no I/O: callers fetch the stored key by its prefix and hand it to
//! [`verify_api_key`], which decides; token callers fetch an issuer's keys and hand them to
//! [`jwt::verify`]. [`cache`] holds the bounded caches of the token path.

pub mod api_key;
pub mod cache;
pub mod cimd;
mod crypto;
pub mod error;
pub mod jwt;
pub mod oauth;
pub mod password;

pub use api_key::{GeneratedKey, ParsedKey, StoredKey, admin_token_matches, generate_admin_token, verify_api_key};
pub use error::{Error, Result, TokenError};

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
