//! A node's usage ledger: deltas waiting to be flushed to the database, and the month's
//! totals as the database last reported them.
//!
//! A monthly counter reads `base + unconfirmed`: `base` is the month's total over every node as
//! last read from the database, `unconfirmed` is what this node counted since that read. The
//! flusher takes the pending deltas ([`Ledger::take_pending`]), writes them, reports the
//! outcome ([`Ledger::flushed`]), then reads the totals back ([`Ledger::refreshed`]); only then
//! do the flushed deltas leave `unconfirmed`, because only then are they in `base`. A failed
//! flush returns its deltas to the pending set, so nothing is lost or counted twice.

use std::collections::HashMap;

use berth_core::{ApiKeyId, ServerId, TenantId};
use chrono::{DateTime, NaiveDate, Utc};

use crate::limits::month_start;

/// The row a delta adds to: one tenant, day (UTC), server and key (`None`: no key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaKey {
    /// Tenant.
    pub tenant: TenantId,
    /// Day (UTC).
    pub day: NaiveDate,
    /// Server.
    pub server: ServerId,
    /// API key, when the caller used one.
    pub key: Option<ApiKeyId>,
}

/// Counters of one usage row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Backend requests (every MCP method a server answered).
    pub requests: u64,
    /// `tools/call` requests admitted.
    pub tool_calls: u64,
    /// Requests that ended in a JSON-RPC error.
    pub errors: u64,
    /// CPU microseconds (WASM).
    pub cpu_us: u64,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.tool_calls = self.tool_calls.saturating_add(other.tool_calls);
        self.errors = self.errors.saturating_add(other.errors);
        self.cpu_us = self.cpu_us.saturating_add(other.cpu_us);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
    }
}

/// Deltas by row.
pub type Delta = HashMap<DeltaKey, Counts>;

/// The month's totals (tool calls, CPU microseconds) per tenant and per key, across nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthTotals {
    /// Per tenant.
    pub tenants: HashMap<TenantId, (u64, u64)>,
    /// Per key.
    pub keys: HashMap<(TenantId, ApiKeyId), (u64, u64)>,
}

/// One node's ledger.
#[derive(Debug)]
pub struct Ledger {
    month: DateTime<Utc>,
    pending: Delta,
    flushing: Delta,
    flushed: Delta,
    base: MonthTotals,
    /// This month's counts not yet in `base`, per tenant and per key.
    unconfirmed: MonthTotals,
}

fn bump(totals: &mut MonthTotals, key: &DeltaKey, counts: &Counts, sign: i8) {
    let apply = |slot: &mut (u64, u64)| {
        if sign >= 0 {
            slot.0 = slot.0.saturating_add(counts.tool_calls);
            slot.1 = slot.1.saturating_add(counts.cpu_us);
        } else {
            slot.0 = slot.0.saturating_sub(counts.tool_calls);
            slot.1 = slot.1.saturating_sub(counts.cpu_us);
        }
    };
    apply(totals.tenants.entry(key.tenant).or_default());
    if let Some(api_key) = key.key {
        apply(totals.keys.entry((key.tenant, api_key)).or_default());
    }
}

impl Ledger {
    /// An empty ledger for the month of `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            month: month_start(now),
            pending: Delta::new(),
            flushing: Delta::new(),
            flushed: Delta::new(),
            base: MonthTotals::default(),
            unconfirmed: MonthTotals::default(),
        }
    }

    /// The start of the month the counters are for.
    pub fn month(&self) -> DateTime<Utc> {
        self.month
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let month = month_start(now);
        if month != self.month {
            self.month = month;
            self.base = MonthTotals::default();
            self.unconfirmed = MonthTotals::default();
        }
    }

    fn in_month(&self, day: NaiveDate) -> bool {
        day >= self.month.date_naive()
    }

    /// Counts `counts` against `key`'s row.
    pub fn record(&mut self, key: DeltaKey, counts: Counts, now: DateTime<Utc>) {
        self.roll(now);
        if self.in_month(key.day) {
            bump(&mut self.unconfirmed, &key, &counts, 1);
        }
        self.pending.entry(key).or_default().add(&counts);
    }

    /// This month's (tool calls, CPU microseconds) of a tenant, or of one of its keys.
    pub fn used(&self, tenant: TenantId, key: Option<ApiKeyId>, now: DateTime<Utc>) -> (u64, u64) {
        if month_start(now) != self.month {
            return (0, 0);
        }
        let read = |totals: &MonthTotals| match key {
            None => totals.tenants.get(&tenant).copied().unwrap_or_default(),
            Some(k) => totals.keys.get(&(tenant, k)).copied().unwrap_or_default(),
        };
        let (base, local) = (read(&self.base), read(&self.unconfirmed));
        (base.0.saturating_add(local.0), base.1.saturating_add(local.1))
    }

    /// Hands the pending deltas to the flusher (empty when nothing happened).
    pub fn take_pending(&mut self) -> Delta {
        let taken = std::mem::take(&mut self.pending);
        for (key, counts) in &taken {
            self.flushing.entry(*key).or_default().add(counts);
        }
        taken
    }

    /// The flusher's outcome: stored deltas wait for the next totals; failed ones are pending
    /// again.
    pub fn flushed(&mut self, ok: bool) {
        let flushing = std::mem::take(&mut self.flushing);
        let target = if ok { &mut self.flushed } else { &mut self.pending };
        for (key, counts) in flushing {
            target.entry(key).or_default().add(&counts);
        }
    }

    /// Totals read from the database after the last successful flush: they include every
    /// flushed delta, which therefore leaves the local count.
    pub fn refreshed(&mut self, totals: MonthTotals, month: DateTime<Utc>, now: DateTime<Utc>) {
        self.roll(now);
        if month != self.month {
            return;
        }
        let flushed = std::mem::take(&mut self.flushed);
        for (key, counts) in &flushed {
            if self.in_month(key.day) {
                bump(&mut self.unconfirmed, key, counts, -1);
            }
        }
        self.base = totals;
    }

    /// Tenants with counts this month (whose totals are worth refreshing).
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut tenants: Vec<TenantId> =
            self.base.tenants.keys().chain(self.unconfirmed.tenants.keys()).copied().collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: TenantId, api_key: Option<ApiKeyId>, now: DateTime<Utc>) -> DeltaKey {
        DeltaKey { tenant, day: now.date_naive(), server: ServerId::new(), key: api_key }
    }

    fn calls(n: u64) -> Counts {
        Counts { tool_calls: n, requests: n, ..Counts::default() }
    }

    #[test]
    fn flushing_and_refreshing_never_counts_twice_or_loses_anything() {
        let now = Utc::now();
        let (tenant, api_key) = (TenantId::new(), ApiKeyId::new());
        let mut ledger = Ledger::new(now);
        ledger.record(key(tenant, Some(api_key), now), calls(3), now);
        assert_eq!(ledger.used(tenant, None, now), (3, 0));
        assert_eq!(ledger.used(tenant, Some(api_key), now), (3, 0));

        let delta = ledger.take_pending();
        assert_eq!(delta.values().map(|c| c.tool_calls).sum::<u64>(), 3);
        ledger.record(key(tenant, None, now), calls(1), now);
        ledger.flushed(false);
        assert_eq!(ledger.used(tenant, None, now), (4, 0), "a failed flush loses nothing");
        assert_eq!(ledger.take_pending().values().map(|c| c.tool_calls).sum::<u64>(), 4);
        ledger.flushed(true);
        assert_eq!(ledger.used(tenant, None, now), (4, 0), "flushed but not yet in the totals");

        // Another node counted 10 meanwhile; the database now holds 14.
        let mut totals = MonthTotals::default();
        totals.tenants.insert(tenant, (14, 0));
        totals.keys.insert((tenant, api_key), (3, 0));
        ledger.record(key(tenant, Some(api_key), now), calls(1), now);
        ledger.refreshed(totals, ledger.month(), now);
        assert_eq!(ledger.used(tenant, None, now), (15, 0));
        assert_eq!(ledger.used(tenant, Some(api_key), now), (4, 0));
    }

    #[test]
    fn tenants_are_counted_apart() {
        let now = Utc::now();
        let (a, b) = (TenantId::new(), TenantId::new());
        let mut ledger = Ledger::new(now);
        ledger.record(key(a, None, now), calls(2), now);
        assert_eq!(ledger.used(b, None, now), (0, 0));
        assert_eq!(ledger.tenants(), vec![a]);
    }
}
