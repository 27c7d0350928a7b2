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

/// Why a JWT access token was refused. Every variant answers 401 with `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a well-formed JWS, or it carries critical headers Berth does not understand.
    #[error("the token is malformed")]
    Malformed,
    /// The header's algorithm is not the one the key is pinned to (`none` and `HS*` included).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No key of the expected issuer has the token's `kid`.
    #[error("the token was not signed by a key of this issuer")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    Signature,
    /// `exp` has passed.
    #[error("the token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the expected issuer (for example another tenant's).
    #[error("the token was issued by another issuer")]
    Issuer,
    /// `aud` does not name this server.
    #[error("the token was issued for another resource")]
    Audience,
    /// The `typ` header is not `at+jwt`.
    #[error("the token is not an access token")]
    Type,
    /// A required claim is missing or has the wrong type.
    #[error("the token's claims are invalid")]
    Claims,
    /// The grant behind the token was revoked.
    #[error("the token was revoked")]
    Revoked,
    /// The token could not be signed (a bad key; a bug).
    #[error("the token could not be signed")]
    Signing,
}
