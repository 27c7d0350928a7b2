//! Protected Resource Metadata (RFC 9728) of every hosted server, at
//! `{public_url}/.well-known/oauth-protected-resource/t/{tenant}/{server}/mcp`.
//!
//! The document is derived from the URL alone (plus the tenant's trusted external issuer, when
//! it has one), so it is served for any well-formed path: answering differently for missing
//! servers would tell anonymous callers which servers exist (see `adr/0001`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use berth_core::Slug;
use serde_json::json;

use crate::DataPlaneState;
use crate::caller::Tokens;

/// The scopes an MCP client needs; the 401 challenge names the same.
pub(crate) const SCOPE: &str = "mcp";

/// `GET` of a server's metadata.
pub(crate) async fn serve(state: web::Data<DataPlaneState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (tenant, server) = path.into_inner();
    let (Ok(tenant), Ok(server)) = (Slug::parse("tenant", &tenant), Slug::parse("server", &server)) else {
        return HttpResponse::build(StatusCode::NOT_FOUND)
            .content_type("application/json")
            .body(r#"{"error":"not_found"}"#);
    };
    match document(&state.tokens, &tenant, &server).await {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .json(body),
        Err(_) => {
            HttpResponse::ServiceUnavailable().content_type("application/json").body(r#"{"error":"unavailable"}"#)
        }
    }
}

async fn document(tokens: &Tokens, tenant: &Slug, server: &Slug) -> Result<serde_json::Value, crate::caller::Refused> {
    let urls = tokens.urls();
    let mut servers = Vec::new();
    // A tenant that trusts an external issuer lists it first: clients use the first entry.
    if let Some(external) = tokens.external_issuer(tenant).await? {
        servers.push(external);
    }
    servers.push(urls.issuer(tenant.as_str()));
    Ok(json!({
        "resource": urls.resource(tenant.as_str(), server.as_str()),
        "authorization_servers": servers,
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{} ({})", server, tenant),
    }))
}
