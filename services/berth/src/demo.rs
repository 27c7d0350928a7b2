//! The demo `berth up` publishes on first run: tenant `demo`, public WASM server `classic`
//! (the classic example: `add`, `word_count`, `greeting://{name}`, a code-review prompt).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use berth_core::backend::ComponentValidator;
use berth_core::{AdminScope, ServerKind, Slug, TenantScope, VersionSpec, WasmSpec};
use berth_storage::PgPool;
use berth_storage::servers::NewServer;

/// Where the demo component is built by `cargo build --target wasm32-wasip2` in `examples/`.
const COMPONENT: &str = "examples/target/wasm32-wasip2/release/berth_example_classic.wasm";

/// What happened to the demo.
#[derive(Debug)]
pub enum Demo {
    /// Already there from an earlier run.
    Existing,
    /// Published now.
    Published,
    /// Not available, with the reason.
    Skipped(String),
}

fn component_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BERTH_DEMO_COMPONENT") {
        return Some(PathBuf::from(path));
    }
    let path = PathBuf::from(COMPONENT);
    if path.is_file() {
        return Some(path);
    }
    // From a source checkout, build the example once (a few seconds).
    if !Path::new("examples/Cargo.toml").is_file() {
        return None;
    }
    println!("building the demo WebAssembly server (first run only)...");
    let _ = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).output();
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--manifest-path", "examples/Cargo.toml"])
        .args(["-p", "berth-example-classic"])
        .status()
        .is_ok_and(|s| s.success());
    (built && path.is_file()).then_some(path)
}

/// Publishes the demo unless tenant `demo` exists.
pub async fn ensure(pool: &PgPool, validator: &dyn ComponentValidator) -> anyhow::Result<Demo> {
    let admin = AdminScope::from_verified_admin_token();
    let slug = Slug::parse("tenant", "demo")?;
    let mut conn = pool.acquire().await.context("failed to reach the database")?;
    match berth_storage::tenants::find_by_slug(&mut conn, admin, &slug).await {
        Ok(_) => return Ok(Demo::Existing),
        Err(berth_storage::Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(path) = component_path() else {
        return Ok(Demo::Skipped(format!(
            "no demo component: build it with `cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml` \
             or set BERTH_DEMO_COMPONENT (expected {COMPONENT})"
        )));
    };
    let bytes = std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
    if let Err(why) = validator.validate(&bytes) {
        return Ok(Demo::Skipped(format!("{} is not a valid Berth component: {why}", path.display())));
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let mut tx = pool.begin().await.context("failed to start a transaction")?;
    let tenant = berth_storage::tenants::insert(&mut tx, admin, &slug, "Demo").await?;
    let scope = TenantScope::from_verified_credentials(tenant.id, tenant.slug);
    let server_slug = Slug::parse("server", "classic")?;
    let new = NewServer {
        slug: &server_slug,
        name: "Classic MCP examples",
        description: "add, word_count, a greeting:// resource template and a code-review prompt",
        kind: ServerKind::Wasm,
        public: true,
    };
    let server = berth_storage::servers::insert(&mut tx, &scope, &new).await?;
    berth_storage::versions::put_component(&mut tx, &scope, &sha256, &bytes).await?;
    let spec = VersionSpec::Wasm(WasmSpec { sha256, size: bytes.len() as u64, egress: Vec::new() });
    berth_storage::versions::insert(&mut tx, &scope, server.id, &spec, true).await?;
    tx.commit().await.context("failed to publish the demo")?;
    Ok(Demo::Published)
}
