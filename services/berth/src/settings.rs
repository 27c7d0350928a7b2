//! Process settings, layered: built-in defaults, then a TOML config file, then `BERTH_*`
//! environment variables (and `DATABASE_URL`), then command-line flags.
//!
//! The table of every setting is in the README; tenant configuration is data in PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Everything the process reads at start.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address to listen on (`BERTH_LISTEN`).
    pub listen: SocketAddr,
    /// Base URL clients use (`BERTH_PUBLIC_URL`); defaults to `http://{listen}`.
    pub public_url: Option<url::Url>,
    /// Platform administrator token (`BERTH_ADMIN_TOKEN`); `berth up` generates one when unset.
    pub admin_token: Option<SecretString>,
    /// PostgreSQL URL (`DATABASE_URL`); `berth up` runs an embedded cluster when unset.
    pub database_url: Option<SecretString>,
    /// Pool size per process (`BERTH_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Local state: embedded cluster, generated admin token (`BERTH_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Largest WASM upload in bytes (`BERTH_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: usize,
    /// Largest JSON body in bytes (`BERTH_MAX_JSON_BYTES`).
    pub max_json_bytes: usize,
    /// Log filter, `tracing` syntax (`BERTH_LOG`).
    pub log: String,
    /// `json` or `pretty` (`BERTH_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// HTTP worker threads; default one per core (`BERTH_WORKERS`).
    pub workers: Option<usize>,
    /// Secret for session ids and sealed request state, shared by all data-plane nodes
    /// (`BERTH_SECRET_KEY`, at least 32 characters); `berth up` generates one when unset.
    pub secret_key: Option<SecretString>,
    /// The previous `BERTH_SECRET_KEY` while it is being rotated (`BERTH_SECRET_KEY_PREVIOUS`):
    /// what was sealed under it still opens, and processes that seal seal it again under the
    /// current one at start. Unset once every process runs with the new key.
    #[serde(default)]
    pub secret_key_previous: Option<SecretString>,
    /// This node's name inside session ids (`BERTH_NODE_ID`, `[a-z0-9-]{1,32}`); default random.
    pub node_id: Option<String>,
    /// Largest MCP request body in bytes (`BERTH_MCP_MAX_BODY_BYTES`).
    pub mcp_max_body_bytes: usize,
    /// Concurrent client sessions per tenant on one node (`BERTH_MAX_SESSIONS_PER_TENANT`).
    pub max_sessions_per_tenant: usize,
    /// Seconds before an idle legacy session ends (`BERTH_SESSION_IDLE_SECS`).
    pub session_idle_secs: u64,
    /// Memory cap of one WASM instance in MiB (`BERTH_WASM_MAX_MEMORY_MB`).
    pub wasm_max_memory_mb: usize,
    /// Time limit of one WASM call in milliseconds (`BERTH_WASM_CALL_TIMEOUT_MS`).
    pub wasm_call_timeout_ms: u64,
    /// WASM instances that may run at once on this node: the pooling allocator's slots, each
    /// reserving its linear memories' address space up front; further calls wait for a slot
    /// (`BERTH_WASM_MAX_INSTANCES`).
    pub wasm_max_instances: u32,
    /// WASM instances made ahead of calls, at most one per server: after a server's call, when
    /// no other call of it is running, a fresh instance for its next call is made off the
    /// request path, so that call skips instantiation (`BERTH_WASM_READY_INSTANCES`, default
    /// 32, at most half of `BERTH_WASM_MAX_INSTANCES` take effect; 0 makes none).
    pub wasm_ready_instances: u32,
    /// Networks that are not publicly routable which WASM guests may still reach when a host
    /// on their server version's egress allowlist resolves there
    /// (`BERTH_WASM_EGRESS_PRIVATE_NETWORKS`, comma-separated CIDR, such as `10.20.0.0/16`;
    /// default none: guests reach public addresses only).
    #[serde(default, deserialize_with = "networks")]
    pub wasm_egress_private_networks: Vec<berth_core::net::IpNetwork>,
    /// Reverse proxies in front of Berth (`BERTH_TRUSTED_PROXIES`, comma-separated CIDR, such as
    /// `127.0.0.1,10.0.0.0/8`; default none). A request that comes from one of them is taken to
    /// come from the address its `X-Forwarded-For` names, read from the right; from anywhere else
    /// the header is ignored. Used for the per-address limits and the logs' client address.
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Vec<berth_core::net::IpNetwork>,
    /// The container runtime (`[containers]` in the config file; the Docker socket also from
    /// `DOCKER_HOST`). A node whose Docker daemon does not answer at start serves no containers.
    #[serde(default)]
    pub containers: berth_runtime_container::ContainerSettings,
    /// Seconds a data-plane node keeps serving cached configuration it cannot confirm (the
    /// database or its change listener is unreachable) before it refuses calls with 503
    /// (`BERTH_FAIL_CLOSED_AFTER_SECS`; 0 refuses as soon as a refresh fails).
    #[serde(default = "default_fail_closed_after_secs")]
    pub fail_closed_after_secs: u64,
    /// Where audit events wait while the database is unreachable (`BERTH_AUDIT_SPOOL_DIR`;
    /// default `{data_dir}/audit-spool`). One directory per process.
    #[serde(default)]
    pub audit_spool_dir: Option<PathBuf>,
    /// Data-plane nodes sharing the request-rate and session quotas; each enforces its share
    /// (`BERTH_QUOTA_NODES`, default 1).
    #[serde(default = "default_quota_nodes")]
    pub quota_nodes: u32,
    /// FOR TESTS ONLY, never in production: lets the authorization servers fetch Client ID
    /// Metadata Documents over plain HTTP from loopback addresses, such as
    /// `http://127.0.0.1:PORT/client.json` (`BERTH_OAUTH_CIMD_ALLOW_LOOPBACK`, default false).
    /// Other non-public addresses stay refused.
    #[serde(default)]
    pub oauth_cimd_allow_loopback: bool,
}

/// A list of networks from a comma-separated string (an environment variable) or a TOML array.
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<berth_core::net::IpNetwork>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Networks {
        Text(String),
        List(Vec<String>),
    }
    let entries = match Networks::deserialize(deserializer)? {
        Networks::Text(text) => text.split(',').map(str::to_owned).collect(),
        Networks::List(list) => list,
    };
    entries
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| entry.parse().map_err(serde::de::Error::custom))
        .collect()
}

fn default_quota_nodes() -> u32 {
    1
}

fn default_fail_closed_after_secs() -> u64 {
    60
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads settings from every layer.
    ///
    /// The config file is `--config`, else `$BERTH_CONFIG`, else `./berth.toml` when present.
    pub fn load(overrides: &Overrides) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("database_max_connections", 16)?
            .set_default("data_dir", ".berth")?
            .set_default("max_upload_bytes", 32 * 1024 * 1024)?
            .set_default("max_json_bytes", 1024 * 1024)?
            .set_default("log", "info")?
            .set_default("log_format", "json")?
            .set_default("mcp_max_body_bytes", 4 * 1024 * 1024)?
            .set_default("max_sessions_per_tenant", 10_000)?
            .set_default("session_idle_secs", 30 * 60)?
            .set_default("wasm_max_memory_mb", 64)?
            .set_default("wasm_call_timeout_ms", 10_000)?
            .set_default("wasm_max_instances", 256)?
            .set_default("wasm_ready_instances", 32)?;
        let explicit = overrides.config_file.clone().or_else(|| std::env::var_os("BERTH_CONFIG").map(PathBuf::from));
        match &explicit {
            Some(path) => {
                builder = builder
                    .add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml).required(true));
            }
            None if Path::new("berth.toml").is_file() => {
                builder =
                    builder.add_source(config::File::from(Path::new("berth.toml")).format(config::FileFormat::Toml));
            }
            None => {}
        }
        builder = builder.add_source(config::Environment::with_prefix("BERTH").prefix_separator("_").try_parsing(true));
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            builder = builder.set_override("database_url", url)?;
        }
        if let Some(listen) = overrides.listen {
            builder = builder.set_override("listen", listen.to_string())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder = builder.set_override("data_dir", dir.to_string_lossy().into_owned())?;
        }
        let settings: Settings =
            builder.build().context("failed to read settings")?.try_deserialize().context("invalid settings")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.public_url {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
                "BERTH_PUBLIC_URL must be an http(s) URL with a host, got {url}"
            );
        }
        anyhow::ensure!(self.max_upload_bytes >= 1024, "BERTH_MAX_UPLOAD_BYTES must be at least 1024");
        anyhow::ensure!(self.max_json_bytes >= 1024, "BERTH_MAX_JSON_BYTES must be at least 1024");
        anyhow::ensure!(self.mcp_max_body_bytes >= 1024, "BERTH_MCP_MAX_BODY_BYTES must be at least 1024");
        anyhow::ensure!(self.session_idle_secs >= 1, "BERTH_SESSION_IDLE_SECS must be at least 1");
        anyhow::ensure!((1..=4096).contains(&self.wasm_max_memory_mb), "BERTH_WASM_MAX_MEMORY_MB must be 1-4096");
        anyhow::ensure!(self.wasm_call_timeout_ms >= 10, "BERTH_WASM_CALL_TIMEOUT_MS must be at least 10");
        anyhow::ensure!((1..=4096).contains(&self.wasm_max_instances), "BERTH_WASM_MAX_INSTANCES must be 1-4096");
        anyhow::ensure!(self.wasm_ready_instances <= 2048, "BERTH_WASM_READY_INSTANCES must be 0-2048");
        if let Some(key) = &self.secret_key {
            anyhow::ensure!(key.expose_secret().len() >= 32, "BERTH_SECRET_KEY must be at least 32 characters");
        }
        if let Some(key) = &self.secret_key_previous {
            anyhow::ensure!(
                key.expose_secret().len() >= 32,
                "BERTH_SECRET_KEY_PREVIOUS must be at least 32 characters"
            );
        }
        if let Some(node) = &self.node_id {
            anyhow::ensure!(
                !node.is_empty()
                    && node.len() <= 32
                    && node.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "BERTH_NODE_ID must match [a-z0-9-]{{1,32}}"
            );
        }
        Ok(())
    }

    /// The audit spool directory.
    pub fn audit_spool_dir(&self) -> PathBuf {
        self.audit_spool_dir.clone().unwrap_or_else(|| self.data_dir.join("audit-spool"))
    }

    /// The public base URL, derived from the bound address when unset.
    pub fn public_url(&self, bound: SocketAddr) -> anyhow::Result<url::Url> {
        if let Some(url) = &self.public_url {
            return Ok(url.clone());
        }
        let ip = if bound.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { bound.ip() };
        let addr = SocketAddr::new(ip, bound.port());
        url::Url::parse(&format!("http://{addr}")).context("cannot derive the public URL from the listen address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(&Overrides { config_file: Some(path), ..Overrides::default() }).unwrap()
    }

    #[test]
    fn the_test_only_cimd_loopback_relaxation_is_off_unless_configured() {
        if std::env::var_os("BERTH_OAUTH_CIMD_ALLOW_LOOPBACK").is_none() {
            assert!(!load_toml("").oauth_cimd_allow_loopback);
        }
        assert!(load_toml("oauth_cimd_allow_loopback = true\n").oauth_cimd_allow_loopback);
    }

    #[test]
    fn the_wasm_instance_pool_is_sized_from_settings_within_bounds() {
        if std::env::var_os("BERTH_WASM_MAX_INSTANCES").is_none() {
            assert_eq!(load_toml("").wasm_max_instances, 256);
        }
        assert_eq!(load_toml("wasm_max_instances = 4\n").wasm_max_instances, 4);
        for bad in ["0", "4097"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("berth.toml");
            std::fs::write(&path, format!("wasm_max_instances = {bad}\n")).unwrap();
            let error = Settings::load(&Overrides { config_file: Some(path), ..Overrides::default() }).unwrap_err();
            assert!(error.to_string().contains("BERTH_WASM_MAX_INSTANCES must be 1-4096"), "{error:#}");
        }
    }

    #[test]
    fn the_previous_secret_key_is_unset_unless_configured_and_as_long_as_the_key() {
        if std::env::var_os("BERTH_SECRET_KEY_PREVIOUS").is_none() {
            assert!(load_toml("").secret_key_previous.is_none());
        }
        let previous = "p".repeat(32);
        let loaded = load_toml(&format!("secret_key_previous = \"{previous}\"\n"));
        assert_eq!(loaded.secret_key_previous.map(|k| k.expose_secret().to_owned()), Some(previous));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "secret_key_previous = \"short\"\n").unwrap();
        let error = Settings::load(&Overrides { config_file: Some(path), ..Overrides::default() }).unwrap_err();
        assert!(error.to_string().contains("BERTH_SECRET_KEY_PREVIOUS must be at least 32 characters"), "{error:#}");
    }

    #[test]
    fn wasm_ready_instances_default_to_32_and_can_be_turned_off() {
        if std::env::var_os("BERTH_WASM_READY_INSTANCES").is_none() {
            assert_eq!(load_toml("").wasm_ready_instances, 32);
        }
        assert_eq!(load_toml("wasm_ready_instances = 0\n").wasm_ready_instances, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "wasm_ready_instances = 2049\n").unwrap();
        let error = Settings::load(&Overrides { config_file: Some(path), ..Overrides::default() }).unwrap_err();
        assert!(error.to_string().contains("BERTH_WASM_READY_INSTANCES must be 0-2048"), "{error:#}");
    }

    #[test]
    fn trusted_proxies_are_none_unless_configured() {
        if std::env::var_os("BERTH_TRUSTED_PROXIES").is_none() {
            assert!(load_toml("").trusted_proxies.is_empty());
        }
        let loaded = load_toml("trusted_proxies = \"127.0.0.1, 10.0.0.0/8\"\n");
        let shown: Vec<String> = loaded.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8"]);
    }

    #[test]
    fn wasm_egress_private_networks_are_none_unless_configured() {
        if std::env::var_os("BERTH_WASM_EGRESS_PRIVATE_NETWORKS").is_none() {
            assert!(load_toml("").wasm_egress_private_networks.is_empty());
        }
        let shown = |settings: Settings| {
            settings.wasm_egress_private_networks.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        // As an environment variable gives it: one comma-separated string.
        assert_eq!(
            shown(load_toml("wasm_egress_private_networks = \"10.20.0.0/16, 127.0.0.1,\"\n")),
            ["10.20.0.0/16", "127.0.0.1/32"]
        );
        assert_eq!(shown(load_toml("wasm_egress_private_networks = [\"fd00::/8\"]\n")), ["fd00::/8"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "wasm_egress_private_networks = \"10.0.0.0/8,internal.example\"\n").unwrap();
        let error = Settings::load(&Overrides { config_file: Some(path), ..Overrides::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("\"internal.example\" is not an IP network"), "{error:#}");
    }
}
