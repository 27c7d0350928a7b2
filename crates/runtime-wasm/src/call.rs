//! One call into a guest: a slot, a fresh store and instance, the export, the limits, and the
//! accounting of its CPU time.
//!
//! A call ends in one of three ways: the guest answers; it fails in a way that is its own fault
//! ([`Failure::TimedOut`], [`Failure::OutOfMemory`], [`Failure::Crashed`]); or Berth cannot run
//! it ([`Failure::Busy`], [`Failure::Unavailable`]). Nothing a guest does panics the host.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, Trap};

use crate::CallStats;
use crate::bindings::{McpServerPre, types};
use crate::store::{CallContext, CallState, StoreLimits, new_store};

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
}

impl Executor {
    /// Runs `call` in a fresh instance of `pre` for `context`, measuring its CPU and wall time.
    pub(crate) async fn run(
        &self,
        pre: &McpServerPre<CallState>,
        context: CallContext,
        call: Export,
    ) -> (Result<Answer, Failure>, CallStats) {
        let started = Instant::now();
        let export = call.export();
        let (outcome, cpu) = Metered::new(self.run_unmetered(pre, context, call)).await;
        let stats = CallStats { cpu, wall: started.elapsed() };
        metrics::histogram!("berth_wasm_call_cpu_seconds", "export" => export).record(stats.cpu.as_secs_f64());
        metrics::histogram!("berth_wasm_call_wall_seconds", "export" => export).record(stats.wall.as_secs_f64());
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

    async fn run_unmetered(
        &self,
        pre: &McpServerPre<CallState>,
        context: CallContext,
        call: Export,
    ) -> Result<Answer, Failure> {
        let timeout = self.limits.call_timeout;
        let _slot = match tokio::time::timeout(timeout, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(Failure::Busy),
        };
        let mut store = new_store(&self.engine, self.limits, context);
        // The epoch deadline interrupts a guest that computes; this timeout also ends a call
        // blocked in the host (an outgoing request, a client that does not answer).
        let result = tokio::time::timeout(timeout, invoke(&mut store, pre, call)).await;
        let state = store.data();
        let (stdout, stderr) = state.stdio();
        if !stdout.is_empty() || !stderr.is_empty() {
            // Tenant data: debug level only.
            tracing::debug!(%stdout, %stderr, "wasm guest output");
        }
        match result {
            Err(_elapsed) => Err(Failure::TimedOut(timeout)),
            Ok(Ok(answer)) => Ok(answer),
            // Not the guest's doing (no trap, no limit hit): Berth could not make the instance.
            Ok(Err(Stage::Instantiate(e)))
                if !state.timed_out() && !state.memory_exhausted() && e.downcast_ref::<Trap>().is_none() =>
            {
                Err(Failure::Unavailable(e.to_string()))
            }
            Ok(Err(Stage::Instantiate(e) | Stage::Call(e))) => Err(classify(&e, state, self.limits)),
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

async fn invoke(store: &mut Store<CallState>, pre: &McpServerPre<CallState>, call: Export) -> Result<Answer, Stage> {
    let instance = pre.instantiate_async(&mut *store).await.map_err(Stage::Instantiate)?;
    let server = instance.berth_mcp_server();
    let answer = match call {
        Export::Info => server.call_info(&mut *store).await.map(Answer::Info),
        Export::ListTools => server.call_list_tools(&mut *store).await.map(Answer::Tools),
        Export::CallTool { name, arguments } => {
            server.call_call_tool(&mut *store, &name, &arguments).await.map(Answer::Json)
        }
        Export::ListResources => server.call_list_resources(&mut *store).await.map(Answer::Resources),
        Export::ListResourceTemplates => server.call_list_resource_templates(&mut *store).await.map(Answer::Templates),
        Export::ReadResource { uri } => server.call_read_resource(&mut *store, &uri).await.map(Answer::Json),
        Export::ListPrompts => server.call_list_prompts(&mut *store).await.map(Answer::Prompts),
        Export::GetPrompt { name, arguments } => {
            server.call_get_prompt(&mut *store, &name, &arguments).await.map(Answer::Json)
        }
        Export::Complete { request } => server.call_complete(&mut *store, &request).await.map(Answer::Json),
    };
    answer.map_err(Stage::Call)
}

/// The CPU time the current thread has used.
fn thread_cpu_time() -> Option<Duration> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    Some(Duration::new(u64::try_from(now.tv_sec()).ok()?, u32::try_from(now.tv_nsec()).ok()?))
}

/// Measures the CPU time spent polling a future: the guest runs on a fiber inside `poll`, on
/// the polling thread, so the thread's CPU clock across each poll is the call's CPU time (guest
/// code plus the host work it causes), wherever the executor moves the task.
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
        let before = thread_cpu_time();
        let poll = self.inner.as_mut().poll(cx);
        if let (Some(before), Some(after)) = (before, thread_cpu_time()) {
            self.cpu += after.saturating_sub(before);
        }
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
