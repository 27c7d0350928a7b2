//! Quotas per tenant (its plan) and per API key: the limits, token buckets for request rates,
//! monthly counters, and the admission decision with what a refusal tells the client.
//!
//! Nothing here does I/O. The data plane keeps one [`Ledger`] per node, fed by calls as they
//! finish; a flusher writes its deltas to the `usage_daily` table in batches and reads back the
//! month's totals from every node, so a monthly limit is enforced from the last-known database
//! total plus this node's unflushed delta. See `docs/adr/0010-audit-quotas-killswitch.md` for
//! the multi-node bound.

pub mod bucket;
pub mod error;
pub mod ledger;
pub mod limits;

pub use bucket::TokenBucket;
pub use error::{Error, Result};
pub use ledger::{Counts, Delta, DeltaKey, Ledger, MonthTotals};
pub use limits::{Exceeded, Limit, Limits, QuotaScope, month_start, next_month_start};
