//! Building and running the HTTP server.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use berth_core::backend::{BackendResolver, ComponentValidator};
use berth_core::sealed::{self, SealKey};
use berth_sessions::{SessionConfig, SessionRegistry};
use berth_storage::PgPool;
use secrecy::{ExposeSecret, SecretString};

use crate::settings::Settings;

/// Which planes one process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planes {
    /// Both, on one listener (`berth up`).
    Both,
    /// The admin API only (`berth control-plane`).
    Control,
    /// The MCP endpoint only (`berth data-plane`).
    Data,
}

/// What the planes are built from, besides settings.
pub struct Wiring {
    /// The system of record.
    pub pool: PgPool,
    /// The platform administrator's token.
    pub admin_token: SecretString,
    /// Secret for session ids and sealed request state.
    pub secret_key: SecretString,
    /// Finds backends for server versions.
    pub resolver: Arc<dyn BackendResolver>,
    /// Checks uploaded components.
    pub validator: Arc<dyn ComponentValidator>,
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    public_url: url::Url,
    server: Server,
    auditor: berth_audit::Auditor,
    quotas: Arc<berth_data_plane::quota::Quotas>,
    pool: PgPool,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and wires the chosen planes.
    pub fn build(settings: &Settings, wiring: Wiring, planes: Planes) -> anyhow::Result<Self> {
        let Wiring { pool, admin_token, secret_key, resolver, validator } = wiring;
        let listener =
            TcpListener::bind(settings.listen).with_context(|| format!("failed to listen on {}", settings.listen))?;
        let bound = listener.local_addr().context("failed to read the bound address")?;
        let public_url = settings.public_url(bound)?;
        crate::telemetry::metrics();
        let node = node_id(settings);
        // One audit writer per process, shared by both planes; it spools to local disk while
        // the database is unreachable.
        let audit_sink = Arc::new(berth_storage::audit::PgSink::new(pool.clone()));
        let audit_settings = berth_audit::WriterSettings {
            spool_dir: Some(settings.audit_spool_dir()),
            node: node.clone(),
            ..berth_audit::WriterSettings::default()
        };
        let (auditor, audit_writer) = berth_audit::Auditor::start(audit_sink, audit_settings)
            .with_context(|| format!("cannot open the audit spool in {}", settings.audit_spool_dir().display()))?;
        actix_web::rt::spawn(audit_writer.run());
        let quotas = Arc::new(berth_data_plane::quota::Quotas::new(berth_data_plane::quota::QuotaSettings {
            nodes: settings.quota_nodes.max(1),
            ..berth_data_plane::quota::QuotaSettings::default()
        }));
        let accounting = Arc::new(berth_data_plane::accounting::Accounting::new(auditor.clone(), Some(quotas.clone())));
        // What stored secrets are sealed with: the data plane's secret. `berth control-plane`
        // alone holds a throwaway session secret, so it seals with a configured BERTH_SECRET_KEY
        // only, and otherwise stores secrets as given.
        let sealing_secret = match planes {
            Planes::Control => settings.secret_key.as_ref(),
            Planes::Both | Planes::Data => Some(&secret_key),
        };
        let previous = settings.secret_key_previous.as_ref().map(|p| p.expose_secret().as_bytes());
        let sealing_key =
            |purpose| sealing_secret.map(|s| SealKey::derive_rotating(s.expose_secret().as_bytes(), previous, purpose));
        if sealing_secret.is_none() {
            tracing::warn!(
                "BERTH_SECRET_KEY is not set: servers' secrets, remote upstream credentials and OAuth signing keys are stored unsealed"
            );
        }
        let trusted_proxies = berth_core::net::TrustedProxies::new(settings.trusted_proxies.clone());
        let control = berth_control_plane::ControlPlaneState {
            pool: pool.clone(),
            admin_token,
            public_url: public_url.clone(),
            max_upload_bytes: settings.max_upload_bytes,
            max_json_bytes: settings.max_json_bytes,
            validator,
            auditor: auditor.clone(),
            upstream_key: sealing_key(sealed::UPSTREAM_HEADERS),
            secrets_key: sealing_key(sealed::SERVER_SECRETS),
            signing_keys_key: sealing_key(sealed::OAUTH_SIGNING_KEYS),
            registrations: Arc::new(berth_control_plane::AddressLimiter::new(
                berth_control_plane::REGISTRATIONS_PER_MINUTE,
            )),
            client_documents: Arc::new(berth_control_plane::ClientDocuments::new(settings.oauth_cimd_allow_loopback)),
            trusted_proxies: trusted_proxies.clone(),
        };
        let mut sessions = SessionConfig::new(node.clone(), secret_key.expose_secret().as_bytes());
        if let Some(previous) = previous {
            sessions = sessions.with_previous_secret(previous);
        }
        sessions.max_sessions_per_tenant = settings.max_sessions_per_tenant;
        sessions.legacy_idle = Duration::from_secs(settings.session_idle_secs);
        let data = berth_data_plane::DataPlaneState::new(
            pool.clone(),
            &public_url,
            SessionRegistry::with_hooks(sessions, accounting.clone()),
            resolver,
            settings.mcp_max_body_bytes,
        )
        .with_fail_closed_after(Duration::from_secs(settings.fail_closed_after_secs))
        .with_accounting(accounting)
        .with_quotas(quotas.clone());
        if planes != Planes::Control {
            data.listen_for_changes(&node);
            berth_data_plane::quota::Quotas::spawn_flusher(&quotas, pool.clone());
        }
        let pool_for_shutdown = pool.clone();
        let pool = web::Data::new(pool);
        // For the root span's client address (`telemetry::RootSpan`).
        let trusted_proxies = web::Data::new(trusted_proxies);
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .wrap(from_fn(crate::ops::record))
                .wrap(from_fn(request_id_header))
                .wrap(tracing_actix_web::TracingLogger::<crate::telemetry::RootSpan>::new())
                .app_data(pool.clone())
                .app_data(trusted_proxies.clone())
                .configure(crate::ops::configure);
            // The MCP endpoint first: actix tries resources in the order they are registered,
            // each dynamic one with a regular expression (both when routing and when the root
            // span names the route), and no other route matches an MCP path.
            if planes != Planes::Control {
                app = app.configure(berth_data_plane::configure(data.clone()));
            }
            if planes != Planes::Data {
                app = app.configure(berth_control_plane::configure(control.clone()));
                app = app.configure(berth_control_plane::configure_oauth(control.clone()));
            }
            app
        })
        .shutdown_timeout(10)
        // Longer than common clients' idle timeouts (reqwest keeps pooled connections 90 s), so a
        // client never writes a request onto a connection the server is closing.
        .keep_alive(Duration::from_secs(120))
        .listen(listener)
        .context("failed to start the HTTP server")?;
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Self { port: bound.port(), public_url, server: server.run(), auditor, quotas, pool: pool_for_shutdown })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public base URL.
    pub fn public_url(&self) -> &url::Url {
        &self.public_url
    }

    /// The process's audit handle.
    pub fn auditor(&self) -> &berth_audit::Auditor {
        &self.auditor
    }

    /// Serves until SIGINT/SIGTERM (graceful, 10 s drain), then stores or spools the audit
    /// events still queued.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if tokio::time::timeout(Duration::from_secs(10), self.auditor.flush()).await.is_err() {
            tracing::warn!("audit events still queued at shutdown were not flushed in time");
        }
        if let Err(e) = self.quotas.flush(&self.pool).await {
            tracing::warn!(error.message = %e, "usage counters not yet flushed are lost");
        }
        served
    }
}

/// Echoes the request id chosen by the tracing middleware as `x-request-id`.
async fn request_id_header(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let id = actix_web::HttpMessage::extensions(&req).get::<tracing_actix_web::RequestId>().map(ToString::to_string);
    let mut response = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id)
    {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

fn node_id(settings: &Settings) -> String {
    settings.node_id.clone().unwrap_or_else(|| {
        let random = berth_auth::generate_admin_token().to_ascii_lowercase();
        let suffix: String = random.chars().rev().filter(char::is_ascii_alphanumeric).take(8).collect();
        format!("n{suffix}")
    })
}

/// A secret from settings, else from `{data_dir}/{file}`, else generated there (mode 0600).
/// Returns it and whether it was just generated.
pub fn persistent_secret(
    configured: Option<&SecretString>,
    settings: &Settings,
    file: &str,
    generate: fn() -> String,
) -> anyhow::Result<(SecretString, bool)> {
    if let Some(secret) = configured {
        return Ok((secret.clone(), false));
    }
    let path = settings.data_dir.join(file);
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim();
        anyhow::ensure!(!saved.is_empty(), "{} is empty; delete it to generate a new one", path.display());
        return Ok((SecretString::from(saved.to_owned()), false));
    }
    let secret = generate();
    write_private(&path, &secret)?;
    Ok((SecretString::from(secret), true))
}

/// The platform admin token (`BERTH_ADMIN_TOKEN`, else `{data_dir}/admin-token`).
pub fn admin_token(settings: &Settings) -> anyhow::Result<(SecretString, bool)> {
    persistent_secret(settings.admin_token.as_ref(), settings, "admin-token", berth_auth::generate_admin_token)
}

/// Seals under the keys derived from `secret` every servers' secret and OAuth signing key that
/// is not yet: those still stored as given (written before they were sealed, or by a
/// `berth control-plane` without `BERTH_SECRET_KEY`) and, while a rotation is under way, those
/// sealed under the `previous` secret. Run at start by the processes that seal what they store;
/// values that open under neither secret are counted and left alone (they are refused where
/// they are used). Remote versions' upstream headers are not rewritten (versions are
/// immutable): they open under the previous secret while it is set, and are published again
/// to move them to the new one.
pub async fn seal_stored_secrets(
    pool: &PgPool,
    secret: &SecretString,
    previous: Option<&SecretString>,
) -> anyhow::Result<berth_storage::Resealed> {
    let key = |purpose| {
        SealKey::derive_rotating(
            secret.expose_secret().as_bytes(),
            previous.map(|p| p.expose_secret().as_bytes()),
            purpose,
        )
    };
    let (secrets_key, signing_key) = (key(sealed::SERVER_SECRETS), key(sealed::OAUTH_SIGNING_KEYS));
    let mut conn = pool.acquire().await.context("cannot reach the database to seal stored secrets")?;
    let admin = || berth_core::AdminScope::from_verified_admin_token();
    let secrets = berth_storage::server_config::reseal_secrets(&mut conn, admin(), |stored| {
        let context = sealed::server_secret_context(stored.tenant, stored.server, &stored.name);
        sealed::reseal_bound(&secrets_key, &context, &stored.value)
    })
    .await
    .context("cannot seal the servers' stored secrets")?;
    let keys = berth_storage::oauth::reseal_signing_keys(&mut conn, admin(), |tenant, kid, der| {
        sealed::reseal_bytes_bound(&signing_key, &sealed::signing_key_context(tenant, kid), der)
    })
    .await
    .context("cannot seal the stored OAuth signing keys")?;
    let done = secrets + keys;
    if done.sealed > 0 {
        tracing::info!(
            secrets = secrets.sealed,
            signing_keys = keys.sealed,
            "sealed stored secrets under the current BERTH_SECRET_KEY"
        );
    }
    if done.unreadable > 0 {
        tracing::warn!(
            count = done.unreadable,
            "stored secrets open under neither BERTH_SECRET_KEY nor BERTH_SECRET_KEY_PREVIOUS; \
             the servers and tenants using them are refused until they are set again"
        );
    }
    Ok(done)
}

/// The data-plane secret (`BERTH_SECRET_KEY`, else `{data_dir}/secret-key`).
pub fn secret_key(settings: &Settings) -> anyhow::Result<SecretString> {
    persistent_secret(settings.secret_key.as_ref(), settings, "secret-key", berth_auth::generate_admin_token)
        .map(|(s, _)| s)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("failed to write {}", path.display()))
}

/// Raises this process's soft limit on open files to its hard limit, and returns the soft limit
/// before and after. Every client connection, session stream, WASM egress connection (up to 512
/// at once), container pipe and database connection is a file descriptor, and the common
/// default soft limit of 1,024 would refuse connections long before a node is busy. The hard
/// limit is the operator's (`ulimit -Hn`, systemd's `LimitNOFILE`); Berth never asks for more.
pub fn raise_open_file_limit() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let (raised, _) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok((soft, raised))
}

/// The WASM runtime, with its compiled-component cache under `{data_dir}/wasm-cache`.
pub fn wasm_runtime(settings: &Settings) -> anyhow::Result<berth_runtime_wasm::WasmRuntime> {
    // The runtime registers its histograms with the recorder present at its first call.
    crate::telemetry::metrics();
    let wasm = berth_runtime_wasm::WasmSettings {
        // wasmtime's cache wants an absolute path; `data_dir` defaults to the relative `.berth`.
        cache_dir: Some(
            std::path::absolute(settings.data_dir.join("wasm-cache"))
                .context("cannot resolve the WASM cache directory")?,
        ),
        max_memory_bytes: settings.wasm_max_memory_mb.saturating_mul(1024 * 1024),
        call_timeout: Duration::from_millis(settings.wasm_call_timeout_ms),
        max_instances: settings.wasm_max_instances,
        ready_instances: settings.wasm_ready_instances,
        egress_private_networks: settings.wasm_egress_private_networks.clone(),
        ..berth_runtime_wasm::WasmSettings::default()
    };
    berth_runtime_wasm::WasmRuntime::new(wasm).map_err(|e| anyhow::anyhow!("failed to start the WASM runtime: {e}"))
}

/// The container runtime, when a Docker daemon answers (`None`, with a warning, otherwise:
/// container servers then answer 503 on this node). Removes what a crashed Berth left behind.
pub async fn container_runtime(settings: &Settings) -> Option<berth_runtime_container::ContainerRuntime> {
    match berth_runtime_container::ContainerRuntime::new(settings.containers.clone()).await {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            tracing::warn!(error.message = %e, "no container runtime: container servers are unavailable on this node");
            None
        }
    }
}

/// The production resolver: WASM, containers (when Docker answers) and remote servers, with
/// upstream credentials opened with the data-plane secret.
pub async fn runtimes(
    settings: &Settings,
    pool: berth_storage::PgPool,
    wasm: berth_runtime_wasm::WasmRuntime,
    secret_key: &SecretString,
) -> berth_data_plane::Runtimes {
    let remote = berth_runtime_container::RemoteRuntime::new(
        settings.containers.max_message_bytes,
        Duration::from_secs(settings.containers.call_timeout_secs.max(1)),
    );
    let mut runtimes = berth_data_plane::Runtimes::new(pool, wasm).with_remote(remote).with_secrets(
        secret_key.expose_secret().as_bytes(),
        settings.secret_key_previous.as_ref().map(|p| p.expose_secret().as_bytes()),
    );
    if let Some(containers) = container_runtime(settings).await {
        runtimes = runtimes.with_containers(containers);
    }
    runtimes
}
