//! `/tenants/{tenant}/servers/{server}/config`: configuration and secrets handed to the server.

use actix_web::{HttpResponse, web};
use berth_core::{Error as Invalid, Scope, Slug, sealed};
use berth_storage::server_config::{self, ServerConfig};
use berth_storage::servers;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{ConfigBody, PutConfig};
use crate::problem::ApiError;

fn body(config: ServerConfig) -> ConfigBody {
    ConfigBody { config: config.values, secrets: config.secrets.into_keys().collect() }
}

fn check_entries(field: &str, entries: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if entries.len() > 256 {
        return Err(Invalid::invalid(field, "at most 256 entries").into());
    }
    for (key, value) in entries {
        let valid_key = !key.is_empty()
            && key.len() <= 128
            && !key.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid_key {
            return Err(Invalid::invalid(field, format!("{key:?} must match [A-Za-z_][A-Za-z0-9_.-]{{0,127}}")).into());
        }
        if value.len() > 65_536 {
            return Err(Invalid::invalid(field, format!("the value of {key} exceeds 64 KiB")).into());
        }
    }
    Ok(())
}

/// Reads a server's configuration (secret values are never shown).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}/config", tag = "servers",
    responses((status = 200, body = ConfigBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let server = servers::get(&mut conn, &scope, &Slug::parse("server", &server)?).await?;
    Ok(HttpResponse::Ok().json(body(server_config::get(&mut conn, &scope, server.id).await?)))
}

/// Replaces a server's configuration and secrets. Secrets are stored sealed (AES-256-GCM under a
/// key derived from `BERTH_SECRET_KEY`, bound to their tenant, server and name) and only the
/// data plane opens them: a WASM guest reads both through `berth:mcp/config`, a container gets
/// them as environment variables.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/servers/{server}/config", tag = "servers", request_body = PutConfig,
    responses((status = 200, body = ConfigBody), (status = 400), (status = 401), (status = 403), (status = 404), (status = 415)))]
pub(crate) async fn put(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: web::Json<PutConfig>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let request = request.into_inner();
    check_entries("config", &request.config)?;
    check_entries("secrets", &request.secrets)?;
    if let Some(key) = request.config.keys().find(|k| request.secrets.contains_key(*k)) {
        return Err(Invalid::invalid("secrets", format!("{key} is both a config value and a secret")).into());
    }
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    let scope = caller.tenant(&mut tx, &tenant, Scope::Admin).await?;
    let server = servers::get(&mut tx, &scope, &Slug::parse("server", &server)?).await?;
    let mut config = ServerConfig { values: request.config, secrets: request.secrets };
    if let Some(key) = &state.secrets_key {
        for (name, value) in &mut config.secrets {
            let context = sealed::server_secret_context(scope.tenant_id(), server.id, name);
            *value = sealed::seal_bound(key, &context, value);
        }
    }
    server_config::replace(&mut tx, &scope, server.id, &config).await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    tracing::info!(tenant = %scope.slug(), server = %server.slug, "server configuration replaced");
    Ok(HttpResponse::Ok().json(body(config)))
}
