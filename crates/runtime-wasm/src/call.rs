//! One call into a guest: a slot, a fresh store and instance, the export, the limits, and the
//! accounting of its CPU time.
//!
//! A call ends in one of three ways: the guest answers; it fails in a way that is its own fault
//! ([`Failure::TimedOut`], [`Failure::OutOfMemory`], [`Failure::Crashed`]); or Berth cannot run
//! it ([`Failure::Busy`], [`Failure::Unavailable`]). Nothing a guest does panics the host.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Engine, Store, Trap};

use crate::bindings::{McpServerPre, SERVER_INTERFACE, types};
use crate::egress::Allowlist;
use crate::store::{CallContext, CallState, StoreLimits, attach, new_store, no_client};
use crate::{CallStats, ReadyStats, ServerSpec};

/// The export a call invokes, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Export {
    Info,
    ListTools,
    CallTool { name: String, arguments: String },
    ListResources,
    ListResourceTemplates,
    ReadResource { uri: String },
    ListPrompts,
    GetPrompt { name: String, arguments: String },
    Complete { request: String },
}

impl Export {
    /// The export's name, for logs and metrics.
    pub(crate) fn export(&self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::ListTools => "list-tools",
            Self::CallTool { .. } => "call-tool",
            Self::ListResources => "list-resources",
            Self::ListResourceTemplates => "list-resource-templates",
            Self::ReadResource { .. } => "read-resource",
            Self::ListPrompts => "list-prompts",
            Self::GetPrompt { .. } => "get-prompt",
            Self::Complete { .. } => "complete",
        }
    }
}

/// The CPU and wall-time histograms of one export.
struct ExportMetrics {
    cpu: metrics::Histogram,
    wall: metrics::Histogram,
}

/// Each export's histograms, registered on its first call rather than on every call
/// (registering builds and hashes a labelled key). The handles belong to the recorder installed
/// at that first call: Berth installs its recorder before it makes the runtime
/// (`berth::startup::wasm_runtime`).
#[derive(Default)]
pub(crate) struct CallMetrics([OnceLock<ExportMetrics>; 9]);

impl CallMetrics {
    fn of(&self, export: &Export) -> &ExportMetrics {
        let [info, list_tools, call_tool, list_resources, templates, read_resource, list_prompts, get_prompt, complete] =
            &self.0;
        let cell = match export {
            Export::Info => info,
            Export::ListTools => list_tools,
            Export::CallTool { .. } => call_tool,
            Export::ListResources => list_resources,
            Export::ListResourceTemplates => templates,
            Export::ReadResource { .. } => read_resource,
            Export::ListPrompts => list_prompts,
            Export::GetPrompt { .. } => get_prompt,
            Export::Complete { .. } => complete,
        };
        let name = export.export();
        cell.get_or_init(|| ExportMetrics {
            cpu: metrics::histogram!("berth_wasm_call_cpu_seconds", "export" => name),
            wall: metrics::histogram!("berth_wasm_call_wall_seconds", "export" => name),
        })
    }
}

/// A type-checked component ready to instantiate, with the index of each export of
/// `berth:mcp/server`: a call looks up and type-checks only the function it invokes (the
/// generated `McpServerPre::instantiate_async` loads all nine on every instantiation).
pub(crate) struct Guest {
    pre: InstancePre<CallState>,
    info: ComponentExportIndex,
    list_tools: ComponentExportIndex,
    call_tool: ComponentExportIndex,
    list_resources: ComponentExportIndex,
    list_resource_templates: ComponentExportIndex,
    read_resource: ComponentExportIndex,
    list_prompts: ComponentExportIndex,
    get_prompt: ComponentExportIndex,
    complete: ComponentExportIndex,
}

impl Guest {
    /// From a component whose exports the generated bindings accepted.
    pub(crate) fn new(checked: &McpServerPre<CallState>) -> Result<Self, String> {
        let pre = checked.instance_pre().clone();
        let component = pre.component();
        let interface = component
            .get_export_index(None, SERVER_INTERFACE)
            .ok_or_else(|| format!("the component does not export {SERVER_INTERFACE}"))?;
        let index = |name: &str| {
            component
                .get_export_index(Some(&interface), name)
                .ok_or_else(|| format!("missing export `{name}` in {SERVER_INTERFACE}"))
        };
        Ok(Self {
            info: index("info")?,
            list_tools: index("list-tools")?,
            call_tool: index("call-tool")?,
            list_resources: index("list-resources")?,
            list_resource_templates: index("list-resource-templates")?,
            read_resource: index("read-resource")?,
            list_prompts: index("list-prompts")?,
            get_prompt: index("get-prompt")?,
            complete: index("complete")?,
            pre,
        })
    }
}

/// What an export returned.
#[derive(Debug)]
pub(crate) enum Answer {
    Info(types::ServerInfo),
    Tools(Vec<types::Tool>),
    Resources(Vec<types::Resource>),
    Templates(Vec<types::ResourceTemplate>),
    Prompts(Vec<types::Prompt>),
    Json(Result<String, types::Error>),
}

/// Why a call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The call ran out of time (interrupted at the epoch deadline, or blocked in the host).
    TimedOut(Duration),
    /// The guest asked for more linear memory than its limit, then failed.
    OutOfMemory(usize),
    /// The guest trapped.
    Crashed(String),
    /// No instance slot freed up within the time limit.
    Busy,
    /// The instance could not be created.
    Unavailable(String),
}

/// `10 s`, `300 ms`, `1.5 s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis >= 1000 && millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else if millis >= 1000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{millis} ms")
    }
}

/// `64 MiB`, `1536 KiB`, `100 bytes`.
pub(crate) fn human_bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

impl Failure {
    /// A message for the client.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::TimedOut(limit) => format!("the server exceeded its {} time limit", human_duration(*limit)),
            Self::OutOfMemory(limit) => format!("the server ran out of memory ({} limit)", human_bytes(*limit)),
            Self::Crashed(why) => format!("the server crashed: {why}"),
            Self::Busy => "the runtime is at capacity; try again".to_owned(),
            Self::Unavailable(why) => format!("the server could not start: {why}"),
        }
    }

    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::TimedOut(_) => "timeout",
            Self::OutOfMemory(_) => "memory",
            Self::Crashed(_) => "crash",
            Self::Busy => "busy",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// What a runtime needs to run calls.
pub(crate) struct Executor {
    pub(crate) engine: Engine,
    pub(crate) limits: StoreLimits,
    /// One permit per pooling slot: calls wait for a slot instead of failing.
    pub(crate) slots: Arc<Semaphore>,
    /// Fresh instances made ahead of calls.
    pub(crate) ready: ReadyInstances,
    /// Each export's CPU and wall-time histograms.
    pub(crate) metrics: CallMetrics,
}

/// Which server a call belongs to, for the instance made ahead of its next call. Load-time
/// `info()` calls belong to none.
pub(crate) type ServerId = u64;

/// A server's calls as the executor sees them: its id and how many are running.
#[derive(Debug)]
pub(crate) struct ServerCalls {
    pub(crate) id: ServerId,
    running: AtomicUsize,
}

impl ServerCalls {
    pub(crate) fn new(id: ServerId) -> Self {
        Self { id, running: AtomicUsize::new(0) }
    }
}

/// Counts a call as running until dropped.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(running: &'a AtomicUsize) -> Self {
        running.fetch_add(1, Ordering::Relaxed);
        Self(running)
    }

    /// Whether this is the server's only call running.
    fn alone(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 1
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a server's next instance is made of.
struct Refill {
    server: ServerId,
    pre: InstancePre<CallState>,
    spec: Arc<ServerSpec>,
    egress: Arc<Allowlist>,
}

impl Executor {
    /// Runs `call` in a fresh instance of `guest` for `context`, measuring its CPU and wall time.
    /// For a `server`'s call, the instance may have been made ahead of the call; its making is
    /// counted in the call's CPU time.
    pub(crate) async fn run(
        self: &Arc<Self>,
        guest: &Guest,
        context: CallContext,
        call: Export,
        server: Option<&ServerCalls>,
    ) -> (Result<Answer, Failure>, CallStats) {
        let started = Instant::now();
        let export = call.export();
        let histograms = self.metrics.of(&call);
        let ((outcome, ahead), cpu) = Metered::new(self.run_unmetered(guest, context, call, server)).await;
        let stats = CallStats { cpu: cpu.saturating_add(ahead), wall: started.elapsed() };
        histograms.cpu.record(stats.cpu.as_secs_f64());
        histograms.wall.record(stats.wall.as_secs_f64());
        if let Err(failure) = &outcome {
            metrics::counter!("berth_wasm_call_failures_total", "reason" => failure.reason()).increment(1);
        }
        tracing::debug!(
            export,
            cpu_us = stats.cpu.as_micros() as u64,
            wall_us = stats.wall.as_micros() as u64,
            ok = outcome.is_ok(),
            "wasm call finished"
        );
        (outcome, stats)
    }

    /// The call, and the CPU time spent making its instance ahead of it.
    async fn run_unmetered(
        self: &Arc<Self>,
        guest: &Guest,
        context: CallContext,
        call: Export,
        server: Option<&ServerCalls>,
    ) -> (Result<Answer, Failure>, Duration) {
        let timeout = self.limits.call_timeout;
        let running = server.map(|server| Running::start(&server.running));
        let next = server
            .filter(|_| self.ready.enabled())
            .map(|server| (server.id, context.spec.clone(), context.egress.clone()));
        let ready = server.and_then(|server| self.ready.take(server.id));
        let ahead = ready.as_ref().map_or(Duration::ZERO, |ready| ready.cpu);
        let (mut store, instance, slot) = match ready.and_then(|ready| ready.made) {
            Some(Made { mut store, instance, slot }) => {
                attach(&mut store, context.peer);
                (store, Some(instance), slot)
            }
            None => {
                let Some(slot) = self.slot().await else { return (Err(Failure::Busy), ahead) };
                (new_store(&self.engine, self.limits, context), None, slot)
            }
        };
        // The epoch deadline interrupts a guest that computes; this timeout also ends a call
        // blocked in the host (an outgoing request, a client that does not answer).
        let result = tokio::time::timeout(timeout, invoke(&mut store, guest, instance, call)).await;
        // The next instance is made only after one was made and ran: a guest that cannot be
        // instantiated, or that timed out, does not cost a second attempt per call. And only
        // when no other call of the server is running: calls running at once queue for the CPU
        // anyway, and an instance made ahead under load is cold in the caches by the time a
        // call takes it (B1: more CPU per call).
        let alone = running.as_ref().is_some_and(Running::alone);
        let refill = next
            .filter(|_| alone && matches!(result, Ok(Ok(_) | Err(Stage::Call(_)))))
            .map(|(server, spec, egress)| Refill { server, pre: guest.pre.clone(), spec, egress });
        let state = store.data();
        let (stdout, stderr) = state.stdio();
        if !stdout.is_empty() || !stderr.is_empty() {
            // Tenant data: debug level only.
            tracing::debug!(%stdout, %stderr, "wasm guest output");
        }
        let outcome = match result {
            Err(_elapsed) => Err(Failure::TimedOut(timeout)),
            Ok(Ok(answer)) => Ok(answer),
            // Not the guest's doing (no trap, no limit hit): Berth could not make the instance.
            Ok(Err(Stage::Instantiate(e)))
                if !state.timed_out() && !state.memory_exhausted() && e.downcast_ref::<Trap>().is_none() =>
            {
                Err(Failure::Unavailable(e.to_string()))
            }
            Ok(Err(Stage::Instantiate(e) | Stage::Call(e))) => Err(classify(&e, state, self.limits)),
        };
        self.release(store, slot, refill);
        (outcome, ahead)
    }

    /// A slot for a call, within the call's time limit. When none is free, an instance made
    /// ahead of some server's next call gives its slot up first: those never make a call wait.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.ready.evict_oldest();
        match tokio::time::timeout(self.limits.call_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Tears a call's instance down after its answer is on its way, then makes the server's
    /// next instance if it has none ready.
    ///
    /// Dropping the store resets the slot's linear memory and returns it to the pool (about
    /// 10 µs through the HTTP path, B1), which the client need not wait for: a task on the same
    /// runtime does it once the tasks already woken (the one sending the answer among them)
    /// have run. The slot stays taken until then, so the pool never hands out more instances
    /// than it has. Outside a runtime the store is dropped at once and nothing is made ahead.
    fn release(self: &Arc<Self>, store: Store<CallState>, slot: OwnedSemaphorePermit, refill: Option<Refill>) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let executor = self.clone();
                runtime.spawn(async move {
                    tokio::task::yield_now().await;
                    drop(store);
                    drop(slot);
                    if let Some(refill) = refill {
                        executor.make_ready(refill).await;
                    }
                });
            }
            Err(_) => {
                drop(store);
                drop(slot);
            }
        }
    }

    /// Makes a fresh instance for `refill.server`'s next call, if it has none and a slot is free
    /// (never waiting for one). It gets the server's spec and egress allowlist and no client
    /// until a call attaches its own; instantiation runs under the call time limit.
    async fn make_ready(&self, refill: Refill) {
        let Refill { server, pre, spec, egress } = refill;
        if !self.ready.wants(server) {
            return;
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else { return };
        let mut store = new_store(&self.engine, self.limits, CallContext { peer: no_client(), spec, egress });
        let instantiate = tokio::time::timeout(self.limits.call_timeout, pre.instantiate_async(&mut store));
        let (made, cpu) = Metered::new(instantiate).await;
        let made = match made {
            Ok(Ok(instance)) => Some(Made { store, instance, slot }),
            // The next call makes its own instance and reports what goes wrong; it is also
            // billed for this attempt, so a guest cannot burn CPU here unaccounted.
            Ok(Err(_)) | Err(_) => {
                drop(store);
                drop(slot);
                None
            }
        };
        self.ready.put(Ready { server, made, cpu });
    }
}

/// What was made ahead of a server's next call, and the CPU time it took, billed to that call.
struct Ready {
    server: ServerId,
    /// `None` when making the instance failed.
    made: Option<Made>,
    cpu: Duration,
}

/// An instance made ahead of a call and never used. Fields drop in order: the store (which
/// returns the pooling slot to wasmtime) before the permit that lets a call take it.
struct Made {
    store: Store<CallState>,
    instance: Instance,
    slot: OwnedSemaphorePermit,
}

/// Fresh instances made ahead of calls: at most one per server and `cap` in all, oldest first.
///
/// A call still runs in an instance no call has used; making it after the previous call's
/// answer, off the request path, takes instantiation out of the call's latency. They hold pool
/// slots, so they are bounded, never take a slot a call waits for, and give theirs up when a
/// call finds none free.
pub(crate) struct ReadyInstances {
    cap: usize,
    entries: Mutex<VecDeque<Ready>>,
    made: AtomicU64,
    used: AtomicU64,
}

impl ReadyInstances {
    /// At most `cap` instances ready at once; `0` makes none.
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, entries: Mutex::new(VecDeque::new()), made: AtomicU64::new(0), used: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Ready>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Whether `server` has nothing ready (nor a failed attempt waiting to be billed).
    fn wants(&self, server: ServerId) -> bool {
        self.enabled() && !self.lock().iter().any(|ready| ready.server == server)
    }

    fn take(&self, server: ServerId) -> Option<Ready> {
        if !self.enabled() {
            return None;
        }
        let ready = {
            let mut entries = self.lock();
            let index = entries.iter().position(|ready| ready.server == server)?;
            entries.remove(index)
        };
        if ready.as_ref().is_some_and(|ready| ready.made.is_some()) {
            self.used.fetch_add(1, Ordering::Relaxed);
        }
        ready
    }

    /// Keeps `ready` unless its server has an entry already; the oldest goes when all `cap` are
    /// taken (a dropped failed attempt goes unbilled: bounded by one per call that succeeded).
    fn put(&self, ready: Ready) {
        // Dropped outside the lock: dropping a store resets its memory.
        let dropped = {
            let mut entries = self.lock();
            if entries.iter().any(|other| other.server == ready.server) {
                Some(ready)
            } else {
                if ready.made.is_some() {
                    self.made.fetch_add(1, Ordering::Relaxed);
                }
                entries.push_back(ready);
                if entries.len() > self.cap { entries.pop_front() } else { None }
            }
        };
        drop(dropped);
    }

    /// Drops the oldest instance ready, giving its slot back.
    fn evict_oldest(&self) {
        let oldest = {
            let mut entries = self.lock();
            entries.iter().position(|ready| ready.made.is_some()).and_then(|index| entries.remove(index))
        };
        drop(oldest);
    }

    /// Drops `server`'s ready instance, if any (the server is gone).
    pub(crate) fn forget(&self, server: ServerId) {
        let forgotten = {
            let mut entries = self.lock();
            entries.iter().position(|ready| ready.server == server).and_then(|index| entries.remove(index))
        };
        drop(forgotten);
    }

    pub(crate) fn stats(&self) -> ReadyStats {
        ReadyStats {
            made: self.made.load(Ordering::Relaxed),
            used: self.used.load(Ordering::Relaxed),
            held: self.lock().iter().filter(|ready| ready.made.is_some()).count(),
        }
    }
}

enum Stage {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

fn classify(error: &wasmtime::Error, state: &CallState, limits: StoreLimits) -> Failure {
    if state.timed_out() {
        return Failure::TimedOut(limits.call_timeout);
    }
    if state.memory_exhausted() {
        tracing::debug!(used = state.memory_used(), "wasm guest hit its memory limit");
        return Failure::OutOfMemory(limits.max_memory_bytes);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::TimedOut(limits.call_timeout),
        Some(Trap::StackOverflow) => Failure::Crashed("stack overflow (too deep recursion)".to_owned()),
        Some(trap) => Failure::Crashed(trap.to_string()),
        None => Failure::Crashed(error.to_string()),
    }
}

/// Calls the export in `instance`, or in a fresh instance of `guest` when none was made ahead.
async fn invoke(
    store: &mut Store<CallState>,
    guest: &Guest,
    instance: Option<Instance>,
    call: Export,
) -> Result<Answer, Stage> {
    let instance = match instance {
        Some(instance) => instance,
        None => guest.pre.instantiate_async(&mut *store).await.map_err(Stage::Instantiate)?,
    };
    let answer = match call {
        Export::Info => {
            let f = instance.get_typed_func::<(), (types::ServerInfo,)>(&mut *store, &guest.info);
            match f {
                Ok(f) => f.call_async(&mut *store, ()).await.map(|(info,)| Answer::Info(info)),
                Err(e) => Err(e),
            }
        }
        Export::ListTools => list(store, &instance, &guest.list_tools).await.map(Answer::Tools),
        Export::CallTool { name, arguments } => {
            json2(store, &instance, &guest.call_tool, &name, &arguments).await.map(Answer::Json)
        }
        Export::ListResources => list(store, &instance, &guest.list_resources).await.map(Answer::Resources),
        Export::ListResourceTemplates => {
            list(store, &instance, &guest.list_resource_templates).await.map(Answer::Templates)
        }
        Export::ReadResource { uri } => json1(store, &instance, &guest.read_resource, &uri).await.map(Answer::Json),
        Export::ListPrompts => list(store, &instance, &guest.list_prompts).await.map(Answer::Prompts),
        Export::GetPrompt { name, arguments } => {
            json2(store, &instance, &guest.get_prompt, &name, &arguments).await.map(Answer::Json)
        }
        Export::Complete { request } => json1(store, &instance, &guest.complete, &request).await.map(Answer::Json),
    };
    answer.map_err(Stage::Call)
}

type JsonResult = Result<String, types::Error>;

/// Calls an export `func() -> list<T>`.
async fn list<T>(
    store: &mut Store<CallState>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> wasmtime::Result<Vec<T>>
where
    T: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
{
    let f = instance.get_typed_func::<(), (Vec<T>,)>(&mut *store, index)?;
    Ok(f.call_async(&mut *store, ()).await?.0)
}

/// Calls an export `func(a: string) -> result<json, error>`.
async fn json1(
    store: &mut Store<CallState>,
    instance: &Instance,
    index: &ComponentExportIndex,
    a: &str,
) -> wasmtime::Result<JsonResult> {
    let f = instance.get_typed_func::<(&str,), (JsonResult,)>(&mut *store, index)?;
    Ok(f.call_async(&mut *store, (a,)).await?.0)
}

/// Calls an export `func(a: string, b: json) -> result<json, error>`.
async fn json2(
    store: &mut Store<CallState>,
    instance: &Instance,
    index: &ComponentExportIndex,
    a: &str,
    b: &str,
) -> wasmtime::Result<JsonResult> {
    let f = instance.get_typed_func::<(&str, &str), (JsonResult,)>(&mut *store, index)?;
    Ok(f.call_async(&mut *store, (a, b)).await?.0)
}

/// Measures the CPU time spent polling a future: the guest runs on a fiber inside `poll`, on
/// the polling thread, so the time inside each poll is the call's CPU time (guest code plus the
/// host work it causes), wherever the executor moves the task.
///
/// The time is read from the monotonic clock (a vDSO read, tens of nanoseconds), not from the
/// thread's CPU clock (a system call: about 1 µs each on a virtual machine, two per poll, on
/// every call). The two differ only when the kernel preempts the thread in the middle of a poll;
/// that time then counts as the call's.
struct Metered<F> {
    inner: Pin<Box<F>>,
    cpu: Duration,
}

impl<F: Future> Metered<F> {
    fn new(inner: F) -> Self {
        Self { inner: Box::pin(inner), cpu: Duration::ZERO }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let before = Instant::now();
        let poll = self.inner.as_mut().poll(cx);
        self.cpu += before.elapsed();
        match poll {
            Poll::Ready(output) => Poll::Ready((output, self.cpu)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1536 << 10), "1536 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn failures_explain_themselves() {
        assert_eq!(Failure::TimedOut(Duration::from_secs(10)).message(), "the server exceeded its 10 s time limit");
        assert_eq!(Failure::OutOfMemory(64 << 20).message(), "the server ran out of memory (64 MiB limit)");
        assert_eq!(Failure::Crashed("boom".into()).message(), "the server crashed: boom");
    }

    #[tokio::test]
    async fn metering_counts_cpu_spent_in_poll() {
        let (value, cpu) = Metered::new(async {
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            x
        })
        .await;
        assert!(value > 0);
        assert!(cpu >= Duration::from_millis(10), "{cpu:?}");
    }
}
