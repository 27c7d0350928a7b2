//! A tenant's signing keys: created on first use, rotated through the admin API, published as
//! a JWKS. A rotated key stays published for `RETIRED_KEY_RETENTION_SECS`, longer than any
//! access token it signed lives, so rotation never breaks a valid token. Private keys are
//! stored sealed, bound to their tenant and key id (ADR 0012).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use berth_auth::oauth::RETIRED_KEY_RETENTION_SECS;
use berth_core::TenantScope;
use berth_core::sealed::{self, SealKey};
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

/// The tenant's active signing key, created when it has none yet, opened with `sealing`.
pub(crate) async fn active(
    conn: &mut PgConnection,
    scope: &TenantScope,
    sealing: Option<&SealKey>,
) -> Result<SigningKey, OAuthError> {
    let stored = match oauth::active_signing_key(conn, scope).await? {
        Some(key) => key,
        None => {
            let generated = berth_auth::jwt::generate_signing_key();
            let der = stored_der(scope, &generated.kid, &generated.pkcs8_der, sealing);
            // Two requests may race here: the partial unique index keeps exactly one active key.
            oauth::insert_signing_key_if_none(conn, scope, &generated.kid, &der, &generated.public_jwk).await?;
            oauth::active_signing_key(conn, scope).await?.ok_or(berth_storage::Error::NotFound("signing key"))?
        }
    };
    open(scope, stored, sealing)
}

/// Replaces the active key with a new one, stored sealed with `sealing`; returns the new key id.
/// Run it in a transaction.
pub(crate) async fn rotate(
    conn: &mut PgConnection,
    scope: &TenantScope,
    sealing: Option<&SealKey>,
) -> Result<String, berth_storage::Error> {
    let generated = berth_auth::jwt::generate_signing_key();
    let der = stored_der(scope, &generated.kid, &generated.pkcs8_der, sealing);
    oauth::rotate_signing_key(conn, scope, &generated.kid, &der, &generated.public_jwk).await?;
    Ok(generated.kid)
}

/// A private key as it is stored: sealed, bound to its tenant and key id, when this process
/// can seal.
fn stored_der(scope: &TenantScope, kid: &str, der: &[u8], sealing: Option<&SealKey>) -> Vec<u8> {
    match sealing {
        Some(key) => sealed::seal_bytes_bound(key, &sealed::signing_key_context(scope.tenant_id(), kid), der),
        None => der.to_vec(),
    }
}

/// The private key of `stored`, opened. A key that does not open (another `BERTH_SECRET_KEY`,
/// tampered with, or moved from another tenant), or a sealed key in a process that cannot
/// open it, signs nothing.
fn open(scope: &TenantScope, stored: SigningKey, sealing: Option<&SealKey>) -> Result<SigningKey, OAuthError> {
    let refused =
        |why: &str| OAuthError::unavailable(&format_args!("the signing key {} of {} {why}", stored.kid, scope.slug()));
    let private_der = match sealing {
        Some(key) => {
            let context = sealed::signing_key_context(scope.tenant_id(), &stored.kid);
            sealed::open_bytes_or_plain_bound(key, &context, &stored.private_der)
                .map_err(|_| refused("cannot be decrypted with this BERTH_SECRET_KEY"))?
        }
        None if sealed::is_sealed_bytes(&stored.private_der) => {
            return Err(refused("is sealed and this process has no BERTH_SECRET_KEY"));
        }
        None => stored.private_der.clone(),
    };
    Ok(SigningKey { kid: stored.kid, private_der })
}

/// `GET /t/{tenant}/oauth/jwks`: the public keys that verify the tenant's access tokens.
pub(crate) async fn jwks(
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (_, scope) = tenant(&mut conn, &path).await?;
    active(&mut conn, &scope, state.signing_keys_key.as_ref()).await?;
    let keys = oauth::published_keys(&mut conn, &scope, retired_after()).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=60")).json(json!({ "keys": keys })))
}
