//! Route table of `/api/v1`.

use actix_web::{HttpResponse, web};
use berth_core::Error as Invalid;

use crate::problem::ApiError;

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod identity_provider;
pub(crate) mod logs;
pub(crate) mod members;
pub(crate) mod oauth_clients;
pub(crate) mod quotas;
pub(crate) mod servers;
pub(crate) mod tenants;
pub(crate) mod usage;
pub(crate) mod versions;

/// Registers every admin route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(crate::openapi::serve))
        .service(web::resource("/tenants").route(web::get().to(tenants::list)).route(web::post().to(tenants::create)))
        .service(
            web::resource("/tenants/{tenant}")
                .route(web::get().to(tenants::get))
                .route(web::patch().to(tenants::patch))
                .route(web::delete().to(tenants::delete)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers")
                .route(web::get().to(servers::list))
                .route(web::post().to(servers::create)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}")
                .route(web::get().to(servers::get))
                .route(web::patch().to(servers::patch))
                .route(web::delete().to(servers::delete)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/config")
                .route(web::get().to(config::get))
                .route(web::put().to(config::put)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/versions")
                .route(web::get().to(versions::list))
                .route(web::post().to(versions::publish)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/versions/{version}")
                .route(web::get().to(versions::get))
                .route(web::patch().to(versions::patch)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/versions/{version}/activate")
                .route(web::post().to(versions::activate)),
        )
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/versions/{version}/logs").route(web::get().to(logs::get)),
        )
        .service(web::resource("/tenants/{tenant}/audit").route(web::get().to(audit::list)))
        .service(
            web::resource("/tenants/{tenant}/quotas")
                .route(web::get().to(quotas::get))
                .route(web::put().to(quotas::put)),
        )
        .service(
            web::resource("/tenants/{tenant}/api-keys/{id}/quotas")
                .route(web::get().to(quotas::get_key))
                .route(web::put().to(quotas::put_key)),
        )
        .service(web::resource("/tenants/{tenant}/usage").route(web::get().to(usage::get)))
        .service(
            web::resource("/tenants/{tenant}/servers/{server}/audit")
                .route(web::get().to(audit::get_capture))
                .route(web::put().to(audit::put_capture)),
        )
        .service(web::resource("/tenants/{tenant}/audit/export").route(web::get().to(audit::export)))
        .service(
            web::resource("/tenants/{tenant}/api-keys")
                .route(web::get().to(api_keys::list))
                .route(web::post().to(api_keys::create)),
        )
        .service(
            web::resource("/tenants/{tenant}/api-keys/{id}")
                .route(web::get().to(api_keys::get))
                .route(web::delete().to(api_keys::revoke)),
        )
        .service(
            web::resource("/tenants/{tenant}/members")
                .route(web::get().to(members::list))
                .route(web::post().to(members::create)),
        )
        .service(
            web::resource("/tenants/{tenant}/members/{id}")
                .route(web::get().to(members::get))
                .route(web::patch().to(members::patch))
                .route(web::delete().to(members::delete)),
        )
        .service(
            web::resource("/tenants/{tenant}/oauth/clients")
                .route(web::get().to(oauth_clients::list))
                .route(web::post().to(oauth_clients::create)),
        )
        .service(
            web::resource("/tenants/{tenant}/oauth/clients/{client_id}")
                .route(web::get().to(oauth_clients::get))
                .route(web::delete().to(oauth_clients::delete)),
        )
        .service(
            web::resource("/tenants/{tenant}/oauth/signing-keys")
                .route(web::get().to(oauth_clients::list_keys))
                .route(web::post().to(oauth_clients::rotate_key)),
        )
        .service(
            web::resource("/tenants/{tenant}/identity-provider")
                .route(web::get().to(identity_provider::get))
                .route(web::put().to(identity_provider::put))
                .route(web::delete().to(identity_provider::delete)),
        );
}

/// Answers unknown `/api/v1` paths.
pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("resource"))
}

/// Validates a display name: 1-200 characters, no control characters.
pub(crate) fn display_name(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let count = value.chars().count();
    if count == 0 || count > 200 {
        return Err(Invalid::invalid(field, "must be 1-200 characters").into());
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::invalid(field, "must not contain control characters").into());
    }
    Ok(value.to_owned())
}

/// Acquires a pooled connection.
pub(crate) async fn conn(state: &crate::ControlPlaneState) -> Result<berth_storage::PoolConnection, ApiError> {
    state.pool.acquire().await.map_err(|e| berth_storage::Error::from(e).into())
}
