#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The writer against an in-memory sink: batching, per-tenant chains, outages, a full queue and
//! a crash, each ending with every event stored exactly once and chains that verify.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_audit::sink::SinkError;
use berth_audit::spool::Spool;
use berth_audit::{AuditEvent, AuditSink, Auditor, Flushed, Kind, MemorySink, WriterSettings, verify};
use berth_core::TenantId;
use futures::future::BoxFuture;

fn settings(spool: &std::path::Path) -> WriterSettings {
    WriterSettings {
        capacity: 256,
        batch_max: 100,
        batch_wait: Duration::from_millis(5),
        retry_every: Duration::from_millis(50),
        spool_dir: Some(spool.to_path_buf()),
        node: "test".into(),
        ..WriterSettings::default()
    }
}

fn event(tenant: TenantId, n: usize) -> AuditEvent {
    let mut e = AuditEvent::new(tenant, Kind::Call, "tools/call", "api-key:k");
    e.name = Some(format!("tool-{n}"));
    e
}

/// Flushes until the events are stored (the writer replays on its own schedule).
async fn settle(auditor: &Auditor) {
    for _ in 0..200 {
        if auditor.flush().await == Some(Flushed::Stored) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the writer never caught up");
}

fn assert_exactly_once(sink: &MemorySink, sent: &[AuditEvent], tenants: &[TenantId]) {
    let stored = sink.events();
    let ids: HashSet<_> = stored.iter().map(|e| e.event.id).collect();
    assert_eq!(ids.len(), stored.len(), "an event was stored twice");
    assert_eq!(stored.len(), sent.len(), "an event was lost");
    for e in sent {
        assert!(ids.contains(&e.id));
    }
    for tenant in tenants {
        let chain = sink.chain(*tenant);
        let verified = verify(&chain).unwrap();
        assert_eq!(verified.events as usize, sent.iter().filter(|e| e.tenant_id == *tenant).count());
        assert!(chain.iter().all(|e| e.event.tenant_id == *tenant), "a chain holds another tenant's event");
    }
}

#[tokio::test]
async fn events_are_batched_and_chained_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let (auditor, writer) = Auditor::start(sink.clone(), settings(dir.path())).unwrap();
    tokio::spawn(writer.run());
    let (acme, globex) = (TenantId::new(), TenantId::new());
    let mut sent = Vec::new();
    for n in 0..1000 {
        let e = event(if n % 3 == 0 { globex } else { acme }, n);
        sent.push(e.clone());
        auditor.record(e);
        if n % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    settle(&auditor).await;
    assert_exactly_once(&sink, &sent, &[acme, globex]);
    assert!(sink.writes() < 100, "events were batched: {} writes", sink.writes());
    assert!(sink.events().iter().all(|e| e.event.node == "test"));
}

#[tokio::test]
async fn a_sink_outage_spools_and_replays_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let (auditor, writer) = Auditor::start(sink.clone(), settings(dir.path())).unwrap();
    tokio::spawn(writer.run());
    let tenant = TenantId::new();
    let mut sent = Vec::new();
    for n in 0..50 {
        sent.push(event(tenant, n));
        auditor.record(sent[n].clone());
    }
    settle(&auditor).await;
    sink.set_down(true);
    for n in 50..650 {
        sent.push(event(tenant, n));
        auditor.record(sent[n].clone());
        if n % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(auditor.flush().await, Some(Flushed::Spooled));
    assert!(!Spool::open(dir.path(), u64::MAX).unwrap().is_empty(), "events wait on disk");
    assert_eq!(sink.events().len(), 50);
    sink.set_down(false);
    settle(&auditor).await;
    assert_exactly_once(&sink, &sent, &[tenant]);
    assert!(Spool::open(dir.path(), u64::MAX).unwrap().is_empty(), "the spool was emptied");
}

#[tokio::test]
async fn a_full_queue_spools_instead_of_blocking_or_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let mut s = settings(dir.path());
    s.capacity = 4;
    let (auditor, writer) = Auditor::start(sink.clone(), s).unwrap();
    let tenant = TenantId::new();
    let sent: Vec<AuditEvent> = (0..100).map(|n| event(tenant, n)).collect();
    for e in &sent {
        auditor.record(e.clone());
    }
    tokio::spawn(writer.run());
    settle(&auditor).await;
    assert_exactly_once(&sink, &sent, &[tenant]);
}

#[tokio::test]
async fn events_spooled_before_a_crash_are_replayed_when_the_next_writer_starts() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::new();
    let sent: Vec<AuditEvent> = (0..30).map(|n| event(tenant, n)).collect();
    {
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        spool.append(&sent[..20], true).unwrap();
        spool.append(&sent[20..], true).unwrap();
        // The process dies here: no rotation, no replay.
    }
    let sink = Arc::new(MemorySink::new());
    let (auditor, writer) = Auditor::start(sink.clone(), settings(dir.path())).unwrap();
    tokio::spawn(writer.run());
    settle(&auditor).await;
    assert_exactly_once(&sink, &sent, &[tenant]);
}

/// Stores the batch, then reports a failure once: the commit happened but its answer was lost.
struct LostAck {
    inner: MemorySink,
    fail_after_store: AtomicUsize,
}

impl AuditSink for LostAck {
    fn write<'a>(&'a self, events: &'a [AuditEvent], replay: bool) -> BoxFuture<'a, Result<usize, SinkError>> {
        Box::pin(async move {
            let stored = self.inner.write(events, replay).await?;
            if self.fail_after_store.fetch_sub(1, Ordering::SeqCst) > 0 {
                return Err(SinkError::Unavailable("connection reset after COMMIT".into()));
            }
            Ok(stored)
        })
    }
}

#[tokio::test]
async fn a_batch_whose_commit_outcome_was_lost_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(LostAck { inner: MemorySink::new(), fail_after_store: AtomicUsize::new(1) });
    let (auditor, writer) = Auditor::start(sink.clone(), settings(dir.path())).unwrap();
    tokio::spawn(writer.run());
    let tenant = TenantId::new();
    let sent: Vec<AuditEvent> = (0..40).map(|n| event(tenant, n)).collect();
    for e in &sent {
        auditor.record(e.clone());
    }
    settle(&auditor).await;
    assert_exactly_once(&sink.inner, &sent, &[tenant]);
}

#[tokio::test]
async fn a_full_batch_is_written_without_waiting_for_the_batch_window() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let mut s = settings(dir.path());
    // The writer sleeps through a batch window it would never outlast here: only a full batch
    // queued by the producers wakes it early.
    s.batch_wait = Duration::from_secs(60);
    let (auditor, writer) = Auditor::start(sink.clone(), s).unwrap();
    tokio::spawn(writer.run());
    let (acme, globex) = (TenantId::new(), TenantId::new());
    let sent: Vec<AuditEvent> = (0..201).map(|n| event(if n % 2 == 0 { acme } else { globex }, n)).collect();
    for e in &sent {
        auditor.record(e.clone());
        tokio::task::yield_now().await;
    }
    let started = std::time::Instant::now();
    while sink.events().len() < 200 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = sink.events().len();
    assert!((200..=201).contains(&stored), "full batches were written early: {stored} stored");
    // The last event waits for its window or a flush.
    assert_eq!(auditor.flush().await, Some(Flushed::Stored));
    assert_exactly_once(&sink, &sent, &[acme, globex]);
}
