//! Storage errors. Callers see `NotFound` and `Conflict`, never raw sqlx error kinds.

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist in this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was violated.
    #[error("{0}")]
    Conflict(String),
    /// Migrations failed.
    #[error("failed to apply migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The embedded cluster could not be prepared or started.
    #[error("{0}")]
    Embedded(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl Error {
    /// Maps a unique violation to `Conflict(message)`, passing other errors through.
    pub(crate) fn on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict(message()),
            _ => Error::Database(e),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
