//! [`Context`]: the MCP client of the request being handled (logging, progress, elicitation,
//! sampling, roots, capabilities) and the server's configuration and secrets.
//!
//! # Asking the client (MRTR)
//!
//! [`Context::elicit`], [`Context::sample`] and [`Context::list_roots`] may return
//! [`Error::InputRequired`]: the answer is not there yet. Return it (`?` does); Berth asks the
//! client and then calls the guest again *from the start* in a fresh instance, answering the
//! same questions from what the client said. So a handler must be deterministic and ask the same
//! questions in the same order, naming each with a `key` (or relying on the order when the key is
//! `None`). To ask several questions in one round trip, make all the calls first and apply `?`
//! afterwards:
//!
//! ```no_run
//! # use berth_guest::{Context, Error};
//! # use serde_json::json;
//! fn both(ctx: &Context) -> Result<String, Error> {
//!     let name = ctx.elicit(Some("name"), json!({"message": "Name?", "requestedSchema": {"type": "object"}}));
//!     let roots = ctx.list_roots(Some("roots"));
//!     let (name, roots) = (name?, roots?); // both are asked in the same round
//!     Ok(format!("{name} {roots}"))
//! }
//! ```
//!
//! Outside WebAssembly (unit tests on the host) there is no client: logs and progress are
//! dropped, the client requests fail with [`Error::Unsupported`], the capabilities are `{}` and
//! configuration is empty.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Error;
use crate::bindings::berth::mcp::types::LogLevel;

/// The client of the request being handled. A tool, resource, prompt or completion gets it by
/// taking a `&Context` parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    _private: (),
}

/// The answer to an elicitation ([`Context::elicit_form`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elicitation<T> {
    /// The user submitted the form.
    Accept(T),
    /// The user declined.
    Decline,
    /// The user dismissed the request.
    Cancel,
}

impl Context {
    /// A context. The SDK makes one per call; tests can make their own.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// Sends a `notifications/message` log (if the client asked for this level).
    pub fn log(&self, level: LogLevel, data: impl Serialize) {
        imports::log(level, None, &to_json(&data));
    }

    /// Sends a log naming its logger.
    pub fn log_to(&self, level: LogLevel, logger: &str, data: impl Serialize) {
        imports::log(level, Some(logger), &to_json(&data));
    }

    /// Logs a message at `debug`.
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs a message at `info`.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs a message at `warning`.
    pub fn warning(&self, message: &str) {
        self.log(LogLevel::Warning, message);
    }

    /// Logs a message at `error`.
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, message);
    }

    /// Sends `notifications/progress` (if the request carried a progress token).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        imports::progress(progress, total, message);
    }

    /// Asks the client `elicitation/create` with these params (`message`, `requestedSchema`);
    /// returns its `ElicitResult`. See the module docs for `key` and [`Error::InputRequired`].
    pub fn elicit(&self, key: Option<&str>, params: Value) -> Result<Value, Error> {
        imports::elicit(key, &params.to_string()).and_then(parse)
    }

    /// Asks the user to fill in a form shaped like `T` (a flat struct of strings, numbers,
    /// booleans and enums, as elicitation allows) and returns the typed answer. An answer that
    /// does not fit `T` is [`Error::InvalidParams`].
    pub fn elicit_form<T: DeserializeOwned + JsonSchema>(
        &self,
        key: Option<&str>,
        message: &str,
    ) -> Result<Elicitation<T>, Error> {
        let schema = crate::schema::input_schema::<T>();
        let answer = self.elicit(key, json!({ "message": message, "requestedSchema": schema }))?;
        parse_elicitation(key.unwrap_or("elicitation"), answer)
    }

    /// Asks the client `sampling/createMessage` with these params (`messages`, `maxTokens`, …);
    /// returns its `CreateMessageResult`.
    pub fn sample(&self, key: Option<&str>, params: Value) -> Result<Value, Error> {
        imports::sample(key, &params.to_string()).and_then(parse)
    }

    /// Samples one user message and returns the text of the answer.
    pub fn sample_text(&self, key: Option<&str>, prompt: &str, max_tokens: u32) -> Result<String, Error> {
        let params = json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
        });
        let answer = self.sample(key, params)?;
        sampled_text(&answer).map(str::to_owned).ok_or_else(|| {
            Error::invalid_params(format!(
                "the answer to {} is not a CreateMessageResult with text",
                key.unwrap_or("sampling")
            ))
        })
    }

    /// Asks the client `roots/list`; returns its `ListRootsResult` (`{"roots": [...]}`).
    pub fn list_roots(&self, key: Option<&str>) -> Result<Value, Error> {
        imports::list_roots(key).and_then(parse)
    }

    /// The capabilities the client declared (a JSON object).
    pub fn capabilities(&self) -> Value {
        serde_json::from_str(&imports::capabilities()).unwrap_or_else(|_| json!({}))
    }

    /// Whether the client declared `capability` (`sampling`, `elicitation`, `roots`, …).
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities().get(capability).is_some_and(|v| !v.is_null())
    }

    /// A configuration value set by the tenant.
    pub fn config(&self, key: &str) -> Option<String> {
        imports::config(key)
    }

    /// A secret set by the tenant.
    pub fn secret(&self, key: &str) -> Option<String> {
        imports::secret(key)
    }
}

/// A typed `ElicitResult`.
fn parse_elicitation<T: DeserializeOwned>(key: &str, answer: Value) -> Result<Elicitation<T>, Error> {
    match answer.get("action").and_then(Value::as_str) {
        Some("accept") => {
            let content = answer.get("content").cloned().unwrap_or_else(|| json!({}));
            serde_json::from_value(content).map(Elicitation::Accept).map_err(|e| {
                Error::invalid_params(format!("the answer to {key} does not match the requested schema: {e}"))
            })
        }
        Some("decline") => Ok(Elicitation::Decline),
        Some("cancel") => Ok(Elicitation::Cancel),
        _ => Err(Error::invalid_params(format!("the answer to {key} is not a valid ElicitResult"))),
    }
}

/// The text of a `CreateMessageResult` (`content` may be one block or an array of blocks).
pub(crate) fn sampled_text(answer: &Value) -> Option<&str> {
    match answer.get("content")? {
        Value::Array(blocks) => blocks.iter().find_map(|b| b.get("text").and_then(Value::as_str)),
        block => block.get("text").and_then(Value::as_str),
    }
}

fn to_json(data: &impl Serialize) -> String {
    serde_json::to_string(data).unwrap_or_else(|e| Value::from(format!("unserializable log data: {e}")).to_string())
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn parse(text: String) -> Result<Value, Error> {
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("the client's answer is not JSON: {e}")))
}

#[cfg(target_arch = "wasm32")]
mod imports {
    use crate::Error;
    use crate::bindings::berth::mcp::{client, config as cfg, types::LogLevel};

    pub(super) fn log(level: LogLevel, logger: Option<&str>, data: &str) {
        client::log(level, logger, data);
    }

    pub(super) fn progress(progress: f64, total: Option<f64>, message: Option<&str>) {
        client::progress(progress, total, message);
    }

    pub(super) fn elicit(key: Option<&str>, params: &str) -> Result<String, Error> {
        client::elicit(key, params).map_err(Error::from_wit)
    }

    pub(super) fn sample(key: Option<&str>, params: &str) -> Result<String, Error> {
        client::sample(key, params).map_err(Error::from_wit)
    }

    pub(super) fn list_roots(key: Option<&str>) -> Result<String, Error> {
        client::list_roots(key).map_err(Error::from_wit)
    }

    pub(super) fn capabilities() -> String {
        client::capabilities()
    }

    pub(super) fn config(key: &str) -> Option<String> {
        cfg::get(key)
    }

    pub(super) fn secret(key: &str) -> Option<String> {
        cfg::secret(key)
    }
}

/// Outside WebAssembly the imports do not exist (the generated stubs would abort): nothing is
/// sent and the client supports nothing.
#[cfg(not(target_arch = "wasm32"))]
mod imports {
    use crate::Error;
    use crate::bindings::berth::mcp::types::LogLevel;

    fn no_client(what: &str) -> Error {
        Error::unsupported(format!("{what} (no MCP client outside WebAssembly)"))
    }

    pub(super) fn log(_level: LogLevel, _logger: Option<&str>, _data: &str) {}

    pub(super) fn progress(_progress: f64, _total: Option<f64>, _message: Option<&str>) {}

    pub(super) fn elicit(_key: Option<&str>, _params: &str) -> Result<String, Error> {
        Err(no_client("elicitation"))
    }

    pub(super) fn sample(_key: Option<&str>, _params: &str) -> Result<String, Error> {
        Err(no_client("sampling"))
    }

    pub(super) fn list_roots(_key: Option<&str>) -> Result<String, Error> {
        Err(no_client("roots"))
    }

    pub(super) fn capabilities() -> String {
        "{}".to_owned()
    }

    pub(super) fn config(_key: &str) -> Option<String> {
        None
    }

    pub(super) fn secret(_key: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Form {
        name: String,
    }

    #[test]
    fn elicitation_answers_parse_into_the_form_type() {
        let accepted = json!({"action": "accept", "content": {"name": "Ada"}});
        assert_eq!(parse_elicitation::<Form>("k", accepted), Ok(Elicitation::Accept(Form { name: "Ada".into() })));
        assert_eq!(parse_elicitation::<Form>("k", json!({"action": "decline"})), Ok(Elicitation::Decline));
        assert!(matches!(
            parse_elicitation::<Form>("k", json!({"action": "accept", "content": {"name": 1}})),
            Err(Error::InvalidParams(m)) if m.contains("requested schema")
        ));
        assert!(matches!(parse_elicitation::<Form>("k", json!("yes")), Err(Error::InvalidParams(_))));
    }

    #[test]
    fn sampled_text_reads_one_block_or_a_list() {
        assert_eq!(sampled_text(&json!({"content": {"type": "text", "text": "a"}})), Some("a"));
        assert_eq!(sampled_text(&json!({"content": [{"type": "image"}, {"type": "text", "text": "b"}]})), Some("b"));
        assert_eq!(sampled_text(&json!({"content": "x"})), None);
    }
}
