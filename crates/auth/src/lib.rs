//! Credentials: how API keys look, how they are hashed, and how a presented credential
//! becomes a [`Principal`](berth_core::Principal).
//!
//! This crate holds no I/O: callers fetch the stored key by its prefix and hand it to
//! [`verify_api_key`], which decides. OAuth tokens join here in a later release.

pub mod api_key;
pub mod error;

pub use api_key::{GeneratedKey, ParsedKey, StoredKey, admin_token_matches, generate_admin_token, verify_api_key};
pub use error::{Error, Result};
