//! Berth's data plane: the MCP endpoint a user pastes, `{public_url}/t/{tenant}/{server}/mcp`.
//!
//! Per request: Host/Origin checks ([`guard`]), credentials ([`caller`]), the route from the
//! cached [`catalog`], then the era: legacy requests go to their session (created by
//! `initialize`), modern ones to the session keyed by tenant, server, version and principal.
//! Sessions live in `berth-sessions`; [`respond`] turns a session's outbound stream into a JSON
//! or SSE HTTP response.

pub mod accounting;
pub mod caller;
pub mod catalog;
pub mod guard;
pub mod killswitch;
mod mcp;
mod prm;
pub mod quota;
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
    /// Audit events and usage counters.
    pub accounting: Arc<accounting::Accounting>,
    /// Quota admission and usage counters.
    pub quotas: Arc<quota::Quotas>,
    /// OAuth access token verification and its caches.
    pub tokens: Arc<caller::Tokens>,
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
            tokens: Arc::new(caller::Tokens::new(pool.clone(), public_url)),
            catalog: Arc::new(catalog::Catalog::new(pool)),
            sessions,
            resolver,
            guard: Arc::new(guard::Guard::from_public_url(public_url)),
            max_body_bytes,
            accounting: Arc::new(accounting::Accounting::new(berth_audit::Auditor::disabled(), None)),
            quotas: Arc::new(quota::Quotas::default()),
        }
    }

    /// Enforces quotas with `quotas` (the same value the accounting counts usage in).
    pub fn with_quotas(mut self, quotas: Arc<quota::Quotas>) -> Self {
        self.quotas = quotas;
        self
    }

    /// Records audit events and usage with `accounting` (the same value the session registry
    /// got as its hooks).
    pub fn with_accounting(mut self, accounting: Arc<accounting::Accounting>) -> Self {
        self.accounting = accounting;
        self
    }

    /// Serves cached entries it cannot refresh for at most `bound` after they were last
    /// confirmed (see [`catalog`]); the default is one minute.
    pub fn with_fail_closed_after(mut self, bound: std::time::Duration) -> Self {
        let pool = self.catalog.pool().clone();
        self.catalog = Arc::new(catalog::Catalog::with_fail_closed_after(pool, bound));
        self
    }

    /// Starts this node's kill-switch listener (see [`killswitch`]); it stops with the catalog.
    pub fn listen_for_changes(&self, node: &str) {
        killswitch::spawn(Arc::downgrade(&self.catalog), self.sessions.clone(), node);
    }
}

/// Mounts the MCP endpoint and its Protected Resource Metadata.
pub fn configure(state: DataPlaneState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::resource("/.well-known/oauth-protected-resource/t/{tenant}/{server}/mcp")
                .app_data(web::Data::new(state.clone()))
                .route(web::get().to(prm::serve)),
        );
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
