//! Where sealed events go: the [`AuditSink`] port and an in-memory implementation.
//!
//! The PostgreSQL sink lives in `berth-storage` (`audit::PgSink`). A sink seals each tenant's
//! events into its chain at insert time and must be idempotent by event id when asked: the
//! writer replays spooled events after a failure whose outcome it could not know, and then
//! says some may already be stored.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use berth_core::TenantId;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::chain::{Head, SealedEvent};
use crate::event::AuditEvent;

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The store is unreachable or failing; retry later (the writer spools meanwhile).
    #[error("the audit store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused the batch (retrying it as is will not help).
    #[error("the audit store refused the batch: {0}")]
    Rejected(String),
}

/// A store of audit events.
pub trait AuditSink: Send + Sync + 'static {
    /// Seals and stores `events` (in order within each tenant); returns how many were newly
    /// stored. All or nothing. With `replay`, some events may have been stored by an earlier
    /// attempt and must be skipped; without, none was ever attempted (the writer's first try
    /// of a batch), so the sink may skip that check.
    fn write<'a>(&'a self, events: &'a [AuditEvent], replay: bool) -> BoxFuture<'a, Result<usize, SinkError>>;
}

/// An in-memory sink for tests and local runs; [`MemorySink::set_down`] simulates an outage.
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    down: bool,
    heads: HashMap<TenantId, Head>,
    ids: HashSet<Uuid>,
    events: Vec<SealedEvent>,
    writes: usize,
}

impl MemorySink {
    /// An empty, reachable sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every write fail (`true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.down = down;
        }
    }

    /// Every stored event, in insertion order.
    pub fn events(&self) -> Vec<SealedEvent> {
        self.state.lock().map(|s| s.events.clone()).unwrap_or_default()
    }

    /// Stored events of one tenant, in chain order.
    pub fn chain(&self, tenant: TenantId) -> Vec<SealedEvent> {
        self.events().into_iter().filter(|e| e.event.tenant_id == tenant).collect()
    }

    /// Successful writes so far.
    pub fn writes(&self) -> usize {
        self.state.lock().map(|s| s.writes).unwrap_or_default()
    }
}

impl AuditSink for MemorySink {
    fn write<'a>(&'a self, events: &'a [AuditEvent], _replay: bool) -> BoxFuture<'a, Result<usize, SinkError>> {
        Box::pin(async move {
            let mut state = self.state.lock().map_err(|_| SinkError::Unavailable("poisoned".into()))?;
            if state.down {
                return Err(SinkError::Unavailable("the memory sink is down".into()));
            }
            let mut stored = 0;
            for event in events {
                if !state.ids.insert(event.id) {
                    continue;
                }
                let head = state.heads.entry(event.tenant_id).or_insert(Head::EMPTY);
                let sealed = head.seal(event.clone());
                state.events.push(sealed);
                stored += 1;
            }
            state.writes += 1;
            Ok(stored)
        })
    }
}
