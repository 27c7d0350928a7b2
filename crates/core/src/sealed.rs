//! Secrets Berth stores for tenants and must use later (upstream credentials of remote servers,
//! servers' secrets, OAuth signing keys), sealed at rest with AES-256-GCM under a key derived
//! from the deployment secret (`BERTH_SECRET_KEY`), one key per purpose. While the secret is
//! rotated, a key also opens what the previous secret sealed ([`SealKey::derive_rotating`]).
//!
//! A sealed value is text: `berth:sealed:v1:` then base64url (no padding) of a random 96-bit
//! nonce followed by the ciphertext and tag. [`open_or_plain`] passes values without the prefix
//! through unchanged, so rows written before sealing existed keep working.
//!
//! A value sealed with [`seal_bound`] or [`seal_bytes_bound`] is also bound to a context (its
//! tenant, server and name, [`server_secret_context`]; its tenant and key id,
//! [`signing_key_context`]) as AES-GCM associated data: copied into another row, it no longer
//! opens, so someone who can write the database but not read the key cannot hand one tenant's
//! secret to another tenant. Bytes (private keys) are sealed the same way, with the prefix's
//! bytes in front and no base64.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{ServerId, TenantId};

/// The purpose string of the key that seals remote servers' upstream headers.
pub const UPSTREAM_HEADERS: &str = "berth upstream headers v1";
/// The purpose string of the key that seals servers' secrets (`berth:mcp/config`).
pub const SERVER_SECRETS: &str = "berth server secrets v1";
/// The purpose string of the key that seals tenants' OAuth signing keys.
pub const OAUTH_SIGNING_KEYS: &str = "berth oauth signing keys v1";

/// What every sealed value starts with.
pub const PREFIX: &str = "berth:sealed:v1:";
const NONCE_LEN: usize = 12;

/// A sealing key; never printed. During a rotation of the deployment secret it also holds the
/// key derived from the previous secret: values sealed under either open, new ones are sealed
/// under the current one, and [`reseal_bound`] tells what to seal again.
#[derive(Clone)]
pub struct SealKey {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

fn derive_bytes(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0u8]);
    hasher.update(secret);
    hasher.finalize().into()
}

/// Which key opened a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opened {
    Current,
    Previous,
}

/// The value is sealed but cannot be opened with this key (another secret, or tampered with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value cannot be opened with this key")]
pub struct OpenError;

impl SealKey {
    /// Derives the key for `purpose` from the deployment secret (SHA-256 over both).
    pub fn derive(secret: &[u8], purpose: &str) -> Self {
        Self { current: derive_bytes(secret, purpose), previous: None }
    }

    /// The key for `purpose` from the deployment secret, also opening what was sealed under the
    /// `previous` secret (`BERTH_SECRET_KEY_PREVIOUS`, while a rotation is under way).
    pub fn derive_rotating(secret: &[u8], previous: Option<&[u8]>, purpose: &str) -> Self {
        Self { current: derive_bytes(secret, purpose), previous: previous.map(|p| derive_bytes(p, purpose)) }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.current.into())
    }

    /// The current key's cipher, then the previous key's.
    fn ciphers(&self) -> impl Iterator<Item = (Aes256Gcm, Opened)> + '_ {
        std::iter::once((self.cipher(), Opened::Current))
            .chain(self.previous.iter().map(|key| (Aes256Gcm::new(&(*key).into()), Opened::Previous)))
    }
}

/// Whether `value` is sealed (rather than plain text from before sealing).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The context a server's secret is bound to: its tenant, its server and its name (secret names
/// hold neither `;` nor `=`, so no two contexts are spelled alike).
pub fn server_secret_context(tenant: TenantId, server: ServerId, name: &str) -> String {
    format!("tenant={tenant};server={server};secret={name}")
}

/// The context a tenant's signing key is bound to: its tenant and key id.
pub fn signing_key_context(tenant: TenantId, kid: &str) -> String {
    format!("tenant={tenant};signing-key={kid}")
}

/// Seals `plain` under `key` with a fresh random nonce.
pub fn seal(key: &SealKey, plain: &str) -> String {
    seal_bound(key, "", plain)
}

/// Seals `plain` under `key`, bound to `context`: it opens only with the same context.
pub fn seal_bound(key: &SealKey, context: &str, plain: &str) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(encrypt(key, context, plain.as_bytes())))
}

/// Seals bytes (a private key) bound to `context`: the prefix's bytes, then the nonce,
/// ciphertext and tag as they are.
pub fn seal_bytes_bound(key: &SealKey, context: &str, plain: &[u8]) -> Vec<u8> {
    let sealed = encrypt(key, context, plain);
    let mut bytes = Vec::with_capacity(PREFIX.len() + sealed.len());
    bytes.extend_from_slice(PREFIX.as_bytes());
    bytes.extend_from_slice(&sealed);
    bytes
}

/// Whether `value` was sealed by [`seal_bytes_bound`].
pub fn is_sealed_bytes(value: &[u8]) -> bool {
    value.starts_with(PREFIX.as_bytes())
}

/// Opens bytes sealed with [`seal_bytes_bound`] for `context`; bytes that are not sealed are
/// returned as they are.
pub fn open_bytes_or_plain_bound(key: &SealKey, context: &str, value: &[u8]) -> Result<Vec<u8>, OpenError> {
    match value.strip_prefix(PREFIX.as_bytes()) {
        Some(sealed) => decrypt(key, context, sealed),
        None => Ok(value.to_vec()),
    }
}

/// A fresh random nonce, then the ciphertext and tag.
fn encrypt(key: &SealKey, context: &str, plain: &[u8]) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let payload = Payload { msg: plain, aad: context.as_bytes() };
    // Encryption into a Vec cannot fail for inputs below the AES-GCM size limit (64 GiB).
    let sealed = key.cipher().encrypt(&Nonce::from(nonce_bytes), payload).unwrap_or_default();
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
    bytes.extend_from_slice(&nonce_bytes);
    bytes.extend_from_slice(&sealed);
    bytes
}

fn decrypt(key: &SealKey, context: &str, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
    decrypt_which(key, context, bytes).map(|(plain, _)| plain)
}

fn decrypt_which(key: &SealKey, context: &str, bytes: &[u8]) -> Result<(Vec<u8>, Opened), OpenError> {
    let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN).ok_or(OpenError)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
    key.ciphers()
        .find_map(|(cipher, which)| {
            let payload = Payload { msg: sealed, aad: context.as_bytes() };
            cipher.decrypt(&Nonce::from(nonce), payload).ok().map(|plain| (plain, which))
        })
        .ok_or(OpenError)
}

/// What a stored value becomes under `key`, for the start-up pass over stored secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseal<T> {
    /// Sealed under the current key already.
    Current,
    /// Plain, or sealed under the previous key only: store this instead.
    Replace(T),
    /// Sealed under neither key (another secret, tampered with, or moved from another row):
    /// left as it is, and refused where it is used.
    Unreadable,
}

/// What `value`, stored for `context`, should become: sealed under the current key.
pub fn reseal_bound(key: &SealKey, context: &str, value: &str) -> Reseal<String> {
    let Some(encoded) = value.strip_prefix(PREFIX) else { return Reseal::Replace(seal_bound(key, context, value)) };
    let opened = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| OpenError).and_then(|b| decrypt_which(key, context, &b));
    match opened {
        Ok((_, Opened::Current)) => Reseal::Current,
        Ok((plain, Opened::Previous)) => match String::from_utf8(plain) {
            Ok(plain) => Reseal::Replace(seal_bound(key, context, &plain)),
            Err(_) => Reseal::Unreadable,
        },
        Err(OpenError) => Reseal::Unreadable,
    }
}

/// [`reseal_bound`] for bytes sealed with [`seal_bytes_bound`].
pub fn reseal_bytes_bound(key: &SealKey, context: &str, value: &[u8]) -> Reseal<Vec<u8>> {
    let Some(sealed) = value.strip_prefix(PREFIX.as_bytes()) else {
        return Reseal::Replace(seal_bytes_bound(key, context, value));
    };
    match decrypt_which(key, context, sealed) {
        Ok((_, Opened::Current)) => Reseal::Current,
        Ok((plain, Opened::Previous)) => Reseal::Replace(seal_bytes_bound(key, context, &plain)),
        Err(OpenError) => Reseal::Unreadable,
    }
}

/// Opens a sealed value; a value that is not sealed is returned as is.
pub fn open_or_plain(key: &SealKey, value: &str) -> Result<String, OpenError> {
    open_or_plain_bound(key, "", value)
}

/// Opens a value sealed with [`seal_bound`] for `context`; a value that is not sealed is
/// returned as is.
pub fn open_or_plain_bound(key: &SealKey, context: &str, value: &str) -> Result<String, OpenError> {
    let Some(encoded) = value.strip_prefix(PREFIX) else { return Ok(value.to_owned()) };
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| OpenError)?;
    let plain = decrypt(key, context, &bytes)?;
    String::from_utf8(plain).map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_secret_only() {
        let key = SealKey::derive(b"a secret of at least thirty-two chars", UPSTREAM_HEADERS);
        let sealed = seal(&key, "Bearer upstream-token");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("upstream-token"));
        assert_ne!(sealed, seal(&key, "Bearer upstream-token"), "every seal has its own nonce");
        assert_eq!(open_or_plain(&key, &sealed).unwrap(), "Bearer upstream-token");
        let other = SealKey::derive(b"another secret of at least thirty-two", UPSTREAM_HEADERS);
        assert_eq!(open_or_plain(&other, &sealed), Err(OpenError));
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert_eq!(open_or_plain(&key, &tampered), Err(OpenError));
    }

    #[test]
    fn bound_values_open_in_their_own_context_only() {
        let key = SealKey::derive(b"a secret of at least thirty-two chars", SERVER_SECRETS);
        let (acme, globex) = (TenantId::new(), TenantId::new());
        let server = ServerId::new();
        let here = server_secret_context(acme, server, "TOKEN");
        let sealed = seal_bound(&key, &here, "acme-token");
        assert!(is_sealed(&sealed) && !sealed.contains("acme-token"));
        assert_eq!(open_or_plain_bound(&key, &here, &sealed).unwrap(), "acme-token");
        for elsewhere in [
            server_secret_context(globex, server, "TOKEN"),
            server_secret_context(acme, ServerId::new(), "TOKEN"),
            server_secret_context(acme, server, "OTHER"),
            String::new(),
        ] {
            assert_eq!(open_or_plain_bound(&key, &elsewhere, &sealed), Err(OpenError), "{elsewhere}");
        }
        assert_eq!(open_or_plain(&key, &sealed), Err(OpenError), "a bound value needs its context");
        let other = SealKey::derive(b"a secret of at least thirty-two chars", UPSTREAM_HEADERS);
        assert_eq!(open_or_plain_bound(&other, &here, &sealed), Err(OpenError), "each purpose has its own key");
        assert_eq!(open_or_plain_bound(&key, &here, "plain").unwrap(), "plain");
    }

    #[test]
    fn sealed_bytes_open_in_their_own_context_only() {
        let key = SealKey::derive(b"a secret of at least thirty-two chars", OAUTH_SIGNING_KEYS);
        let tenant = TenantId::new();
        let der = [0x30u8, 0x2e, 0x02, 0x01, 0x00, 0xff];
        let here = signing_key_context(tenant, "kid-0001");
        let sealed = seal_bytes_bound(&key, &here, &der);
        assert!(is_sealed_bytes(&sealed) && !is_sealed_bytes(&der));
        assert!(!sealed.windows(der.len()).any(|w| w == der), "the plain bytes do not appear");
        assert_eq!(open_bytes_or_plain_bound(&key, &here, &sealed).unwrap(), der);
        let elsewhere = signing_key_context(TenantId::new(), "kid-0001");
        assert_eq!(open_bytes_or_plain_bound(&key, &elsewhere, &sealed), Err(OpenError));
        assert_eq!(open_bytes_or_plain_bound(&key, &signing_key_context(tenant, "kid-0002"), &sealed), Err(OpenError));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(open_bytes_or_plain_bound(&key, &here, &tampered), Err(OpenError));
        assert_eq!(open_bytes_or_plain_bound(&key, &here, &der).unwrap(), der, "plain bytes pass through");
    }

    #[test]
    fn a_rotating_key_opens_both_seals_with_the_new_and_tells_what_to_seal_again() {
        let (old, new) =
            (b"the old secret of thirty-two chars!".as_slice(), b"the new secret of thirty-two chars!".as_slice());
        let before = SealKey::derive(old, SERVER_SECRETS);
        let during = SealKey::derive_rotating(new, Some(old), SERVER_SECRETS);
        let after = SealKey::derive(new, SERVER_SECRETS);
        let context = server_secret_context(TenantId::new(), ServerId::new(), "TOKEN");
        let under_old = seal_bound(&before, &context, "value");
        assert_eq!(open_or_plain_bound(&during, &context, &under_old).unwrap(), "value");
        assert_eq!(open_or_plain_bound(&after, &context, &under_old), Err(OpenError));
        let Reseal::Replace(resealed) = reseal_bound(&during, &context, &under_old) else { panic!("not resealed") };
        assert_eq!(open_or_plain_bound(&after, &context, &resealed).unwrap(), "value", "sealed under the new secret");
        assert_eq!(reseal_bound(&during, &context, &resealed), Reseal::Current);
        let Reseal::Replace(from_plain) = reseal_bound(&during, &context, "plain") else { panic!("plain kept") };
        assert_eq!(open_or_plain_bound(&after, &context, &from_plain).unwrap(), "plain");
        let stranger =
            seal_bound(&SealKey::derive(b"a third secret of thirty-two chars", SERVER_SECRETS), &context, "x");
        assert_eq!(reseal_bound(&during, &context, &stranger), Reseal::Unreadable);
        assert_eq!(reseal_bound(&during, "another context", &under_old), Reseal::Unreadable);

        let der = [0x30u8, 0x01, 0x02];
        let keys = SealKey::derive_rotating(new, Some(old), OAUTH_SIGNING_KEYS);
        let sealed_old = seal_bytes_bound(&SealKey::derive(old, OAUTH_SIGNING_KEYS), "k", &der);
        let Reseal::Replace(bytes) = reseal_bytes_bound(&keys, "k", &sealed_old) else { panic!("not resealed") };
        assert_eq!(open_bytes_or_plain_bound(&SealKey::derive(new, OAUTH_SIGNING_KEYS), "k", &bytes).unwrap(), der);
        assert_eq!(reseal_bytes_bound(&keys, "k", &bytes), Reseal::Current);
    }

    #[test]
    fn plain_values_pass_through_and_keys_do_not_print() {
        let key = SealKey::derive(b"secret", UPSTREAM_HEADERS);
        assert_eq!(open_or_plain(&key, "plain").unwrap(), "plain");
        assert_eq!(format!("{key:?}"), "SealKey(..)");
    }
}
