//! The Docker Engine API, as the runtime uses it: hardened containers, attach, logs, and
//! reconciliation by label. The only module that names bollard types.

use std::collections::HashMap;

use berth_core::ContainerSpec;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::ContainerSettings;
use crate::error::{Error, Result};

/// Every container Berth creates carries this label.
pub(crate) const LABEL_MANAGED: &str = "io.berth.managed";
/// The process that owns the container: `<boot id>:<pid>:<start time>` (see [`owner_token`]).
pub(crate) const LABEL_OWNER: &str = "io.berth.owner";
/// The runtime instance inside that process (several can run in one process: tests).
pub(crate) const LABEL_RUNTIME: &str = "io.berth.runtime";
/// The tenant, server and version the container serves (for operators; never trusted).
pub(crate) const LABEL_TENANT: &str = "io.berth.tenant";
pub(crate) const LABEL_SERVER: &str = "io.berth.server";
pub(crate) const LABEL_VERSION: &str = "io.berth.version";

/// Who a container is for, written into its labels and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Labels {
    pub(crate) tenant: String,
    pub(crate) server: String,
    pub(crate) version: String,
    pub(crate) number: i32,
}

/// This process, as written into [`LABEL_OWNER`]: the kernel boot id, the pid and the
/// process start time (so a reused pid is not mistaken for the owner).
pub(crate) fn owner_token() -> String {
    let pid = std::process::id();
    format!("{}:{pid}:{}", boot_id(), start_time(pid).unwrap_or_default())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Field 22 of `/proc/<pid>/stat` (after the parenthesised command name).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19).map(str::to_owned)
}

/// Whether the owner named by a label is gone: same boot, and no process with that pid and start
/// time. Owners from another boot are gone too (the machine restarted); owners on another
/// machine (a different boot id with a live kernel elsewhere) cannot be told apart from a
/// reboot, so containers on a shared daemon are only reaped by their own host's processes.
pub(crate) fn owner_is_gone(token: &str, shared_daemon: bool) -> bool {
    let mut parts = token.splitn(3, ':');
    let (Some(boot), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else { return true };
    if boot != boot_id() {
        return !shared_daemon;
    }
    let Ok(pid) = pid.parse::<u32>() else { return true };
    start_time(pid).is_none_or(|now| now != start)
}

/// A connection to the Docker daemon.
#[derive(Clone)]
pub(crate) struct Docker {
    client: bollard::Docker,
    owner: String,
    instance: String,
    settings: ContainerSettings,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docker").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Docker {
    /// Connects to `DOCKER_HOST` (else the local socket) and agrees on an API version.
    pub(crate) async fn connect(settings: &ContainerSettings) -> Result<Self> {
        let client = match &settings.docker_host {
            Some(path) => bollard::Docker::connect_with_socket(path, 120, bollard::API_DEFAULT_VERSION),
            None => bollard::Docker::connect_with_local_defaults(),
        }
        .map_err(Error::docker)?;
        let client = client.negotiate_version().await.map_err(Error::docker)?;
        client.ping().await.map_err(|e| Error::Docker(format!("the daemon does not answer: {e}")))?;
        Ok(Self {
            client,
            owner: owner_token(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            settings: settings.clone(),
        })
    }

    /// Removes every Berth container whose owning process is gone (a crash or `kill -9` of a
    /// data plane); returns how many. Containers of live processes are left alone.
    pub(crate) async fn reconcile(&self) -> Result<usize> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=true")])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self.client.list_containers(Some(options)).await.map_err(Error::docker)?;
        let mut removed = 0;
        for container in containers {
            let (Some(id), Some(labels)) = (container.id, container.labels) else { continue };
            let owner = labels.get(LABEL_OWNER).map(String::as_str).unwrap_or_default();
            if owner != self.owner && owner_is_gone(owner, self.settings.shared_daemon) {
                self.remove(&id).await;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed containers left by a Berth process that is gone");
        }
        Ok(removed)
    }

    /// Creates a hardened container for `spec` (not started).
    pub(crate) async fn create(&self, spec: &ContainerSpec, labels: &Labels, stdio: bool) -> Result<String> {
        let suffix: String = uuid_suffix();
        let name = format!("berth-{}-{}-v{}-{suffix}", labels.tenant, labels.server, labels.number);
        let mut body = container_body(spec, labels, &self.owner, &self.settings, stdio);
        if let Some(labels) = body.labels.as_mut() {
            labels.insert(LABEL_RUNTIME.to_owned(), self.instance.clone());
        }
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.client.create_container(Some(options), body).await.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
                Error::Start(format!("image {} is not on this Docker host: {message}", spec.image))
            }
            other => Error::docker(other),
        })?;
        Ok(created.id)
    }

    /// Attaches to a created container's stdin, stdout and stderr (before it starts, so no
    /// output is missed).
    pub(crate) async fn attach(&self, id: &str) -> Result<AttachContainerResults> {
        let options =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        self.client.attach_container(id, Some(options)).await.map_err(Error::docker)
    }

    pub(crate) async fn start(&self, id: &str) -> Result<()> {
        self.client.start_container(id, None).await.map_err(|e| Error::Start(e.to_string()))
    }

    /// Force-removes a container; a container already gone is not an error.
    pub(crate) async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        if let Err(e) = self.client.remove_container(id, Some(options)).await
            && !matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
        {
            tracing::warn!(container = %short(id), error.message = %e, "cannot remove a container");
        }
    }

    /// The last `tail` lines of a container's stdout and stderr (from the log driver).
    pub(crate) async fn logs(&self, id: &str, tail: usize) -> String {
        let options =
            LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&tail.to_string()).follow(false).build();
        let mut stream = self.client.logs(id, Some(options));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                    out.push_str(&String::from_utf8_lossy(&message));
                    if out.len() > 64 * 1024 {
                        break;
                    }
                }
                Ok(LogOutput::StdIn { .. }) => {}
                Err(_) => break,
            }
        }
        out
    }

    /// The host pid of a running container's first process (for its network namespace).
    pub(crate) async fn pid(&self, id: &str) -> Result<u32> {
        let info = self.client.inspect_container(id, None).await.map_err(Error::docker)?;
        let state = info.state.ok_or_else(|| Error::Start("the container has no state".into()))?;
        match (state.running, state.pid) {
            (Some(true), Some(pid)) if pid > 0 => u32::try_from(pid).map_err(Error::docker),
            _ => {
                Err(Error::Start(format!("the container is not running (exit code {})", state.exit_code.unwrap_or(-1))))
            }
        }
    }

    /// The host port on 127.0.0.1 that Docker published the container's `key` (`<port>/tcp`) on.
    /// Anything bound elsewhere is refused: the runtime only ever asks for loopback.
    pub(crate) async fn published_port(&self, id: &str, key: &str) -> Result<u16> {
        let info = self.client.inspect_container(id, None).await.map_err(Error::docker)?;
        let bindings = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(key))
            .flatten()
            .unwrap_or_default();
        let mut found = None;
        for binding in bindings {
            match (binding.host_ip.as_deref(), binding.host_port.as_deref().map(str::parse::<u16>)) {
                (Some("127.0.0.1"), Some(Ok(port))) => found = Some(port),
                // Docker may add an IPv6 loopback twin; nothing else is acceptable.
                (Some("::1"), _) => {}
                (ip, _) => {
                    return Err(Error::Start(format!("port {key} is published on {ip:?}, not only on 127.0.0.1")));
                }
            }
        }
        found.ok_or_else(|| Error::Start(format!("Docker published no loopback port for {key}")))
    }

    /// Whether the container runs, and its exit code and OOM flag when it does not.
    pub(crate) async fn exit_state(&self, id: &str) -> Option<(i64, bool)> {
        let info = self.client.inspect_container(id, None).await.ok()?;
        let state = info.state?;
        if state.running == Some(true) {
            return None;
        }
        Some((state.exit_code.unwrap_or(-1), state.oom_killed.unwrap_or(false)))
    }

    /// Ids of the containers this runtime created and has not removed yet.
    pub(crate) async fn own_containers(&self) -> Result<Vec<String>> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_RUNTIME}={}", self.instance)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self.client.list_containers(Some(options)).await.map_err(Error::docker)?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn uuid_suffix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id.get(..8).unwrap_or(&id).to_owned()
}

/// `<port>/tcp` when the container's HTTP port is published on the host's loopback: an HTTP
/// container whose version grants egress.
pub(crate) fn published_port_key(spec: &ContainerSpec, stdio: bool) -> Option<String> {
    (!stdio && spec.egress).then_some(spec.port).flatten().map(|port| format!("{port}/tcp"))
}

/// The container configuration: the version's image, command and limits, hardened.
pub(crate) fn container_body(
    spec: &ContainerSpec,
    labels: &Labels,
    owner: &str,
    settings: &ContainerSettings,
    stdio: bool,
) -> ContainerCreateBody {
    let memory = i64::from(spec.limits.memory_mb) * 1024 * 1024;
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    let mut container_labels = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_TENANT.to_owned(), labels.tenant.clone()),
        (LABEL_SERVER.to_owned(), labels.server.clone()),
        (LABEL_VERSION.to_owned(), labels.version.clone()),
    ]);
    container_labels.retain(|_, v| !v.is_empty());
    let host = HostConfig {
        // No network at all unless the version grants egress (then Docker's default bridge).
        network_mode: Some(if spec.egress { "bridge".to_owned() } else { "none".to_owned() }),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_owned(),
            format!("rw,noexec,nosuid,nodev,size={}m", settings.tmpfs_mb),
        )])),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        privileged: Some(false),
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some((spec.limits.cpus * 1e9) as i64),
        pids_limit: Some(i64::from(spec.limits.pids)),
        init: Some(true),
        // What the log driver keeps on disk is bounded too (stdout floods included).
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), "1m".to_owned()),
                ("max-file".to_owned(), "1".to_owned()),
            ])),
        }),
        auto_remove: Some(false),
        // An HTTP container with egress sits on the bridge anyway: its port is published on the
        // host's loopback only (an ephemeral port), never on another interface. Without egress it
        // has no network to publish on and is reached through its own namespace (`netns`).
        port_bindings: published_port_key(spec, stdio).map(|key| {
            HashMap::from([(
                key,
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) }]),
            )])
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.command.clone(),
        cmd: (!spec.args.is_empty()).then(|| spec.args.clone()),
        env: Some(env),
        user: Some(settings.user.clone()),
        labels: Some(container_labels),
        attach_stdin: Some(stdio),
        attach_stdout: Some(stdio),
        attach_stderr: Some(stdio),
        open_stdin: Some(stdio),
        stdin_once: Some(false),
        tty: Some(false),
        network_disabled: Some(!spec.egress),
        exposed_ports: published_port_key(spec, stdio).map(|key| vec![key]),
        host_config: Some(host),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        serde_json::from_value(serde_json::json!({
            "image": "acme/tools:1", "transport": "stdio", "args": ["--stdio"], "env": {"B": "2", "A": "1"},
            "limits": {"memory_mb": 128, "cpus": 0.5, "pids": 32}
        }))
        .unwrap()
    }

    fn labels() -> Labels {
        Labels { tenant: "acme".into(), server: "tools".into(), version: "v-id".into(), number: 3 }
    }

    #[test]
    fn containers_are_hardened_by_default() {
        let body = container_body(&spec(), &labels(), "owner", &ContainerSettings::default(), true);
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(body.network_disabled, Some(true));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_owned()]));
        assert_eq!(host.memory, Some(128 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(32));
        assert_eq!(host.privileged, Some(false));
        assert!(host.tmpfs.unwrap()["/tmp"].contains("noexec"));
        assert_eq!(body.user.as_deref(), Some("65534:65534"));
        assert_eq!(body.env, Some(vec!["A=1".to_owned(), "B=2".to_owned()]));
        assert_eq!(body.cmd, Some(vec!["--stdio".to_owned()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_OWNER], "owner");
    }

    #[test]
    fn only_an_http_container_with_egress_publishes_its_port_on_loopback_only() {
        let mut http = spec();
        http.port = Some(8000);
        let hardened = container_body(&http, &labels(), "o", &ContainerSettings::default(), false);
        assert_eq!(hardened.host_config.unwrap().port_bindings, None, "no network, nothing published");
        http.egress = true;
        let body = container_body(&http, &labels(), "o", &ContainerSettings::default(), false);
        assert_eq!(body.exposed_ports, Some(vec!["8000/tcp".to_owned()]));
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let binding = bindings["8000/tcp"].as_ref().unwrap();
        assert_eq!(binding.len(), 1);
        assert_eq!(binding[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding[0].host_port.as_deref(), Some(""), "an ephemeral port");
        let stdio = container_body(&http, &labels(), "o", &ContainerSettings::default(), true);
        assert_eq!(stdio.host_config.unwrap().port_bindings, None, "stdio containers publish nothing");
    }

    #[test]
    fn egress_puts_the_container_on_the_default_bridge() {
        let mut spec = spec();
        spec.egress = true;
        let body = container_body(&spec, &labels(), "owner", &ContainerSettings::default(), false);
        assert_eq!(body.host_config.unwrap().network_mode.as_deref(), Some("bridge"));
        assert_eq!(body.open_stdin, Some(false));
    }

    #[test]
    fn a_live_owner_is_not_gone_and_a_dead_one_is() {
        let me = owner_token();
        assert!(!owner_is_gone(&me, false));
        let boot = boot_id();
        assert!(owner_is_gone(&format!("{boot}:999999999:1"), false));
        assert!(owner_is_gone("garbage", false));
        assert!(owner_is_gone("other-boot:1:1", false));
        assert!(!owner_is_gone("other-boot:1:1", true));
    }
}
