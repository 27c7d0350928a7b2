//! PostgreSQL storage for Berth.
//!
//! This is the only crate that depends on sqlx.
//! Queries are free functions that take a connection or transaction, so callers own commits;
//! every function on tenant-owned data takes a [`TenantScope`](berth_core::TenantScope) first
//! and filters on its tenant id.
//! [`embedded`] runs a private PostgreSQL cluster for `berth up` and for tests.

pub mod api_keys;
pub mod audit;
pub mod container_failures;
pub mod embedded;
pub mod error;
pub mod members;
pub mod notify;
pub mod oauth;
pub mod quotas;
pub mod routing;
pub mod server_config;
pub mod servers;
pub mod tenants;
pub mod usage;
pub mod versions;

pub use error::{Error, Result};
pub use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
pub use sqlx::{PgConnection, Postgres, Transaction};

/// What a pass over stored secrets did (see `server_config::reseal_secrets`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Values stored sealed under the current key in place of what was there.
    pub sealed: u64,
    /// Values that opened under no key given, left as they were.
    pub unreadable: u64,
}

impl Resealed {
    /// The value to store for one verdict of a pass, if any; counts the unreadable ones.
    fn replacement<T>(&mut self, verdict: berth_core::sealed::Reseal<T>) -> Option<T> {
        match verdict {
            berth_core::sealed::Reseal::Replace(sealed) => Some(sealed),
            berth_core::sealed::Reseal::Unreadable => {
                self.unreadable += 1;
                None
            }
            berth_core::sealed::Reseal::Current => None,
        }
    }
}

impl std::ops::Add for Resealed {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self { sealed: self.sealed + other.sealed, unreadable: self.unreadable + other.unreadable }
    }
}

/// Migrations embedded from the workspace's `migrations/` directory.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.map_err(Error::Migrate)
}

/// Opens a connection pool with sane timeouts.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool> {
    let options: PgConnectOptions = url.parse().map_err(Error::Database)?;
    connect_with(options, max_connections).await
}

/// Opens a connection pool from parsed options.
pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(Error::Database)
}

/// Checks the database answers (used by `/readyz`).
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query_scalar!("SELECT 1 AS \"one!\"").fetch_one(pool).await.map(|_| ()).map_err(Error::Database)
}

/// Lists the tables of the public schema that lack a `tenant_id` column.
///
/// Used by a storage test that fails when a tenant-owned table forgets its tenant id.
pub async fn tables_without_tenant_id(pool: &PgPool) -> Result<Vec<String>> {
    let rows = sqlx::query_scalar!(
        r#"SELECT t.table_name AS "name!"
           FROM information_schema.tables t
           WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
             AND NOT EXISTS (
                 SELECT 1 FROM information_schema.columns c
                 WHERE c.table_schema = 'public' AND c.table_name = t.table_name
                   AND c.column_name = 'tenant_id')
           ORDER BY 1"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// A connection checked out of a [`PgPool`].
pub type PoolConnection = sqlx::pool::PoolConnection<Postgres>;

/// How many embedded migrations the database has not applied yet.
///
/// `berth control-plane` and `berth data-plane` refuse to start on a stale schema; `berth migrate`
/// (or `berth up`) applies them.
pub async fn pending_migrations(pool: &PgPool) -> Result<usize> {
    // `_sqlx_migrations` belongs to sqlx's migrator, not to our schema, so it is read with a
    // runtime-checked query.
    let applied: Vec<i64> = match sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
    {
        Ok(v) => v,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
}

/// Creates database `name` unless it exists (used for the embedded cluster's `berth` database).
pub async fn create_database_if_missing(admin: &PgPool, name: &str) -> Result<()> {
    let mut conn = admin.acquire().await?;
    if !testing::database_exists(&mut conn, name).await? {
        testing::create_database(&mut conn, name, None).await?;
    }
    Ok(())
}

pub mod testing {
    //! Database administration used by the test harness and by `cargo xtask` only.
    //! These statements take no bind parameters, so names are checked here.

    use sqlx::PgConnection;

    use crate::error::{Error, Result};

    fn checked(name: &str) -> Result<&str> {
        if !name.is_empty() && name.len() < 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            Ok(name)
        } else {
            Err(Error::Embedded(format!("invalid database name {name:?}")))
        }
    }

    /// Takes a session-level advisory lock.
    pub async fn advisory_lock(conn: &mut PgConnection, key: i64) -> Result<()> {
        sqlx::query_scalar!("SELECT pg_advisory_lock($1)", key).fetch_one(conn).await?;
        Ok(())
    }

    /// Releases a session-level advisory lock.
    pub async fn advisory_unlock(conn: &mut PgConnection, key: i64) -> Result<()> {
        sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", key).fetch_one(conn).await?;
        Ok(())
    }

    /// Whether database `name` exists.
    pub async fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
        Ok(sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#, name)
            .fetch_one(conn)
            .await?)
    }

    /// Creates database `name`, optionally as a copy of `template`.
    pub async fn create_database(conn: &mut PgConnection, name: &str, template: Option<&str>) -> Result<()> {
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{}\" TEMPLATE \"{}\"", checked(name)?, checked(t)?),
            None => format!("CREATE DATABASE \"{}\"", checked(name)?),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
        Ok(())
    }

    /// Runs an arbitrary statement (tests that tamper with rows on purpose).
    pub async fn execute(conn: &mut PgConnection, sql: &str) -> Result<u64> {
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(conn).await?;
        Ok(done.rows_affected())
    }
}
