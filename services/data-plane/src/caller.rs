//! Who is calling the MCP endpoint.
//!
//! API keys arrive as `Authorization: Bearer berth_...`; OAuth access tokens will be verified
//! here too (the seam is [`identify`]). A request without credentials is anonymous, which only
//! a `public` server accepts. Session ids are never credentials: every request is verified.

use actix_web::HttpRequest;
use actix_web::http::header;
use berth_auth::ParsedKey;
use berth_core::Principal;

use crate::catalog::{Catalog, Unavailable};

/// Why a presented credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Malformed, unknown, revoked or expired (HTTP 401).
    Invalid(&'static str),
    /// The key's tenant is disabled (HTTP 403).
    TenantDisabled,
    /// Credentials could not be checked (HTTP 503).
    Unavailable,
}

impl From<Unavailable> for Refused {
    fn from(_: Unavailable) -> Self {
        Refused::Unavailable
    }
}

/// The verified principal, or `None` for an anonymous request.
pub async fn identify(req: &HttpRequest, catalog: &Catalog) -> Result<Option<Principal>, Refused> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| Refused::Invalid("invalid Authorization header"))?;
    let token = berth_auth::bearer_token(text)
        .ok_or(Refused::Invalid("the Authorization header must use the Bearer scheme"))?;
    let parsed = ParsedKey::parse(token).ok_or(Refused::Invalid("invalid token"))?;
    let stored = catalog.key(parsed.prefix()).await?.ok_or(Refused::Invalid("invalid token"))?;
    match berth_auth::verify_api_key(&parsed, (*stored).clone(), chrono::Utc::now()) {
        Ok(principal) => {
            catalog.touch_key(&stored);
            Ok(Some(principal))
        }
        Err(berth_auth::Error::TenantDisabled) => Err(Refused::TenantDisabled),
        Err(berth_auth::Error::Revoked) => Err(Refused::Invalid("the API key was revoked")),
        Err(berth_auth::Error::Expired) => Err(Refused::Invalid("the API key expired")),
        Err(_) => Err(Refused::Invalid("invalid token")),
    }
}
