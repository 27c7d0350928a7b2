//! Berth's WebAssembly runtime: MCP servers published as components of the `berth:mcp@0.1.0`
//! world (`crates/guest/wit/mcp.wit`), run by wasmtime in a sandbox per call.
//!
//! - [`WasmRuntime::validate`] checks an upload against the world and names what is missing.
//! - [`WasmRuntime::load`] compiles a component (or takes it from the on-disk compilation
//!   cache), type-checks it and pre-instantiates it (`InstancePre`).
//! - [`WasmRuntime::server`] pairs a loaded component with one server version's
//!   [`ServerSpec`] (configuration, secrets, egress allowlist) behind the
//!   [`Backend`](berth_core::backend::Backend) port.
//!
//! Every call gets a fresh store and instance from a pooling-allocator slot (made for it, or
//! made ahead of it after the server's previous call and used by no other), a memory cap, a
//! wall-clock deadline enforced through epoch interruption (the guest also yields to the
//! executor at every epoch tick), a bounded wasm stack, bounded stdout/stderr, a bounded
//! response, and outbound HTTP only to the allowlisted hosts. A misbehaving guest fails its own
//! call with a clear JSON-RPC error; the next call runs in a new instance.
//!
//! **Architecture Invariant:** this is the only crate that depends on wasmtime; all engine
//! configuration is in `engine.rs` and every store is made by `store::new_store`, which always
//! applies the limits and the deadline.

mod bindings;
mod call;
mod egress;
mod engine;
pub mod error;
mod runtime;
mod server;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use engine::engine_config;
pub use error::{Error, Result};
pub use runtime::{LoadedComponent, WasmRuntime};
pub use server::WasmServer;

/// Process-wide settings of the WebAssembly runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmSettings {
    /// Where compiled components are cached (keyed by the component's hash and the engine's
    /// version and settings). Must be writable by Berth only: its files are loaded as native
    /// code. `None` compiles every component on load.
    pub cache_dir: Option<PathBuf>,
    /// Linear memory one instance may use.
    pub max_memory_bytes: usize,
    /// Wall-clock time one call may take.
    pub call_timeout: Duration,
    /// Largest result a call may return (the JSON text of the result).
    pub max_output_bytes: usize,
    /// Instances that may exist at once (pooling-allocator slots); further calls wait for a
    /// slot, within their time limit.
    pub max_instances: u32,
    /// Instances made ahead of calls, at most one per server: after a server's call, when no
    /// other call of it is running, a fresh instance for its next call is made off the request
    /// path, so that call skips instantiation. At most half of `max_instances`; `0` makes none.
    pub ready_instances: u32,
    /// Networks that are not publicly routable (loopback, private, link-local, ...) which
    /// guests may still reach when a host on their allowlist resolves there. Empty by default:
    /// guests reach public addresses only.
    pub egress_private_networks: Vec<berth_core::net::IpNetwork>,
}

impl Default for WasmSettings {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_memory_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            max_output_bytes: 4 * 1024 * 1024,
            max_instances: 256,
            ready_instances: 32,
            egress_private_networks: Vec::new(),
        }
    }
}

/// What one server version gives its component: configuration, secrets and the hosts it may
/// reach. A guest reads only the spec of the server its call belongs to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServerSpec {
    /// Values for `config.get`.
    pub config: BTreeMap<String, String>,
    /// Values for `config.secret` (never logged).
    pub secrets: BTreeMap<String, String>,
    /// Hosts outbound `wasi:http` requests may reach: `api.example.com`, `127.0.0.1`, or
    /// `*.example.com` for its subdomains; at public addresses only, unless the runtime's
    /// [`WasmSettings::egress_private_networks`] include the address.
    pub egress: Vec<String>,
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpec")
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("egress", &self.egress)
            .finish()
    }
}

/// Time used by a call, or by many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// CPU time on the threads that ran the call (guest code and the host work it caused).
    pub cpu: Duration,
    /// Wall-clock time from the start of the call to its end.
    pub wall: Duration,
}

/// Counters of the instances made ahead of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadyStats {
    /// Instances made ahead and kept.
    pub made: u64,
    /// Calls that ran in one of them.
    pub used: u64,
    /// Instances ready now.
    pub held: usize,
}

/// Counters of the on-disk compilation cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components loaded from the cache instead of compiled.
    pub hits: usize,
    /// Components compiled and written to the cache.
    pub misses: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_cross_threads() {
        assert_send_sync::<WasmRuntime>();
        assert_send_sync::<WasmServer>();
        assert_send_sync::<LoadedComponent>();
    }

    #[test]
    fn defaults_match_the_documented_limits() {
        let settings = WasmSettings::default();
        assert_eq!(settings.max_memory_bytes, 64 << 20);
        assert_eq!(settings.call_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_output_bytes, 4 << 20);
        assert_eq!(settings.max_instances, 256);
        assert_eq!(settings.ready_instances, 32);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let spec = ServerSpec {
            secrets: BTreeMap::from([("token".to_owned(), "hunter2".to_owned())]),
            ..ServerSpec::default()
        };
        let printed = format!("{spec:?}");
        assert!(printed.contains("token"));
        assert!(!printed.contains("hunter2"));
    }
}
