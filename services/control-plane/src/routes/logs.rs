//! `/tenants/{tenant}/servers/{server}/versions/{version}/logs`: why a container version failed
//! to start, with the container's last output (kept by the data plane, newest first, at most 20
//! per version).

use actix_web::{HttpResponse, web};
use berth_core::{Scope, Slug};
use berth_storage::{container_failures, servers, versions};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::problem::ApiError;

/// One failed start of a container.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StartFailureBody {
    /// When it failed.
    pub(crate) at: DateTime<Utc>,
    /// The container's short id (removed since).
    pub(crate) container: String,
    /// The image.
    pub(crate) image: String,
    /// Why, in words.
    pub(crate) reason: String,
    /// The container's last output (stdout and stderr, at most 64 KiB).
    pub(crate) logs: String,
}

/// The failed starts of a version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogsBody {
    /// Newest first.
    pub(crate) items: Vec<StartFailureBody>,
}

/// Reads the failed starts of a container version, with each container's last output.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}/versions/{version}/logs", tag = "versions",
    responses((status = 200, body = LogsBody), (status = 401), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server, number) = path.into_inner();
    let number = number.parse::<i32>().ok().filter(|n| *n > 0).ok_or(ApiError::NotFound("version"))?;
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let slug = Slug::parse("server", &server).map_err(|_| ApiError::NotFound("server"))?;
    let server = servers::get(&mut conn, &scope, &slug).await?;
    let version = versions::get(&mut conn, &scope, server.id, number).await?;
    let items = container_failures::list(&mut conn, &scope, version.id)
        .await?
        .into_iter()
        .map(|f| StartFailureBody { at: f.at, container: f.container, image: f.image, reason: f.reason, logs: f.logs })
        .collect();
    Ok(HttpResponse::Ok().json(LogsBody { items }))
}
