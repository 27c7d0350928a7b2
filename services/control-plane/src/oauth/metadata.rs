//! Authorization server metadata (RFC 8414), also served at the OpenID discovery locations.
//!
//! The `issuer` is exactly `{public_url}/t/{tenant}`, the URL the metadata location was built
//! from, so clients that compare them (RFC 8414 §3.3) accept it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use berth_auth::oauth::Urls;
use serde_json::{Value, json};

use super::errors::OAuthError;
use super::tenant;
use crate::ControlPlaneState;

/// The metadata document of one tenant.
pub(crate) fn document(urls: &Urls, tenant: &str) -> Value {
    let issuer = urls.issuer(tenant);
    let auth_methods = super::clients::AUTH_METHODS;
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "scopes_supported": ["mcp"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": super::clients::GRANT_TYPES,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        // OpenID discovery asks for these; Berth issues access tokens only, no ID tokens.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
    })
}

/// `GET` of any of the three metadata locations.
pub(crate) async fn serve(
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (tenant, _) = tenant(&mut conn, &path).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(document(&Urls::new(&state.public_url), tenant.slug.as_str())))
}
