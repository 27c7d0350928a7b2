//! Per-tenant hash chains.
//!
//! Each tenant's events are numbered 1, 2, 3… (`seq`) and chained:
//! `hash = SHA-256(prev_hash || canonical JSON of the event with its seq)`, where `prev_hash`
//! is the previous event's hash (32 zero bytes before the first). Canonical JSON sorts keys and
//! drops insignificant whitespace (`berth_protocol::canonical`), so the hash depends only on
//! the values. Editing, removing or reordering events breaks the chain at the first affected
//! event; [`Verifier`] names it. Truncating the newest events is caught only against the stored
//! chain head (the database check does that; an export carries no head).

use berth_core::TenantId;
use serde::{Deserialize, Serialize};
#[cfg(test)]
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::{AuditEvent, lower_hex};

/// The `prev_hash` of a chain's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// An event in its tenant's chain: the form stored, exported and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEvent {
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous event's hash (hex).
    pub prev_hash: String,
    /// This event's hash (hex).
    pub hash: String,
}

/// The event and its `seq` with fields in sorted order: serialized compactly, this *is* the
/// canonical JSON (`berth_protocol::canonical`) of the event plus `seq`, without building a
/// `Value` first (a test checks they agree).
#[derive(Serialize)]
struct Hashed<'a> {
    args_sha256: &'a Option<String>,
    at: &'a chrono::DateTime<chrono::Utc>,
    bytes_in: &'a Option<i64>,
    bytes_out: &'a Option<i64>,
    client: &'a Option<String>,
    cpu_us: &'a Option<i64>,
    detail: &'a Option<String>,
    error_code: &'a Option<i64>,
    id: &'a Uuid,
    kind: &'a crate::event::Kind,
    latency_us: &'a Option<i64>,
    method: &'a str,
    name: &'a Option<String>,
    node: &'a str,
    outcome: &'a str,
    payload: &'a Option<String>,
    principal: &'a str,
    seq: i64,
    server: &'a Option<String>,
    tenant_id: &'a TenantId,
    version: &'a Option<i32>,
}

/// The bytes hashed after `prev_hash`: the canonical JSON of the event and its `seq`.
fn content(seq: i64, e: &AuditEvent) -> String {
    let hashed = Hashed {
        args_sha256: &e.args_sha256,
        at: &e.at,
        bytes_in: &e.bytes_in,
        bytes_out: &e.bytes_out,
        client: &e.client,
        cpu_us: &e.cpu_us,
        detail: &e.detail,
        error_code: &e.error_code,
        id: &e.id,
        kind: &e.kind,
        latency_us: &e.latency_us,
        method: &e.method,
        name: &e.name,
        node: &e.node,
        outcome: &e.outcome,
        payload: &e.payload,
        principal: &e.principal,
        seq,
        server: &e.server,
        tenant_id: &e.tenant_id,
        version: &e.version,
    };
    serde_json::to_string(&hashed).unwrap_or_default()
}

/// The definition [`content`] implements: canonical JSON of the event object plus `seq`.
#[cfg(test)]
fn content_by_definition(seq: i64, event: &AuditEvent) -> String {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("seq".into(), Value::from(seq));
    }
    berth_protocol::canonical::to_string(&value)
}

/// The hash of `event` at `seq` after `prev`.
pub fn hash(prev: &[u8; 32], seq: i64, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(content(seq, event).as_bytes());
    hasher.finalize().into()
}

/// A chain head: the last `seq` and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number (0 for an empty chain).
    pub seq: i64,
    /// Its hash ([`GENESIS`] for an empty chain).
    pub hash: [u8; 32],
}

impl Head {
    /// An empty chain.
    pub const EMPTY: Head = Head { seq: 0, hash: GENESIS };

    /// Appends `event`: returns the sealed event and moves the head.
    pub fn seal(&mut self, event: AuditEvent) -> SealedEvent {
        let Seal { seq, prev_hash, hash } = self.seal_ref(&event);
        SealedEvent { seq, event, prev_hash, hash }
    }

    /// Appends `event`, which the caller keeps (the audit writer stores a batch of events
    /// without copying them): returns its place in the chain and moves the head.
    pub fn seal_ref(&mut self, event: &AuditEvent) -> Seal {
        let seq = self.seq + 1;
        let next = hash(&self.hash, seq, event);
        let seal = Seal { seq, prev_hash: lower_hex(&self.hash), hash: lower_hex(&next) };
        *self = Head { seq, hash: next };
        seal
    }
}

/// An event's place in its chain, as [`SealedEvent`] holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    /// The previous event's hash (hex).
    pub prev_hash: String,
    /// This event's hash (hex).
    pub hash: String,
}

/// The first event that breaks a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event seq {seq} (id {id}): {reason}")]
pub struct Broken {
    /// Its sequence number.
    pub seq: i64,
    /// Its id.
    pub id: Uuid,
    /// What is wrong.
    pub reason: String,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// The first `seq` seen (1 for a whole chain).
    pub first_seq: Option<i64>,
    /// The last `seq` seen.
    pub last_seq: Option<i64>,
    /// The last event's hash (hex).
    pub head: Option<String>,
}

/// Checks events one at a time, in the order given.
#[derive(Debug, Default)]
pub struct Verifier {
    tenant: Option<TenantId>,
    last: Option<(i64, String)>,
    first_seq: Option<i64>,
    events: u64,
}

fn decode(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

impl Verifier {
    /// A verifier expecting a chain (or a contiguous part of one).
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next event.
    pub fn push(&mut self, sealed: &SealedEvent) -> Result<(), Broken> {
        let broken = |reason: String| Broken { seq: sealed.seq, id: sealed.event.id, reason };
        match self.tenant {
            None => self.tenant = Some(sealed.event.tenant_id),
            Some(t) if t != sealed.event.tenant_id => {
                return Err(broken(format!("belongs to tenant {} in a chain of tenant {t}", sealed.event.tenant_id)));
            }
            Some(_) => {}
        }
        match &self.last {
            None if sealed.seq == 1 && sealed.prev_hash != hex::encode(GENESIS) => {
                return Err(broken("the first event does not start from the genesis hash".into()));
            }
            None if sealed.seq < 1 => return Err(broken("sequence numbers start at 1".into())),
            None => {}
            Some((seq, _)) if sealed.seq == seq + 1 => {}
            Some((seq, _)) if sealed.seq > seq + 1 => {
                let missing = if sealed.seq == seq + 2 {
                    format!("event {} is missing (removed)", seq + 1)
                } else {
                    format!("events {}..{} are missing (removed)", seq + 1, sealed.seq - 1)
                };
                return Err(broken(missing));
            }
            Some((seq, _)) => {
                return Err(broken(format!("comes after event {seq}: events are out of order or duplicated")));
            }
        }
        if let Some((seq, hash)) = &self.last
            && &sealed.prev_hash != hash
        {
            return Err(broken(format!(
                "does not follow event {seq}: its prev_hash is not that event's hash (reordered, or event {seq} was altered)"
            )));
        }
        let prev = decode(&sealed.prev_hash).ok_or_else(|| broken("prev_hash is not a SHA-256 hex digest".into()))?;
        if hex::encode(hash(&prev, sealed.seq, &sealed.event)) != sealed.hash {
            return Err(broken("its contents do not match its hash (edited or moved)".into()));
        }
        self.first_seq.get_or_insert(sealed.seq);
        self.last = Some((sealed.seq, sealed.hash.clone()));
        self.events += 1;
        Ok(())
    }

    /// Checks that the chain ends at `head` (the stored chain head): nothing newer was cut off.
    pub fn check_head(&self, head: &Head) -> Result<(), String> {
        let last_seq = self.last.as_ref().map_or(0, |(seq, _)| *seq);
        if last_seq < head.seq {
            return Err(format!(
                "the chain head is event {} but the events end at {last_seq}: the newest events were removed",
                head.seq
            ));
        }
        if let Some((_, hash)) = &self.last
            && last_seq == head.seq
            && *hash != hex::encode(head.hash)
        {
            return Err(format!("event {last_seq} does not match the stored chain head (edited)"));
        }
        Ok(())
    }

    /// What was checked.
    pub fn finish(self) -> Verified {
        Verified {
            events: self.events,
            first_seq: self.first_seq,
            last_seq: self.last.as_ref().map(|(seq, _)| *seq),
            head: self.last.map(|(_, hash)| hash),
        }
    }
}

/// Verifies a whole sequence.
pub fn verify<'a>(events: impl IntoIterator<Item = &'a SealedEvent>) -> Result<Verified, Broken> {
    let mut verifier = Verifier::new();
    for event in events {
        verifier.push(event)?;
    }
    Ok(verifier.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    fn chain(n: usize) -> Vec<SealedEvent> {
        let tenant = TenantId::new();
        let mut head = Head::EMPTY;
        (0..n)
            .map(|i| {
                let mut event = AuditEvent::new(tenant, Kind::Call, "tools/call", "api-key:k");
                event.name = Some(format!("tool-{i}"));
                head.seal(event)
            })
            .collect()
    }

    #[test]
    fn the_hashed_form_is_the_canonical_json_of_the_event() {
        let mut full = AuditEvent::new(TenantId::new(), Kind::Admin, "PATCH /api/v1/t\"x\"", "api-key:k");
        full.name = Some("é\u{1}\n".into());
        full.client = Some("c/1".into());
        full.server = Some("s".into());
        full.version = Some(3);
        full.args_sha256 = Some("ab".into());
        full.payload = Some("{\"a\":1}".into());
        full.outcome = "error".into();
        full.error_code = Some(-32602);
        full.latency_us = Some(1);
        full.cpu_us = Some(2);
        full.bytes_in = Some(3);
        full.bytes_out = Some(4);
        full.detail = Some("d".into());
        full.node = "n".into();
        let empty = AuditEvent::new(TenantId::new(), Kind::Call, "tools/call", "anonymous");
        for event in [full, empty] {
            assert_eq!(content(7, &event), content_by_definition(7, &event));
        }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let events = chain(5);
        let verified = verify(&events).unwrap();
        assert_eq!((verified.events, verified.first_seq, verified.last_seq), (5, Some(1), Some(5)));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = chain(5);
        events[2].event.outcome = "error".into();
        let broken = verify(&events).unwrap_err();
        assert_eq!((broken.seq, broken.id), (3, events[2].event.id));
        assert!(broken.reason.contains("edited"), "{broken}");
    }

    #[test]
    fn an_edited_event_with_a_recomputed_hash_breaks_the_next_link() {
        let mut events = chain(5);
        events[2].event.outcome = "error".into();
        let prev = decode(&events[2].prev_hash).unwrap();
        events[2].hash = hex::encode(hash(&prev, 3, &events[2].event));
        let broken = verify(&events).unwrap_err();
        assert_eq!(broken.seq, 4, "{broken}");
    }

    #[test]
    fn a_removed_event_is_named_by_its_successor() {
        let mut events = chain(5);
        events.remove(1);
        let broken = verify(&events).unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("event 2 is missing"), "{broken}");
    }

    #[test]
    fn reordered_events_are_named() {
        let mut events = chain(5);
        events.swap(1, 2);
        let broken = verify(&events).unwrap_err();
        assert_eq!(broken.seq, 3, "{broken}");
        let mut renumbered = chain(5);
        let (a, b) = (renumbered[1].seq, renumbered[2].seq);
        renumbered[1].seq = b;
        renumbered[2].seq = a;
        renumbered.swap(1, 2);
        let broken = verify(&renumbered).unwrap_err();
        assert_eq!(broken.seq, 2, "swapped sequence numbers change the hashed contents: {broken}");
    }

    #[test]
    fn a_cut_tail_is_caught_against_the_head_only() {
        let events = chain(5);
        let head = Head { seq: 5, hash: decode(&events[4].hash).unwrap() };
        let mut verifier = Verifier::new();
        for event in &events[..3] {
            verifier.push(event).unwrap();
        }
        assert!(verifier.check_head(&head).unwrap_err().contains("newest events were removed"));
    }

    #[test]
    fn sealed_events_survive_a_json_round_trip() {
        let events = chain(3);
        let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        let back: Vec<SealedEvent> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, events);
        verify(&back).unwrap();
    }
}
