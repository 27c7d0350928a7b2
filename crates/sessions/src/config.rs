//! Session limits and keys.

use std::time::Duration;

use berth_protocol::state::StateKey;

const STATE_PURPOSE: &str = "berth request state v1";

/// Tunables of the session layer; `berth` builds it from settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Names this node inside legacy session ids (`[a-z0-9-]`, at most 32 characters).
    pub node_id: String,
    /// Authenticates session ids.
    pub session_key: StateKey,
    /// Seals modern `requestState`.
    pub state_key: StateKey,
    /// Opens modern `requestState` sealed under the previous deployment secret while it is being
    /// rotated (`BERTH_SECRET_KEY_PREVIOUS`); nothing is sealed with it.
    pub previous_state_key: Option<StateKey>,
    /// A legacy session without requests or open streams for this long is ended.
    pub legacy_idle: Duration,
    /// A modern session without requests for this long is dropped.
    pub modern_idle: Duration,
    /// How often idle sessions are looked for.
    pub sweep_interval: Duration,
    /// Concurrent client sessions per tenant.
    pub max_sessions_per_tenant: usize,
    /// In-flight requests per session.
    pub max_in_flight: usize,
    /// Events kept per legacy stream for `Last-Event-ID` resumption.
    pub replay_events: usize,
    /// Bytes kept per legacy stream for resumption.
    pub replay_bytes: usize,
    /// How long a legacy server→client request waits for the client's answer.
    pub peer_timeout: Duration,
    /// How long a modern `requestState` stays valid.
    pub state_ttl: Duration,
}

impl SessionConfig {
    /// Defaults around the given node id and secret.
    pub fn new(node_id: impl Into<String>, secret: &[u8]) -> Self {
        Self {
            node_id: node_id.into(),
            session_key: StateKey::derive(secret, "berth session id v1"),
            state_key: StateKey::derive(secret, STATE_PURPOSE),
            previous_state_key: None,
            legacy_idle: Duration::from_secs(30 * 60),
            modern_idle: Duration::from_secs(5 * 60),
            sweep_interval: Duration::from_secs(15),
            max_sessions_per_tenant: 10_000,
            max_in_flight: 64,
            replay_events: 1024,
            replay_bytes: 1024 * 1024,
            peer_timeout: Duration::from_secs(300),
            state_ttl: Duration::from_secs(600),
        }
    }

    /// Also opens `requestState` sealed under `previous`, the deployment secret being rotated
    /// away from. Legacy session ids need no such key: sessions live in a node's memory, so none
    /// outlives the restart that changes the secret.
    pub fn with_previous_secret(mut self, previous: &[u8]) -> Self {
        self.previous_state_key = Some(StateKey::derive(previous, STATE_PURPOSE));
        self
    }
}
