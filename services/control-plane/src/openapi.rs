//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated from the handlers.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::dto;
use crate::routes::{api_keys, config, servers, tenants, versions};

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
        versions::publish, versions::list, versions::get, versions::activate,
        api_keys::create, api_keys::list, api_keys::get, api_keys::revoke,
    ),
    components(schemas(
        dto::CreateTenant, dto::PatchTenant, dto::TenantBody,
        dto::CreateServer, dto::PatchServer, dto::ServerBody, dto::PutConfig, dto::ConfigBody,
        dto::ContainerVersionRequest, dto::RemoteVersionRequest, dto::LimitsBody, dto::VersionBody,
        dto::CreateApiKey, dto::ApiKeyBody, dto::CreatedApiKey,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "tenants"), (name = "servers"), (name = "versions"), (name = "api-keys"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json` (public: the document holds no tenant data).
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
