#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! API tests: every test spawns the whole application on port 0 with its own database.
//! One binary for all of them keeps link time down.

mod api_keys;
mod config;
mod health;
mod helpers;
mod mcp_auth;
mod mcp_client;
mod mcp_legacy;
mod mcp_modern;
mod servers;
mod storage;
mod tenants;
mod versions;
mod wasm;
