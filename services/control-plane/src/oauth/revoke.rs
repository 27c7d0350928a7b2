//! Token revocation (RFC 7009), `POST /t/{tenant}/oauth/revoke`.
//!
//! A refresh token or an access token may be revoked by the client it was issued to; either
//! revokes the grant, so every token of the family stops working (the data plane notices
//! within a second). Unknown, expired or foreign tokens answer 200 like revoked ones, so the
//! endpoint tells nothing about tokens it did not issue to this client.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use berth_auth::jwt::{ACCESS_TOKEN_TYPE, AccessClaims, Expected, KeySet, looks_like_jwt};
use berth_auth::oauth::{Urls, secret_hash};
use berth_core::GrantId;
use berth_storage::oauth as store;
use serde::Deserialize;

use super::clients::Presented;
use super::errors::OAuthError;
use super::keys;
use super::peer_ip;
use crate::ControlPlaneState;

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /t/{tenant}/oauth/revoke`.
pub(crate) async fn revoke(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let form: RevokeForm = super::form(&req, &body).map_err(OAuthError::invalid_request)?;
    let presented = Presented::read(&req, form.client_id.as_deref(), form.client_secret.as_deref())?;
    let token = form.token.as_deref().ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (tenant, scope) = super::tenant(&mut conn, &path).await?;
    let client = presented.authenticate(&mut conn, &scope, &state.client_documents, peer_ip(&req, &state)).await?;
    let grant = if looks_like_jwt(token) {
        let issuer = Urls::new(&state.public_url).issuer(tenant.slug.as_str());
        let keys = KeySet::from_jwks(&store::published_keys(&mut conn, &scope, keys::retired_after()).await?);
        let expected = Expected { issuer: &issuer, audience: None, typ: Some(ACCESS_TOKEN_TYPE), leeway_secs: 0 };
        berth_auth::jwt::verify::<AccessClaims>(token, &keys, &expected)
            .ok()
            .filter(|claims| claims.client_id == client.client_id)
            .and_then(|claims| claims.gid.parse::<GrantId>().ok())
    } else {
        match store::grant_of_refresh_token(&mut conn, &scope, &secret_hash(token)).await? {
            Some(id) => {
                store::get_grant(&mut conn, &scope, id).await?.filter(|g| g.client_id == client.client_id).map(|g| g.id)
            }
            None => None,
        }
    };
    if let Some(grant) = grant {
        store::revoke_grant(&mut conn, &scope, grant).await?;
        tracing::info!(tenant = %tenant.slug, client_id = %client.client_id, grant_id = %grant, "grant revoked");
    }
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish())
}
