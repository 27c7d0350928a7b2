//! Why a credential was refused. Every variant answers 401; the variant only feeds logs and audit.

/// A credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credential was presented.
    #[error("missing credentials")]
    Missing,
    /// The credential is not in a known format or does not match.
    #[error("invalid credentials")]
    Invalid,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// The key expired.
    #[error("the API key expired")]
    Expired,
    /// The key's tenant is disabled.
    #[error("the tenant is disabled")]
    TenantDisabled,
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
