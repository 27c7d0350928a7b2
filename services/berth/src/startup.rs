//! Building and running the HTTP server.

use std::net::TcpListener;
use std::path::Path;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use berth_storage::PgPool;
use secrecy::SecretString;

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

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    public_url: url::Url,
    server: Server,
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port) and wires the chosen planes.
    pub fn build(settings: &Settings, pool: PgPool, admin_token: SecretString, planes: Planes) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(settings.listen).with_context(|| format!("failed to listen on {}", settings.listen))?;
        let bound = listener.local_addr().context("failed to read the bound address")?;
        let public_url = settings.public_url(bound)?;
        crate::telemetry::metrics();
        let control = berth_control_plane::ControlPlaneState {
            pool: pool.clone(),
            admin_token,
            public_url: public_url.clone(),
            max_upload_bytes: settings.max_upload_bytes,
            max_json_bytes: settings.max_json_bytes,
        };
        let data = berth_data_plane::DataPlaneState { pool: pool.clone(), public_url: public_url.clone() };
        let pool = web::Data::new(pool);
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .wrap(from_fn(crate::ops::record))
                .wrap(from_fn(request_id_header))
                .wrap(tracing_actix_web::TracingLogger::default())
                .app_data(pool.clone())
                .configure(crate::ops::configure);
            if planes != Planes::Data {
                app = app.configure(berth_control_plane::configure(control.clone()));
            }
            if planes != Planes::Control {
                app = app.configure(berth_data_plane::configure(data.clone()));
            }
            app
        })
        .shutdown_timeout(10)
        .listen(listener)
        .context("failed to start the HTTP server")?;
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        Ok(Self { port: bound.port(), public_url, server: server.run() })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public base URL.
    pub fn public_url(&self) -> &url::Url {
        &self.public_url
    }

    /// Serves until SIGINT/SIGTERM (graceful, 10 s drain).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
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

/// Reads `BERTH_ADMIN_TOKEN` from settings, else from `{data_dir}/admin-token`, else generates
/// one there (mode 0600). Returns the token and whether it was just generated.
pub fn admin_token(settings: &Settings) -> anyhow::Result<(SecretString, bool)> {
    if let Some(token) = &settings.admin_token {
        return Ok((token.clone(), false));
    }
    let path = settings.data_dir.join("admin-token");
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim();
        anyhow::ensure!(!saved.is_empty(), "{} is empty; delete it to generate a new token", path.display());
        return Ok((SecretString::from(saved.to_owned()), false));
    }
    let token = berth_auth::generate_admin_token();
    write_private(&path, &token)?;
    Ok((SecretString::from(token), true))
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
