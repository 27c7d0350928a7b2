//! Errors of the audit crate.

pub use crate::chain::Broken;
pub use crate::sink::SinkError;
pub use crate::spool::SpoolError;

/// Anything the audit crate reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A chain does not verify.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// An export line is not an audit event.
    #[error("line {line}: not an audit event: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What serde said.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
