//! Tenant and server slugs: the names that appear in every URL.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest slug allowed.
pub const MAX_SLUG_LEN: usize = 63;

/// A lowercase `[a-z0-9-]{1,63}` name, safe to place in a URL path segment.
///
/// Slugs may not start or end with `-`, which also rules out `.`/`..` path tricks
/// (no `.` is allowed anywhere).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// Validates `value` as the slug of `field` (used in error messages).
    pub fn parse(field: &'static str, value: &str) -> Result<Self> {
        let reject = |reason| Err(Error::InvalidSlug { field, value: value.chars().take(80).collect(), reason });
        if value.is_empty() {
            return reject("must not be empty");
        }
        if value.len() > MAX_SLUG_LEN {
            return reject("must be at most 63 characters");
        }
        if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return reject("may contain only lowercase letters a-z, digits and '-'");
        }
        if value.starts_with('-') || value.ends_with('-') {
            return reject("must not start or end with '-'");
        }
        Ok(Self(value.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a slug read back from storage, where the database's CHECK constraint
    /// already enforces the format.
    pub fn from_trusted_storage(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Slug::parse("slug", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_and_inner_dashes() {
        for ok in ["a", "acme", "acme-2", "0", &"a".repeat(63)] {
            assert!(Slug::parse("tenant", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_uppercase_long_dots_slashes_empty_and_non_ascii() {
        for bad in ["", "Acme", &"a".repeat(64), "..", ".", "a/b", "a.b", "é", "-a", "a-", "a b", "a%2f", "a\0"] {
            assert!(Slug::parse("tenant", bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_field() {
        let err = Slug::parse("server", "Bad").unwrap_err();
        assert!(err.to_string().contains("server"), "{err}");
    }
}
