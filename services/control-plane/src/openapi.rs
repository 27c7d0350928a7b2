//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from the handlers.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::dto;
use crate::routes::{
    api_keys, audit, config, identity_provider, logs, members, oauth_clients, quotas, servers, tenants, usage, versions,
};

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`BERTH_ADMIN_TOKEN`, or a tenant API key (`berth_...`) with an admin scope"))
                    .build(),
            ),
        );
    }
}

/// The admin API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Berth admin API", description = "Manage tenants, MCP servers, versions and API keys. Errors are application/problem+json (RFC 9457)."),
    paths(
        tenants::create, tenants::list, tenants::get, tenants::patch, tenants::delete,
        servers::create, servers::list, servers::get, servers::patch, servers::delete,
        config::get, config::put,
        versions::publish, versions::list, versions::get, versions::patch, versions::activate,
        logs::get,
        api_keys::create, api_keys::list, api_keys::get, api_keys::revoke,
        audit::list, audit::export, audit::get_capture, audit::put_capture,
        quotas::get, quotas::put, quotas::get_key, quotas::put_key, usage::get,
        members::create, members::list, members::get, members::patch, members::delete,
        oauth_clients::create, oauth_clients::list, oauth_clients::get, oauth_clients::delete,
        oauth_clients::list_keys, oauth_clients::rotate_key,
        identity_provider::get, identity_provider::put, identity_provider::delete,
    ),
    components(schemas(
        dto::CreateTenant, dto::PatchTenant, dto::TenantBody,
        dto::CreateServer, dto::PatchServer, dto::ServerBody, dto::PutConfig, dto::ConfigBody,
        dto::ContainerVersionRequest, dto::RemoteVersionRequest, dto::LimitsBody, dto::VersionBody, dto::PatchVersion,
        dto::CreateApiKey, dto::ApiKeyBody, dto::CreatedApiKey,
        audit::AuditEventBody, audit::CaptureBody,
        quotas::QuotasBody, quotas::KeyQuotasBody, usage::UsageBody, usage::UsageRowBody, usage::CountsBody,
        logs::LogsBody, logs::StartFailureBody,
        members::CreateMember, members::PatchMember, members::MemberBody,
        oauth_clients::CreateOAuthClient, oauth_clients::OAuthClientBody, oauth_clients::CreatedOAuthClient,
        oauth_clients::SigningKeyBody,
        identity_provider::PutIdentityProvider, identity_provider::IdentityProviderBody,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tenants"), (name = "servers"), (name = "versions"), (name = "api-keys"), (name = "audit"), (name = "quotas"), (name = "members"), (name = "oauth"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` (public: the document holds no tenant data).
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
