//! Validation errors for domain values.

/// A value from outside failed validation.
///
/// Each variant names the field so that API layers can answer with a precise message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A slug is not lowercase `[a-z0-9-]{1,63}`.
    #[error("invalid {field} slug {value:?}: {reason}")]
    InvalidSlug {
        /// Which slug (for example `tenant` or `server`).
        field: &'static str,
        /// The rejected value, truncated for display.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Some other field is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field's name as the API spells it.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
