//! Finds the backend of a server version: WASM components run in the WASM runtime, container
//! images in the container runtime (Docker), remote servers through the remote proxy.
//!
//! A build or node without a Docker daemon answers container servers with a clear 503; remote
//! upstream headers and servers' secrets are decrypted here with keys derived from
//! `BERTH_SECRET_KEY` (`berth_core::sealed`), just before they are handed to the remote, WASM
//! or container runtime. WASM guests read their configuration and secrets through
//! `berth:mcp/config`; containers get them as environment variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::backend::{Backend, BackendError, BackendResolver, BoxFuture};
use berth_core::sealed::{self, SealKey};
use berth_core::{Server, ServerId, ServerVersion, Tenant, TenantScope, VersionSpec};
use berth_runtime_container::{ContainerRuntime, RemoteRuntime, VersionKey};
use berth_runtime_wasm::{ServerSpec, WasmRuntime};
use berth_storage::server_config::ServerConfig;
use berth_storage::{PgConnection, PgPool};

/// The production resolver.
#[derive(Clone)]
pub struct Runtimes {
    pool: PgPool,
    wasm: WasmRuntime,
    containers: Option<ContainerRuntime>,
    remote: RemoteRuntime,
    headers_key: Option<SealKey>,
    secrets_key: Option<SealKey>,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes").field("containers", &self.containers.is_some()).finish_non_exhaustive()
    }
}

impl Runtimes {
    /// Resolves over `pool` with `wasm` running components; no container runtime, and remote
    /// headers used as stored (see [`Runtimes::with_containers`], [`Runtimes::with_secret`]).
    pub fn new(pool: PgPool, wasm: WasmRuntime) -> Self {
        Self { pool, wasm, containers: None, remote: RemoteRuntime::default(), headers_key: None, secrets_key: None }
    }

    /// Runs container versions on `containers`, storing their failed starts (with the
    /// containers' last output) for the admin API.
    #[must_use]
    pub fn with_containers(mut self, containers: ContainerRuntime) -> Self {
        let pool = self.pool.clone();
        containers.on_failure(Arc::new(move |key, failure| {
            let Ok(slug) = berth_core::Slug::parse("tenant", &key.tenant) else { return };
            // The version was resolved for an authorized route of this tenant.
            let scope = TenantScope::from_verified_credentials(key.tenant_id, slug);
            let record = berth_storage::container_failures::ContainerFailure {
                at: chrono::DateTime::<chrono::Utc>::from(failure.at),
                container: failure.container.clone(),
                image: failure.image.clone(),
                reason: failure.reason.clone(),
                logs: failure.logs.clone(),
            };
            let (pool, version) = (pool.clone(), key.version);
            tokio::spawn(async move {
                let Ok(mut conn) = pool.acquire().await else { return };
                if let Err(e) = berth_storage::container_failures::record(&mut conn, &scope, version, &record).await {
                    tracing::warn!(error.message = %e, "cannot store a failed container start");
                }
            });
        }));
        self.containers = Some(containers);
        self
    }

    /// Proxies remote versions with `remote`.
    #[must_use]
    pub fn with_remote(mut self, remote: RemoteRuntime) -> Self {
        self.remote = remote;
        self
    }

    /// Decrypts sealed remote headers and servers' secrets with the keys derived from the
    /// data-plane secret.
    #[must_use]
    pub fn with_secret(self, secret: &[u8]) -> Self {
        self.with_secrets(secret, None)
    }

    /// [`Runtimes::with_secret`], also opening what was sealed under the `previous` secret while
    /// a rotation is under way (`BERTH_SECRET_KEY_PREVIOUS`).
    #[must_use]
    pub fn with_secrets(mut self, secret: &[u8], previous: Option<&[u8]>) -> Self {
        self.headers_key = Some(SealKey::derive_rotating(secret, previous, sealed::UPSTREAM_HEADERS));
        self.secrets_key = Some(SealKey::derive_rotating(secret, previous, sealed::SERVER_SECRETS));
        self
    }

    /// The container runtime, when this node has one.
    pub fn containers(&self) -> Option<&ContainerRuntime> {
        self.containers.as_ref()
    }
}

fn unavailable(what: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(what.to_string())
}

/// Most bytes of environment a container gets (`NAME=value` strings): well below the kernel's
/// limit on what a process may be started with, so a start never fails for it.
const MAX_CONTAINER_ENV_BYTES: usize = 1024 * 1024;

/// Adds a server's configuration and secrets to the version's environment (they win over the
/// version's variables of the same name: the configuration is what changes without a new
/// version), within [`MAX_CONTAINER_ENV_BYTES`].
fn container_env(
    env: &mut BTreeMap<String, String>,
    config: impl IntoIterator<Item = (String, String)>,
) -> Result<(), BackendError> {
    env.extend(config);
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if bytes > MAX_CONTAINER_ENV_BYTES {
        return Err(unavailable(format!(
            "the server's environment (its version's variables, configuration and secrets) takes {bytes} bytes, \
             more than the {MAX_CONTAINER_ENV_BYTES} a container may be given"
        )));
    }
    Ok(())
}

/// A server's configuration with its secrets opened.
async fn load_config(
    conn: &mut PgConnection,
    scope: &TenantScope,
    server: ServerId,
    key: Option<&SealKey>,
) -> Result<ServerConfig, BackendError> {
    let mut config = berth_storage::server_config::get(conn, scope, server)
        .await
        .map_err(|e| unavailable(format!("cannot load the configuration: {e}")))?;
    open_secrets(key, scope, server, &mut config.secrets)?;
    Ok(config)
}

/// Opens a server's sealed secrets in place, each in its own context (its tenant, server and
/// name). A secret that does not open, or a sealed one on a node without the key, makes the
/// server unavailable rather than hand its guest ciphertext or another server's secret.
fn open_secrets(
    key: Option<&SealKey>,
    scope: &TenantScope,
    server: ServerId,
    secrets: &mut BTreeMap<String, String>,
) -> Result<(), BackendError> {
    let refused = || unavailable("the server's secrets cannot be decrypted with this node's BERTH_SECRET_KEY");
    for (name, value) in secrets.iter_mut() {
        match key {
            Some(key) => {
                let context = sealed::server_secret_context(scope.tenant_id(), server, name);
                *value = sealed::open_or_plain_bound(key, &context, value).map_err(|_| refused())?;
            }
            None if sealed::is_sealed(value) => return Err(refused()),
            None => {}
        }
    }
    Ok(())
}

impl BackendResolver for Runtimes {
    fn resolve(
        &self,
        tenant: &Tenant,
        server: &Server,
        version: &ServerVersion,
    ) -> BoxFuture<'static, Result<Arc<dyn Backend>, BackendError>> {
        match &version.spec {
            VersionSpec::Wasm(spec) => {
                // The route was authorized before resolution; the scope reads only this tenant's rows.
                let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
                let (pool, wasm, server_id, key) =
                    (self.pool.clone(), self.wasm.clone(), server.id, self.secrets_key.clone());
                let (sha256, egress) = (spec.sha256.clone(), spec.egress.clone());
                Box::pin(async move {
                    let mut conn = pool.acquire().await.map_err(|_| unavailable("the database is unreachable"))?;
                    let bytes = berth_storage::versions::get_component(&mut conn, &scope, &sha256)
                        .await
                        .map_err(|e| unavailable(format!("cannot load the component: {e}")))?;
                    let config = load_config(&mut conn, &scope, server_id, key.as_ref()).await?;
                    drop(conn);
                    let component = wasm
                        .load(&sha256, &bytes)
                        .await
                        .map_err(|e| unavailable(format!("the component failed to load: {e}")))?;
                    Ok(wasm.server(component, ServerSpec { config: config.values, secrets: config.secrets, egress }))
                })
            }
            VersionSpec::Container(spec) => {
                let Some(containers) = self.containers.clone() else {
                    return Box::pin(async {
                        Err(unavailable(
                            "this Berth node has no container runtime (no Docker daemon answered at start)",
                        ))
                    });
                };
                let key = VersionKey {
                    tenant_id: tenant.id,
                    tenant: tenant.slug.as_str().to_owned(),
                    server: server.slug.as_str().to_owned(),
                    version: version.id,
                    number: version.number,
                };
                let mut spec = spec.clone();
                // The route was authorized before resolution; the scope reads only this tenant's rows.
                let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug.clone());
                let (pool, server_id, secrets_key) = (self.pool.clone(), server.id, self.secrets_key.clone());
                Box::pin(async move {
                    let mut conn = pool.acquire().await.map_err(|_| unavailable("the database is unreachable"))?;
                    let config = load_config(&mut conn, &scope, server_id, secrets_key.as_ref()).await?;
                    drop(conn);
                    // A configuration change makes a new spec, hence a new pool of containers; the
                    // old one drains with its sessions.
                    container_env(&mut spec.env, config.values.into_iter().chain(config.secrets))?;
                    let server = containers.server(key, spec).await.map_err(unavailable)?;
                    Ok(server as Arc<dyn Backend>)
                })
            }
            VersionSpec::Remote(spec) => {
                let (remote, key, spec) = (self.remote.clone(), self.headers_key.clone(), spec.clone());
                Box::pin(async move {
                    let mut headers = spec.headers;
                    if let Some(key) = &key {
                        for value in headers.values_mut() {
                            *value = sealed::open_or_plain(key, value).map_err(|_| {
                                unavailable(
                                    "the upstream credentials cannot be decrypted with this node's BERTH_SECRET_KEY",
                                )
                            })?;
                        }
                    }
                    let server = remote.server(&spec.url, headers).await.map_err(unavailable)?;
                    Ok(server as Arc<dyn Backend>)
                })
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_joins_the_version_environment_and_wins_within_a_bound() {
        let mut env = BTreeMap::from([("KEEP".to_owned(), "kept".to_owned()), ("LEVEL".to_owned(), "info".to_owned())]);
        let config = [("LEVEL".to_owned(), "debug".to_owned()), ("TOKEN".to_owned(), "s3".to_owned())];
        container_env(&mut env, config).unwrap();
        assert_eq!(env["KEEP"], "kept");
        assert_eq!(env["LEVEL"], "debug", "the configuration wins");
        assert_eq!(env["TOKEN"], "s3");
        let big = (0..20).map(|i| (format!("K{i}"), "x".repeat(64 * 1024)));
        let refused = container_env(&mut env, big).unwrap_err();
        assert!(refused.to_string().contains("more than the 1048576"), "{refused}");
    }
}
