//! What the macros' expansions use. Not a stable API.

use std::fmt::Display;
use std::str::FromStr;

pub use schemars;
pub use serde;
pub use serde_json::{Map, Value};

pub use crate::schema::input_schema;
pub use crate::server::export;
use crate::{CallToolResult, Error, UriVars};

/// A tool's arguments as `T`, or the `isError` result explaining why they do not fit (input
/// validation errors are tool execution errors from MCP 2025-11-25 on, so the model can retry).
pub fn tool_arguments<T: serde::de::DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, CallToolResult> {
    serde_json::from_value(arguments)
        .map_err(|e| CallToolResult::error_text(format!("Invalid arguments for tool {tool}: {e}")))
}

/// A URI template variable as `T`.
pub fn uri_var<T>(vars: &UriVars, name: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    let value = vars.get(name).ok_or_else(|| Error::internal(format!("the URI template has no `{name}`")))?;
    value.parse().map_err(|e| Error::invalid_params(format!("invalid `{name}` in the URI: {e}")))
}

fn prompt_value(arguments: &Map<String, Value>, name: &str) -> Option<String> {
    match arguments.get(name)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn parse_prompt_value<T>(name: &str, value: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    value.parse().map_err(|e| Error::invalid_params(format!("Invalid argument {name}: {e}")))
}

/// A required prompt argument as `T`.
pub fn prompt_arg<T>(arguments: &Map<String, Value>, name: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: Display,
{
    let value = prompt_value(arguments, name)
        .ok_or_else(|| Error::invalid_params(format!("Missing required argument: {name}")))?;
    parse_prompt_value(name, &value)
}

/// An optional prompt argument as `T`.
pub fn prompt_arg_opt<T>(arguments: &Map<String, Value>, name: &str) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: Display,
{
    prompt_value(arguments, name).map(|value| parse_prompt_value(name, &value)).transpose()
}
