//! Fixtures shared by Berth's tests.
//!
//! [`database`] hands every test its own fresh, migrated database. All databases of a test run
//! live in one private PostgreSQL cluster:
//!
//! - `cargo xtask test` starts that cluster once for the whole run and exports its admin URL as
//!   `BERTH_TEST_PG_URL`;
//! - otherwise (a plain `cargo test`), each test binary starts its own cluster in a temporary
//!   directory, which a watchdog stops and deletes when the test process exits.
//!
//! Migrations run once per cluster into a template database; each test's database is a cheap
//! `CREATE DATABASE ... TEMPLATE` copy of it.
//!
//! [`fixture`] is the MCP conformance fixture server ([`FixtureBackend`]) behind Berth's backend
//! port, with a resolver that serves it for every server ([`FixtureResolver`]) and a fake client
//! for driving a backend without a session ([`ScriptedPeer`]).
#![allow(clippy::expect_used, clippy::panic)] // test fixtures fail loudly by design

pub mod docker;
pub mod fixture;
pub mod guests;

pub use fixture::{FixtureBackend, FixtureOptions, FixtureResolver, ScriptedPeer};

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use berth_storage::embedded::{Cluster, ClusterSettings};
use berth_storage::{PgConnectOptions, PgPool};

/// Environment variable carrying the admin URL of a cluster started by the test command.
pub const CLUSTER_URL_ENV: &str = "BERTH_TEST_PG_URL";

/// A fresh database for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Pool on the test's own database.
    pub pool: PgPool,
    /// The database's name.
    pub name: String,
    /// Connection options for the database (for tests that open their own connections).
    pub options: PgConnectOptions,
}

fn cluster_options() -> &'static PgConnectOptions {
    static OPTIONS: OnceLock<PgConnectOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        if let Ok(url) = std::env::var(CLUSTER_URL_ENV) {
            return url.parse().expect("BERTH_TEST_PG_URL is not a valid PostgreSQL URL");
        }
        let cluster = start_private_cluster().unwrap_or_else(|e| panic!("cannot start a test PostgreSQL cluster: {e}"));
        cluster.connect_options("postgres")
    })
}

/// Starts a throwaway cluster that is removed when this process exits.
pub fn start_private_cluster() -> Result<Cluster, berth_storage::Error> {
    let dir = tempfile::Builder::new()
        .prefix("berth-test-pg-")
        .tempdir()
        .map_err(|e| berth_storage::Error::Embedded(format!("cannot create a temp dir: {e}")))?;
    // The watchdog deletes the directory, not the TempDir guard (statics are never dropped).
    let root = dir.keep();
    let cluster = Cluster::start(&ClusterSettings { root, ephemeral: true })?;
    cluster.remove_when_process_exits(std::process::id())?;
    Ok(cluster)
}

fn template_name() -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for migration in berth_storage::MIGRATOR.iter() {
        migration.version.hash(&mut hasher);
        migration.checksum.hash(&mut hasher);
    }
    format!("berth_template_{:016x}", hasher.finish())
}

async fn ensure_template(admin: &PgPool) -> String {
    let name = template_name();
    let mut conn = admin.acquire().await.expect("cannot connect to the test cluster");
    // Serialise template creation across test processes sharing the cluster.
    berth_storage::testing::advisory_lock(&mut conn, 7_311_001).await.expect("advisory lock");
    if !berth_storage::testing::database_exists(&mut conn, &name).await.expect("pg_database") {
        berth_storage::testing::create_database(&mut conn, &name, None).await.expect("create template");
        let pool = berth_storage::connect_with(cluster_options().clone().database(&name), 2)
            .await
            .expect("connect to template");
        berth_storage::migrate(&pool).await.expect("migrate template");
        pool.close().await;
    }
    berth_storage::testing::advisory_unlock(&mut conn, 7_311_001).await.expect("advisory unlock");
    name
}

/// Creates a fresh, migrated database for one test.
pub async fn database() -> TestDatabase {
    let admin =
        berth_storage::connect_with(cluster_options().clone(), 1).await.expect("cannot connect to the test cluster");
    let template = ensure_template(&admin).await;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.acquire().await.expect("connect");
    berth_storage::testing::create_database(&mut conn, &name, Some(&template)).await.expect("create test database");
    drop(conn);
    admin.close().await;
    let options = cluster_options().clone().database(&name);
    let pool = berth_storage::connect_with(options.clone(), 8).await.expect("connect to test database");
    TestDatabase { pool, name, options }
}
