//! The single place a [`Store`] is made: every store gets the memory limiter, the host-resource
//! cap, captured stdio and the epoch deadline, whatever the call.
//!
//! One store serves one call (or the `info()` of a load) and is dropped afterwards, with the
//! instance in it: guests keep no state between calls and never share memory.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use berth_core::backend::{BoxFuture, Notice, Peer, PeerError};
use berth_protocol::Era;
use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::ServerSpec;
use crate::egress::{Allowlist, EgressHooks};

/// Bytes of stdout and of stderr kept per call; the rest is dropped (the guest never notices).
pub(crate) const STDIO_CAPTURE_BYTES: usize = 64 * 1024;
/// Log and progress notices one call may send; later ones are dropped.
const MAX_NOTICES: u32 = 1_000;
/// Bytes of log data one call may send; later notices are dropped.
const MAX_NOTICE_BYTES: usize = 1024 * 1024;
/// Host resources (streams, HTTP requests, …) one call may hold at once.
const MAX_HOST_RESOURCES: usize = 10_000;
/// Elements of one table.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Core instances, tables and memories of one store (a component has a handful of each).
const MAX_STORE_INSTANCES: usize = 64;
const MAX_STORE_TABLES: usize = 64;
const MAX_STORE_MEMORIES: usize = 16;

/// The limits every store gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreLimits {
    /// Total linear memory of the instance.
    pub(crate) max_memory_bytes: usize,
    /// Wall-clock time of the call.
    pub(crate) call_timeout: Duration,
}

/// Who a call is for: the client, the server's configuration and its egress allowlist.
#[derive(Clone)]
pub(crate) struct CallContext {
    pub(crate) peer: Arc<dyn Peer>,
    pub(crate) spec: Arc<ServerSpec>,
    pub(crate) egress: Arc<Allowlist>,
}

/// The client of a call that has none: a load-time `info()`, or an instance made ahead of its
/// call until the call attaches its own ([`attach`]). Notices go nowhere and
/// requests fail as if the client had gone.
pub(crate) fn no_client() -> Arc<dyn Peer> {
    static NO_CLIENT: OnceLock<Arc<dyn Peer>> = OnceLock::new();
    NO_CLIENT.get_or_init(|| Arc::new(NoClient { capabilities: Value::Object(serde_json::Map::new()) })).clone()
}

struct NoClient {
    capabilities: Value,
}

impl Peer for NoClient {
    fn notify(&self, _notice: Notice) {}

    fn request(&self, _method: &str, _params: Value) -> BoxFuture<'_, Result<Value, PeerError>> {
        Box::pin(futures::future::ready(Err(PeerError::Gone)))
    }

    fn client_capabilities(&self) -> &Value {
        &self.capabilities
    }

    fn era(&self) -> Era {
        Era::Legacy
    }
}

/// The data of a store: WASI state, the call's context and what the limits observed.
pub(crate) struct CallState {
    /// Made on the guest's first WASI call: most calls make none, and a context costs a few
    /// allocations and the seeding of two random number generators.
    wasi: Option<WasiCtx>,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: EgressHooks,
    limiter: MemoryLimiter,
    pub(crate) peer: Arc<dyn Peer>,
    pub(crate) spec: Arc<ServerSpec>,
    started: Instant,
    timeout: Duration,
    timed_out: bool,
    notices: u32,
    notice_bytes: usize,
    stdout: Capture,
    stderr: Capture,
}

impl CallState {
    /// Whether the epoch deadline stopped the guest.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the guest asked for more memory than its limit.
    pub(crate) fn memory_exhausted(&self) -> bool {
        self.limiter.exhausted
    }

    /// Peak linear memory of the instance.
    pub(crate) fn memory_used(&self) -> usize {
        self.limiter.used
    }

    /// Counts a notice of `bytes` bytes; false once the call has sent its share.
    pub(crate) fn allow_notice(&mut self, bytes: usize) -> bool {
        let total = self.notice_bytes.saturating_add(bytes);
        if self.notices >= MAX_NOTICES || total > MAX_NOTICE_BYTES {
            if self.notices == MAX_NOTICES {
                tracing::debug!("wasm guest exceeded its notices per call; dropping the rest");
                self.notices = self.notices.saturating_add(1);
            }
            return false;
        }
        self.notices += 1;
        self.notice_bytes = total;
        true
    }

    /// What the guest wrote to stdout and stderr (bounded), lossily decoded.
    pub(crate) fn stdio(&self) -> (String, String) {
        (self.stdout.text(), self.stderr.text())
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| wasi_ctx(&self.stdout, &self.stderr));
        WasiCtxView { ctx, table: &mut self.table }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// The WASI context of a call: no preopens, no environment, no arguments, no sockets; stdin is
/// closed, stdout and stderr are captured.
fn wasi_ctx(stdout: &Capture, stderr: &Capture) -> WasiCtx {
    WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Makes the store of one call. This is the only constructor of `Store<CallState>`.
pub(crate) fn new_store(engine: &Engine, limits: StoreLimits, call: CallContext) -> Store<CallState> {
    let stdout = Capture::new(STDIO_CAPTURE_BYTES);
    let stderr = Capture::new(STDIO_CAPTURE_BYTES);
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HOST_RESOURCES);
    let state = CallState {
        wasi: None,
        http: WasiHttpCtx::new(),
        table,
        hooks: EgressHooks::new(call.egress, limits.call_timeout),
        limiter: MemoryLimiter::new(limits.max_memory_bytes),
        peer: call.peer,
        spec: call.spec,
        started: Instant::now(),
        timeout: limits.call_timeout,
        timed_out: false,
        notices: 0,
        notice_bytes: 0,
        stdout,
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // The engine's epoch advances every tick (see `engine.rs`): at each tick the guest yields to
    // the executor, so a busy guest cannot starve its worker thread, and once the call's time is
    // up it is interrupted.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        if state.started.elapsed() >= state.timeout {
            state.timed_out = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        }
    });
    store
}

/// Hands a store made ahead of its call to the call's client and starts the call's clock: the
/// deadline counts from here, not from when the store was made.
pub(crate) fn attach(store: &mut Store<CallState>, peer: Arc<dyn Peer>) {
    let state = store.data_mut();
    state.peer = peer;
    state.started = Instant::now();
    store.set_epoch_deadline(1);
}

/// Caps the total linear memory of a store's instances and remembers when a guest hit the cap.
struct MemoryLimiter {
    max: usize,
    used: usize,
    exhausted: bool,
}

impl MemoryLimiter {
    fn new(max: usize) -> Self {
        Self { max, used: 0, exhausted: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(desired.saturating_sub(current));
        if total > self.max {
            self.exhausted = true;
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_STORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_STORE_TABLES
    }

    fn memories(&self) -> usize {
        MAX_STORE_MEMORIES
    }
}

/// A bounded in-memory sink for stdout or stderr: keeps the first `capacity` bytes and silently
/// drops the rest, so a chatty guest neither grows host memory nor fails its writes.
#[derive(Clone)]
struct Capture {
    buffer: Arc<Mutex<CaptureBuffer>>,
}

struct CaptureBuffer {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl Capture {
    fn new(capacity: usize) -> Self {
        Self { buffer: Arc::new(Mutex::new(CaptureBuffer { bytes: Vec::new(), capacity, dropped: 0 })) }
    }

    fn lock(&self) -> MutexGuard<'_, CaptureBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = self.lock();
        let room = buffer.capacity.saturating_sub(buffer.bytes.len());
        let (kept, dropped) = data.split_at(room.min(data.len()));
        buffer.bytes.extend_from_slice(kept);
        buffer.dropped = buffer.dropped.saturating_add(dropped.len());
    }

    fn text(&self) -> String {
        let buffer = self.lock();
        let mut text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        if buffer.dropped > 0 {
            text.push_str(&format!("\n[{} more bytes dropped]", buffer.dropped));
        }
        text
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Writes complete at once (no task hop per write, unlike the default adapter).
#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(STDIO_CAPTURE_BYTES)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.append(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_first_bytes_and_counts_the_rest() {
        let capture = Capture::new(4);
        capture.append(b"abc");
        capture.append(b"defg");
        assert_eq!(capture.text(), "abcd\n[3 more bytes dropped]");
    }

    #[test]
    fn the_limiter_caps_total_memory_and_remembers_it() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(!limiter.exhausted);
        assert!(!limiter.memory_growing(60, 80, None).unwrap());
        assert!(limiter.exhausted);
        assert_eq!(limiter.used, 90);
        assert!(limiter.memory_growing(30, 40, None).unwrap());
    }
}
