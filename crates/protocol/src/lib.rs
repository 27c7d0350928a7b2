//! MCP over JSON-RPC, for both protocol eras Berth serves on one URL.
//!
//! - [`jsonrpc`]: parsing incoming messages (single or batch) and building responses; every
//!   JSON-RPC error object Berth sends is built by [`RpcError`]'s constructors.
//! - [`version`]: the protocol revisions, their eras and legacy version negotiation.
//! - [`meta`]: the modern per-request `_meta` envelope and log levels.
//! - [`headers`]: `Mcp-Method`/`Mcp-Name` checks against the body (modern era).
//! - [`state`]: sealed, principal-bound `requestState` for Multi Round-Trip Requests.
//! - [`result`]: decorating results for each era (`resultType`, cache hints, `serverInfo`).
//! - [`sse`]: Server-Sent Events framing.
//! - [`canonical`]: canonical JSON, for digests that must not depend on key order.
//!
//! Nothing here performs I/O. See `README.md` beside this file for how an HTTP request is
//! assigned to an era.
#![warn(missing_docs)]

pub mod canonical;
pub mod headers;
pub mod jsonrpc;
pub mod meta;
pub mod result;
pub mod sse;
pub mod state;
pub mod version;

pub use jsonrpc::{Incoming, Message, Notification, Request, RequestId, Response, RpcError};
pub use meta::{LogLevel, RequestMeta};
pub use version::{Era, ProtocolVersion};
