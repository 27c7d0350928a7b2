//! Quota admission and usage counting on one data-plane node, without a database round trip
//! per call.
//!
//! - **Request rate**: a token bucket per tenant and per key, in memory. Each node enforces
//!   `ceil(limit / nodes)` (`BERTH_QUOTA_NODES`), so N nodes behind a balancer allow the limit
//!   in total; a node receiving more than its share refuses earlier.
//! - **Monthly limits** (`tool_calls_per_month`, `wasm_cpu_ms_per_month`): the last total read
//!   from the database plus what this node counted since ([`berth_quotas::Ledger`]). A
//!   flusher adds the node's deltas to `usage_daily` every [`QuotaSettings::flush_every`] and
//!   reads the month's totals back. Each node can therefore overshoot by what the other nodes
//!   admitted in one flush interval plus one refresh (about two seconds of their traffic), and
//!   by the calls it admits for a tenant before its first refresh. While the database is down
//!   the deltas stay in memory and the node keeps enforcing what it knows.
//! - **Concurrent sessions**: checked by the session registry when a session opens, per node,
//!   with the same `ceil(limit / nodes)` share.
//! - `max_containers` is stored with the plan and read by the container runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_core::{ApiKeyId, ServerId, TenantId};
use berth_quotas::{Counts, DeltaKey, Exceeded, Ledger, Limit, Limits, QuotaScope, TokenBucket, next_month_start};
use berth_sessions::{CallOutcome, CallRecord, Owner, SessionLimits};
use berth_storage::PgPool;
use berth_storage::quotas::Policy;
use chrono::Utc;

use crate::accounting::CallMeta;

/// Quota tunables of the node.
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    /// Data-plane nodes sharing the rate and session limits.
    pub nodes: u32,
    /// How often usage deltas are written and totals read back.
    pub flush_every: Duration,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self { nodes: 1, flush_every: Duration::from_secs(1) }
    }
}

/// What one HTTP request asks of the quotas.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    /// JSON-RPC requests it carries (at least 1).
    pub requests: u32,
    /// `tools/call` requests among them.
    pub tool_calls: u32,
    /// Requests a backend answers (they use CPU on WASM servers).
    pub backend_calls: u32,
}

const MAX_BUCKETS: usize = 100_000;
/// Tenants whose totals are refreshed: those seen in this window.
const WATCH_FOR: Duration = Duration::from_secs(600);

/// This node's quota state.
pub struct Quotas {
    settings: QuotaSettings,
    buckets: Mutex<HashMap<(TenantId, Option<ApiKeyId>), TokenBucket>>,
    ledger: Mutex<Ledger>,
    watched: Mutex<HashMap<TenantId, Instant>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::new(QuotaSettings::default())
    }
}

fn monthly(limit: Limit, scope: QuotaScope, allowed: Option<u64>, used: u64, wanted: u64) -> Result<(), Exceeded> {
    let Some(allowed) = allowed else { return Ok(()) };
    if used.saturating_add(wanted) <= allowed {
        return Ok(());
    }
    let now = Utc::now();
    let next = next_month_start(now);
    Err(Exceeded {
        limit,
        scope,
        allowed,
        remaining: allowed.saturating_sub(used),
        retry_after: (next - now).to_std().unwrap_or(Duration::from_secs(1)),
        window: (next - berth_quotas::month_start(now)).to_std().unwrap_or(Duration::from_secs(1)),
    })
}

impl Quotas {
    /// Empty state.
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Ledger::new(Utc::now())),
            watched: Mutex::new(HashMap::new()),
        }
    }

    /// This node's share of a per-node limit.
    fn share(&self, limit: u32) -> u32 {
        limit.div_ceil(self.settings.nodes.max(1)).max(1)
    }

    /// Session caps for a caller.
    pub fn session_limits(&self, policy: &Policy, key: Option<ApiKeyId>) -> SessionLimits {
        let key_limits = key.and_then(|k| policy.keys.get(&k));
        SessionLimits {
            per_tenant: policy.tenant.max_sessions.map(|n| self.share(n) as usize),
            per_principal: key_limits.and_then(|l| l.max_sessions).map(|n| self.share(n) as usize),
        }
    }

    /// The `max_sessions` refusal for a session cap `allowed` of `scope`.
    pub fn sessions_exceeded(scope: QuotaScope, allowed: usize) -> Exceeded {
        Exceeded {
            limit: Limit::MaxSessions,
            scope,
            allowed: allowed as u64,
            remaining: 0,
            // Sessions end on DELETE or idle expiry; the registry sweeps every 15 s.
            retry_after: Duration::from_secs(15),
            window: Duration::from_secs(15),
        }
    }

    fn watch(&self, tenant: TenantId) {
        if let Ok(mut watched) = self.watched.lock() {
            watched.insert(tenant, Instant::now());
        }
    }

    /// Admits one HTTP request of `tenant` (through `key`) to `server`, or says which limit it
    /// exceeds. Admitted `tools/call` requests count against the month at once.
    pub fn admit(
        &self,
        policy: &Policy,
        tenant: TenantId,
        key: Option<ApiKeyId>,
        server: ServerId,
        wasm: bool,
        demand: Demand,
    ) -> Result<(), Exceeded> {
        let key_limits = key.and_then(|k| policy.keys.get(&k)).copied().unwrap_or_default();
        let plan = policy.tenant;
        let limited = |l: &Limits| {
            l.requests_per_minute.is_some() || l.tool_calls_per_month.is_some() || l.wasm_cpu_ms_per_month.is_some()
        };
        if !limited(&plan) && !limited(&key_limits) {
            if demand.tool_calls > 0 {
                self.reserve(tenant, key, server, demand.tool_calls);
            }
            return Ok(());
        }
        self.watch(tenant);
        let now = Utc::now();
        if let Ok(ledger) = self.ledger.lock() {
            let (tenant_calls, tenant_cpu) = ledger.used(tenant, None, now);
            let (key_calls, key_cpu) = key.map_or((0, 0), |k| ledger.used(tenant, Some(k), now));
            drop(ledger);
            let calls = u64::from(demand.tool_calls);
            if calls > 0 {
                monthly(Limit::ToolCallsPerMonth, QuotaScope::Tenant, plan.tool_calls_per_month, tenant_calls, calls)?;
                monthly(Limit::ToolCallsPerMonth, QuotaScope::Key, key_limits.tool_calls_per_month, key_calls, calls)?;
            }
            if wasm && demand.backend_calls > 0 {
                // The CPU budget is spent once it is used up; a call may overshoot by its own time.
                monthly(
                    Limit::WasmCpuMsPerMonth,
                    QuotaScope::Tenant,
                    plan.wasm_cpu_ms_per_month,
                    tenant_cpu / 1000,
                    1,
                )?;
                monthly(
                    Limit::WasmCpuMsPerMonth,
                    QuotaScope::Key,
                    key_limits.wasm_cpu_ms_per_month,
                    key_cpu / 1000,
                    1,
                )?;
            }
        }
        self.take_tokens(tenant, key, plan.requests_per_minute, key_limits.requests_per_minute, demand.requests)?;
        if demand.tool_calls > 0 {
            self.reserve(tenant, key, server, demand.tool_calls);
        }
        Ok(())
    }

    fn take_tokens(
        &self,
        tenant: TenantId,
        key: Option<ApiKeyId>,
        plan: Option<u32>,
        own: Option<u32>,
        n: u32,
    ) -> Result<(), Exceeded> {
        if plan.is_none() && own.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_BUCKETS {
            buckets.clear();
        }
        let mut wanted = Vec::with_capacity(2);
        if let Some(rate) = plan {
            wanted.push(((tenant, None), self.share(rate), QuotaScope::Tenant));
        }
        if let (Some(rate), Some(k)) = (own, key) {
            wanted.push(((tenant, Some(k)), self.share(rate), QuotaScope::Key));
        }
        for (id, rate, scope) in &wanted {
            let bucket = buckets.entry(*id).or_insert_with(|| TokenBucket::new(*rate, now));
            if bucket.per_minute() != *rate {
                bucket.set_rate(*rate, now);
            }
            if let Err(wait) = bucket.check(n, now) {
                return Err(Exceeded {
                    limit: Limit::RequestsPerMinute,
                    scope: *scope,
                    allowed: u64::from(*rate),
                    remaining: bucket.remaining(),
                    retry_after: wait,
                    window: Duration::from_secs(60),
                });
            }
        }
        for (id, _, _) in &wanted {
            if let Some(bucket) = buckets.get_mut(id) {
                bucket.take(n);
            }
        }
        Ok(())
    }

    fn reserve(&self, tenant: TenantId, key: Option<ApiKeyId>, server: ServerId, calls: u32) {
        let now = Utc::now();
        let row = DeltaKey { tenant, day: now.date_naive(), server, key };
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.record(row, Counts { tool_calls: u64::from(calls), ..Counts::default() }, now);
        }
    }

    /// Counts a finished backend call (requests, errors, CPU, bytes).
    pub fn record_call(&self, owner: &Owner, meta: Option<&CallMeta>, call: &CallRecord<'_>) {
        let now = Utc::now();
        let row = DeltaKey {
            tenant: owner.tenant,
            day: now.date_naive(),
            server: owner.server,
            key: meta.and_then(|m| m.key),
        };
        let counts = Counts {
            requests: 1,
            tool_calls: 0,
            errors: u64::from(matches!(call.outcome, CallOutcome::Error(_))),
            cpu_us: call.cpu.map_or(0, |c| u64::try_from(c.as_micros()).unwrap_or(u64::MAX)),
            bytes_in: call.context.bytes_in,
            bytes_out: call.bytes_out,
        };
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.record(row, counts, now);
        }
    }

    /// Writes the pending deltas and reads the watched tenants' totals back.
    pub async fn flush(&self, pool: &PgPool) -> Result<(), berth_storage::Error> {
        let delta = self.ledger.lock().map(|mut l| l.take_pending()).unwrap_or_default();
        let written = async {
            let mut conn = pool.acquire().await?;
            berth_storage::usage::add(&mut conn, &delta).await
        };
        let written = tokio::time::timeout(Duration::from_secs(5), written)
            .await
            .unwrap_or_else(|_| Err(berth_storage::Error::Embedded("the usage flush timed out".into())));
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.flushed(written.is_ok());
        }
        written?;
        let tenants: Vec<TenantId> = {
            let mut watched = self.watched.lock().map_err(|_| berth_storage::Error::Embedded("poisoned".into()))?;
            watched.retain(|_, seen| seen.elapsed() < WATCH_FOR);
            let mut tenants: Vec<TenantId> = watched.keys().copied().collect();
            if let Ok(ledger) = self.ledger.lock() {
                tenants.extend(ledger.tenants());
            }
            tenants.sort();
            tenants.dedup();
            tenants
        };
        if tenants.is_empty() {
            return Ok(());
        }
        let month = self.ledger.lock().map(|l| l.month()).unwrap_or_else(|_| berth_quotas::month_start(Utc::now()));
        let mut conn = pool.acquire().await?;
        let totals = berth_storage::usage::month_totals(&mut conn, &tenants, month).await?;
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.refreshed(totals, month, Utc::now());
        }
        Ok(())
    }

    /// Starts the flusher on the current actix arbiter; it stops when `quotas` is dropped.
    pub fn spawn_flusher(quotas: &Arc<Quotas>, pool: PgPool) {
        let weak: Weak<Quotas> = Arc::downgrade(quotas);
        let every = quotas.settings.flush_every;
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(quotas) = weak.upgrade() else { return };
                match quotas.flush(&pool).await {
                    Ok(()) if failing => {
                        tracing::info!("usage counters are reaching the database again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        tracing::warn!(error.message = %e, "cannot flush usage counters; keeping them in memory");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limits: Limits) -> Policy {
        Policy { tenant: limits, ..Policy::default() }
    }

    const ONE: Demand = Demand { requests: 1, tool_calls: 1, backend_calls: 1 };

    #[test]
    fn the_rate_limit_is_shared_between_nodes() {
        let quotas = Quotas::new(QuotaSettings { nodes: 2, ..QuotaSettings::default() });
        let p = policy(Limits { requests_per_minute: Some(5), ..Limits::default() });
        let (tenant, server) = (TenantId::new(), ServerId::new());
        for _ in 0..3 {
            quotas.admit(&p, tenant, None, server, false, ONE).unwrap_or_else(|e| panic!("{e:?}"));
        }
        let refused = quotas.admit(&p, tenant, None, server, false, ONE).err();
        assert_eq!(refused.map(|e| (e.limit, e.allowed)), Some((Limit::RequestsPerMinute, 3)));
        assert!(quotas.admit(&p, TenantId::new(), None, server, false, ONE).is_ok(), "another tenant");
    }

    #[test]
    fn monthly_tool_calls_count_per_key_and_per_tenant() {
        let quotas = Quotas::default();
        let (tenant, server, key, other) = (TenantId::new(), ServerId::new(), ApiKeyId::new(), ApiKeyId::new());
        let mut p = policy(Limits { tool_calls_per_month: Some(3), ..Limits::default() });
        p.keys.insert(key, Limits { tool_calls_per_month: Some(1), ..Limits::default() });
        assert!(quotas.admit(&p, tenant, Some(key), server, false, ONE).is_ok());
        let refused = quotas.admit(&p, tenant, Some(key), server, false, ONE).err();
        assert_eq!(refused.map(|e| (e.limit, e.scope)), Some((Limit::ToolCallsPerMonth, QuotaScope::Key)));
        assert!(quotas.admit(&p, tenant, Some(other), server, false, ONE).is_ok());
        assert!(quotas.admit(&p, tenant, Some(other), server, false, ONE).is_ok());
        let refused = quotas.admit(&p, tenant, Some(other), server, false, ONE).err();
        assert_eq!(refused.map(|e| (e.limit, e.scope)), Some((Limit::ToolCallsPerMonth, QuotaScope::Tenant)));
        let list = Demand { requests: 1, tool_calls: 0, backend_calls: 1 };
        assert!(quotas.admit(&p, tenant, Some(other), server, false, list).is_ok(), "tools/list is not a tool call");
    }
}
