#![allow(unreachable_pub)]
//! API tests: every test spawns the whole application on port 0 with its own database.
//! One binary for all of them keeps link time down.

mod api_keys;
mod health;
mod helpers;
mod servers;
mod storage;
mod tenants;
mod versions;
