//! WebAssembly guests for tests: builds the `examples/` workspace (a cargo workspace of its
//! own, for `wasm32-wasip2`) once per test process and hands out paths to its components.
//!
//! The examples have their own target directory (`examples/target`), so building them from a
//! test never waits on the outer cargo's lock.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TARGET: &str = "wasm32-wasip2";

/// The repository root (this crate lives in `crates/test-support`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support has a grandparent directory")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Adds the `wasm32-wasip2` target when rustup is there and lacks it.
fn ensure_target() {
    let Ok(installed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return; // no rustup: the build below says what is missing
    };
    if String::from_utf8_lossy(&installed.stdout).lines().any(|line| line.trim() == TARGET) {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", TARGET]).status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "`rustup target add {TARGET}` failed ({status:?}): the WebAssembly guests cannot be built"
    );
}

fn build() -> PathBuf {
    let root = root();
    ensure_target();
    let manifest = root.join("examples").join("Cargo.toml");
    let output = Command::new(cargo())
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        // The outer build's settings (target dir, flags) are not the guests'.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the WebAssembly guests: {e}"));
    assert!(
        output.status.success(),
        "building the WebAssembly guests failed (cargo build --release --target {TARGET} --manifest-path {}):\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    root.join("examples").join("target").join(TARGET).join("release")
}

/// The path of the guest component `name` (a crate of `examples/`, with `-` as `_`, e.g.
/// `berth_example_hostile`), building every guest first if this process has not yet.
///
/// # Panics
///
/// If the guests do not build or `name` is not one of them.
pub fn guest(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let path = DIR.get_or_init(build).join(format!("{name}.wasm"));
    assert!(path.is_file(), "no WebAssembly guest named {name} at {}", path.display());
    path
}
