//! The committed `.sqlx/` cache lets every build check queries offline (`SQLX_OFFLINE=true` in
//! `.cargo/config.toml`). This task regenerates it from a throwaway cluster with the current
//! migrations; `--check` fails when the committed cache differs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

use crate::{cargo, root, run};

fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                files.insert(name, std::fs::read(entry.path())?);
            }
        }
    }
    Ok(files)
}

pub(crate) fn prepare(check: bool) -> anyhow::Result<()> {
    let cluster = berth_test_support::start_private_cluster().context("cannot start a PostgreSQL cluster")?;
    let database_url = cluster.url("postgres");
    let migrated = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "--quiet", "-p", "berth", "--", "migrate"])
        .current_dir(root())
        .env("DATABASE_URL", &database_url)
        .env("BERTH_LOG", "warn")
        .status()
        .context("cannot run berth migrate")?;
    if !migrated.success() {
        bail!("berth migrate failed");
    }
    let out = tempfile::tempdir()?;
    // Only berth-storage holds queries: rebuild it with the macros online.
    run("cargo clean -p berth-storage", cargo().args(["clean", "--quiet", "-p", "berth-storage"]))?;
    run(
        "cargo check -p berth-storage (queries online)",
        cargo()
            .args(["check", "--quiet", "-p", "berth-storage", "--all-targets"])
            .env("SQLX_OFFLINE", "false")
            .env("DATABASE_URL", &database_url)
            .env("SQLX_OFFLINE_DIR", out.path()),
    )?;
    let _ = cluster.stop();
    let fresh = read_dir(out.path())?;
    let committed_dir = root().join(".sqlx");
    let committed = read_dir(&committed_dir)?;
    if check {
        if fresh != committed {
            let stale: Vec<&String> = committed.keys().filter(|k| !fresh.contains_key(*k)).collect();
            let missing: Vec<&String> = fresh.keys().filter(|k| !committed.contains_key(*k)).collect();
            bail!(
                ".sqlx/ is stale (run `cargo xtask sqlx-prepare` and commit it): {} missing, {} stale, {} changed",
                missing.len(),
                stale.len(),
                fresh.iter().filter(|(k, v)| committed.get(*k).is_some_and(|c| c != *v)).count()
            );
        }
        println!("<== .sqlx/ is up to date ({} queries)", fresh.len());
        return Ok(());
    }
    if committed_dir.is_dir() {
        std::fs::remove_dir_all(&committed_dir)?;
    }
    std::fs::create_dir_all(&committed_dir)?;
    for (name, contents) in &fresh {
        std::fs::write(committed_dir.join(name), contents)?;
    }
    println!("<== wrote {} queries to .sqlx/", fresh.len());
    Ok(())
}
