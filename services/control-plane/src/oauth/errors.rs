//! OAuth error responses of the JSON endpoints (token, registration, revocation):
//! `{"error": ..., "error_description": ...}` (RFC 6749 §5.2, RFC 7591 §3.2.2), never cached.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An OAuth failure answered as JSON.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// `Basic` challenge for a failed `client_secret_basic` authentication.
    basic_challenge: bool,
    /// `Retry-After` seconds of a 429.
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self { status, code, description: description.into(), basic_challenge: false, retry_after: None }
    }

    /// `invalid_request` (400).
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `invalid_client` (401): unknown client or failed client authentication.
    pub(crate) fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self { basic_challenge: basic, ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description) }
    }

    /// `invalid_grant` (400): bad, expired, used or revoked code or refresh token.
    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// `unauthorized_client` (400): the client may not use this grant type.
    pub(crate) fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// `unsupported_grant_type` (400).
    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description)
    }

    /// `invalid_scope` (400).
    pub(crate) fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// `invalid_target` (400, RFC 8707): the `resource` is not one of the tenant's servers.
    pub(crate) fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// `invalid_redirect_uri` (400, RFC 7591).
    pub(crate) fn invalid_redirect_uri(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", description)
    }

    /// `invalid_client_metadata` (400, RFC 7591).
    pub(crate) fn invalid_client_metadata(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", description)
    }

    /// 429 with `Retry-After`: too many requests of this kind; `temporarily_unavailable` is the
    /// closest code RFC 6749 has.
    pub(crate) fn too_many(retry_after_secs: u64, description: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", description)
        }
    }

    /// `not_found` (404): no such tenant.
    pub(crate) fn unknown_tenant() -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request", "no such tenant")
    }

    /// `temporarily_unavailable` (503); the cause goes to the log.
    pub(crate) fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "oauth endpoint failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later")
    }
}

impl From<berth_storage::Error> for OAuthError {
    fn from(e: berth_storage::Error) -> Self {
        OAuthError::unavailable(&e)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store")).insert_header((header::PRAGMA, "no-cache"));
        if self.basic_challenge {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"berth\""));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(Body { error: self.code, error_description: &self.description })
    }
}
