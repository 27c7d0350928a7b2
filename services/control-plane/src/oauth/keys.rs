//! A tenant's signing keys: created on first use, rotated through the admin API, published as
//! a JWKS. A rotated key stays published for `RETIRED_KEY_RETENTION_SECS`, longer than any
//! access token it signed lives, so rotation never breaks a valid token.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use berth_auth::oauth::RETIRED_KEY_RETENTION_SECS;
use berth_core::TenantScope;
use berth_storage::PgConnection;
use berth_storage::oauth::{self, SigningKey};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::errors::OAuthError;
use super::tenant;
use crate::ControlPlaneState;

/// Retired keys newer than this are still published.
pub(crate) fn retired_after() -> DateTime<Utc> {
    Utc::now() - Duration::seconds(RETIRED_KEY_RETENTION_SECS)
}

/// The tenant's active signing key, created when it has none yet.
pub(crate) async fn active(conn: &mut PgConnection, scope: &TenantScope) -> Result<SigningKey, berth_storage::Error> {
    if let Some(key) = oauth::active_signing_key(conn, scope).await? {
        return Ok(key);
    }
    let generated = berth_auth::jwt::generate_signing_key();
    // Two requests may race here: the partial unique index keeps exactly one active key.
    oauth::insert_signing_key_if_none(conn, scope, &generated.kid, &generated.pkcs8_der, &generated.public_jwk).await?;
    oauth::active_signing_key(conn, scope).await?.ok_or(berth_storage::Error::NotFound("signing key"))
}

/// Replaces the active key with a new one; returns the new key id. Run it in a transaction.
pub(crate) async fn rotate(conn: &mut PgConnection, scope: &TenantScope) -> Result<String, berth_storage::Error> {
    let generated = berth_auth::jwt::generate_signing_key();
    oauth::rotate_signing_key(conn, scope, &generated.kid, &generated.pkcs8_der, &generated.public_jwk).await?;
    Ok(generated.kid)
}

/// `GET /t/{tenant}/oauth/jwks`: the public keys that verify the tenant's access tokens.
pub(crate) async fn jwks(
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (_, scope) = tenant(&mut conn, &path).await?;
    active(&mut conn, &scope).await?;
    let keys = oauth::published_keys(&mut conn, &scope, retired_after()).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=60")).json(json!({ "keys": keys })))
}
