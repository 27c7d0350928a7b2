//! The audit trail in PostgreSQL: [`PgSink`] seals and inserts batches; the rest reads them.
//!
//! A batch is one transaction. The sink locks the chain heads of the batch's tenants
//! (`FOR UPDATE`, in tenant-id order, so writers on several nodes never deadlock), skips events
//! whose ids are already stored when replaying, seals the rest onto the heads and inserts them
//! with one binary `COPY` (a replay, which must skip stored ids, with one
//! `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING`). Nodes therefore take turns per
//! tenant, and the chain order is the commit order.

use std::collections::{BTreeMap, HashSet};

use berth_audit::chain::{Head, Seal, SealedEvent};
use berth_audit::event::{AuditEvent, Kind};
use berth_audit::sink::{AuditSink, SinkError};
use berth_core::{TenantId, TenantScope};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The PostgreSQL audit sink.
#[derive(Debug, Clone)]
pub struct PgSink {
    pool: PgPool,
}

impl PgSink {
    /// A sink over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn classify(e: sqlx::Error) -> SinkError {
    match &e {
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")) => {
            SinkError::Rejected(db.message().to_owned())
        }
        _ => SinkError::Unavailable(e.to_string()),
    }
}

impl AuditSink for PgSink {
    fn write<'a>(
        &'a self,
        events: &'a [AuditEvent],
        replay: bool,
    ) -> BoxFuture<'a, std::result::Result<usize, SinkError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            let stored = write_batch(&mut tx, events, replay).await.map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            Ok(stored)
        })
    }
}

fn parse_head(seq: i64, hash: &str) -> Head {
    let hash = hex::decode(hash).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).unwrap_or([0; 32]);
    Head { seq, hash }
}

/// Seals and inserts `events` inside the caller's transaction; returns how many were new.
///
/// Five statements whatever the number of tenants: create missing chain heads, lock the heads
/// (in tenant order), with `replay` find the ids already stored, insert every new row, move the
/// heads. Without `replay` the caller guarantees no event was attempted before.
pub async fn write_batch(
    conn: &mut PgConnection,
    events: &[AuditEvent],
    replay: bool,
) -> std::result::Result<usize, sqlx::Error> {
    let mut by_tenant: BTreeMap<TenantId, Vec<&AuditEvent>> = BTreeMap::new();
    for event in events {
        by_tenant.entry(event.tenant_id).or_default().push(event);
    }
    let tenants: Vec<Uuid> = by_tenant.keys().map(TenantId::as_uuid).collect();
    sqlx::query!(
        "INSERT INTO audit_chain_heads (tenant_id, seq, hash)
         SELECT t.id, 0, $2 FROM tenants t WHERE t.id = ANY($1)
         ON CONFLICT (tenant_id) DO NOTHING",
        &tenants,
        hex::encode(berth_audit::chain::GENESIS)
    )
    .execute(&mut *conn)
    .await?;
    let heads = sqlx::query!(
        "SELECT tenant_id, seq, hash FROM audit_chain_heads WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE",
        &tenants
    )
    .fetch_all(&mut *conn)
    .await?;
    let heads: Vec<(TenantId, Head)> =
        heads.into_iter().map(|r| (TenantId::from_uuid(r.tenant_id), parse_head(r.seq, &r.hash))).collect();
    for (tenant, events) in &by_tenant {
        if !heads.iter().any(|(t, _)| t == tenant) {
            tracing::warn!(tenant_id = %tenant, events = events.len(), "audit events of a deleted tenant dropped");
        }
    }
    // Seals the batch onto the locked heads, leaving out `stored` (and repeated ids).
    let seal = |stored: &HashSet<Uuid>| {
        let mut seen = stored.clone();
        let mut sealed = Vec::with_capacity(events.len());
        let mut moved = Vec::with_capacity(heads.len());
        for (tenant, head) in &heads {
            let Some(events) = by_tenant.get(tenant) else { continue };
            let mut head = *head;
            let before = sealed.len();
            sealed.extend(events.iter().filter(|e| seen.insert(e.id)).map(|e| (*e, head.seal_ref(e))));
            if sealed.len() > before {
                moved.push((*tenant, head));
            }
        }
        (sealed, moved)
    };
    let (mut sealed, mut moved) = seal(&HashSet::new());
    if sealed.is_empty() {
        return Ok(0);
    }
    if replay {
        // Most replayed events were never stored: insert them all, skipping stored ids; if any
        // was skipped, the sequence numbers have gaps, so undo and seal again without them.
        let mut attempt = sqlx::Connection::begin(&mut *conn).await?;
        let inserted: HashSet<Uuid> = insert_unstored(&mut attempt, &sealed).await?.into_iter().collect();
        if inserted.len() == sealed.len() {
            attempt.commit().await?;
        } else {
            attempt.rollback().await?;
            let stored: HashSet<Uuid> = sealed.iter().map(|(e, _)| e.id).filter(|id| !inserted.contains(id)).collect();
            (sealed, moved) = seal(&stored);
            if sealed.is_empty() {
                return Ok(0);
            }
            copy_sealed(conn, &sealed).await?;
        }
    } else {
        copy_sealed(conn, &sealed).await?;
    }
    let head_tenants: Vec<Uuid> = moved.iter().map(|(t, _)| t.as_uuid()).collect();
    let head_seqs: Vec<i64> = moved.iter().map(|(_, h)| h.seq).collect();
    let head_hashes: Vec<String> = moved.iter().map(|(_, h)| hex::encode(h.hash)).collect();
    sqlx::query!(
        "UPDATE audit_chain_heads h SET seq = d.seq, hash = d.hash
         FROM UNNEST($1::uuid[], $2::bigint[], $3::text[]) AS d (tenant_id, seq, hash)
         WHERE h.tenant_id = d.tenant_id",
        &head_tenants,
        &head_seqs,
        &head_hashes
    )
    .execute(&mut *conn)
    .await?;
    Ok(sealed.len())
}

/// Inserts sealed rows with `COPY … FROM STDIN (FORMAT binary)`: no statement to plan and no
/// arrays to take apart (an `INSERT … SELECT FROM UNNEST(…)` of the same rows cost the database
/// about a third more CPU per call in B1, `docs/benchmarks.md`). A row whose id is stored
/// already fails the whole `COPY`; replays therefore use [`insert_unstored`].
async fn copy_sealed(conn: &mut PgConnection, sealed: &[(&AuditEvent, Seal)]) -> std::result::Result<(), sqlx::Error> {
    let rows = copy_rows(sealed).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut copy = conn
        .copy_in_raw(
            "COPY audit_events (tenant_id, seq, id, at, kind, method, name, principal, client, server, version,
               args_sha256, payload, outcome, error_code, latency_us, cpu_us, bytes_in, bytes_out, detail, node,
               prev_hash, hash)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    // Dropped on an error, the copy tells PostgreSQL to abandon it.
    copy.send(rows).await?;
    copy.finish().await?;
    Ok(())
}

/// The columns of an `audit_events` row, in [`copy_sealed`]'s order.
const COPY_COLUMNS: i16 = 23;

/// `sealed` in PostgreSQL's binary `COPY` format: a header, then per row its field count and each
/// field as a length (−1 for NULL) and the type's binary send format, then a trailer.
fn copy_rows(sealed: &[(&AuditEvent, Seal)]) -> std::result::Result<Vec<u8>, String> {
    let mut out = CopyWriter::new(sealed.len());
    for (e, s) in sealed {
        out.row(COPY_COLUMNS);
        out.uuid(e.tenant_id.as_uuid());
        out.i64(s.seq);
        out.uuid(e.id);
        out.timestamptz(e.at)?;
        out.text(e.kind.as_str())?;
        out.text(&e.method)?;
        out.opt_text(e.name.as_deref())?;
        out.text(&e.principal)?;
        out.opt_text(e.client.as_deref())?;
        out.opt_text(e.server.as_deref())?;
        match e.version {
            Some(v) => out.field(&v.to_be_bytes()),
            None => out.null(),
        }
        out.opt_text(e.args_sha256.as_deref())?;
        out.opt_text(e.payload.as_deref())?;
        out.text(&e.outcome)?;
        for v in [e.error_code, e.latency_us, e.cpu_us, e.bytes_in, e.bytes_out] {
            match v {
                Some(v) => out.i64(v),
                None => out.null(),
            }
        }
        out.opt_text(e.detail.as_deref())?;
        out.text(&e.node)?;
        out.text(&s.prev_hash)?;
        out.text(&s.hash)?;
    }
    Ok(out.finish())
}

/// Writes PostgreSQL's binary `COPY` format.
struct CopyWriter {
    buf: Vec<u8>,
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

impl CopyWriter {
    fn new(rows: usize) -> Self {
        let mut buf = Vec::with_capacity(19 + rows * 640 + 2);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        // Flags, then the length of the header extension: none.
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        Self { buf }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Callers pass fixed-size values or checked lengths.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn i64(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    fn uuid(&mut self, v: Uuid) {
        self.field(v.as_bytes());
    }

    /// As sqlx encodes it: whole microseconds since PostgreSQL's epoch, truncated.
    fn timestamptz(&mut self, at: DateTime<Utc>) -> std::result::Result<(), String> {
        let micros = at
            .timestamp_micros()
            .checked_sub(PG_EPOCH_UNIX_MICROS)
            .ok_or_else(|| format!("audit event time {at} is out of range"))?;
        self.i64(micros);
        Ok(())
    }

    fn text(&mut self, v: &str) -> std::result::Result<(), String> {
        if i32::try_from(v.len()).is_err() {
            return Err(format!("an audit event field of {} bytes is too long", v.len()));
        }
        self.field(v.as_bytes());
        Ok(())
    }

    fn opt_text(&mut self, v: Option<&str>) -> std::result::Result<(), String> {
        match v {
            Some(v) => self.text(v),
            None => {
                self.null();
                Ok(())
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// Inserts sealed rows whose ids may be stored already, skipping those; returns the ids
/// inserted.
async fn insert_unstored(
    conn: &mut PgConnection,
    sealed: &[(&AuditEvent, Seal)],
) -> std::result::Result<Vec<Uuid>, sqlx::Error> {
    let n = sealed.len();
    let mut tenant = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut method = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut principal = Vec::with_capacity(n);
    let mut client = Vec::with_capacity(n);
    let mut server = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut error_code = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    let mut bytes_in = Vec::with_capacity(n);
    let mut bytes_out = Vec::with_capacity(n);
    let mut detail = Vec::with_capacity(n);
    let mut node = Vec::with_capacity(n);
    let mut prev_hash = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    for (e, s) in sealed {
        tenant.push(e.tenant_id.as_uuid());
        seq.push(s.seq);
        id.push(e.id);
        at.push(e.at);
        kind.push(e.kind.as_str());
        method.push(e.method.as_str());
        name.push(e.name.as_deref());
        principal.push(e.principal.as_str());
        client.push(e.client.as_deref());
        server.push(e.server.as_deref());
        version.push(e.version);
        args.push(e.args_sha256.as_deref());
        payload.push(e.payload.as_deref());
        outcome.push(e.outcome.as_str());
        error_code.push(e.error_code);
        latency.push(e.latency_us);
        cpu.push(e.cpu_us);
        bytes_in.push(e.bytes_in);
        bytes_out.push(e.bytes_out);
        detail.push(e.detail.as_deref());
        node.push(e.node.as_str());
        prev_hash.push(s.prev_hash.as_str());
        hash.push(s.hash.as_str());
    }
    sqlx::query_scalar!(
        r#"INSERT INTO audit_events (tenant_id, seq, id, at, kind, method, name, principal, client, server,
               version, args_sha256, payload, outcome, error_code, latency_us, cpu_us, bytes_in, bytes_out,
               detail, node, prev_hash, hash)
           SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[],
               $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::text[], $13::text[],
               $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
               $20::text[], $21::text[], $22::text[], $23::text[])
           ON CONFLICT (tenant_id, id) DO NOTHING
           RETURNING id"#,
        &tenant,
        &seq,
        &id,
        &at,
        &kind as &[&str],
        &method as &[&str],
        &name as &[Option<&str>],
        &principal as &[&str],
        &client as &[Option<&str>],
        &server as &[Option<&str>],
        &version as &[Option<i32>],
        &args as &[Option<&str>],
        &payload as &[Option<&str>],
        &outcome as &[&str],
        &error_code as &[Option<i64>],
        &latency as &[Option<i64>],
        &cpu as &[Option<i64>],
        &bytes_in as &[Option<i64>],
        &bytes_out as &[Option<i64>],
        &detail as &[Option<&str>],
        &node as &[&str],
        &prev_hash as &[&str],
        &hash as &[&str]
    )
    .fetch_all(conn)
    .await
}

/// Filters of the audit query API (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Exact principal label.
    pub principal: Option<String>,
    /// Server slug.
    pub server: Option<String>,
    /// Tool, prompt or resource URI (`name`).
    pub name: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Kind.
    pub kind: Option<Kind>,
    /// Method.
    pub method: Option<String>,
}

struct Row {
    tenant_id: Uuid,
    seq: i64,
    id: Uuid,
    at: DateTime<Utc>,
    kind: String,
    method: String,
    name: Option<String>,
    principal: String,
    client: Option<String>,
    server: Option<String>,
    version: Option<i32>,
    args_sha256: Option<String>,
    payload: Option<String>,
    outcome: String,
    error_code: Option<i64>,
    latency_us: Option<i64>,
    cpu_us: Option<i64>,
    bytes_in: Option<i64>,
    bytes_out: Option<i64>,
    detail: Option<String>,
    node: String,
    prev_hash: String,
    hash: String,
}

impl TryFrom<Row> for SealedEvent {
    type Error = Error;
    fn try_from(r: Row) -> Result<Self> {
        let kind = Kind::parse(&r.kind)
            .ok_or_else(|| Error::Embedded(format!("audit event {} has kind {:?}", r.seq, r.kind)))?;
        Ok(SealedEvent {
            seq: r.seq,
            event: AuditEvent {
                id: r.id,
                at: r.at,
                tenant_id: TenantId::from_uuid(r.tenant_id),
                kind,
                method: r.method,
                name: r.name,
                principal: r.principal,
                client: r.client,
                server: r.server,
                version: r.version,
                args_sha256: r.args_sha256,
                payload: r.payload,
                outcome: r.outcome,
                error_code: r.error_code,
                latency_us: r.latency_us,
                cpu_us: r.cpu_us,
                bytes_in: r.bytes_in,
                bytes_out: r.bytes_out,
                detail: r.detail,
                node: r.node,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}

/// Events matching `filter`, newest first, with `seq` below `before` when given.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SealedEvent>> {
    sqlx::query_as!(
        Row,
        r#"SELECT tenant_id, seq, id, at, kind, method, name, principal, client, server, version, args_sha256,
                  payload, outcome, error_code, latency_us, cpu_us, bytes_in, bytes_out, detail, node, prev_hash, hash
           FROM audit_events
           WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq < $2)
             AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
             AND ($5::text IS NULL OR principal = $5) AND ($6::text IS NULL OR server = $6)
             AND ($7::text IS NULL OR name = $7) AND ($8::text IS NULL OR outcome = $8)
             AND ($9::text IS NULL OR kind = $9) AND ($10::text IS NULL OR method = $10)
           ORDER BY seq DESC LIMIT $11"#,
        scope.tenant_id().as_uuid(),
        before,
        filter.from,
        filter.to,
        filter.principal,
        filter.server,
        filter.name,
        filter.outcome,
        filter.kind.map(Kind::as_str),
        filter.method,
        limit
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(SealedEvent::try_from)
    .collect()
}

/// Events matching `filter`, oldest first, with `seq` above `after` when given (exports and
/// verification page through a chain with this).
pub async fn page_forward(
    conn: &mut PgConnection,
    scope: &TenantScope,
    filter: &AuditFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<SealedEvent>> {
    sqlx::query_as!(
        Row,
        r#"SELECT tenant_id, seq, id, at, kind, method, name, principal, client, server, version, args_sha256,
                  payload, outcome, error_code, latency_us, cpu_us, bytes_in, bytes_out, detail, node, prev_hash, hash
           FROM audit_events
           WHERE tenant_id = $1 AND ($2::bigint IS NULL OR seq > $2)
             AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
             AND ($5::text IS NULL OR principal = $5) AND ($6::text IS NULL OR server = $6)
             AND ($7::text IS NULL OR name = $7) AND ($8::text IS NULL OR outcome = $8)
             AND ($9::text IS NULL OR kind = $9) AND ($10::text IS NULL OR method = $10)
           ORDER BY seq LIMIT $11"#,
        scope.tenant_id().as_uuid(),
        after,
        filter.from,
        filter.to,
        filter.principal,
        filter.server,
        filter.name,
        filter.outcome,
        filter.kind.map(Kind::as_str),
        filter.method,
        limit
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(SealedEvent::try_from)
    .collect()
}

/// The tenant's chain head (`None` before its first event).
pub async fn head(conn: &mut PgConnection, scope: &TenantScope) -> Result<Option<Head>> {
    let row = sqlx::query!("SELECT seq, hash FROM audit_chain_heads WHERE tenant_id = $1", scope.tenant_id().as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| parse_head(r.seq, &r.hash)))
}

/// Verifies a tenant's whole chain from the database, page by page, against its head.
pub async fn verify_chain(
    conn: &mut PgConnection,
    scope: &TenantScope,
) -> Result<std::result::Result<berth_audit::Verified, ChainError>> {
    let mut verifier = berth_audit::Verifier::new();
    let mut after = None;
    loop {
        let page = page_forward(conn, scope, &AuditFilter::default(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for event in &page {
            if let Err(broken) = verifier.push(event) {
                return Ok(Err(ChainError::Broken(broken)));
            }
        }
    }
    let head = head(conn, scope).await?.unwrap_or(Head::EMPTY);
    if let Err(why) = verifier.check_head(&head) {
        return Ok(Err(ChainError::Head(why)));
    }
    Ok(Ok(verifier.finish()))
}

/// Why a stored chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An event breaks the chain.
    #[error(transparent)]
    Broken(#[from] berth_audit::Broken),
    /// The events do not end at the stored head.
    #[error("{0}")]
    Head(String),
}
