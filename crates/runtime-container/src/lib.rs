//! Berth's bridging runtimes: MCP servers that already exist as processes or URLs, behind the
//! [`Backend`](berth_core::backend::Backend) port.
//!
//! - **Containers** ([`ContainerRuntime`]): an OCI image run on the Docker Engine API (bollard),
//!   speaking MCP over its attached stdio or over Streamable HTTP. Hardened by default: no
//!   network unless the version grants egress, read-only root filesystem with a `/tmp` tmpfs,
//!   a non-root user, every capability dropped, `no-new-privileges`, and the version's memory,
//!   CPU and pids limits. A stdio container is bound to one client session, taken from a warm
//!   pool, started on the session's first call and removed when the session ends; HTTP
//!   containers are shared by sessions, `replicas` of them, reached on the container's own
//!   loopback through its network namespace (no published port, no bridge address).
//! - **Remote** ([`RemoteRuntime`]): an existing MCP server URL, with upstream headers (the
//!   credentials) held by Berth and injected into every upstream request.
//!
//! Both talk to the backend with rmcp's client (`bridge.rs`): one upstream MCP session per
//! client session, era bridging both ways, progress, logs and server→client requests relayed
//! through the call's [`Peer`](berth_core::backend::Peer).
//!
//! **Architecture Invariant:** the only crate that depends on bollard. Every container is made
//! by `docker::container_body`, which always applies the hardening and limits, and carries the
//! `io.berth.managed` and `io.berth.owner` labels by which a starting runtime removes what a
//! crashed one left behind.

mod bridge;
mod docker;
pub mod error;
mod netns;
mod pool;
mod remote;
mod runtime;
mod stdio;

use std::time::Duration;

pub use error::{Error, Result};
pub use remote::{RemoteRuntime, RemoteServer};
pub use runtime::{ContainerRuntime, ContainerServer, FailureSink, StartFailure, VersionKey};

/// Process-wide settings of the container runtime.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerSettings {
    /// Docker daemon socket path; `None` uses `DOCKER_HOST` or the local default.
    pub docker_host: Option<String>,
    /// Several hosts' Berth processes share this daemon: only containers of this host's dead
    /// processes are reaped at start (otherwise containers from another boot are reaped too).
    pub shared_daemon: bool,
    /// `user[:group]` every container runs as (never root).
    pub user: String,
    /// Size of the `/tmp` tmpfs in MiB.
    pub tmpfs_mb: u32,
    /// Started, handshaken stdio containers kept ready per version.
    pub warm_pool: usize,
    /// Replicas of each HTTP container version.
    pub http_replicas: usize,
    /// Largest MCP message a backend may send, in bytes.
    pub max_message_bytes: usize,
    /// How long a container may take from start to a completed MCP handshake, in seconds.
    pub start_timeout_secs: u64,
    /// How long one upstream call may take, in seconds.
    pub call_timeout_secs: u64,
    /// A version without sessions for this long has its pool drained, in seconds.
    pub idle_pool_secs: u64,
    /// Failed starts kept per version for the admin API.
    pub kept_failures: usize,
}

impl Default for ContainerSettings {
    fn default() -> Self {
        Self {
            docker_host: None,
            shared_daemon: false,
            user: "65534:65534".into(),
            tmpfs_mb: 64,
            warm_pool: 1,
            http_replicas: 1,
            max_message_bytes: 4 * 1024 * 1024,
            start_timeout_secs: 30,
            call_timeout_secs: 300,
            idle_pool_secs: 600,
            kept_failures: 8,
        }
    }
}

impl ContainerSettings {
    pub(crate) fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs.max(1))
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs.max(1))
    }
}
