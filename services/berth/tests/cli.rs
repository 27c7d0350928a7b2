//! Black-box tests of the `berth` binary: `berth up` with its embedded PostgreSQL, the README
//! walkthrough run verbatim, shutdown on SIGINT/SIGTERM and persistence across restarts.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

struct Berth {
    child: Child,
    dir: PathBuf,
}

impl Drop for Berth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = berth_storage::embedded::stop_existing(&self.dir.join(".berth/postgres"));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, port: u16) -> Berth {
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("BERTH_ADMIN_TOKEN")
        .env_remove("BERTH_DATA_DIR")
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn berth up");
    let mut berth = Berth { child, dir: dir.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ok = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/readyz")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return berth;
        }
        if let Some(status) = berth.child.try_wait().unwrap() {
            panic!("berth up exited during start-up ({status}); its stderr is above");
        }
        assert!(Instant::now() < deadline, "berth up did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut berth: Berth, signal: Signal) -> String {
    kill(Pid::from_raw(berth.child.id() as i32), signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = berth.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "berth did not stop after {signal}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "berth exited with {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(berth.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    out
}

fn walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("<!-- walkthrough:start -->").expect("walkthrough start marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("walkthrough end marker");
    let block = &readme[start..end];
    let code_start = block.find("```sh\n").expect("sh block") + "```sh\n".len();
    let code_end = block[code_start..].find("```").expect("block end") + code_start;
    block[code_start..code_end].to_owned()
}

#[test]
fn berth_up_runs_the_readme_walkthrough_and_keeps_data_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    // When the tests run as root, the embedded cluster runs as `postgres`, which must reach it.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();

    let berth = start(tmp.path(), port);
    let script = walkthrough().replace("http://127.0.0.1:8080", &format!("http://127.0.0.1:{port}"));
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(tmp.path())
        .output()
        .expect("run the walkthrough");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "walkthrough failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(r#""slug":"acme""#), "{stdout}");
    assert!(stdout.contains(r#""active_version":1"#), "rollback to version 1: {stdout}");
    assert!(stdout.contains("key: berth_"), "{stdout}");
    assert!(!stdout.contains("upstream-token"), "upstream credentials must never be echoed: {stdout}");
    assert!(stdout.contains(r#""type":"urn:berth:problem:invalid-field""#), "{stdout}");
    let banner = stop(berth, Signal::SIGINT);
    assert!(banner.contains("Berth is up."), "{banner}");
    assert!(banner.contains("stopping embedded PostgreSQL"), "{banner}");
    let pgdata = tmp.path().join(".berth/postgres/pgdata");
    assert!(!pgdata.join("postmaster.pid").exists(), "PostgreSQL must stop with berth");

    let berth = start(tmp.path(), port);
    let token = std::fs::read_to_string(tmp.path().join(".berth/admin-token")).unwrap();
    let servers = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {}", token.trim())])
        .arg(format!("http://127.0.0.1:{port}/api/v1/tenants/acme/servers"))
        .output()
        .unwrap();
    let servers = String::from_utf8_lossy(&servers.stdout);
    assert!(servers.contains(r#""slug":"docs""#) && servers.contains(r#""slug":"tools""#), "{servers}");
    stop(berth, Signal::SIGTERM);
    assert!(!pgdata.join("postmaster.pid").exists(), "PostgreSQL must stop on SIGTERM too");
}

#[test]
fn the_example_config_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/berth.example.toml");
    let settings =
        berth::settings::Settings::load(&berth::settings::Overrides { config_file: Some(path), ..Default::default() })
            .unwrap();
    assert_eq!(settings.listen.port(), 8080);
    assert_eq!(settings.public_url.unwrap().as_str(), "https://mcp.example.com/");
}

#[test]
fn control_plane_without_a_database_url_says_what_is_missing() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("control-plane")
        .env_remove("DATABASE_URL")
        .env("BERTH_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL must be set"), "{stderr}");
}

/// A one-shot HTTP collector on loopback: records the request line of every request it gets.
fn fake_collector() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{BufRead, BufReader, Read, Write};
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(line.trim().to_owned());
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (url, rx)
}

#[test]
fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (collector, received) = fake_collector();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(tmp.path())
        .env_remove("DATABASE_URL")
        .env_remove("BERTH_ADMIN_TOKEN")
        .env("BERTH_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut berth = Berth { child, dir: tmp.path().to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/healthz")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        if let Some(status) = berth.child.try_wait().unwrap() {
            panic!("berth up exited during start-up ({status})");
        }
        assert!(Instant::now() < deadline, "berth up did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(Pid::from_raw(berth.child.id() as i32), Signal::SIGINT).unwrap();
    let _ = berth.child.wait();
    let request = received.recv_timeout(Duration::from_secs(20)).expect("no OTLP export arrived");
    assert!(request.starts_with("POST /v1/traces"), "{request}");
}
