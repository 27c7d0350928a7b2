//! The data plane's lookup of `/t/{tenant}/{server}/mcp`.
//!
//! It runs before the caller is authorized, because a public server needs no credentials and
//! an API key must be compared with the tenant it names. Nothing returned here may be served
//! until the caller's credentials (or the server's `public` flag) allow it.

use berth_core::{Server, ServerVersion, Slug, Tenant, TenantScope};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::{servers, tenants, versions};

/// A tenant, one of its servers and the server's active version.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The tenant.
    pub tenant: Tenant,
    /// The server.
    pub server: Server,
    /// The active version, if one is set.
    pub version: Option<ServerVersion>,
}

/// Looks up a route by slugs; `None` when the tenant or server does not exist.
pub async fn find_route(conn: &mut PgConnection, tenant: &Slug, server: &Slug) -> Result<Option<Route>> {
    let tenant = match tenants::find_by_slug_for_routing(conn, tenant).await {
        Ok(t) => t,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Scoped reads below only serve the routing decision described in the module docs.
    let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
    let server = match servers::get(conn, &scope, server).await {
        Ok(s) => s,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let version = match server.active_version {
        Some(number) => Some(versions::get(conn, &scope, server.id, number).await?),
        None => None,
    };
    Ok(Some(Route { tenant, server, version }))
}
