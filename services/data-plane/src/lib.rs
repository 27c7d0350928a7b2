//! Berth's data plane: the MCP endpoint a user pastes, `{public_url}/t/{tenant}/{server}/mcp`.
//!
//! Per request: Host/Origin checks ([`guard`]), credentials ([`caller`]), the route from the
//! cached [`catalog`], then the era: legacy requests go to their session (created by
//! `initialize`), modern ones to the session keyed by tenant, server, version and principal.
//! Sessions live in `berth-sessions`; [`respond`] turns a session's outbound stream into a JSON
//! or SSE HTTP response.

pub mod caller;
pub mod catalog;
pub mod guard;
mod mcp;
mod resolver;
mod respond;

pub use resolver::{Runtimes, WasmValidator};

use std::sync::Arc;

use actix_web::web;
use berth_core::backend::BackendResolver;
use berth_sessions::SessionRegistry;
use berth_storage::PgPool;

/// What the data plane needs at run time.
#[derive(Clone)]
pub struct DataPlaneState {
    /// Cached routes and credentials over the system of record.
    pub catalog: Arc<catalog::Catalog>,
    /// All client sessions of this node.
    pub sessions: SessionRegistry,
    /// Finds the backend of a server version.
    pub resolver: Arc<dyn BackendResolver>,
    /// Host and Origin rules derived from the public URL.
    pub guard: Arc<guard::Guard>,
    /// Largest accepted POST body, in bytes.
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for DataPlaneState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlaneState").field("sessions", &self.sessions).finish_non_exhaustive()
    }
}

impl DataPlaneState {
    /// Wires a data plane over `pool`.
    pub fn new(
        pool: PgPool,
        public_url: &url::Url,
        sessions: SessionRegistry,
        resolver: Arc<dyn BackendResolver>,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            catalog: Arc::new(catalog::Catalog::new(pool)),
            sessions,
            resolver,
            guard: Arc::new(guard::Guard::from_public_url(public_url)),
            max_body_bytes,
        }
    }
}

/// Mounts the MCP endpoint.
pub fn configure(state: DataPlaneState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::resource("/t/{tenant}/{server}/mcp")
                .app_data(web::Data::new(state))
                .route(web::post().to(mcp::post))
                .route(web::get().to(mcp::get))
                .route(web::delete().to(mcp::delete))
                .default_service(web::to(mcp::method_not_allowed)),
        );
    }
}

/// The resolver of a build without hosting runtimes: every server answers 503 with a clear
/// message. The WASM, container and remote runtimes replace it as they land.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRuntimes;

impl BackendResolver for NoRuntimes {
    fn resolve(
        &self,
        _tenant: &berth_core::Tenant,
        server: &berth_core::Server,
        _version: &berth_core::ServerVersion,
    ) -> berth_core::backend::BoxFuture<
        'static,
        Result<Arc<dyn berth_core::backend::Backend>, berth_core::backend::BackendError>,
    > {
        let kind = server.kind.as_str();
        Box::pin(async move {
            Err(berth_core::backend::BackendError::Unavailable(format!(
                "this Berth build has no runtime for {kind} servers yet"
            )))
        })
    }
}
