//! API keys: `berth_<prefix>_<secret>`.
//!
//! The 12-character prefix is public and indexes the key's row; the whole key is hashed with
//! SHA-256 for storage. A key holds 44 random base62 characters (about 260 bits), so a fast hash
//! is safe here where a password would need argon2. Comparison is constant-time.

use berth_core::{ApiKey, Principal, ServerId, Slug, TenantScope};
use chrono::{DateTime, Utc};
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

const PREFIX_LEN: usize = 12;
const SECRET_LEN: usize = 32;

fn random_base62(len: usize) -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A freshly generated key: the secret is shown once, the rest is stored.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The whole key, to show the user exactly once.
    pub key: String,
    /// The public lookup part.
    pub prefix: String,
    /// SHA-256 of `key`.
    pub secret_hash: Vec<u8>,
}

impl GeneratedKey {
    /// Generates a new random key.
    pub fn generate() -> Self {
        let prefix = random_base62(PREFIX_LEN);
        let key = format!("berth_{prefix}_{}", random_base62(SECRET_LEN));
        let secret_hash = hash(&key);
        Self { key, prefix, secret_hash }
    }
}

/// A presented string that has the shape of an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    whole: &'a str,
    prefix: &'a str,
}

impl<'a> ParsedKey<'a> {
    /// Recognises `berth_<12 base62>_<32 base62>`; anything else is not an API key.
    pub fn parse(presented: &'a str) -> Option<Self> {
        let rest = presented.strip_prefix("berth_")?;
        let (prefix, secret) = rest.split_once('_')?;
        let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
        (prefix.len() == PREFIX_LEN && secret.len() == SECRET_LEN && base62(prefix) && base62(secret))
            .then_some(Self { whole: presented, prefix })
    }

    /// The lookup prefix.
    pub fn prefix(&self) -> &'a str {
        self.prefix
    }
}

/// What the store returned for a prefix.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Metadata.
    pub key: ApiKey,
    /// The key's tenant slug.
    pub tenant_slug: Slug,
    /// Whether the tenant is enabled.
    pub tenant_enabled: bool,
    /// SHA-256 of the whole key.
    pub secret_hash: Vec<u8>,
    /// Server restriction by id.
    pub server_ids: Option<Vec<ServerId>>,
}

/// Checks a presented key against its stored row at time `now`.
pub fn verify_api_key(presented: &ParsedKey<'_>, stored: StoredKey, now: DateTime<Utc>) -> Result<Principal> {
    let matches: bool = hash(presented.whole).ct_eq(&stored.secret_hash).into();
    if !matches || stored.key.prefix != presented.prefix {
        return Err(Error::Invalid);
    }
    if stored.key.revoked_at.is_some() {
        return Err(Error::Revoked);
    }
    if stored.key.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::Expired);
    }
    if !stored.tenant_enabled {
        return Err(Error::TenantDisabled);
    }
    Ok(Principal::ApiKey {
        tenant: TenantScope::from_verified_credentials(stored.key.tenant_id, stored.tenant_slug),
        key_id: stored.key.id,
        scopes: stored.key.scopes,
        servers: stored.server_ids,
    })
}

/// Generates a platform admin token.
pub fn generate_admin_token() -> String {
    format!("berth_admin_{}", random_base62(40))
}

/// Compares a presented token with the configured admin token in constant time.
pub fn admin_token_matches(presented: &str, configured: &str) -> bool {
    !configured.is_empty() && hash(presented).ct_eq(&hash(configured)).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::{ApiKeyId, Scope, TenantId};

    fn stored(generated: &GeneratedKey) -> StoredKey {
        StoredKey {
            key: ApiKey {
                id: ApiKeyId::new(),
                tenant_id: TenantId::new(),
                name: "ci".into(),
                prefix: generated.prefix.clone(),
                scopes: vec![Scope::Mcp],
                servers: None,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                created_at: Utc::now(),
            },
            tenant_slug: Slug::parse("tenant", "acme").unwrap(),
            tenant_enabled: true,
            secret_hash: generated.secret_hash.clone(),
            server_ids: None,
        }
    }

    #[test]
    fn generated_keys_parse_and_verify() {
        let generated = GeneratedKey::generate();
        let parsed = ParsedKey::parse(&generated.key).unwrap();
        assert_eq!(parsed.prefix(), generated.prefix);
        let principal = verify_api_key(&parsed, stored(&generated), Utc::now()).unwrap();
        assert!(principal.has_scope(Scope::Mcp));
        assert!(!principal.has_scope(Scope::AdminRead));
    }

    #[test]
    fn a_key_with_a_changed_secret_is_invalid() {
        let generated = GeneratedKey::generate();
        let mut forged = generated.key.clone();
        forged.pop();
        forged.push(if generated.key.ends_with('a') { 'b' } else { 'a' });
        let parsed = ParsedKey::parse(&forged).unwrap();
        assert_eq!(verify_api_key(&parsed, stored(&generated), Utc::now()), Err(Error::Invalid));
    }

    #[test]
    fn revoked_expired_and_disabled_tenant_keys_are_refused() {
        let generated = GeneratedKey::generate();
        let parsed = ParsedKey::parse(&generated.key).unwrap();
        let mut revoked = stored(&generated);
        revoked.key.revoked_at = Some(Utc::now());
        assert_eq!(verify_api_key(&parsed, revoked, Utc::now()), Err(Error::Revoked));
        let mut expired = stored(&generated);
        expired.key.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        assert_eq!(verify_api_key(&parsed, expired, Utc::now()), Err(Error::Expired));
        let mut disabled = stored(&generated);
        disabled.tenant_enabled = false;
        assert_eq!(verify_api_key(&parsed, disabled, Utc::now()), Err(Error::TenantDisabled));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "berth_",
            "berth_short_secret",
            "sk_abc",
            "berth_abcdefghijkl_tooshort",
            "berth_abcdefghijk!_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(ParsedKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn admin_token_comparison_needs_an_exact_non_empty_match() {
        let token = generate_admin_token();
        assert!(admin_token_matches(&token, &token));
        assert!(!admin_token_matches(&format!("{token}x"), &token));
        assert!(!admin_token_matches("", ""));
    }
}
