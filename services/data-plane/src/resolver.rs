//! Finds the backend of a server version: WASM components run in the WASM runtime; container
//! and remote servers answer 503 until their runtimes land.

use std::sync::Arc;

use berth_core::backend::{Backend, BackendError, BackendResolver, BoxFuture};
use berth_core::{Server, ServerVersion, Tenant, TenantScope, VersionSpec};
use berth_runtime_wasm::{ServerSpec, WasmRuntime};
use berth_storage::PgPool;

/// The production resolver.
#[derive(Clone)]
pub struct Runtimes {
    pool: PgPool,
    wasm: WasmRuntime,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes").finish_non_exhaustive()
    }
}

impl Runtimes {
    /// Resolves over `pool` with `wasm` running components.
    pub fn new(pool: PgPool, wasm: WasmRuntime) -> Self {
        Self { pool, wasm }
    }
}

fn unavailable(what: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(what.to_string())
}

impl BackendResolver for Runtimes {
    fn resolve(
        &self,
        tenant: &Tenant,
        server: &Server,
        version: &ServerVersion,
    ) -> BoxFuture<'static, Result<Arc<dyn Backend>, BackendError>> {
        let VersionSpec::Wasm(spec) = &version.spec else {
            let kind = server.kind.as_str();
            return Box::pin(async move {
                Err(unavailable(format!("this Berth build has no runtime for {kind} servers yet")))
            });
        };
        // The route was authorized before resolution; the scope reads only this tenant's rows.
        let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
        let (pool, wasm, server_id) = (self.pool.clone(), self.wasm.clone(), server.id);
        let (sha256, egress) = (spec.sha256.clone(), spec.egress.clone());
        Box::pin(async move {
            let mut conn = pool.acquire().await.map_err(|_| unavailable("the database is unreachable"))?;
            let bytes = berth_storage::versions::get_component(&mut conn, &scope, &sha256)
                .await
                .map_err(|e| unavailable(format!("cannot load the component: {e}")))?;
            let config = berth_storage::server_config::get(&mut conn, &scope, server_id)
                .await
                .map_err(|e| unavailable(format!("cannot load the configuration: {e}")))?;
            drop(conn);
            let component = wasm
                .load(&sha256, &bytes)
                .await
                .map_err(|e| unavailable(format!("the component failed to load: {e}")))?;
            Ok(wasm.server(component, ServerSpec { config: config.values, secrets: config.secrets, egress }))
        })
    }
}

/// Validates uploads with the WASM runtime.
#[derive(Clone)]
pub struct WasmValidator(pub WasmRuntime);

impl berth_core::backend::ComponentValidator for WasmValidator {
    fn validate(&self, bytes: &[u8]) -> Result<(), String> {
        self.0.validate(bytes).map_err(|e| e.to_string())
    }
}
