//! The batched, asynchronous audit writer.
//!
//! Producers call [`Auditor::record`], which never blocks and never waits for I/O in the common
//! case: the event goes into a bounded channel ([`WriterSettings::capacity`]). One [`Writer`]
//! task per process takes up to [`WriterSettings::batch_max`] events or whatever arrived within
//! [`WriterSettings::batch_wait`] and hands the batch to the [`AuditSink`]. While a batch fills,
//! the writer sleeps instead of waiting on the channel, so recording an event wakes no other
//! thread; a producer wakes it early only when a full batch (or a flush) is waiting.
//!
//! - **Sink down.** The batch is appended to the [`Spool`] and synced; the writer is then
//!   *degraded*: further batches go straight to the spool, and every
//!   [`WriterSettings::retry_every`] it replays the spool, oldest segment first. Once the spool
//!   is empty, batches go to the sink again. Each event keeps its id, and the sink skips ids it
//!   already stored, so a batch whose commit outcome was unknown is stored exactly once.
//! - **Channel full.** The producer appends the event to the spool itself (not synced: it
//!   survives a process crash, not a power cut) and the writer replays it later. Memory stays
//!   bounded by the channel; only a full spool ([`WriterSettings::spool_max_bytes`]) or a
//!   missing one drops events, counted in `berth_audit_events_total{result="dropped"}`.
//! - **Refused batch.** A batch the sink rejects (not merely unavailable) is retried event by
//!   event; events still refused go to `rejected.jsonl` in the spool directory and the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::event::AuditEvent;
use crate::sink::{AuditSink, SinkError};
use crate::spool::Spool;

/// Tunables of the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Events queued in memory before producers spool them themselves.
    pub capacity: usize,
    /// Largest batch handed to the sink.
    pub batch_max: usize,
    /// How long a batch waits to fill.
    pub batch_wait: Duration,
    /// How often a degraded writer tries to replay the spool.
    pub retry_every: Duration,
    /// How long one sink write may take before it counts as failed.
    pub write_timeout: Duration,
    /// Where events wait when the sink is down (`None`: they are dropped).
    pub spool_dir: Option<PathBuf>,
    /// Largest spool.
    pub spool_max_bytes: u64,
    /// Recorded in every event (`node`).
    pub node: String,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            capacity: 8192,
            batch_max: 500,
            batch_wait: Duration::from_millis(50),
            retry_every: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
            spool_dir: None,
            spool_max_bytes: 1 << 30,
            node: String::new(),
        }
    }
}

/// Where a [`Auditor::flush`] left the events recorded before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Stored by the sink.
    Stored,
    /// Safe in the spool; the sink will get them when it is back.
    Spooled,
}

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<Flushed>),
}

struct Shared {
    tx: mpsc::Sender<Msg>,
    /// Wakes a writer filling a batch: a full batch is queued, or a flush is waiting.
    wake: Arc<Notify>,
    /// Queued events that make a full batch.
    batch_max: usize,
    spool: Option<Arc<Spool>>,
    /// A producer spooled an event: the writer must replay.
    overflowed: AtomicBool,
    node: String,
}

/// A cloneable handle to record events.
#[derive(Clone)]
pub struct Auditor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").field("node", &self.shared.node).finish_non_exhaustive()
    }
}

fn count(result: &'static str, n: usize) {
    metrics::counter!("berth_audit_events_total", "result" => result).increment(n as u64);
}

impl Auditor {
    /// A handle and its writer; run the writer with [`Writer::run`] on the runtime.
    pub fn start(sink: Arc<dyn AuditSink>, settings: WriterSettings) -> std::io::Result<(Auditor, Writer)> {
        let spool = match &settings.spool_dir {
            Some(dir) => Some(Arc::new(Spool::open(dir, settings.spool_max_bytes)?)),
            None => None,
        };
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            tx,
            wake: wake.clone(),
            batch_max: settings.batch_max.max(1),
            spool: spool.clone(),
            overflowed: AtomicBool::new(false),
            node: settings.node.clone(),
        });
        let writer = Writer { rx, wake, sink, spool, settings, shared: Arc::downgrade(&shared) };
        Ok((Auditor { shared }, writer))
    }

    /// A handle that drops everything (a build or test without an audit trail).
    pub fn disabled() -> Auditor {
        let (tx, _rx) = mpsc::channel(1);
        Auditor {
            shared: Arc::new(Shared {
                tx,
                wake: Arc::new(Notify::new()),
                batch_max: 1,
                spool: None,
                overflowed: AtomicBool::new(false),
                node: String::new(),
            }),
        }
    }

    /// The node name recorded in events.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Records an event; never blocks on the database.
    pub fn record(&self, mut event: AuditEvent) {
        if event.node.is_empty() {
            event.node.clone_from(&self.shared.node);
        }
        let tx = &self.shared.tx;
        match tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {
                if tx.max_capacity() - tx.capacity() >= self.shared.batch_max {
                    self.shared.wake.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(Msg::Event(event))) => {
                metrics::counter!("berth_audit_queue_full_total").increment(1);
                match &self.shared.spool {
                    Some(spool) => match spool.append(std::slice::from_ref(&*event), false) {
                        Ok(()) => {
                            self.shared.overflowed.store(true, Ordering::Release);
                            count("spooled", 1);
                        }
                        Err(e) => {
                            tracing::error!(error.message = %e, event_id = %event.id, "audit event dropped");
                            count("dropped", 1);
                        }
                    },
                    None => count("dropped", 1),
                }
            }
            Err(_) => count("dropped", 1),
        }
    }

    /// Waits until every event recorded before this call is stored or spooled (`None` when the
    /// writer is gone).
    pub async fn flush(&self) -> Option<Flushed> {
        let (tx, rx) = oneshot::channel();
        self.shared.tx.send(Msg::Flush(tx)).await.ok()?;
        self.shared.wake.notify_one();
        rx.await.ok()
    }
}

/// The task that writes batches; owned by whoever runs it.
pub struct Writer {
    rx: mpsc::Receiver<Msg>,
    wake: Arc<Notify>,
    sink: Arc<dyn AuditSink>,
    spool: Option<Arc<Spool>>,
    settings: WriterSettings,
    shared: std::sync::Weak<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Writer {
    /// Writes until every [`Auditor`] is dropped, then stores or spools what is left.
    pub async fn run(mut self) {
        let mut degraded = self.spool.as_ref().is_some_and(|s| !s.is_empty());
        if degraded {
            tracing::info!("audit events from an earlier run are spooled; replaying them");
        }
        let mut retry_at = Instant::now();
        let mut batch: Vec<AuditEvent> = Vec::with_capacity(self.settings.batch_max);
        let mut waiters: Vec<oneshot::Sender<Flushed>> = Vec::new();
        loop {
            let mut closed = false;
            let first = if degraded {
                tokio::select! {
                    msg = self.rx.recv() => Some(msg),
                    () = tokio::time::sleep_until(retry_at) => None,
                }
            } else {
                Some(self.rx.recv().await)
            };
            match first {
                Some(None) => closed = true,
                Some(Some(msg)) => take(msg, &mut batch, &mut waiters),
                None => {}
            }
            if !closed && !batch.is_empty() && waiters.is_empty() {
                closed = self.gather(&mut batch, &mut waiters).await;
            }
            if self.shared.upgrade().is_some_and(|s| s.overflowed.swap(false, Ordering::AcqRel)) {
                degraded = true;
            }
            if !batch.is_empty() {
                let events = std::mem::take(&mut batch);
                if degraded {
                    self.spool(events).await;
                } else if let Err(e) = self.store(&events, false).await {
                    tracing::warn!(error.message = %e, events = events.len(), "audit store unavailable; spooling");
                    self.spool(events).await;
                    degraded = self.spool.is_some();
                    retry_at = Instant::now() + self.settings.retry_every;
                }
            }
            if degraded && (Instant::now() >= retry_at || closed) {
                match self.replay().await {
                    Ok(()) => {
                        tracing::info!("audit spool replayed; writing to the store again");
                        degraded = false;
                    }
                    Err(e) => {
                        tracing::debug!(error.message = %e, "audit spool replay failed; will retry");
                        retry_at = Instant::now() + self.settings.retry_every;
                    }
                }
            }
            let flushed = if degraded { Flushed::Spooled } else { Flushed::Stored };
            for waiter in waiters.drain(..) {
                let _ = waiter.send(flushed);
            }
            if let Some(spool) = &self.spool {
                metrics::gauge!("berth_audit_spool_bytes").set(spool.bytes() as f64);
            }
            if closed {
                return;
            }
        }
    }

    /// Fills `batch` up to the maximum or the wait; returns whether the channel closed.
    ///
    /// It sleeps rather than waiting on the channel: a waiting receiver would be woken by every
    /// event, one cross-thread wake-up per call on the request path. Producers wake it early
    /// (`wake`) only once a full batch is queued or a flush is waiting.
    async fn gather(&mut self, batch: &mut Vec<AuditEvent>, waiters: &mut Vec<oneshot::Sender<Flushed>>) -> bool {
        let deadline = Instant::now() + self.settings.batch_wait;
        loop {
            while batch.len() < self.settings.batch_max && waiters.is_empty() {
                match self.rx.try_recv() {
                    Ok(msg) => take(msg, batch, waiters),
                    Err(mpsc::error::TryRecvError::Disconnected) => return true,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                }
            }
            if batch.len() >= self.settings.batch_max || !waiters.is_empty() || Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    async fn write(&self, events: &[AuditEvent], replay: bool) -> Result<usize, SinkError> {
        match tokio::time::timeout(self.settings.write_timeout, self.sink.write(events, replay)).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::Unavailable("the write timed out".into())),
        }
    }

    /// Stores a batch (`replay`: some events may be stored already); a rejected batch is
    /// retried event by event.
    async fn store(&self, events: &[AuditEvent], replay: bool) -> Result<(), SinkError> {
        match self.write(events, replay).await {
            Ok(_) => {
                count("stored", events.len());
                Ok(())
            }
            Err(SinkError::Rejected(why)) => {
                tracing::warn!(reason = %why, "audit batch refused; storing its events one by one");
                for event in events {
                    match self.write(std::slice::from_ref(event), true).await {
                        Ok(_) => count("stored", 1),
                        Err(SinkError::Rejected(why)) => self.reject(event, &why).await,
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn reject(&self, event: &AuditEvent, why: &str) {
        tracing::error!(event_id = %event.id, tenant_id = %event.tenant_id, reason = why, "audit event refused by the store");
        count("rejected", 1);
        if let Some(spool) = &self.spool {
            let path = spool.dir().join("rejected.jsonl");
            let line = serde_json::to_string(event).unwrap_or_default();
            let _ = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{line}"))
            })
            .await;
        }
    }

    async fn spool(&self, events: Vec<AuditEvent>) {
        let n = events.len();
        let Some(spool) = self.spool.clone() else {
            tracing::error!(events = n, "audit store unavailable and no spool configured: events dropped");
            count("dropped", n);
            return;
        };
        let written = tokio::task::spawn_blocking(move || spool.append(&events, true)).await;
        match written {
            Ok(Ok(())) => count("spooled", n),
            Ok(Err(e)) => {
                tracing::error!(error.message = %e, events = n, "audit events dropped");
                count("dropped", n);
            }
            Err(e) => {
                tracing::error!(error.message = %e, events = n, "audit spool task failed: events dropped");
                count("dropped", n);
            }
        }
    }

    /// Sends every spooled segment to the sink, oldest first.
    async fn replay(&self) -> Result<(), SinkError> {
        let Some(spool) = self.spool.clone() else { return Ok(()) };
        let rotating = spool.clone();
        let segments = tokio::task::spawn_blocking(move || rotating.rotate())
            .await
            .map_err(|e| SinkError::Unavailable(e.to_string()))?
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        for segment in segments {
            let path = segment.clone();
            let events = tokio::task::spawn_blocking(move || Spool::read(&path))
                .await
                .map_err(|e| SinkError::Unavailable(e.to_string()))?
                .map_err(|e| SinkError::Unavailable(e.to_string()))?;
            for chunk in events.chunks(self.settings.batch_max.max(1)) {
                self.store(chunk, true).await?;
            }
            spool.remove(&segment).map_err(|e| SinkError::Unavailable(e.to_string()))?;
            tracing::info!(events = events.len(), segment = %segment.display(), "replayed spooled audit events");
        }
        Ok(())
    }
}

fn take(msg: Msg, batch: &mut Vec<AuditEvent>, waiters: &mut Vec<oneshot::Sender<Flushed>>) {
    match msg {
        Msg::Event(event) => batch.push(*event),
        Msg::Flush(waiter) => waiters.push(waiter),
    }
}
