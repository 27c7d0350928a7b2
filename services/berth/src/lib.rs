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
