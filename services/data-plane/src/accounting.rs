//! Accounting on the data plane: audit events for authentication, client sessions and MCP
//! calls, and (through [`Quotas`](crate::quota::Quotas)) usage counters.
//!
//! [`Accounting`] implements the session layer's [`SessionHooks`], so every backend call is
//! reported once, when it ends, with its outcome, latency, CPU time and bytes. Recording never
//! waits for the database: audit events go to the [`Auditor`]'s bounded queue.
//!
//! What is recorded:
//! - `call` events for `tools/call`, `resources/read` and `prompts/get` (with the SHA-256 of the
//!   canonical arguments, and the redacted payload when the server opted in), including calls
//!   refused for a disabled tool or an exhausted quota;
//! - `session` events when a session opens and closes (legacy sessions, and the per-principal
//!   sessions of modern clients);
//! - `auth` events: every refused credential (at most [`FAILURES_PER_SECOND`] per tenant per
//!   second, the rest only counted in metrics, so a flood of bad keys cannot flood the trail),
//!   and an accepted credential at most once a minute per principal, server and node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_audit::Auditor;
use berth_audit::event::{self, AuditEvent, Kind};
use berth_core::{ApiKeyId, TenantId};
use berth_quotas::Exceeded;
use berth_sessions::{CallRecord, CloseReason, Owner, RequestContext, SessionHooks, SessionInfo};
use serde_json::Value;

use crate::quota::Quotas;

/// Audit events for refused credentials and quota refusals kept per tenant per second.
pub const FAILURES_PER_SECOND: u32 = 20;
/// How often an accepted credential is recorded per principal, server and node.
const SUCCESS_EVERY: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 100_000;

/// Whether and how a server's call payloads are captured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// Extra key names to redact besides the defaults.
    pub redact: Vec<String>,
}

/// What the data plane knows about a request, carried to the hooks in
/// [`RequestContext::extra`].
#[derive(Debug, Clone)]
pub struct CallMeta {
    /// Tenant slug.
    pub tenant: String,
    /// Server slug.
    pub server: String,
    /// Version number.
    pub version: i32,
    /// The API key, when the caller used one.
    pub key: Option<ApiKeyId>,
    /// Payload capture, when the server opted in.
    pub capture: Option<Arc<Capture>>,
}

impl CallMeta {
    /// The metadata a context carries, if any.
    pub fn of(context: &RequestContext) -> Option<&CallMeta> {
        context.extra.as_ref().and_then(|extra| extra.downcast_ref::<CallMeta>())
    }
}

/// The data plane's accounting.
pub struct Accounting {
    auditor: Auditor,
    quotas: Option<Arc<Quotas>>,
    failures: Mutex<HashMap<TenantId, (Instant, u32)>>,
    successes: Mutex<HashMap<(TenantId, String, String), Instant>>,
}

impl std::fmt::Debug for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounting").field("auditor", &self.auditor).finish_non_exhaustive()
    }
}

/// `clientInfo` as `name/version`.
fn client_label(info: Option<&Value>) -> Option<String> {
    let info = info?;
    let name = info.get("name").and_then(Value::as_str)?;
    let label = match info.get("version").and_then(Value::as_str) {
        Some(version) => format!("{name}/{version}"),
        None => name.to_owned(),
    };
    Some(label.chars().take(200).collect())
}

fn audited(method: &str) -> bool {
    matches!(method, "tools/call" | "resources/read" | "prompts/get")
}

/// The tool, prompt or resource a call names.
pub fn call_name(method: &str, params: &serde_json::Map<String, Value>) -> Option<String> {
    let key = if method == "resources/read" { "uri" } else { "name" };
    params.get(key).and_then(Value::as_str).map(|s| s.chars().take(512).collect())
}

impl Accounting {
    /// Accounting that records into `auditor` and counts usage in `quotas`.
    pub fn new(auditor: Auditor, quotas: Option<Arc<Quotas>>) -> Self {
        Self { auditor, quotas, failures: Mutex::new(HashMap::new()), successes: Mutex::new(HashMap::new()) }
    }

    /// The audit handle.
    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// Whether another refused-credential event of `tenant` may be recorded this second.
    fn failure_allowed(&self, tenant: TenantId) -> bool {
        let Ok(mut map) = self.failures.lock() else { return false };
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
        let slot = map.entry(tenant).or_insert((Instant::now(), 0));
        if slot.0.elapsed() >= Duration::from_secs(1) {
            *slot = (Instant::now(), 0);
        }
        slot.1 += 1;
        slot.1 <= FAILURES_PER_SECOND
    }

    /// A credential presented for `server` of `tenant` was refused.
    pub fn auth_failed(&self, tenant: TenantId, server: &str, principal: &str, status: u16, why: &str) {
        if !self.failure_allowed(tenant) {
            metrics::counter!("berth_audit_auth_failures_suppressed_total").increment(1);
            return;
        }
        let mut event = AuditEvent::new(tenant, Kind::Auth, "authenticate", principal);
        event.server = Some(server.to_owned());
        event.outcome = "denied".into();
        event.error_code = Some(i64::from(status));
        event.detail = Some(why.to_owned());
        self.auditor.record(event);
    }

    /// A credential was accepted for `server` (recorded at most once a minute per principal).
    pub fn auth_succeeded(&self, tenant: TenantId, server: &str, principal: &str) {
        let due = self.successes.lock().is_ok_and(|mut map| {
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
            let key = (tenant, principal.to_owned(), server.to_owned());
            match map.get(&key) {
                Some(at) if at.elapsed() < SUCCESS_EVERY => false,
                _ => {
                    map.insert(key, Instant::now());
                    true
                }
            }
        });
        if due {
            let mut event = AuditEvent::new(tenant, Kind::Auth, "authenticate", principal);
            event.server = Some(server.to_owned());
            self.auditor.record(event);
        }
    }

    /// A call refused by a quota before it reached a session.
    pub fn call_refused(
        &self,
        owner: &Owner,
        meta: &CallMeta,
        method: &str,
        params: &serde_json::Map<String, Value>,
        exceeded: &Exceeded,
    ) {
        if !audited(method) {
            return;
        }
        if !self.failure_allowed(owner.tenant) {
            metrics::counter!("berth_audit_refusals_suppressed_total").increment(1);
            return;
        }
        let mut event = AuditEvent::new(owner.tenant, Kind::Call, method, owner.principal.clone());
        event.name = call_name(method, params);
        event.server = Some(meta.server.clone());
        event.version = Some(meta.version);
        event.args_sha256 = Some(event::sha256_hex(&event::digest_input(method, params)));
        event.outcome = "quota_exceeded".into();
        event.error_code = Some(berth_protocol::jsonrpc::code::INVALID_REQUEST);
        event.detail = Some(exceeded.policy());
        self.auditor.record(event);
    }

    fn session_event(&self, session: &SessionInfo<'_>, method: &str) -> AuditEvent {
        let mut event = AuditEvent::new(session.owner.tenant, Kind::Session, method, session.owner.principal.clone());
        event.name = session.id.map(str::to_owned);
        event.server = Some(session.owner.server_slug.clone());
        event.version = session.context.and_then(CallMeta::of).map(|m| m.version);
        event.client = client_label(session.client);
        event.detail = Some(if session.id.is_some() { "legacy".into() } else { "modern".into() });
        event
    }
}

impl SessionHooks for Accounting {
    fn session_opened(&self, session: &SessionInfo<'_>) {
        self.auditor.record(self.session_event(session, "open"));
    }

    fn session_closed(&self, session: &SessionInfo<'_>, reason: CloseReason) {
        let mut event = self.session_event(session, "close");
        event.outcome = reason.as_str().to_owned();
        self.auditor.record(event);
    }

    fn call_finished(&self, call: &CallRecord<'_>) {
        let meta = CallMeta::of(call.context);
        if let Some(quotas) = &self.quotas {
            quotas.record_call(call.owner, meta, call);
        }
        if !audited(call.method) {
            return;
        }
        let owner = call.owner;
        let mut event = AuditEvent::new(owner.tenant, Kind::Call, call.method, owner.principal.clone());
        event.name = call_name(call.method, call.params);
        event.server = Some(owner.server_slug.clone());
        event.version = meta.map(|m| m.version);
        event.client = client_label(call.client);
        event.args_sha256 = Some(event::sha256_hex(&event::digest_input(call.method, call.params)));
        if let Some(capture) = meta.and_then(|m| m.capture.as_ref()) {
            let redacted = berth_audit::redact::redact(&Value::Object(call.params.clone()), &capture.redact);
            event.payload = Some(berth_protocol::canonical::to_string(&redacted));
        }
        event.outcome = call.outcome.as_str().to_owned();
        event.error_code = call.outcome.code();
        event.latency_us = Some(event::micros(call.latency));
        event.cpu_us = call.cpu.map(event::micros);
        event.bytes_in = i64::try_from(call.context.bytes_in).ok();
        event.bytes_out = i64::try_from(call.bytes_out).ok();
        self.auditor.record(event);
    }
}
