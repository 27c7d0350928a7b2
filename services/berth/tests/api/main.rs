#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! API tests: every test spawns the whole application on port 0 with its own database.
//! One binary for all of them keeps link time down.

mod api_keys;
mod audit;
mod bridging;
mod browser;
mod config;
mod containers;
mod health;
mod helpers;
mod killswitch;
mod mcp_auth;
mod mcp_client;
mod mcp_legacy;
mod mcp_modern;
mod members;
mod oauth;
mod pgproxy;
mod quotas;
mod remote;
mod servers;
mod storage;
mod tenants;
mod versions;
mod wasm;
