//! `berth`: run the platform.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use berth::settings::{Overrides, Settings};
use std::sync::Arc;

use berth::startup::{Application, Planes, Wiring};
use berth_data_plane::{NoRuntimes, WasmValidator};
use berth_storage::PgPool;
use berth_storage::embedded::{Cluster, ClusterSettings};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

#[global_allocator]
static GLOBAL: berth::Allocator = berth::Allocator;

#[derive(Parser)]
#[command(name = "berth", version, about = "Host MCP servers for many tenants behind one URL each")]
struct Cli {
    /// Config file (TOML); default `./berth.toml` when present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address (overrides BERTH_LISTEN).
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Local state directory (overrides BERTH_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on one port, with an embedded PostgreSQL unless DATABASE_URL is set.
    Up,
    /// Run the admin API only (needs DATABASE_URL and BERTH_ADMIN_TOKEN).
    ControlPlane,
    /// Run the MCP endpoint only (needs DATABASE_URL).
    DataPlane,
    /// Apply database migrations (needs DATABASE_URL).
    Migrate,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a tenant's audit hash chain; exits 1 naming the first changed, removed or
    /// reordered event.
    Verify {
        /// Check this tenant's chain in the database (DATABASE_URL, else the embedded
        /// database of `berth up` in the data directory).
        #[arg(long, value_name = "SLUG", required_unless_present = "file", conflicts_with = "file")]
        tenant: Option<String>,
        /// Check a JSON Lines export offline (GET /api/v1/tenants/{tenant}/audit/export).
        #[arg(long, value_name = "EXPORT.jsonl")]
        file: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides { config_file: cli.config, listen: cli.listen, data_dir: cli.data_dir };
    let result = Settings::load(&overrides).and_then(|settings| {
        let _telemetry = berth::telemetry::init(&settings.log, settings.log_format, std::io::stderr)?;
        match berth::startup::raise_open_file_limit() {
            Ok((before, after)) if before != after => tracing::info!(before, after, "raised the open-file limit"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
        actix_web::rt::System::new().block_on(run(cli.command, settings))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.cause_chain = ?e, error.message = %e, "berth failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Up => up(settings).await,
        Command::Audit { command: AuditCommand::Verify { tenant, file } } => {
            audit_verify(&settings, tenant, file).await
        }
        Command::Migrate => {
            let pool = external_pool(&settings, "migrate").await?;
            berth_storage::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::ControlPlane => {
            let pool = external_pool(&settings, "control-plane").await?;
            require_current_schema(&pool).await?;
            let admin_token =
                settings.admin_token.clone().context("BERTH_ADMIN_TOKEN must be set for `berth control-plane`")?;
            if let Some(secret) = &settings.secret_key {
                berth::startup::seal_stored_secrets(&pool, secret, settings.secret_key_previous.as_ref()).await?;
            }
            // The control plane serves no MCP traffic: its session secret is throwaway.
            let wasm = berth::startup::wasm_runtime(&settings)?;
            let wiring = Wiring {
                pool,
                admin_token,
                secret_key: SecretString::from(berth_auth::generate_admin_token()),
                resolver: Arc::new(NoRuntimes),
                validator: Arc::new(WasmValidator(wasm)),
            };
            serve(Application::build(&settings, wiring, Planes::Control)?).await
        }
        Command::DataPlane => {
            let pool = external_pool(&settings, "data-plane").await?;
            require_current_schema(&pool).await?;
            let secret_key = settings
                .secret_key
                .clone()
                .context("BERTH_SECRET_KEY must be set for `berth data-plane` (the same on every node)")?;
            // The data plane never serves the admin API, so it holds no admin token.
            let wasm = berth::startup::wasm_runtime(&settings)?;
            let runtimes = berth::startup::runtimes(&settings, pool.clone(), wasm.clone(), &secret_key).await;
            let containers = runtimes.containers().cloned();
            let wiring = Wiring {
                pool: pool.clone(),
                admin_token: SecretString::from(String::new()),
                secret_key,
                resolver: Arc::new(runtimes),
                validator: Arc::new(WasmValidator(wasm)),
            };
            let served = serve(Application::build(&settings, wiring, Planes::Data)?).await;
            if let Some(containers) = containers {
                containers.shutdown().await;
            }
            served
        }
    }
}

async fn external_pool(settings: &Settings, command: &str) -> anyhow::Result<PgPool> {
    let url = settings.database_url.as_ref().with_context(|| {
        format!("DATABASE_URL must be set for `berth {command}` (`berth up` runs an embedded database)")
    })?;
    berth_storage::connect(url.expose_secret(), settings.database_max_connections)
        .await
        .context("failed to connect to DATABASE_URL")
}

async fn require_current_schema(pool: &PgPool) -> anyhow::Result<()> {
    let pending = berth_storage::pending_migrations(pool).await?;
    anyhow::ensure!(pending == 0, "the database schema is {pending} migration(s) behind: run `berth migrate` first");
    Ok(())
}

async fn serve(app: Application) -> anyhow::Result<()> {
    tracing::info!(port = app.port(), public_url = %app.public_url(), "listening");
    app.run_until_stopped().await.context("the HTTP server failed")
}

async fn up(settings: Settings) -> anyhow::Result<()> {
    let (pool, cluster) = match &settings.database_url {
        Some(url) => (
            berth_storage::connect(url.expose_secret(), settings.database_max_connections)
                .await
                .context("failed to connect to DATABASE_URL")?,
            None,
        ),
        None => {
            let root = settings.data_dir.join("postgres");
            let cluster =
                tokio::task::spawn_blocking(move || Cluster::start(&ClusterSettings { root, ephemeral: false }))
                    .await
                    .context("embedded PostgreSQL start-up panicked")??;
            let pool = open_embedded(&cluster, settings.database_max_connections).await;
            match pool {
                Ok(pool) => (pool, Some(cluster)),
                Err(e) => {
                    let _ = cluster.stop();
                    return Err(e);
                }
            }
        }
    };
    let result = async {
        berth_storage::migrate(&pool).await.context("failed to apply migrations")?;
        let (admin_token, generated) = berth::startup::admin_token(&settings)?;
        let wasm = berth::startup::wasm_runtime(&settings)?;
        let validator = WasmValidator(wasm.clone());
        let demo = berth::demo::ensure(&pool, &validator).await?;
        let secret_key = berth::startup::secret_key(&settings)?;
        berth::startup::seal_stored_secrets(&pool, &secret_key, settings.secret_key_previous.as_ref()).await?;
        let runtimes = berth::startup::runtimes(&settings, pool.clone(), wasm, &secret_key).await;
        let containers = runtimes.containers().cloned();
        let wiring = Wiring {
            pool: pool.clone(),
            admin_token: admin_token.clone(),
            secret_key,
            resolver: Arc::new(runtimes),
            validator: Arc::new(validator),
        };
        let app = Application::build(&settings, wiring, Planes::Both)?;
        print_banner(&settings, &app, admin_token.expose_secret(), generated, cluster.as_ref(), &demo);
        let served = serve(app).await;
        // Graceful stop: no container outlives the process (a crash is handled at next start).
        if let Some(containers) = containers {
            containers.shutdown().await;
        }
        served
    }
    .await;
    pool.close().await;
    if let Some(cluster) = cluster {
        println!("stopping embedded PostgreSQL");
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .context("embedded PostgreSQL shutdown panicked")??;
    }
    result
}

async fn open_embedded(cluster: &Cluster, max_connections: u32) -> anyhow::Result<PgPool> {
    let admin = berth_storage::connect_with(cluster.connect_options("postgres"), 1)
        .await
        .context("failed to connect to the embedded PostgreSQL")?;
    berth_storage::create_database_if_missing(&admin, "berth").await?;
    admin.close().await;
    Ok(berth_storage::connect_with(cluster.connect_options("berth"), max_connections).await?)
}

#[allow(clippy::print_stdout)]
fn print_banner(
    settings: &Settings,
    app: &Application,
    token: &str,
    generated: bool,
    cluster: Option<&Cluster>,
    demo: &berth::demo::Demo,
) {
    let url = app.public_url().as_str().trim_end_matches('/');
    let token_note = match (generated, &settings.admin_token) {
        (_, Some(_)) => "from BERTH_ADMIN_TOKEN".to_owned(),
        (true, None) => format!("generated, saved in {}", settings.data_dir.join("admin-token").display()),
        (false, None) => format!("from {}", settings.data_dir.join("admin-token").display()),
    };
    let database = match cluster {
        Some(c) => {
            format!("embedded PostgreSQL in {} (127.0.0.1:{})", settings.data_dir.join("postgres").display(), c.port())
        }
        None => "DATABASE_URL".to_owned(),
    };
    let demo = match demo {
        berth::demo::Demo::Published | berth::demo::Demo::Existing => format!(
            "\nDemo server (a public WebAssembly component: add, word_count, greeting://{{name}}, code_review):\
             \n  {url}/t/demo/classic/mcp\
             \n  Claude Desktop, Cursor, VS Code: {{\"mcpServers\": {{\"berth-demo\": {{\"type\": \"http\", \"url\": \"{url}/t/demo/classic/mcp\"}}}}}}\n"
        ),
        berth::demo::Demo::Skipped(why) => format!("\nDemo server skipped: {why}\n"),
    };
    println!(
        "\nBerth is up.\n\
         \n  Admin API    {url}/api/v1  (OpenAPI: {url}/api/v1/openapi.json)\
         \n  MCP servers  {url}/t/<tenant>/<server>/mcp\
         \n  Admin token  {token}  ({token_note})\
         \n  Database     {database}\
         \n\nNext steps:\
         \n  export BERTH_ADMIN_TOKEN={token}\
         \n  curl -s -X POST {url}/api/v1/tenants -H \"Authorization: Bearer $BERTH_ADMIN_TOKEN\" \\\
         \n       -H 'Content-Type: application/json' -d '{{\"slug\":\"acme\",\"name\":\"Acme\"}}'\
         \n  See the README walkthrough for servers, versions and API keys.\
         \n{demo}\
         \n\nPress Ctrl-C to stop.\n"
    );
}

/// `berth audit verify`.
#[allow(clippy::print_stdout)]
async fn audit_verify(settings: &Settings, tenant: Option<String>, file: Option<PathBuf>) -> anyhow::Result<()> {
    let report = match (tenant, file) {
        (_, Some(file)) => berth::audit_verify::verify_file(&file)?,
        (Some(slug), None) => {
            let (pool, cluster) = verification_pool(settings).await?;
            let report = berth::audit_verify::verify_tenant(&pool, &slug).await;
            pool.close().await;
            if let Some(cluster) = cluster {
                let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
            }
            report?
        }
        (None, None) => anyhow::bail!("give --tenant SLUG or --file EXPORT.jsonl"),
    };
    println!("{}", report.message);
    anyhow::ensure!(report.intact, "the audit chain does not verify");
    Ok(())
}

/// DATABASE_URL, else the embedded cluster of `berth up` (started for the check and stopped
/// after, unless it was already running).
async fn verification_pool(settings: &Settings) -> anyhow::Result<(PgPool, Option<Cluster>)> {
    if settings.database_url.is_some() {
        return Ok((external_pool(settings, "audit verify").await?, None));
    }
    let root = settings.data_dir.join("postgres");
    anyhow::ensure!(
        root.join("pgdata").is_dir(),
        "DATABASE_URL is not set and there is no embedded database in {}",
        root.display()
    );
    let was_running = root.join("pgdata").join("postmaster.pid").is_file();
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&ClusterSettings { root, ephemeral: false }))
        .await
        .context("embedded PostgreSQL start-up panicked")??;
    let pool = berth_storage::connect_with(cluster.connect_options("berth"), 2)
        .await
        .context("failed to connect to the embedded PostgreSQL")?;
    Ok((pool, if was_running { None } else { Some(cluster) }))
}
