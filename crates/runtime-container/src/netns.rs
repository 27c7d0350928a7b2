//! How Berth reaches a container's HTTP port without giving the container a network: a unix
//! socket on the host, private to Berth, whose connections are relayed to `127.0.0.1:<port>`
//! inside the container's own network namespace.
//!
//! A dedicated thread enters the namespace once (`setns(2)` on `/proc/<pid>/ns/net`) and opens
//! each TCP connection there; sockets keep the namespace they were created in, so the relay task
//! then copies bytes on the ordinary runtime. The container needs no published port and no
//! bridge address, and keeps `--network none` unless its version grants egress. This needs Berth
//! to run on the Docker host with `CAP_SYS_ADMIN` (root), as the data plane does here.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use tokio::net::{TcpStream, UnixListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type ConnectReply = oneshot::Sender<std::io::Result<std::net::TcpStream>>;

/// A relay from a host unix socket into one container's loopback port. Dropping it stops the
/// relay and removes the socket.
#[derive(Debug)]
pub(crate) struct NetnsRelay {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for NetnsRelay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The directory for one runtime's relay sockets: `$TMPDIR/berth-relays-<pid>-<n>`, mode 0700.
/// Each runtime gets its own (`n` counts the runtimes of this process), so one runtime removing
/// its directory at shutdown never pulls it from under another one's relays.
pub(crate) fn socket_dir() -> std::io::Result<PathBuf> {
    static RUNTIMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUNTIMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("berth-relays-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Opens connections inside the network namespace of `pid`, on a thread of its own.
fn connector(pid: u32) -> std::io::Result<std_mpsc::Sender<(u16, ConnectReply)>> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let (tx, rx) = std_mpsc::channel::<(u16, ConnectReply)>();
    let (ready_tx, ready_rx) = std_mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new().name(format!("berth-netns-{pid}")).spawn(move || {
        let entered = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from);
        let ok = entered.is_ok();
        let _ = ready_tx.send(entered);
        if !ok {
            return;
        }
        while let Ok((port, reply)) = rx.recv() {
            let stream = std::net::TcpStream::connect(("127.0.0.1", port));
            let _ = reply.send(stream);
        }
    })?;
    ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("the namespace thread died"))?
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot enter the container's network namespace: {e}")))?;
    Ok(tx)
}

impl NetnsRelay {
    /// Listens on `<dir>/<name>.sock` and relays each connection to `127.0.0.1:port` in the
    /// network namespace of process `pid`.
    pub(crate) fn start(pid: u32, port: u16, dir: &Path, name: &str) -> std::io::Result<Self> {
        let connect = connector(pid)?;
        let path = dir.join(format!("{name}.sock"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { break };
                let (reply, answer) = oneshot::channel();
                if connect.send((port, reply)).is_err() {
                    break;
                }
                tokio::spawn(async move {
                    let Ok(Ok(stream)) = answer.await else { return };
                    let upstream = stream.set_nonblocking(true).and_then(|()| TcpStream::from_std(stream));
                    if let Ok(mut upstream) = upstream {
                        let _ = upstream.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(Self { path, task })
    }

    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runtime_gets_its_own_socket_directory() {
        let (a, b) = (socket_dir().unwrap(), socket_dir().unwrap());
        assert_ne!(a, b);
        // One runtime removing its (empty) directory at shutdown leaves the other's in place.
        std::fs::remove_dir(&a).unwrap();
        assert!(b.is_dir());
        let mode = std::fs::metadata(&b).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir(&b).unwrap();
    }
}
