//! Berth's domain model.
//!
//! Everything here is pure data and validation: identifiers, slugs, server kinds,
//! version specifications, roles, scopes and the [`TenantScope`] capability that
//! storage functions demand.
//! Nothing in this crate performs I/O, so every other crate may depend on it.
#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod ids;
pub mod model;
pub mod net;
pub mod scope;
pub mod sealed;
pub mod server;
pub mod slug;

pub use error::{Error, Result};
pub use ids::{ApiKeyId, GrantId, MemberId, ServerId, TenantId, VersionId};
pub use model::{ApiKey, Server, ServerVersion, Tenant};
pub use scope::{AdminScope, Principal, Role, Scope, TenantScope};
pub use server::{ContainerLimits, ContainerSpec, RemoteSpec, ServerKind, Transport, VersionSpec, WasmSpec};
pub use slug::Slug;
