//! The `berth` process: settings, telemetry, the embedded database and the HTTP server that
//! carries the control plane, the data plane, or both (`berth up`).
//!
//! `main.rs` parses the command line and calls into [`startup`].

pub mod audit_verify;
pub mod demo;
pub mod ops;
pub mod settings;
pub mod startup;
pub mod telemetry;

/// The allocator the `berth` binary runs with (`#[global_allocator]` in `main.rs`), and so the
/// benchmarks, which serve Berth in their own process: mimalloc. glibc's `malloc` and `free`
/// took about 16 % of the data plane's CPU per call (B1, WASM echo, 32 sessions).
pub use mimalloc::MiMalloc as Allocator;
