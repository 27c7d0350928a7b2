//! Errors of the WebAssembly runtime: bad uploads, compilation and engine failures.
//!
//! Failures of a single call (time limit, memory limit, crash) are not [`Error`]s: a
//! [`Backend`](berth_core::backend::Backend) reports them as JSON-RPC errors to the client.

/// Why a component could not be validated, compiled or loaded, or the runtime could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The upload is not a Berth server component; the message says what is missing or wrong
    /// and is safe to show to the tenant.
    #[error("{0}")]
    Invalid(String),
    /// A component that passed validation could not be compiled (or its compiled form could
    /// not be prepared for instantiation).
    #[error("cannot compile the component: {0}")]
    Compile(String),
    /// A filesystem operation failed (the compilation cache directory).
    #[error("I/O error: {0}")]
    Io(String),
    /// The WebAssembly engine could not be configured.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The component's `info()` failed when it was loaded.
    #[error("the server failed to start: {0}")]
    Start(String),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
