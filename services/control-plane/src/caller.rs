//! The verified caller of an admin request, and the checks that turn it into a tenant scope.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use berth_auth::ParsedKey;
use berth_core::{AdminScope, Principal, Scope, Slug, TenantScope};
use berth_storage::PgConnection;
use secrecy::ExposeSecret;

use crate::ControlPlaneState;
use crate::problem::ApiError;

/// A caller whose credentials were verified.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing credentials: send `Authorization: Bearer <token>`".into()))?;
    let text = value.to_str().map_err(|_| ApiError::Unauthorized("invalid credentials".into()))?;
    let token = berth_auth::bearer_token(text)
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must use the Bearer scheme".into()))?;
    Ok(token.to_owned())
}

async fn verify(req: HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<ControlPlaneState>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("control plane state missing")))?;
    let token = bearer(&req)?;
    if berth_auth::admin_token_matches(&token, state.admin_token.expose_secret()) {
        return Ok(Caller(Principal::PlatformAdmin));
    }
    let parsed = ParsedKey::parse(&token).ok_or_else(|| ApiError::Unauthorized("invalid credentials".into()))?;
    let mut conn = state.pool.acquire().await.map_err(berth_storage::Error::from)?;
    let stored = berth_storage::api_keys::find_by_prefix_for_verification(&mut conn, parsed.prefix())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid credentials".into()))?;
    let (tenant_id, key_id) = (stored.key.tenant_id, stored.key.id);
    match berth_auth::verify_api_key(&parsed, stored, chrono::Utc::now()) {
        Ok(principal) => {
            berth_storage::api_keys::touch(&mut conn, tenant_id, key_id).await?;
            Ok(Caller(principal))
        }
        Err(berth_auth::Error::TenantDisabled) => Err(ApiError::Forbidden("the tenant is disabled".into())),
        Err(e) => Err(ApiError::Unauthorized(e.to_string())),
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let caller = verify(req.clone()).await.map_err(actix_web::Error::from)?;
            // The audit middleware names the principal of every mutation.
            actix_web::HttpMessage::extensions_mut(&req).insert(crate::audit_log::Verified(caller.0.label()));
            Ok(caller)
        })
    }
}

impl Caller {
    /// The platform admin scope, or 403.
    pub fn admin(&self) -> Result<AdminScope, ApiError> {
        match self.0 {
            Principal::PlatformAdmin => Ok(AdminScope::from_verified_admin_token()),
            Principal::ApiKey { .. } | Principal::Token { .. } => {
                Err(ApiError::Forbidden("only the platform administrator (BERTH_ADMIN_TOKEN) may do this".into()))
            }
        }
    }

    /// Whether this is the platform administrator.
    pub fn is_platform_admin(&self) -> bool {
        matches!(self.0, Principal::PlatformAdmin)
    }

    /// Resolves the tenant named in the path, requiring `needed`.
    ///
    /// Another tenant's slug answers exactly like an unknown one (404), so a key cannot learn
    /// which tenants exist.
    pub async fn tenant(&self, conn: &mut PgConnection, slug: &str, needed: Scope) -> Result<TenantScope, ApiError> {
        let slug = Slug::parse("tenant", slug)?;
        match &self.0 {
            Principal::PlatformAdmin => {
                let tenant =
                    berth_storage::tenants::find_by_slug(conn, AdminScope::from_verified_admin_token(), &slug).await?;
                Ok(TenantScope::from_verified_credentials(tenant.id, tenant.slug))
            }
            Principal::ApiKey { tenant, .. } if tenant.slug() == &slug => {
                if self.0.has_scope(needed) {
                    Ok(tenant.clone())
                } else {
                    Err(ApiError::Forbidden(format!("this API key lacks the `{}` scope", needed.as_str())))
                }
            }
            // OAuth tokens are bound to one MCP server and never reach the admin API.
            Principal::ApiKey { .. } | Principal::Token { .. } => Err(ApiError::NotFound("tenant")),
        }
    }
}
