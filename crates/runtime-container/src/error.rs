//! Errors of the bridging runtimes: the Docker daemon, container starts and upstream connections.
//!
//! Failures of one call (the backend died mid-call, an oversized message) are not [`Error`]s:
//! the [`Backend`](berth_core::backend::Backend) reports them to the client as JSON-RPC errors.

/// Why a container or upstream could not be reached or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Docker daemon is unreachable or refused a request.
    #[error("docker: {0}")]
    Docker(String),
    /// A container did not start or did not complete the MCP handshake; the message names why
    /// and the container's last output is kept for the admin API.
    #[error("the container failed to start: {0}")]
    Start(String),
    /// An upstream MCP server (remote, or a container over HTTP) could not be reached or
    /// refused the handshake.
    #[error("cannot connect to the MCP server: {0}")]
    Connect(String),
    /// A version's specification cannot be run as given.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn docker(e: impl std::fmt::Display) -> Self {
        Error::Docker(e.to_string())
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
