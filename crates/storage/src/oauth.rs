//! OAuth 2.1 state of each tenant's authorization server: signing keys, clients, login
//! sessions, grants with their authorization codes and refresh tokens, and the external
//! identity provider a tenant may trust.
//!
//! Codes and refresh tokens are redeemed with one `UPDATE ... WHERE used_at IS NULL`, so two
//! concurrent uses cannot both succeed; a second use is reported as a replay, and the caller
//! revokes the grant.

use berth_core::sealed::Reseal;
use berth_core::{AdminScope, GrantId, MemberId, Scope, Slug, Tenant, TenantId, TenantScope};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Resealed;
use crate::error::{Error, Result};
use crate::members::Member;

/// The private half of a tenant's active signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// PKCS#8 DER, as stored: sealed (`berth_core::sealed`) unless written without a key.
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The active signing key, if the tenant has one yet.
pub async fn active_signing_key(conn: &mut PgConnection, scope: &TenantScope) -> Result<Option<SigningKey>> {
    Ok(sqlx::query_as!(
        SigningKey,
        "SELECT kid, private_der FROM oauth_signing_keys WHERE tenant_id = $1 AND retired_at IS NULL",
        scope.tenant_id().as_uuid()
    )
    .fetch_optional(conn)
    .await?)
}

/// Stores `kid` as the active key unless the tenant already has one (then nothing changes).
pub async fn insert_signing_key_if_none(
    conn: &mut PgConnection,
    scope: &TenantScope,
    kid: &str,
    private_der: &[u8],
    public_jwk: &Value,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO oauth_signing_keys (tenant_id, kid, algorithm, private_der, public_jwk)
         VALUES ($1, $2, 'EdDSA', $3, $4)
         ON CONFLICT (tenant_id) WHERE retired_at IS NULL DO NOTHING",
        scope.tenant_id().as_uuid(),
        kid,
        private_der,
        public_jwk
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires the active key and makes `kid` the active one. Run it in a transaction.
pub async fn rotate_signing_key(
    conn: &mut PgConnection,
    scope: &TenantScope,
    kid: &str,
    private_der: &[u8],
    public_jwk: &Value,
) -> Result<()> {
    sqlx::query!(
        "UPDATE oauth_signing_keys SET retired_at = now() WHERE tenant_id = $1 AND retired_at IS NULL",
        scope.tenant_id().as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    insert_signing_key_if_none(conn, scope, kid, private_der, public_jwk).await
}

/// Goes over every tenant's signing keys and stores what `reseal(tenant, kid, der)` says in
/// place of each private key it replaces (plain ones, and those sealed under a previous key);
/// a row that changed meanwhile is left as it is. Platform maintenance at start-up, hence the
/// admin scope.
pub async fn reseal_signing_keys(
    conn: &mut PgConnection,
    _admin: AdminScope,
    reseal: impl Fn(TenantId, &str, &[u8]) -> Reseal<Vec<u8>>,
) -> Result<Resealed> {
    let rows = sqlx::query!("SELECT tenant_id, kid, private_der FROM oauth_signing_keys").fetch_all(&mut *conn).await?;
    let mut done = Resealed::default();
    for row in rows {
        let verdict = reseal(TenantId::from_uuid(row.tenant_id), &row.kid, &row.private_der);
        let Some(sealed) = done.replacement(verdict) else { continue };
        let updated = sqlx::query!(
            "UPDATE oauth_signing_keys SET private_der = $4 WHERE tenant_id = $1 AND kid = $2 AND private_der = $3",
            row.tenant_id,
            row.kid,
            row.private_der,
            sealed
        )
        .execute(&mut *conn)
        .await?;
        done.sealed += updated.rows_affected();
    }
    Ok(done)
}

/// Public keys to publish: the active one and those retired after `retired_after`.
pub async fn published_keys(
    conn: &mut PgConnection,
    scope: &TenantScope,
    retired_after: DateTime<Utc>,
) -> Result<Vec<Value>> {
    Ok(sqlx::query_scalar!(
        "SELECT public_jwk FROM oauth_signing_keys
         WHERE tenant_id = $1 AND (retired_at IS NULL OR retired_at > $2)
         ORDER BY created_at DESC",
        scope.tenant_id().as_uuid(),
        retired_after
    )
    .fetch_all(conn)
    .await?)
}

/// An external OpenID Connect issuer a tenant trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// Exact `iss` of its tokens.
    pub issuer: String,
    /// Required `aud`; `None` means the server's MCP URL.
    pub audience: Option<String>,
    /// Where its keys are; `None` means from its discovery document.
    pub jwks_uri: Option<String>,
    /// The claim holding the member's email.
    pub email_claim: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Everything the data plane needs to verify a token presented to one of a tenant's servers.
#[derive(Debug, Clone)]
pub struct TenantIssuer {
    /// The tenant.
    pub tenant: Tenant,
    /// Berth's published public keys of the tenant.
    pub keys: Vec<Value>,
    /// The external issuer, if one is trusted.
    pub identity_provider: Option<IdentityProvider>,
}

/// Looks up a tenant's verification material by slug, before the token naming it is verified.
///
/// Nothing returned may be trusted as the caller's identity until a signature checks out
/// with these keys (the same obligation as `tenants::find_by_slug_for_routing`).
pub async fn issuer_for_verification(
    conn: &mut PgConnection,
    slug: &Slug,
    retired_after: DateTime<Utc>,
) -> Result<Option<TenantIssuer>> {
    let tenant = match crate::tenants::find_by_slug_for_routing(conn, slug).await {
        Ok(t) => t,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
    let keys = published_keys(conn, &scope, retired_after).await?;
    let identity_provider = get_identity_provider(conn, &scope).await?;
    Ok(Some(TenantIssuer { tenant, keys, identity_provider }))
}

/// Reads the tenant's external identity provider.
pub async fn get_identity_provider(conn: &mut PgConnection, scope: &TenantScope) -> Result<Option<IdentityProvider>> {
    Ok(sqlx::query_as!(
        IdentityProvider,
        "SELECT issuer, audience, jwks_uri, email_claim, updated_at FROM identity_providers WHERE tenant_id = $1",
        scope.tenant_id().as_uuid()
    )
    .fetch_optional(conn)
    .await?)
}

/// Sets (creates or replaces) the tenant's external identity provider.
pub async fn put_identity_provider(
    conn: &mut PgConnection,
    scope: &TenantScope,
    issuer: &str,
    audience: Option<&str>,
    jwks_uri: Option<&str>,
    email_claim: &str,
) -> Result<IdentityProvider> {
    Ok(sqlx::query_as!(
        IdentityProvider,
        "INSERT INTO identity_providers (tenant_id, issuer, audience, jwks_uri, email_claim)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET issuer = EXCLUDED.issuer, audience = EXCLUDED.audience,
             jwks_uri = EXCLUDED.jwks_uri, email_claim = EXCLUDED.email_claim, updated_at = now()
         RETURNING issuer, audience, jwks_uri, email_claim, updated_at",
        scope.tenant_id().as_uuid(),
        issuer,
        audience,
        jwks_uri,
        email_claim
    )
    .fetch_one(conn)
    .await?)
}

/// Stops trusting the external identity provider.
pub async fn delete_identity_provider(conn: &mut PgConnection, scope: &TenantScope) -> Result<()> {
    let done = sqlx::query!("DELETE FROM identity_providers WHERE tenant_id = $1", scope.tenant_id().as_uuid())
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("identity provider"));
    }
    Ok(())
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The public client id.
    pub client_id: String,
    /// Display name, shown on the consent page.
    pub name: String,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub token_endpoint_auth_method: String,
    /// SHA-256 of the client secret (confidential clients).
    pub secret_hash: Option<Vec<u8>>,
    /// `authorization_code` and optionally `refresh_token`.
    pub grant_types: Vec<String>,
    /// `admin` or `dynamic`.
    pub registered_by: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient<'a> {
    /// The public client id.
    pub client_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Redirect URIs.
    pub redirect_uris: &'a [String],
    /// Token endpoint authentication.
    pub token_endpoint_auth_method: &'a str,
    /// SHA-256 of the secret, for confidential clients.
    pub secret_hash: Option<&'a [u8]>,
    /// Grant types.
    pub grant_types: &'a [String],
    /// `admin` or `dynamic`.
    pub registered_by: &'a str,
}

/// Registers a client.
pub async fn insert_client(conn: &mut PgConnection, scope: &TenantScope, new: &NewClient<'_>) -> Result<OAuthClient> {
    sqlx::query_as!(
        OAuthClient,
        "INSERT INTO oauth_clients
             (tenant_id, client_id, name, redirect_uris, token_endpoint_auth_method, secret_hash, grant_types, registered_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING client_id, name, redirect_uris, token_endpoint_auth_method, secret_hash, grant_types, registered_by, created_at",
        scope.tenant_id().as_uuid(),
        new.client_id,
        new.name,
        new.redirect_uris,
        new.token_endpoint_auth_method,
        new.secret_hash,
        new.grant_types,
        new.registered_by
    )
    .fetch_one(conn)
    .await
    .map_err(|e| Error::on_unique(e, || "client id collision; try again".to_owned()))
}

/// Clients of the tenant registered through Dynamic Client Registration.
pub async fn count_dynamic_clients(conn: &mut PgConnection, scope: &TenantScope) -> Result<i64> {
    let count = sqlx::query_scalar!(
        "SELECT count(*) FROM oauth_clients WHERE tenant_id = $1 AND registered_by = 'dynamic'",
        scope.tenant_id().as_uuid()
    )
    .fetch_one(conn)
    .await?;
    Ok(count.unwrap_or(0))
}

/// Removes the tenant's dynamically registered clients created before `created_before` that
/// never got a grant (no member ever consented to them); returns how many.
pub async fn delete_unused_dynamic_clients(
    conn: &mut PgConnection,
    scope: &TenantScope,
    created_before: DateTime<Utc>,
) -> Result<u64> {
    let done = sqlx::query!(
        "DELETE FROM oauth_clients c
         WHERE c.tenant_id = $1 AND c.registered_by = 'dynamic' AND c.created_at < $2
           AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.tenant_id = c.tenant_id AND g.client_id = c.client_id)",
        scope.tenant_id().as_uuid(),
        created_before
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Reads a client.
pub async fn get_client(conn: &mut PgConnection, scope: &TenantScope, client_id: &str) -> Result<Option<OAuthClient>> {
    Ok(sqlx::query_as!(
        OAuthClient,
        "SELECT client_id, name, redirect_uris, token_endpoint_auth_method, secret_hash, grant_types, registered_by, created_at
         FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2",
        scope.tenant_id().as_uuid(),
        client_id
    )
    .fetch_optional(conn)
    .await?)
}

/// Lists clients in client id order, after `after` when given.
pub async fn list_clients(
    conn: &mut PgConnection,
    scope: &TenantScope,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<OAuthClient>> {
    Ok(sqlx::query_as!(
        OAuthClient,
        "SELECT client_id, name, redirect_uris, token_endpoint_auth_method, secret_hash, grant_types, registered_by, created_at
         FROM oauth_clients WHERE tenant_id = $1 AND ($2::text IS NULL OR client_id > $2)
         ORDER BY client_id LIMIT $3",
        scope.tenant_id().as_uuid(),
        after,
        limit
    )
    .fetch_all(conn)
    .await?)
}

/// Deletes a client and revokes every grant it holds. Run it in a transaction.
pub async fn delete_client(conn: &mut PgConnection, scope: &TenantScope, client_id: &str) -> Result<()> {
    let done = sqlx::query!(
        "DELETE FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2",
        scope.tenant_id().as_uuid(),
        client_id
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("oauth client"));
    }
    sqlx::query!(
        "UPDATE oauth_grants SET revoked_at = now() WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL",
        scope.tenant_id().as_uuid(),
        client_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A member's browser session at the login page.
#[derive(Debug, Clone)]
pub struct LoginSession {
    /// The signed-in member.
    pub member: Member,
    /// The CSRF token the consent form must carry.
    pub csrf: String,
}

/// Starts a login session.
pub async fn insert_session(
    conn: &mut PgConnection,
    scope: &TenantScope,
    id_hash: &[u8],
    member: MemberId,
    csrf: &str,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO oauth_sessions (tenant_id, id_hash, member_id, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
        scope.tenant_id().as_uuid(),
        id_hash,
        member.as_uuid(),
        csrf,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The live session with this id hash, if any.
pub async fn find_session(
    conn: &mut PgConnection,
    scope: &TenantScope,
    id_hash: &[u8],
) -> Result<Option<LoginSession>> {
    let row = sqlx::query!(
        r#"SELECT m.id, m.tenant_id, m.email, m.display_name, m.role, m.password_hash IS NOT NULL AS "has_password!",
                  m.created_at, s.csrf
           FROM oauth_sessions s JOIN members m ON m.tenant_id = s.tenant_id AND m.id = s.member_id
           WHERE s.tenant_id = $1 AND s.id_hash = $2 AND s.expires_at > now()"#,
        scope.tenant_id().as_uuid(),
        id_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LoginSession {
        member: Member {
            id: MemberId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            email: r.email,
            display_name: r.display_name,
            role: berth_core::Role::parse(&r.role).unwrap_or(berth_core::Role::Auditor),
            has_password: r.has_password,
            created_at: r.created_at,
        },
        csrf: r.csrf,
    }))
}

/// Ends a login session (and drops expired ones of the tenant).
pub async fn delete_session(conn: &mut PgConnection, scope: &TenantScope, id_hash: &[u8]) -> Result<()> {
    sqlx::query!(
        "DELETE FROM oauth_sessions WHERE tenant_id = $1 AND (id_hash = $2 OR expires_at <= now())",
        scope.tenant_id().as_uuid(),
        id_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One member's consent for one client to reach one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Id.
    pub id: GrantId,
    /// The client.
    pub client_id: String,
    /// The member.
    pub member_id: MemberId,
    /// The server URL (token audience).
    pub resource: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// When refresh stops working.
    pub expires_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// Whether tokens of this grant are still good at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

struct GrantRow {
    id: Uuid,
    client_id: String,
    member_id: Uuid,
    resource: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<GrantRow> for Grant {
    fn from(r: GrantRow) -> Self {
        Grant {
            id: GrantId::from_uuid(r.id),
            client_id: r.client_id,
            member_id: MemberId::from_uuid(r.member_id),
            resource: r.resource,
            scopes: r.scopes.iter().filter_map(|s| Scope::parse(s).ok()).collect(),
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A grant to record.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// The client.
    pub client_id: &'a str,
    /// The consenting member.
    pub member_id: MemberId,
    /// The server URL.
    pub resource: &'a str,
    /// Granted scopes.
    pub scopes: &'a [Scope],
    /// When refresh stops working.
    pub expires_at: DateTime<Utc>,
}

/// An authorization code to record with its grant.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    /// SHA-256 of the code.
    pub code_hash: &'a [u8],
    /// The redirect URI of the authorization request.
    pub redirect_uri: &'a str,
    /// The PKCE S256 challenge.
    pub code_challenge: &'a str,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Records a grant and the authorization code that will start it. Run it in a transaction.
pub async fn insert_grant_with_code(
    conn: &mut PgConnection,
    scope: &TenantScope,
    grant: &NewGrant<'_>,
    code: &NewCode<'_>,
) -> Result<GrantId> {
    let id = GrantId::new();
    let scopes: Vec<String> = grant.scopes.iter().map(|s| s.as_str().to_owned()).collect();
    sqlx::query!(
        "INSERT INTO oauth_grants (tenant_id, id, client_id, member_id, resource, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        scope.tenant_id().as_uuid(),
        id.as_uuid(),
        grant.client_id,
        grant.member_id.as_uuid(),
        grant.resource,
        &scopes,
        grant.expires_at
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO oauth_codes (tenant_id, code_hash, grant_id, redirect_uri, code_challenge, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        scope.tenant_id().as_uuid(),
        code.code_hash,
        id.as_uuid(),
        code.redirect_uri,
        code.code_challenge,
        code.expires_at
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// What presenting a single-use secret found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed<T> {
    /// First use: here is what it stands for.
    Fresh(T),
    /// Already used: the caller revokes this grant.
    Replayed(GrantId),
    /// No such secret in this tenant.
    Unknown,
}

/// A redeemed authorization code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// Its grant.
    pub grant: Grant,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Marks a code used and returns it; a used code comes back as `Replayed`.
pub async fn redeem_code(conn: &mut PgConnection, scope: &TenantScope, code_hash: &[u8]) -> Result<Redeemed<Code>> {
    let fresh = sqlx::query!(
        "UPDATE oauth_codes SET used_at = now()
         WHERE tenant_id = $1 AND code_hash = $2 AND used_at IS NULL
         RETURNING grant_id, redirect_uri, code_challenge, expires_at",
        scope.tenant_id().as_uuid(),
        code_hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    match fresh {
        Some(row) => {
            let grant =
                get_grant(conn, scope, GrantId::from_uuid(row.grant_id)).await?.ok_or(Error::NotFound("grant"))?;
            Ok(Redeemed::Fresh(Code {
                grant,
                redirect_uri: row.redirect_uri,
                code_challenge: row.code_challenge,
                expires_at: row.expires_at,
            }))
        }
        None => Ok(used_secret_grant(
            sqlx::query_scalar!(
                "SELECT grant_id FROM oauth_codes WHERE tenant_id = $1 AND code_hash = $2",
                scope.tenant_id().as_uuid(),
                code_hash
            )
            .fetch_optional(conn)
            .await?,
        )),
    }
}

fn used_secret_grant<T>(grant_id: Option<Uuid>) -> Redeemed<T> {
    grant_id.map_or(Redeemed::Unknown, |id| Redeemed::Replayed(GrantId::from_uuid(id)))
}

/// Records a refresh token of a grant.
pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    scope: &TenantScope,
    grant: GrantId,
    token_hash: &[u8],
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO oauth_refresh_tokens (tenant_id, token_hash, grant_id) VALUES ($1, $2, $3)",
        scope.tenant_id().as_uuid(),
        token_hash,
        grant.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a refresh token used and returns its grant; a used token comes back as `Replayed`.
pub async fn redeem_refresh_token(
    conn: &mut PgConnection,
    scope: &TenantScope,
    token_hash: &[u8],
) -> Result<Redeemed<Grant>> {
    let fresh = sqlx::query_scalar!(
        "UPDATE oauth_refresh_tokens SET used_at = now()
         WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL
         RETURNING grant_id",
        scope.tenant_id().as_uuid(),
        token_hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    match fresh {
        Some(id) => {
            let grant = get_grant(conn, scope, GrantId::from_uuid(id)).await?.ok_or(Error::NotFound("grant"))?;
            Ok(Redeemed::Fresh(grant))
        }
        None => Ok(used_secret_grant(
            sqlx::query_scalar!(
                "SELECT grant_id FROM oauth_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
                scope.tenant_id().as_uuid(),
                token_hash
            )
            .fetch_optional(conn)
            .await?,
        )),
    }
}

/// The grant a refresh token belongs to, used or not (for revocation).
pub async fn grant_of_refresh_token(
    conn: &mut PgConnection,
    scope: &TenantScope,
    token_hash: &[u8],
) -> Result<Option<GrantId>> {
    Ok(sqlx::query_scalar!(
        "SELECT grant_id FROM oauth_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
        scope.tenant_id().as_uuid(),
        token_hash
    )
    .fetch_optional(conn)
    .await?
    .map(GrantId::from_uuid))
}

/// Reads a grant.
pub async fn get_grant(conn: &mut PgConnection, scope: &TenantScope, id: GrantId) -> Result<Option<Grant>> {
    Ok(sqlx::query_as!(
        GrantRow,
        "SELECT id, client_id, member_id, resource, scopes, expires_at, revoked_at
         FROM oauth_grants WHERE tenant_id = $1 AND id = $2",
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .map(Grant::from))
}

/// Revokes a grant and so every token issued under it (idempotent).
pub async fn revoke_grant(conn: &mut PgConnection, scope: &TenantScope, id: GrantId) -> Result<()> {
    sqlx::query!(
        "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant_id = $1 AND id = $2",
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether tokens of a grant are still good: it exists (its member and client too), is not
/// revoked and has not expired.
pub async fn grant_is_active(conn: &mut PgConnection, scope: &TenantScope, id: GrantId) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM oauth_grants
               WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > now()
           ) AS "active!""#,
        scope.tenant_id().as_uuid(),
        id.as_uuid()
    )
    .fetch_one(conn)
    .await?)
}

/// A signing key's public facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm (`EdDSA`).
    pub algorithm: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing (`None` for the active key).
    pub retired_at: Option<DateTime<Utc>>,
}

/// Lists the tenant's signing keys, newest first.
pub async fn list_signing_keys(conn: &mut PgConnection, scope: &TenantScope) -> Result<Vec<SigningKeyInfo>> {
    Ok(sqlx::query_as!(
        SigningKeyInfo,
        "SELECT kid, algorithm, created_at, retired_at FROM oauth_signing_keys
         WHERE tenant_id = $1 ORDER BY created_at DESC",
        scope.tenant_id().as_uuid()
    )
    .fetch_all(conn)
    .await?)
}
