//! Host bindings of the `berth:mcp@0.1.0` world (`crates/guest/wit/mcp.wit`): the generated
//! types and exports, and the `client` and `config` imports a guest calls during one call.
//!
//! `client` bridges to the [`Peer`](berth_core::backend::Peer) of the current call: log and
//! progress become notices, `elicit`/`sample`/`list-roots` become server→client requests (named
//! by `_meta["berth/inputKey"]` when the guest gives a key). `config` reads only the
//! [`ServerSpec`](crate::ServerSpec) of the server the call belongs to.

use berth_core::backend::{INPUT_KEY_META, Notice, PeerError};
use berth_protocol::LogLevel;
use serde_json::{Map, Value};

use crate::store::CallState;

wasmtime::component::bindgen!({
    path: "../guest/wit",
    world: "mcp-server",
    imports: {
        "berth:mcp/client.elicit": async,
        "berth:mcp/client.sample": async,
        "berth:mcp/client.list-roots": async,
    },
    exports: { default: async },
});

pub(crate) use berth::mcp::types;

/// The interface every Berth server exports, with its version.
pub(crate) const SERVER_INTERFACE: &str = "berth:mcp/server@0.1.0";

/// Parses JSON text from a guest, keeping invalid JSON as a string.
pub(crate) fn lenient_json(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn log_level(level: types::LogLevel) -> LogLevel {
    match level {
        types::LogLevel::Debug => LogLevel::Debug,
        types::LogLevel::Info => LogLevel::Info,
        types::LogLevel::Notice => LogLevel::Notice,
        types::LogLevel::Warning => LogLevel::Warning,
        types::LogLevel::Error => LogLevel::Error,
        types::LogLevel::Critical => LogLevel::Critical,
        types::LogLevel::Alert => LogLevel::Alert,
        types::LogLevel::Emergency => LogLevel::Emergency,
    }
}

fn peer_error(error: PeerError) -> types::Error {
    match error {
        PeerError::InputRequired => types::Error::InputRequired,
        PeerError::Unsupported(capability) => types::Error::Unsupported(capability.to_owned()),
        PeerError::Client(e) => types::Error::Internal(format!("the client refused: {}", e.message)),
        PeerError::Gone => types::Error::Internal("the client went away".to_owned()),
    }
}

/// The params of a server→client request: the guest's JSON object (or `{}`), named by `key`.
fn request_params(key: Option<String>, params: Option<String>) -> Result<Value, types::Error> {
    let mut object = match params {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(object)) => object,
            Ok(Value::Null) => Map::new(),
            Ok(_) => return Err(types::Error::InvalidParams("the request params must be a JSON object".to_owned())),
            Err(e) => return Err(types::Error::InvalidParams(format!("the request params are not JSON: {e}"))),
        },
    };
    if let Some(key) = key {
        let meta = object.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
        match meta {
            Value::Object(meta) => {
                meta.insert(INPUT_KEY_META.to_owned(), Value::String(key));
            }
            _ => return Err(types::Error::InvalidParams("`_meta` must be a JSON object".to_owned())),
        }
    }
    Ok(Value::Object(object))
}

impl CallState {
    async fn ask(
        &mut self,
        method: &'static str,
        key: Option<String>,
        params: Option<String>,
    ) -> Result<String, types::Error> {
        let params = request_params(key, params)?;
        let peer = self.peer.clone();
        match peer.request(method, params).await {
            Ok(answer) => Ok(answer.to_string()),
            Err(e) => Err(peer_error(e)),
        }
    }
}

impl types::Host for CallState {}

impl berth::mcp::client::Host for CallState {
    fn log(&mut self, level: types::LogLevel, logger: Option<String>, data: String) {
        let size = data.len().saturating_add(logger.as_ref().map_or(0, String::len));
        if !self.allow_notice(size) {
            return;
        }
        self.peer.notify(Notice::Log { level: log_level(level), logger, data: lenient_json(data) });
    }

    fn progress(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        if !self.allow_notice(message.as_ref().map_or(0, String::len)) {
            return;
        }
        self.peer.notify(Notice::Progress { progress, total, message });
    }

    async fn elicit(&mut self, key: Option<String>, params: String) -> Result<String, types::Error> {
        self.ask("elicitation/create", key, Some(params)).await
    }

    async fn sample(&mut self, key: Option<String>, params: String) -> Result<String, types::Error> {
        self.ask("sampling/createMessage", key, Some(params)).await
    }

    async fn list_roots(&mut self, key: Option<String>) -> Result<String, types::Error> {
        self.ask("roots/list", key, None).await
    }

    fn capabilities(&mut self) -> String {
        self.peer.client_capabilities().to_string()
    }
}

impl berth::mcp::config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.spec.config.get(&key).cloned()
    }

    fn secret(&mut self, key: String) -> Option<String> {
        self.spec.secrets.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_params_carry_the_input_key_in_meta() {
        let params = request_params(Some("k1".into()), Some(r#"{"message":"hi","_meta":{"x":1}}"#.into())).unwrap();
        assert_eq!(params["_meta"][INPUT_KEY_META], "k1");
        assert_eq!(params["_meta"]["x"], 1);
        assert_eq!(params["message"], "hi");
        assert_eq!(request_params(None, None).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn request_params_reject_non_objects() {
        assert!(matches!(request_params(None, Some("[1]".into())), Err(types::Error::InvalidParams(_))));
        assert!(matches!(request_params(None, Some("nope".into())), Err(types::Error::InvalidParams(_))));
    }

    #[test]
    fn peer_errors_map_to_guest_errors() {
        assert!(matches!(peer_error(PeerError::InputRequired), types::Error::InputRequired));
        assert!(
            matches!(peer_error(PeerError::Unsupported("sampling")), types::Error::Unsupported(c) if c == "sampling")
        );
        assert!(matches!(peer_error(PeerError::Gone), types::Error::Internal(_)));
    }

    #[test]
    fn invalid_log_data_is_kept_as_a_string() {
        assert_eq!(lenient_json("{\"a\":1}".into()), serde_json::json!({"a": 1}));
        assert_eq!(lenient_json("not json".into()), Value::String("not json".into()));
    }
}
