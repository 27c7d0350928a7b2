//! Docker for tests: makes sure a daemon answers (installing and starting one through
//! `tests/images/dockerd.sh` when the machine has none) and builds the test images with
//! `tests/images/build.sh`, once per image per test process.
//!
//! Tests that need Docker are `#[ignore = "needs docker: run cargo xtask test"]`; `cargo xtask
//! test` runs them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support has a grandparent")
        .to_path_buf()
}

fn run(script: &str, args: &[&str]) -> Result<(), String> {
    let path = root().join("tests").join("images").join(script);
    let output = Command::new("bash")
        .arg(&path)
        .args(args)
        // The outer build's settings are not the images'.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed:\n{}{}",
            path.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Makes sure a Docker daemon answers.
///
/// # Panics
///
/// When no daemon answers and none can be installed and started; the message has the cause.
pub fn daemon() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = READY.get_or_init(|| run("dockerd.sh", &[])) {
        panic!("Docker is needed for this test and could not be started: {e}");
    }
}

/// The tag of test image `name` (`stdio-rust`, `everything` or `fastmcp`), built if needed.
///
/// # Panics
///
/// When Docker cannot be started or the image does not build.
pub fn image(name: &str) -> String {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    daemon();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let outcome = built.entry(name.to_owned()).or_insert_with(|| run("build.sh", &[name]));
    if let Err(e) = outcome {
        panic!("the test image {name} did not build: {e}");
    }
    format!("berth-test/{name}:dev")
}

/// `docker` CLI output (tests that inspect containers the way an operator would).
///
/// # Panics
///
/// When the CLI cannot run or fails.
pub fn cli(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("cannot run the docker CLI");
    assert!(output.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
