//! A private PostgreSQL cluster run with the system's `initdb` and `pg_ctl`.
//!
//! `berth up` keeps one under `.berth/postgres/` and reuses it across runs; the test harness makes
//! a throwaway one per test run. The cluster listens on 127.0.0.1 only, on a free port chosen at
//! start, with password (SCRAM) authentication and no Unix socket.
//!
//! PostgreSQL refuses to run as root. When Berth runs as root (containers, CI), the cluster's
//! files are handed to the `postgres` system user and the server runs as that user.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::RngExt;
use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

/// The database user the cluster is created with.
pub const SUPERUSER: &str = "berth";

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Directory holding `pgdata/`, `postgres.log` and `password`.
    pub root: PathBuf,
    /// Trade durability for speed (tests only): no fsync, no full-page writes.
    pub ephemeral: bool,
}

/// A running cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    root: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(u32, u32)>,
}

const INSTALL_HINT: &str = "PostgreSQL server programs (initdb, pg_ctl) were not found. \
Install them (Debian/Ubuntu: `sudo apt-get install postgresql`; Fedora: `sudo dnf install postgresql-server`; \
macOS: `brew install postgresql@16`) or set DATABASE_URL to use an existing database.";

fn embedded(msg: impl Into<String>) -> Error {
    Error::Embedded(msg.into())
}

/// Finds the directory holding `initdb` and `pg_ctl`: `$PATH` first, then the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off `$PATH`).
pub fn find_bin_dir() -> Result<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or_else(|| embedded(INSTALL_HINT))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| embedded(format!("no free loopback port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| embedded(format!("no free loopback port: {e}")))
}

fn run_as_user() -> Result<Option<(u32, u32)>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        _ => Err(embedded(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as; \
             run Berth as a regular user or install the postgresql package",
        )),
    }
}

fn chown_tree(path: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let Some((uid, gid)) = owner else { return Ok(()) };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| embedded(format!("cannot hand {} to the postgres user: {e}", path.display())))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| embedded(e.to_string()))?.flatten() {
            chown_tree(&entry.path(), owner)?;
        }
    }
    Ok(())
}

/// The `postgres` user must be able to walk down to the cluster directory.
fn check_reachable_by_others(root: &Path) -> Result<()> {
    for dir in root.ancestors().skip(1) {
        let mode = fs::metadata(dir).map(|m| m.permissions().mode()).unwrap_or(0o755);
        if mode & 0o001 == 0 {
            return Err(embedded(format!(
                "running as root, the embedded PostgreSQL runs as the `postgres` user, which cannot enter {} \
                 (mode {:o}); set BERTH_DATA_DIR to a directory other users can traverse (for example \
                 /var/lib/berth), run Berth as a regular user, or set DATABASE_URL",
                dir.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

/// Stops a cluster left running under `root` (for example by a crashed process), if any.
pub fn stop_existing(root: &Path) -> Result<()> {
    let pgdata = root.join("pgdata");
    if !pgdata.join("postmaster.pid").is_file() {
        return Ok(());
    }
    let mut cmd = Command::new(find_bin_dir()?.join("pg_ctl"));
    cmd.arg("-D").arg(&pgdata).args(["-m", "immediate", "-w", "stop"]);
    run(cmd, run_as_user()?, "pg_ctl stop").map(|_| ())
}

impl Cluster {
    /// Creates the cluster when `settings.root` has none, then starts it unless it is already
    /// running (in which case it is reused on its current port).
    pub fn start(settings: &ClusterSettings) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_user()?;
        let root = settings.root.clone();
        fs::create_dir_all(&root).map_err(|e| embedded(format!("cannot create {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| embedded(format!("cannot resolve {}: {e}", root.display())))?;
        if run_as.is_some() {
            check_reachable_by_others(&root)?;
        }
        let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o700));
        let password_file = root.join("password");
        let pgdata = root.join("pgdata");
        if !pgdata.join("PG_VERSION").is_file() {
            let password: String =
                rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect();
            fs::write(&password_file, &password).map_err(|e| embedded(format!("cannot write password: {e}")))?;
            fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600))
                .map_err(|e| embedded(e.to_string()))?;
            chown_tree(&root, run_as)?;
            tracing::info!(dir = %pgdata.display(), "creating embedded PostgreSQL cluster");
            let mut cmd = Command::new(bin_dir.join("initdb"));
            cmd.arg("-D")
                .arg(&pgdata)
                .args(["-U", SUPERUSER, "-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-instructions"])
                .arg(format!("--pwfile={}", password_file.display()));
            run(cmd, run_as, "initdb")?;
        }
        let password = fs::read_to_string(&password_file)
            .map_err(|e| embedded(format!("cannot read {}: {e}", password_file.display())))?
            .trim()
            .to_owned();
        let mut cluster = Cluster { root, bin_dir, port: 0, password, run_as };
        if let Some(port) = cluster.running_port() {
            tracing::info!(port, "reusing running embedded PostgreSQL");
            cluster.port = port;
            return Ok(cluster);
        }
        let mut last_error = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            let mut options = format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300",
                cluster.port
            );
            if settings.ephemeral {
                options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let mut cmd = Command::new(cluster.bin_dir.join("pg_ctl"));
            cmd.arg("-D")
                .arg(cluster.pgdata())
                .arg("-l")
                .arg(cluster.root.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]);
            match run(cmd, run_as, "pg_ctl start") {
                Ok(_) => {
                    tracing::info!(port = cluster.port, "embedded PostgreSQL started");
                    return Ok(cluster);
                }
                Err(e) => last_error = Some(e),
            }
        }
        let log = fs::read_to_string(cluster.root.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        Err(embedded(format!(
            "{}; last lines of postgres.log:\n{}",
            last_error.map(|e| e.to_string()).unwrap_or_default(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )))
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    /// The port of a postmaster already running on this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let pid_file = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let mut status = Command::new(self.bin_dir.join("pg_ctl"));
        status.arg("-D").arg(self.pgdata()).arg("status");
        run(status, self.run_as, "pg_ctl status").ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection options for `database`.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(&self.password)
            .database(database)
    }

    /// A connection URL for `database` (it holds the password: do not log it).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}", self.password, self.port)
    }

    /// Stops the server (fast shutdown: open sessions are disconnected).
    pub fn stop(&self) -> Result<()> {
        let mut cmd = Command::new(self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(self.pgdata()).args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(cmd, self.run_as, "pg_ctl stop").map(|_| ())
    }

    /// Starts a background watchdog that stops the cluster and deletes `root` once the process
    /// `pid` exits. Test harnesses use it so that no cluster outlives its test run.
    pub fn remove_when_process_exits(&self, pid: u32) -> Result<()> {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \"$0\" -D \"$1\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$2\""
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(self.pgdata())
            .arg(&self.root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().map(|_| ()).map_err(|e| embedded(format!("cannot start cluster watchdog: {e}")))
    }
}

fn run(mut cmd: Command, run_as: Option<(u32, u32)>, what: &str) -> Result<Output> {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    // Never let the child inherit a locale that initdb may reject.
    cmd.env("LC_ALL", "C").env_remove("PGDATA").stdin(std::process::Stdio::null());
    let output = cmd.output().map_err(|e| embedded(format!("cannot run {what}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(embedded(format!("{what} failed ({}): {}", output.status, stderr.trim())));
    }
    Ok(output)
}
