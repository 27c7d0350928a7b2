//! Errors as `application/problem+json` (RFC 9457).
//!
//! [`ApiError`] separates client faults from unexpected failures and maps each to one HTTP
//! status in a single exhaustive `ResponseError` impl. Problem `type`s are stable URNs
//! documented in `docs/api.md`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An admin API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A field failed validation.
    #[error(transparent)]
    Invalid(#[from] berth_core::Error),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials are valid but do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("the request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The body has the wrong content type.
    #[error("unsupported content type; expected {0}")]
    UnsupportedMediaType(&'static str),
    /// A dependency is down.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure; details go to the log only.
    #[error("an unexpected error occurred")]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    fn kind_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::BadRequest(_) => ("urn:berth:problem:bad-request", "Bad request"),
            ApiError::Invalid(_) => ("urn:berth:problem:invalid-field", "Invalid field"),
            ApiError::Unauthorized(_) => ("urn:berth:problem:unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => ("urn:berth:problem:forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("urn:berth:problem:not-found", "Not found"),
            ApiError::Conflict(_) => ("urn:berth:problem:conflict", "Conflict"),
            ApiError::PayloadTooLarge(_) => ("urn:berth:problem:payload-too-large", "Payload too large"),
            ApiError::UnsupportedMediaType(_) => ("urn:berth:problem:unsupported-media-type", "Unsupported media type"),
            ApiError::Unavailable(_) => ("urn:berth:problem:unavailable", "Service unavailable"),
            ApiError::Unexpected(_) => ("urn:berth:problem:internal", "Internal error"),
        }
    }

    /// Maps actix's JSON extractor failures (malformed, wrong type, too large).
    pub fn from_json_error(err: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as E;
        match err {
            E::ContentType => ApiError::UnsupportedMediaType("application/json"),
            E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::PayloadTooLarge(limit),
            E::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
            other => ApiError::BadRequest(format!("invalid JSON body: {other}")),
        }
    }
}

impl From<berth_storage::Error> for ApiError {
    fn from(e: berth_storage::Error) -> Self {
        match e {
            berth_storage::Error::NotFound(what) => ApiError::NotFound(what),
            berth_storage::Error::Conflict(msg) => ApiError::Conflict(msg),
            berth_storage::Error::Database(sqlx) if is_unavailable(&sqlx) => {
                ApiError::Unavailable(anyhow::Error::new(sqlx).context("database unreachable"))
            }
            other => ApiError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = e.to_string();
    text.contains("pool timed out") || text.contains("Connection refused") || text.contains("connection closed")
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unexpected(e) | ApiError::Unavailable(e) = self {
            tracing::error!(error.cause_chain = ?e, error.message = %e, "request failed");
        }
        let status = self.status_code();
        let (kind, title) = self.kind_and_title();
        let field = match self {
            ApiError::Invalid(berth_core::Error::InvalidSlug { field, .. }) => Some((*field).to_owned()),
            ApiError::Invalid(berth_core::Error::Invalid { field, .. }) => Some(field.clone()),
            _ => None,
        };
        let body = Problem { kind, title, status: status.as_u16(), detail: self.to_string(), field };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"berth\""));
        }
        response.body(serde_json::to_string(&body).unwrap_or_default())
    }
}
