//! Berth's audit trail: what happened, to whom, and proof that nobody changed it since.
//!
//! - [`event`]: one [`AuditEvent`] shape for admin mutations, authentication, client sessions
//!   and MCP calls (`tools/call`, `resources/read`, `prompts/get`).
//! - [`chain`]: per-tenant hash chains (`hash = SHA-256(prev_hash || canonical event)`) and the
//!   [`Verifier`] behind `berth audit verify`.
//! - [`writer`]: the batched asynchronous writer with bounded memory that spools to local disk
//!   ([`spool`]) when the store is down and replays exactly once when it is back.
//! - [`sink`]: the [`AuditSink`] port (PostgreSQL in `berth-storage`, memory here).
//! - [`redact`]: secret redaction for servers that opt in to payload capture.
//! - [`export`]: JSON Lines and CSV.
//!
//! See `docs/adr/0010-audit-quotas-killswitch.md`.

pub mod chain;
pub mod error;
pub mod event;
pub mod export;
pub mod redact;
pub mod sink;
pub mod spool;
pub mod writer;

pub use chain::{Broken, Head, Seal, SealedEvent, Verified, Verifier, verify};
pub use error::{Error, Result};
pub use event::{AuditEvent, Kind};
pub use sink::{AuditSink, MemorySink, SinkError};
pub use writer::{Auditor, Flushed, Writer, WriterSettings};
