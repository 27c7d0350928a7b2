//! One actix actor per MCP client session.
//!
//! A [`Session`](actor::Session) owns everything that lives between HTTP requests of one
//! client: the negotiated era and capabilities, in-flight requests and their cancellation, the
//! SSE streams with their replay buffers (legacy), pending server→client requests (legacy),
//! subscriptions, and the backend it talks to. The [`SessionRegistry`] maps session keys to
//! cloneable [`SessionHandle`]s; nobody else holds an actor address.
//!
//! - Legacy clients (`2025-03-26` … `2025-11-25`) get a session at `initialize`, keyed by an
//!   unguessable, self-authenticating `Mcp-Session-Id` that names the owning node ([`ids`]).
//! - Modern clients (`2026-07-28`) are stateless on the wire; their session is keyed by tenant,
//!   server, version and principal, created on the first request and expired when idle.
//!
//! Backend calls never run inside an actor handler: each is spawned as its own task and reports
//! back with messages, so a slow tool never blocks the session. See `README.md` beside this file
//! for the stream, replay and MRTR design.

pub mod actor;
pub mod config;
pub mod error;
pub mod handle;
pub mod hooks;
pub mod ids;
pub mod outbound;
mod peer;
pub mod registry;

pub use config::SessionConfig;
pub use error::SessionError;
pub use handle::SessionHandle;
pub use hooks::{CallOutcome, CallRecord, CloseReason, NoHooks, RequestContext, SessionHooks, SessionInfo};
pub use outbound::{OutKind, Outbound};
pub use registry::{Opening, Owner, SessionLimits, SessionRegistry};
