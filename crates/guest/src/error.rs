//! [`Error`]: why a tool, resource, prompt or completion failed, and how Berth reports it.

use std::fmt;

use crate::bindings::berth::mcp::types::Error as WitError;

/// Why a call failed.
///
/// The variants mirror the world's `error` (Berth picks the JSON-RPC code), plus
/// [`Error::Tool`], a tool execution failure the model should see:
///
/// | variant | `tools/call` | `resources/read`, `prompts/get`, `completion/complete` |
/// | --- | --- | --- |
/// | [`Tool`](Error::Tool) | result with `isError: true` and the message as text | `-32603` with the message |
/// | [`InvalidParams`](Error::InvalidParams) | `-32602` | `-32602` |
/// | [`ResourceNotFound`](Error::ResourceNotFound) | `-32002` / `-32602` | `-32002` / `-32602` |
/// | [`InputRequired`](Error::InputRequired) | the client is asked; the call runs again | same |
/// | [`Unsupported`](Error::Unsupported) | `-32021` naming the capability | same |
/// | [`Internal`](Error::Internal) | `-32603` with the message | same |
///
/// Any `std::error::Error` converts into [`Error::Tool`], so `?` works on parse errors, I/O
/// errors and the like; [`Context`](crate::Context) methods return [`Error::InputRequired`]
/// when Berth has to ask the client first, and `?` hands it back unchanged. (Like
/// `anyhow::Error`, this type does not implement `std::error::Error` itself, which is what makes
/// that blanket conversion possible.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A tool execution error: the message is returned to the model as an `isError` result.
    Tool(String),
    /// Bad arguments, or an unknown tool or prompt (`-32602`).
    InvalidParams(String),
    /// No such resource (the URI).
    ResourceNotFound(String),
    /// An answer from the client is needed first: return it unchanged (`?` does).
    InputRequired,
    /// The client lacks a capability this needs (the capability's name, e.g. `sampling`).
    Unsupported(String),
    /// Anything else (`-32603`); the message is shown to the client.
    Internal(String),
}

impl Error {
    /// A tool execution error ([`Error::Tool`]).
    pub fn tool(message: impl Into<String>) -> Self {
        Self::Tool(message.into())
    }

    /// Bad arguments ([`Error::InvalidParams`]).
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::InvalidParams(message.into())
    }

    /// No resource at `uri` ([`Error::ResourceNotFound`]).
    pub fn resource_not_found(uri: impl Into<String>) -> Self {
        Self::ResourceNotFound(uri.into())
    }

    /// The client lacks `capability` ([`Error::Unsupported`]).
    pub fn unsupported(capability: impl Into<String>) -> Self {
        Self::Unsupported(capability.into())
    }

    /// An internal error ([`Error::Internal`]).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// Whether Berth must ask the client and call again ([`Error::InputRequired`]).
    pub fn is_input_required(&self) -> bool {
        matches!(self, Self::InputRequired)
    }

    /// The world's error for this one; a [`Error::Tool`] outside `call-tool` is `internal`.
    pub(crate) fn into_wit(self) -> WitError {
        match self {
            Self::Tool(message) | Self::Internal(message) => WitError::Internal(message),
            Self::InvalidParams(message) => WitError::InvalidParams(message),
            Self::ResourceNotFound(uri) => WitError::ResourceNotFound(uri),
            Self::InputRequired => WitError::InputRequired,
            Self::Unsupported(capability) => WitError::Unsupported(capability),
        }
    }

    /// An error a client import returned.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn from_wit(error: WitError) -> Self {
        match error {
            WitError::InvalidParams(message) => Self::InvalidParams(message),
            WitError::ResourceNotFound(uri) => Self::ResourceNotFound(uri),
            WitError::InputRequired => Self::InputRequired,
            WitError::Unsupported(capability) => Self::Unsupported(capability),
            WitError::Internal(message) => Self::Internal(message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tool(message) | Self::Internal(message) | Self::InvalidParams(message) => f.write_str(message),
            Self::ResourceNotFound(uri) => write!(f, "resource not found: {uri}"),
            Self::InputRequired => f.write_str("input required from the client"),
            Self::Unsupported(capability) => write!(f, "the client does not support {capability}"),
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Self::Tool(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_errors_become_tool_errors() {
        let error: Error = "x".parse::<u32>().unwrap_err().into();
        assert!(matches!(error, Error::Tool(ref m) if m.contains("invalid digit")), "{error:?}");
    }

    #[test]
    fn tool_errors_are_internal_outside_call_tool() {
        assert!(matches!(Error::tool("boom").into_wit(), WitError::Internal(m) if m == "boom"));
        assert!(matches!(Error::InputRequired.into_wit(), WitError::InputRequired));
    }
}
