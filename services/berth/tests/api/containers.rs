//! Container servers end to end: published through the admin API, run as hardened Docker
//! containers, one stdio container per client session. Ignored by a plain `cargo test` (they
//! need Docker); `cargo xtask test` runs them, starting dockerd when the machine has none.

use std::time::Duration;

use berth_runtime_container::ContainerSettings;
use serde_json::json;

use crate::bridging::{container_server, fastmcp_spec, spawn_bridging_app, spawn_bridging_app_with, stdio_spec};
use crate::helpers::As;
use crate::mcp_client::McpApp;

async fn wait_for_containers(containers: &berth_runtime_container::ContainerRuntime, n: usize) {
    for _ in 0..100 {
        if containers.containers().await.unwrap().len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} containers, have {:?}", containers.containers().await.unwrap());
}

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_stdio_container_answers_both_eras_on_one_url_with_a_container_per_session() {
    let t = spawn_bridging_app().await;
    t.app.create_tenant("acme").await.assert_status(201);
    container_server(&t.app, "acme", "tools", &stdio_spec("stdio-rust")).await;
    let key = t.app.key_with("acme", &["mcp"]).await;
    let containers = t.containers.clone();
    let mcp = McpApp { app: t.app, acme: key.clone(), globex: key.clone() };
    let url = mcp.url("acme", "tools");

    let modern = mcp
        .modern(
            &url,
            Some(&key),
            json!(1),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
            json!({}),
        )
        .await;
    assert_eq!(modern.status, 200, "{}", modern.text);
    assert_eq!(modern.result()["content"][0]["text"], "5");
    assert_eq!(modern.result()["resultType"], "complete");

    let session = mcp.initialize(&url, Some(&key), "2025-11-25", json!({})).await;
    let echo = mcp
        .legacy(&url, Some(&key), &session, 2, "tools/call", json!({"name": "echo", "arguments": {"message": "hi"}}))
        .await;
    assert_eq!(echo.result()["structuredContent"]["message"], "hi", "{}", echo.text);
    let read = mcp.legacy(&url, Some(&key), &session, 3, "resources/read", json!({"uri": "mem://greeting/Ada"})).await;
    assert_eq!(read.result()["contents"][0]["text"], "greetings, Ada", "{}", read.text);
    let prompt = mcp
        .legacy(&url, Some(&key), &session, 4, "prompts/get", json!({"name": "greet", "arguments": {"name": "Bo"}}))
        .await;
    assert!(prompt.text.contains("Say hello to Bo"), "{}", prompt.text);

    // The modern client's session and the legacy session each hold a container; one waits warm.
    wait_for_containers(&containers, 3).await;
    let deleted = mcp
        .app
        .client
        .delete(&url)
        .bearer_auth(&key)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    wait_for_containers(&containers, 2).await;
    containers.shutdown().await;
}

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn container_servers_get_their_own_config_and_secrets_as_environment_variables() {
    let t = spawn_bridging_app_with(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    let (acme, globex) = t.app.two_tenants().await;
    let mut spec = stdio_spec("stdio-rust");
    spec["env"] = json!({"GREETING": "from-the-version", "KEEP": "kept"});
    for tenant in ["acme", "globex"] {
        container_server(&t.app, tenant, "tools", &spec).await;
        let body = json!({"config": {"GREETING": format!("{tenant}-config")}, "secrets": {"TOKEN": format!("{tenant}-secret")}});
        let path = format!("/api/v1/tenants/{tenant}/servers/tools/config");
        t.app.send(t.app.request(As::Admin, reqwest::Method::PUT, &path).json(&body)).await.assert_status(200);
    }
    assert_eq!(t.app.execute("SELECT 1 FROM server_config WHERE value LIKE 'berth:sealed:v1:%'").await, 2);
    let containers = t.containers.clone();
    let keys = [t.app.key_with("acme", &["mcp"]).await, t.app.key_with("globex", &["mcp"]).await];
    let mcp = McpApp { app: t.app, acme, globex };
    let env = |tenant: &'static str, key: String, name: &'static str| {
        let (mcp, url) = (&mcp, mcp.url(tenant, "tools"));
        async move {
            let call = json!({"name": "env", "arguments": {"name": name}});
            let reply = mcp.modern(&url, Some(&key), json!(1), "tools/call", call, json!({})).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.result()["content"][0]["text"].as_str().unwrap_or_default().to_owned()
        }
    };
    for (tenant, key) in ["acme", "globex"].into_iter().zip(keys) {
        assert_eq!(env(tenant, key.clone(), "GREETING").await, format!("{tenant}-config"), "the configuration wins");
        assert_eq!(env(tenant, key.clone(), "TOKEN").await, format!("{tenant}-secret"), "secrets arrive opened");
        assert_eq!(env(tenant, key, "KEEP").await, "kept");
    }

    // A new configuration reaches the sessions that start after it.
    let changed = json!({"config": {"GREETING": "changed"}, "secrets": {"TOKEN": "acme-secret"}});
    let path = "/api/v1/tenants/acme/servers/tools/config";
    mcp.app.send(mcp.app.request(As::Admin, reqwest::Method::PUT, path).json(&changed)).await.assert_status(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = mcp.app.key_with("acme", &["mcp"]).await;
    assert_eq!(env("acme", fresh, "GREETING").await, "changed");
    containers.shutdown().await;
}

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_container_killed_mid_call_gives_the_client_a_clear_error_and_the_next_call_works() {
    let t = spawn_bridging_app_with(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    t.app.create_tenant("acme").await.assert_status(201);
    container_server(&t.app, "acme", "tools", &stdio_spec("stdio-rust")).await;
    let key = t.app.key_with("acme", &["mcp"]).await;
    let containers = t.containers.clone();
    let mcp = McpApp { app: t.app, acme: key.clone(), globex: key.clone() };
    let url = mcp.url("acme", "tools");
    let session = mcp.initialize(&url, Some(&key), "2025-11-25", json!({})).await;
    let slow = mcp.legacy(
        &url,
        Some(&key),
        &session,
        2,
        "tools/call",
        json!({"name": "slow", "arguments": {"steps": 100, "delay_ms": 100}}),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        for id in containers.containers().await.unwrap() {
            berth_test_support::docker::cli(&["kill", "--signal", "KILL", &id]);
        }
    };
    let (reply, ()) = tokio::join!(slow, kill);
    assert!(reply.last().get("error").is_some(), "{}", reply.text);
    assert!(reply.text.contains("the server is unavailable") && reply.text.contains("mid-call"), "{}", reply.text);
    let next = mcp
        .legacy(&url, Some(&key), &session, 3, "tools/call", json!({"name": "echo", "arguments": {"message": "back"}}))
        .await;
    assert_eq!(next.result()["content"][0]["text"], "back", "{}", next.text);
    containers.shutdown().await;
}

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn a_failed_start_is_a_clear_error_and_its_logs_are_in_the_admin_api() {
    let t = spawn_bridging_app_with(ContainerSettings { warm_pool: 0, ..ContainerSettings::default() }).await;
    t.app.create_tenant("acme").await.assert_status(201);
    t.app.create_tenant("globex").await.assert_status(201);
    let mut spec = stdio_spec("stdio-rust");
    spec["env"] = json!({"BERTH_TEST_FAIL_START": "1"});
    container_server(&t.app, "acme", "broken", &spec).await;
    let key = t.app.key_with("acme", &["mcp"]).await;
    let containers = t.containers.clone();
    let mcp = McpApp { app: t.app, acme: key.clone(), globex: key.clone() };
    let url = mcp.url("acme", "broken");
    let reply = mcp.modern(&url, Some(&key), json!(1), "tools/list", json!({}), json!({})).await;
    assert!(reply.status >= 500 || reply.last().get("error").is_some(), "{} {}", reply.status, reply.text);
    assert!(reply.text.contains("exited with code 2"), "{}", reply.text);
    let mut logs = serde_json::Value::Null;
    for _ in 0..50 {
        logs = mcp.app.get(As::Admin, "/api/v1/tenants/acme/servers/broken/versions/1/logs").await.body;
        if logs["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = &logs["items"][0];
    assert!(first["logs"].as_str().unwrap().contains("refusing to start"), "{logs}");
    assert!(first["reason"].as_str().unwrap().contains("exited with code 2"), "{logs}");
    // Another tenant cannot read them: the server does not exist for it.
    let globex = mcp.app.key_with("globex", &["admin"]).await;
    let refused = mcp.app.get(As::Key(&globex), "/api/v1/tenants/acme/servers/broken/versions/1/logs").await;
    assert!(matches!(refused.status, 403 | 404), "{} {}", refused.status, refused.text);
    assert!(containers.containers().await.unwrap().is_empty(), "no container is left behind");
}

#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn an_http_container_serves_sessions_from_one_replica() {
    let t = spawn_bridging_app().await;
    t.app.create_tenant("acme").await.assert_status(201);
    container_server(&t.app, "acme", "py", &fastmcp_spec()).await;
    let key = t.app.key_with("acme", &["mcp"]).await;
    let containers = t.containers.clone();
    let mcp = McpApp { app: t.app, acme: key.clone(), globex: key.clone() };
    let url = mcp.url("acme", "py");
    let modern = mcp
        .modern(
            &url,
            Some(&key),
            json!(1),
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
            json!({}),
        )
        .await;
    assert_eq!(modern.status, 200, "{}", modern.text);
    assert_eq!(modern.result()["content"][0]["text"], "5", "{}", modern.text);
    let session = mcp.initialize(&url, Some(&key), "2025-11-25", json!({})).await;
    let greet = mcp
        .legacy(&url, Some(&key), &session, 2, "tools/call", json!({"name": "greet", "arguments": {"name": "Ada"}}))
        .await;
    assert!(greet.text.contains("Hello, Ada."), "{}", greet.text);
    assert_eq!(containers.containers().await.unwrap().len(), 1, "one replica serves every session");
    containers.shutdown().await;
}

/// `kill -9` of `berth up` leaves its containers behind; the next start removes every one.
#[actix_web::test]
#[ignore = "needs docker: run cargo xtask test"]
async fn after_kill_9_of_the_data_plane_a_restart_leaves_no_orphan_container() {
    use std::process::{Command, Stdio};
    berth_test_support::docker::daemon();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    /// Kills `berth up` if the test fails half-way (it would hold the test's output open).
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    impl std::ops::Deref for Guard {
        type Target = std::process::Child;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }
    impl std::ops::DerefMut for Guard {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.0
        }
    }
    let start = || {
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join(".berth"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("BERTH_ADMIN_TOKEN")
            .env_remove("BERTH_DATA_DIR")
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth up");
        Guard(child)
    };
    // Installs the process-wide TLS provider reqwest needs (this test builds no app in-process).
    let _ = berth_runtime_container::RemoteRuntime::default();
    let client = reqwest::Client::new();
    let ready = async |client: &reqwest::Client| {
        for _ in 0..450 {
            if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("berth up did not become ready");
    };
    let mut berth = start();
    ready(&client).await;
    let token = std::fs::read_to_string(dir.path().join(".berth/admin-token")).unwrap();
    let token = token.trim();
    let admin =
        |method: reqwest::Method, path: &str| client.request(method, format!("{base}{path}")).bearer_auth(token);
    let post = async |path: &str, body: serde_json::Value| {
        let reply = admin(reqwest::Method::POST, path).json(&body).send().await.unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.text().await.unwrap());
        reply.json::<serde_json::Value>().await.unwrap()
    };
    post("/api/v1/tenants", json!({"slug": "acme", "name": "Acme"})).await;
    post("/api/v1/tenants/acme/servers", json!({"slug": "tools", "name": "Tools", "kind": "container"})).await;
    post("/api/v1/tenants/acme/servers/tools/versions", stdio_spec("stdio-rust")).await;
    let key = post("/api/v1/tenants/acme/api-keys", json!({"name": "k", "scopes": ["mcp"]})).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let url = format!("{base}/t/acme/tools/mcp");
    let accept = "application/json, text/event-stream";
    let reply = client.post(&url).bearer_auth(&key).header("accept", accept).json(&init).send().await.unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    let session = reply.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}}});
    let reply = client
        .post(&url)
        .bearer_auth(&key)
        .header("accept", accept)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert!(reply.text().await.unwrap().contains("\"x\""));

    let owned_by = |pid: u32| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        let filter = format!("label=io.berth.owner={}:{pid}:", boot.trim());
        // Owner labels end with the start time; match on the prefix through `docker ps`'s output.
        let all = berth_test_support::docker::cli(&[
            "ps",
            "-a",
            "--filter",
            "label=io.berth.managed=true",
            "--format",
            "{{.ID}} {{.Label \"io.berth.owner\"}}",
        ]);
        let prefix = filter.trim_start_matches("label=io.berth.owner=").to_owned();
        all.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|o| o.starts_with(&prefix))).count()
    };
    let first_pid = berth.id();
    assert!(owned_by(first_pid) >= 1, "the session's container runs");
    berth.kill().unwrap(); // SIGKILL
    berth.wait().unwrap();
    assert!(owned_by(first_pid) >= 1, "kill -9 leaves them behind");
    let _ = berth_storage::embedded::stop_existing(&dir.path().join(".berth/postgres"));

    let mut berth = start();
    ready(&client).await;
    let mut left = owned_by(first_pid);
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = owned_by(first_pid);
    }
    assert_eq!(left, 0, "the restarted data plane removed the orphans");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(berth.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    berth.wait().unwrap();
    let _ = berth_storage::embedded::stop_existing(&dir.path().join(".berth/postgres"));
    assert_eq!(owned_by(berth.id()), 0, "a graceful stop removes its containers");
}
