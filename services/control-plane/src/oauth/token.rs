//! The token endpoint, `POST /t/{tenant}/oauth/token`.
//!
//! - `authorization_code`: the code is single use (a second use revokes its grant), bound to
//!   the client, the redirect URI and the PKCE S256 challenge; `resource`, when sent, must be
//!   the grant's.
//! - `refresh_token`: each refresh token works once and is replaced by a new one; presenting a
//!   used one again (a stolen copy, or the legitimate client after a thief) revokes the grant
//!   and every token in it.
//!
//! Access tokens are JWTs (`at+jwt`, EdDSA) whose audience is the one server URL of the grant.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use berth_auth::jwt::{AccessClaims, sign_access_token};
use berth_auth::oauth::{
    ACCESS_TOKEN_TTL_SECS, Secret, Urls, parse_requested_scope, pkce_matches, scope_string, secret_hash,
};
use berth_core::TenantScope;
use berth_storage::PgConnection;
use berth_storage::oauth::{self as store, Grant, Redeemed};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::clients::{Client, Presented};
use super::errors::OAuthError;
use super::keys;
use super::peer_ip;
use crate::ControlPlaneState;
use berth_core::sealed::SealKey;

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// `POST /t/{tenant}/oauth/token`.
pub(crate) async fn exchange(
    req: HttpRequest,
    state: web::Data<ControlPlaneState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let form: TokenForm = super::form(&req, &body).map_err(OAuthError::invalid_request)?;
    let presented = Presented::read(&req, form.client_id.as_deref(), form.client_secret.as_deref())?;
    let mut conn = state.pool.acquire().await.map_err(|e| OAuthError::unavailable(&e))?;
    let (tenant, scope) = super::tenant(&mut conn, &path).await?;
    // Outside the transaction: a metadata document client may be fetched here.
    let client = presented.authenticate(&mut conn, &scope, &state.client_documents, peer_ip(&req, &state)).await?;
    if !tenant.enabled {
        return Err(OAuthError::invalid_grant("the organization is disabled"));
    }
    drop(conn);
    let mut tx = state.pool.begin().await.map_err(|e| OAuthError::unavailable(&e))?;
    let outcome = match form.grant_type.as_deref() {
        Some("authorization_code") => authorization_code(&mut tx, &scope, &client, &form).await?,
        Some("refresh_token") if client.refresh => refresh(&mut tx, &scope, &client, &form).await?,
        Some("refresh_token") => {
            return Err(OAuthError::unauthorized_client("this client is not registered for refresh tokens"));
        }
        Some(other) => {
            return Err(OAuthError::unsupported_grant_type(format!("grant_type {other:?} is not supported")));
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    };
    let grant = match outcome {
        Ok(grant) => grant,
        Err((error, revoke)) => {
            // A replayed code or refresh token revokes the whole family. Either way the
            // presented secret stays used: a failed attempt burns it.
            if let Some(grant) = revoke {
                store::revoke_grant(&mut tx, &scope, grant).await?;
                tracing::warn!(tenant = %tenant.slug, client_id = %client.client_id, grant_id = %grant, "reuse detected; grant revoked");
            }
            tx.commit().await.map_err(berth_storage::Error::from)?;
            return Err(error);
        }
    };
    let urls = Urls::new(&state.public_url);
    let response = issue(&mut tx, &scope, &urls, &client, &grant, state.signing_keys_key.as_ref()).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %tenant.slug, client_id = %client.client_id, grant_id = %grant.id, "tokens issued");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response))
}

/// A grant to issue tokens for, or the error and (for a replay) the grant to revoke.
type Outcome = Result<Grant, (OAuthError, Option<berth_core::GrantId>)>;

async fn authorization_code(
    conn: &mut PgConnection,
    scope: &TenantScope,
    client: &Client,
    form: &TokenForm,
) -> Result<Outcome, OAuthError> {
    let code = form.code.as_deref().ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier =
        form.code_verifier.as_deref().ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    let code = match store::redeem_code(conn, scope, &secret_hash(code)).await? {
        Redeemed::Fresh(code) => code,
        Redeemed::Replayed(grant) => {
            return Ok(Err((OAuthError::invalid_grant("the authorization code was already used"), Some(grant))));
        }
        Redeemed::Unknown => return Ok(Err((OAuthError::invalid_grant("unknown authorization code"), None))),
    };
    let invalid = |why: &str| Ok(Err((OAuthError::invalid_grant(why), None)));
    if code.grant.client_id != client.client_id {
        return invalid("the authorization code was issued to another client");
    }
    if code.expires_at <= Utc::now() {
        return invalid("the authorization code expired");
    }
    if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return invalid("redirect_uri does not match the authorization request");
    }
    if !pkce_matches(verifier, &code.code_challenge) {
        return invalid("code_verifier does not match the code_challenge");
    }
    if form.resource.as_deref().is_some_and(|r| r != code.grant.resource) {
        return Ok(Err((OAuthError::invalid_target("resource differs from the authorization request"), None)));
    }
    if !code.grant.is_active(Utc::now()) {
        return invalid("the grant was revoked");
    }
    Ok(Ok(code.grant))
}

async fn refresh(
    conn: &mut PgConnection,
    scope: &TenantScope,
    client: &Client,
    form: &TokenForm,
) -> Result<Outcome, OAuthError> {
    let token =
        form.refresh_token.as_deref().ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let grant = match store::redeem_refresh_token(conn, scope, &secret_hash(token)).await? {
        Redeemed::Fresh(grant) => grant,
        Redeemed::Replayed(grant) => {
            return Ok(Err((
                OAuthError::invalid_grant("the refresh token was already used; every token of this grant is revoked"),
                Some(grant),
            )));
        }
        Redeemed::Unknown => return Ok(Err((OAuthError::invalid_grant("unknown refresh token"), None))),
    };
    if grant.client_id != client.client_id {
        return Ok(Err((OAuthError::invalid_grant("the refresh token was issued to another client"), Some(grant.id))));
    }
    if !grant.is_active(Utc::now()) {
        return Ok(Err((OAuthError::invalid_grant("the grant was revoked or expired"), None)));
    }
    if form.resource.as_deref().is_some_and(|r| r != grant.resource) {
        return Ok(Err((OAuthError::invalid_target("resource differs from the grant's"), None)));
    }
    if let Some(requested) = form.scope.as_deref() {
        let requested = parse_requested_scope(Some(requested)).map_err(OAuthError::invalid_scope)?;
        if requested.iter().any(|s| !grant.scopes.contains(s)) {
            return Ok(Err((OAuthError::invalid_scope("a refresh cannot widen the granted scope"), None)));
        }
    }
    Ok(Ok(grant))
}

async fn issue(
    conn: &mut PgConnection,
    scope: &TenantScope,
    urls: &Urls,
    client: &Client,
    grant: &Grant,
    sealing: Option<&SealKey>,
) -> Result<TokenResponse, OAuthError> {
    let key = keys::active(conn, scope, sealing).await?;
    let now = Utc::now().timestamp();
    let scopes = scope_string(&grant.scopes);
    let claims = AccessClaims {
        iss: urls.issuer(scope.slug().as_str()),
        sub: grant.member_id.to_string(),
        aud: grant.resource.clone(),
        exp: now + ACCESS_TOKEN_TTL_SECS,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.client_id.clone(),
        scope: scopes.clone(),
        gid: grant.id.to_string(),
    };
    let access_token =
        sign_access_token(&claims, &key.kid, &key.private_der).map_err(|e| OAuthError::unavailable(&e))?;
    let refresh_token = if client.refresh {
        let token = Secret::RefreshToken.generate();
        store::insert_refresh_token(conn, scope, grant.id, &secret_hash(&token)).await?;
        Some(token)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope: scopes,
        refresh_token,
    })
}
