//! Rules that keep the crate graph and the docs honest:
//!
//! - only `berth-storage` depends on sqlx, only `berth-runtime-wasm` on wasmtime, only
//!   `berth-runtime-container` on bollard, only `services/*` on actix-web;
//! - every `.rs` file under `crates/`, `services/` and `xtask/` opens with `//!` docs
//!   (test files under `tests/` may instead open with an attribute or `use`).

use std::path::Path;

use anyhow::{Context, bail};

/// (dependency, packages allowed to depend on it directly).
const OWNERS: &[(&str, &[&str])] = &[
    ("sqlx", &["berth-storage"]),
    ("wasmtime", &["berth-runtime-wasm"]),
    ("bollard", &["berth-runtime-container"]),
    // The bench crate serves a raw actix-web endpoint as a baseline.
    ("actix-web", &["berth-control-plane", "berth-data-plane", "berth", "berth-bench"]),
];

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    println!("==> tidy");
    let output = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("bad cargo metadata output")?;
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            for (owned, owners) in OWNERS {
                if dep_name == *owned && !is_dev && !owners.contains(&name) {
                    problems.push(format!("{name} depends on {owned}; only {} may", owners.join(", ")));
                }
            }
        }
    }
    for dir in ["crates", "services", "xtask"] {
        check_docs(&root.join(dir), &mut problems)?;
    }
    if !problems.is_empty() {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    println!("<== tidy ok");
    Ok(())
}

fn check_docs(dir: &Path, problems: &mut Vec<String>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                check_docs(&path, problems)?;
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let in_tests = path.components().any(|c| c.as_os_str() == "tests");
        let text = std::fs::read_to_string(&path)?;
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        let documented = first.starts_with("//!");
        if !documented && !in_tests {
            problems.push(format!("{} does not open with //! module docs", path.display()));
        }
    }
    Ok(())
}
