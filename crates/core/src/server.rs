//! Server kinds and the immutable specification of a server version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a server is hosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// A WebAssembly component run by Berth.
    Wasm,
    /// An OCI image speaking MCP over stdio or HTTP.
    Container,
    /// An existing MCP server reached over HTTP.
    Remote,
}

impl ServerKind {
    /// The kind's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Wasm => "wasm",
            ServerKind::Container => "container",
            ServerKind::Remote => "remote",
        }
    }

    /// Parses a wire name.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "wasm" => Ok(ServerKind::Wasm),
            "container" => Ok(ServerKind::Container),
            "remote" => Ok(ServerKind::Remote),
            other => {
                Err(Error::invalid("kind", format!("unknown kind {other:?} (expected wasm, container or remote)")))
            }
        }
    }
}

/// How Berth talks to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// MCP over the container's attached stdin/stdout.
    Stdio,
    /// MCP over Streamable HTTP on a port published on 127.0.0.1.
    Http,
}

impl Transport {
    /// The transport's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
        }
    }
}

/// Resource limits applied to every container of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerLimits {
    /// Memory cap in MiB.
    #[serde(default = "ContainerLimits::default_memory_mb")]
    pub memory_mb: u32,
    /// CPU share, in cores.
    #[serde(default = "ContainerLimits::default_cpus")]
    pub cpus: f64,
    /// Maximum number of processes.
    #[serde(default = "ContainerLimits::default_pids")]
    pub pids: u32,
}

impl ContainerLimits {
    fn default_memory_mb() -> u32 {
        256
    }
    fn default_cpus() -> f64 {
        1.0
    }
    fn default_pids() -> u32 {
        128
    }

    fn validate(&self) -> Result<()> {
        if !(16..=65_536).contains(&self.memory_mb) {
            return Err(Error::invalid("limits.memory_mb", "must be between 16 and 65536"));
        }
        if !(self.cpus.is_finite() && (0.01..=64.0).contains(&self.cpus)) {
            return Err(Error::invalid("limits.cpus", "must be between 0.01 and 64"));
        }
        if !(1..=32_768).contains(&self.pids) {
            return Err(Error::invalid("limits.pids", "must be between 1 and 32768"));
        }
        Ok(())
    }
}

impl Default for ContainerLimits {
    fn default() -> Self {
        Self { memory_mb: Self::default_memory_mb(), cpus: Self::default_cpus(), pids: Self::default_pids() }
    }
}

/// A container version as published through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Image reference, for example `ghcr.io/acme/tools:1.2`.
    pub image: String,
    /// How Berth talks to the server.
    pub transport: Transport,
    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments after the entrypoint.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Container port serving MCP (`http` transport only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// MCP endpoint path (`http` transport only; default `/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: ContainerLimits,
    /// Outbound network access. Without it the container has no network at all (not even the
    /// host's loopback); with it, Docker's default bridge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress: bool,
}

const MAX_LIST: usize = 256;
const MAX_ITEM: usize = 4096;

fn check_strings(field: &str, items: &[String]) -> Result<()> {
    if items.len() > MAX_LIST {
        return Err(Error::invalid(field, format!("at most {MAX_LIST} entries")));
    }
    for item in items {
        if item.len() > MAX_ITEM || item.contains('\0') {
            return Err(Error::invalid(field, format!("entries must be at most {MAX_ITEM} bytes without NUL")));
        }
    }
    Ok(())
}

impl ContainerSpec {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let image = self.image.as_str();
        if image.is_empty()
            || image.len() > 255
            || !image.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        {
            return Err(Error::invalid(
                "image",
                "must be a non-empty image reference of at most 255 characters ([A-Za-z0-9._-/:@])",
            ));
        }
        if let Some(command) = &self.command {
            if command.is_empty() {
                return Err(Error::invalid("command", "must not be empty when given"));
            }
            check_strings("command", command)?;
        }
        check_strings("args", &self.args)?;
        if self.env.len() > MAX_LIST {
            return Err(Error::invalid("env", format!("at most {MAX_LIST} variables")));
        }
        for (name, value) in &self.env {
            let valid_name = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(Error::invalid("env", format!("variable name {name:?} must match [A-Za-z_][A-Za-z0-9_]*")));
            }
            if value.len() > MAX_ITEM || value.contains('\0') {
                return Err(Error::invalid("env", format!("value of {name} is too long or has NUL")));
            }
        }
        match self.transport {
            Transport::Stdio => {
                if self.port.is_some() || self.path.is_some() {
                    return Err(Error::invalid("port", "port and path apply only to the http transport"));
                }
            }
            Transport::Http => {
                match self.port {
                    Some(p) if p > 0 => {}
                    _ => {
                        return Err(Error::invalid("port", "the http transport needs the container port (1-65535)"));
                    }
                }
                if let Some(path) = &self.path
                    && (!path.starts_with('/')
                        || path.len() > 1024
                        || path.contains("..")
                        || !path.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return Err(Error::invalid("path", "must start with '/', be visible ASCII and contain no '..'"));
                }
            }
        }
        self.limits.validate()
    }
}

/// A remote MCP server proxied by Berth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// The upstream MCP endpoint.
    pub url: String,
    /// Headers Berth adds to every upstream request (upstream credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Headers a tenant may not set on upstream requests: they belong to the transport.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

impl RemoteSpec {
    /// Checks the URL and headers.
    pub fn validate(&self) -> Result<()> {
        let url = url::Url::parse(&self.url).map_err(|e| Error::invalid("url", format!("not an absolute URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid("url", "must be an http or https URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid("url", "must not embed credentials; put them in headers"));
        }
        if self.headers.len() > 64 {
            return Err(Error::invalid("headers", "at most 64 headers"));
        }
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name.len() <= 128
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(Error::invalid("headers", format!("{name:?} is not a valid header name")));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(Error::invalid("headers", format!("{name} is set by Berth itself")));
            }
            if value.len() > 8192 || !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
                return Err(Error::invalid(
                    "headers",
                    format!("value of {name} must be visible ASCII, at most 8192 bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// A stored WebAssembly component, addressed by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmSpec {
    /// Lowercase hex SHA-256 of the component bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Hosts the guest may reach over `wasi:http` (empty: none).
    #[serde(default)]
    pub egress: Vec<String>,
}

/// Validates an egress allowlist: host names (`api.example.com`), wildcard subdomains
/// (`*.example.com`) or IP literals, lowercase, at most 64 entries.
pub fn parse_egress(raw: &str) -> Result<Vec<String>> {
    let mut hosts: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let host = item.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        let is_name = name.len() <= 253 && name.split('.').all(valid_label);
        if !(is_ip || is_name) || (is_ip && host.starts_with("*.")) {
            return Err(Error::invalid("egress", format!("{item:?} is not a host name, *.domain or IP address")));
        }
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.len() > 64 {
        return Err(Error::invalid("egress", "at most 64 hosts"));
    }
    Ok(hosts)
}

/// What one immutable server version runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum VersionSpec {
    /// A WebAssembly component.
    Wasm(WasmSpec),
    /// A container image.
    Container(ContainerSpec),
    /// A remote MCP endpoint.
    Remote(RemoteSpec),
}

impl VersionSpec {
    /// The server kind this spec belongs to.
    pub fn kind(&self) -> ServerKind {
        match self {
            VersionSpec::Wasm(_) => ServerKind::Wasm,
            VersionSpec::Container(_) => ServerKind::Container,
            VersionSpec::Remote(_) => ServerKind::Remote,
        }
    }
}

/// Checks that `bytes` start like a WebAssembly *component* (not a core module).
///
/// Full validation against the `berth:mcp` world happens in the WASM runtime.
pub fn check_component_header(bytes: &[u8]) -> Result<()> {
    match bytes.get(..8) {
        Some([0x00, b'a', b's', b'm', _, _, 0x01, 0x00]) => Ok(()),
        Some([0x00, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(Error::invalid(
            "body",
            "this is a core WebAssembly module; Berth hosts components (build for wasm32-wasip2)",
        )),
        _ => Err(Error::invalid("body", "not a WebAssembly component (missing the \\0asm header)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> Result<ContainerSpec> {
        let spec: ContainerSpec = serde_json::from_value(json).map_err(|e| Error::invalid("body", e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    #[test]
    fn stdio_container_gets_default_limits() {
        let spec = container(serde_json::json!({"image": "acme/tools:1", "transport": "stdio"})).unwrap();
        assert_eq!(spec.limits, ContainerLimits::default());
    }

    #[test]
    fn http_container_needs_a_port_and_stdio_refuses_one() {
        assert!(container(serde_json::json!({"image": "a", "transport": "http"})).is_err());
        assert!(container(serde_json::json!({"image": "a", "transport": "http", "port": 8000})).is_ok());
        assert!(container(serde_json::json!({"image": "a", "transport": "stdio", "port": 8000})).is_err());
    }

    #[test]
    fn container_rejects_bad_images_env_names_paths_and_limits() {
        for bad in [
            serde_json::json!({"image": "", "transport": "stdio"}),
            serde_json::json!({"image": "a b", "transport": "stdio"}),
            serde_json::json!({"image": "a", "transport": "stdio", "env": {"1X": "v"}}),
            serde_json::json!({"image": "a", "transport": "http", "port": 1, "path": "/../x"}),
            serde_json::json!({"image": "a", "transport": "stdio", "limits": {"memory_mb": 1}}),
            serde_json::json!({"image": "a", "transport": "stdio", "limits": {"cpus": 0}}),
            serde_json::json!({"image": "a", "transport": "stdio", "unknown": 1}),
        ] {
            assert!(container(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_rejects_non_http_urls_embedded_credentials_and_reserved_headers() {
        let ok = RemoteSpec { url: "https://mcp.example.com/mcp".into(), headers: BTreeMap::new() };
        assert!(ok.validate().is_ok());
        for url in ["ftp://x/mcp", "/relative", "https://user:pw@x/mcp"] {
            let spec = RemoteSpec { url: url.into(), headers: BTreeMap::new() };
            assert!(spec.validate().is_err(), "{url}");
        }
        let spec = RemoteSpec {
            url: "https://x/mcp".into(),
            headers: BTreeMap::from([("Host".to_owned(), "evil".to_owned())]),
        };
        assert!(spec.validate().is_err());
    }

    #[test]
    fn egress_lists_accept_hosts_wildcards_and_ips_and_reject_the_rest() {
        assert_eq!(
            parse_egress("API.example.com, *.github.com,127.0.0.1,, api.example.com").unwrap(),
            vec!["api.example.com", "*.github.com", "127.0.0.1"]
        );
        assert!(parse_egress("").unwrap().is_empty());
        for bad in ["http://x.com", "a/b", "*.x_y.com", "-x.com", "x..com", "*", "*.127.0.0.1"] {
            assert!(parse_egress(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn component_header_is_told_apart_from_core_modules() {
        assert!(check_component_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        let err = check_component_header(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(err.to_string().contains("core WebAssembly module"));
        assert!(check_component_header(b"hello world").is_err());
        assert!(check_component_header(b"").is_err());
    }
}
