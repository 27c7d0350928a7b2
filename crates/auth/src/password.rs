//! Member passwords, hashed with argon2id (RFC 9106) into PHC strings.
//!
//! Parameters are argon2's defaults (19 MiB, two passes, one lane: the OWASP minimum for
//! argon2id); the PHC string records them, so raising them later keeps old hashes verifiable.
//! A login for an unknown member or one without a password still runs one verification against
//! a fixed hash, so response time does not tell which members exist.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in bytes (bounds the hashing work one request can cause).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that does not meet the policy; the message is shown to the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub &'static str);

/// Checks the policy: 12 or more characters, at most 1 KiB, no control characters.
pub fn check_policy(password: &str) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WeakPassword("must be at least 12 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(WeakPassword("must be at most 1024 bytes"));
    }
    if password.chars().any(char::is_control) {
        return Err(WeakPassword("must not contain control characters"));
    }
    Ok(())
}

/// Hashes `password` with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &str) -> Result<String, WeakPassword> {
    check_policy(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| WeakPassword("could not be hashed"))
}

fn decoy() -> Option<&'static str> {
    static DECOY: OnceLock<Option<String>> = OnceLock::new();
    DECOY
        .get_or_init(|| Argon2::default().hash_password(b"berth-decoy-password").ok().map(|h| h.to_string()))
        .as_deref()
}

/// Whether `password` matches the stored PHC string. `None` (no member, or a member without a
/// password) spends the same time and answers `false`.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let (phc, real) = match stored {
        Some(s) => (Some(s), true),
        None => (decoy(), false),
    };
    let Some(phc) = phc.and_then(|p| PasswordHash::new(p).ok()) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &phc).is_ok() && real
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse battery!", Some(&hash)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("anything", Some("not a phc string")));
    }

    #[test]
    fn the_policy_refuses_short_huge_and_control_character_passwords() {
        assert!(check_policy("short").is_err());
        assert!(check_policy(&"x".repeat(2000)).is_err());
        assert!(check_policy("twelve chars\n!").is_err());
        assert!(check_policy("a long enough passphrase").is_ok());
    }
}
