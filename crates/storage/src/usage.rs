//! Usage counters per tenant, day, server and key: batched increments from data-plane nodes,
//! the month's totals they enforce against, and the usage API's rows.

use berth_core::{ApiKeyId, ServerId, TenantId, TenantScope};
use berth_quotas::{Counts, Delta, DeltaKey, MonthTotals};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::quotas::NO_KEY;

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Adds `delta` to the usage rows in one statement. Rows are sorted by key so that nodes
/// flushing at the same time lock them in the same order.
pub async fn add(conn: &mut PgConnection, delta: &Delta) -> Result<()> {
    if delta.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(&DeltaKey, &Counts)> = delta.iter().collect();
    rows.sort_by_key(|(key, _)| **key);
    let n = rows.len();
    let (mut tenant, mut day, mut server, mut key) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut requests, mut calls, mut errors) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut cpu, mut bytes_in, mut bytes_out) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (k, c) in rows {
        tenant.push(k.tenant.as_uuid());
        day.push(k.day);
        server.push(k.server.as_uuid());
        key.push(k.key.map_or(NO_KEY, |k| k.as_uuid()));
        requests.push(i64_of(c.requests));
        calls.push(i64_of(c.tool_calls));
        errors.push(i64_of(c.errors));
        cpu.push(i64_of(c.cpu_us));
        bytes_in.push(i64_of(c.bytes_in));
        bytes_out.push(i64_of(c.bytes_out));
    }
    sqlx::query!(
        "INSERT INTO usage_daily (tenant_id, day, server_id, key_id, requests, tool_calls, errors, cpu_us, bytes_in, bytes_out)
         SELECT d.* FROM UNNEST($1::uuid[], $2::date[], $3::uuid[], $4::uuid[], $5::bigint[], $6::bigint[],
                                $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
             AS d (tenant_id, day, server_id, key_id, requests, tool_calls, errors, cpu_us, bytes_in, bytes_out)
         WHERE EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.tenant_id)
         ON CONFLICT (tenant_id, day, server_id, key_id) DO UPDATE SET
             requests = usage_daily.requests + EXCLUDED.requests,
             tool_calls = usage_daily.tool_calls + EXCLUDED.tool_calls,
             errors = usage_daily.errors + EXCLUDED.errors,
             cpu_us = usage_daily.cpu_us + EXCLUDED.cpu_us,
             bytes_in = usage_daily.bytes_in + EXCLUDED.bytes_in,
             bytes_out = usage_daily.bytes_out + EXCLUDED.bytes_out",
        &tenant,
        &day,
        &server,
        &key,
        &requests,
        &calls,
        &errors,
        &cpu,
        &bytes_in,
        &bytes_out
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The month's (tool calls, CPU microseconds) of `tenants`, per tenant and per key, over
/// every node's flushed counts. Runs for enforcement, by tenant id.
pub async fn month_totals(conn: &mut PgConnection, tenants: &[TenantId], month: DateTime<Utc>) -> Result<MonthTotals> {
    let ids: Vec<Uuid> = tenants.iter().map(TenantId::as_uuid).collect();
    let rows = sqlx::query!(
        r#"SELECT tenant_id, key_id, SUM(tool_calls)::bigint AS "calls!", SUM(cpu_us)::bigint AS "cpu!"
           FROM usage_daily WHERE tenant_id = ANY($1) AND day >= $2
           GROUP BY tenant_id, key_id"#,
        &ids,
        month.date_naive()
    )
    .fetch_all(conn)
    .await?;
    let mut totals = MonthTotals::default();
    for row in rows {
        let tenant = TenantId::from_uuid(row.tenant_id);
        let (calls, cpu) = (u64_of(row.calls), u64_of(row.cpu));
        let slot = totals.tenants.entry(tenant).or_default();
        slot.0 = slot.0.saturating_add(calls);
        slot.1 = slot.1.saturating_add(cpu);
        if row.key_id != NO_KEY {
            totals.keys.insert((tenant, ApiKeyId::from_uuid(row.key_id)), (calls, cpu));
        }
    }
    Ok(totals)
}

/// One usage row as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Day (UTC).
    pub day: NaiveDate,
    /// Server.
    pub server_id: ServerId,
    /// Its slug, unless the server was deleted.
    pub server: Option<String>,
    /// API key (`None`: calls without a key).
    pub key_id: Option<ApiKeyId>,
    /// Counters.
    pub counts: Counts,
}

/// Usage rows of the tenant between two days (inclusive), optionally for one server or key.
pub async fn list(
    conn: &mut PgConnection,
    scope: &TenantScope,
    from: NaiveDate,
    to: NaiveDate,
    server: Option<ServerId>,
    key: Option<ApiKeyId>,
    limit: i64,
) -> Result<Vec<UsageRow>> {
    let rows = sqlx::query!(
        r#"SELECT u.day, u.server_id, s.slug AS "slug?", u.key_id, u.requests, u.tool_calls, u.errors, u.cpu_us,
                  u.bytes_in, u.bytes_out
           FROM usage_daily u LEFT JOIN servers s ON s.tenant_id = u.tenant_id AND s.id = u.server_id
           WHERE u.tenant_id = $1 AND u.day BETWEEN $2 AND $3
             AND ($4::uuid IS NULL OR u.server_id = $4) AND ($5::uuid IS NULL OR u.key_id = $5)
           ORDER BY u.day, s.slug, u.key_id LIMIT $6"#,
        scope.tenant_id().as_uuid(),
        from,
        to,
        server.map(|s| s.as_uuid()),
        key.map(|k| k.as_uuid()),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| UsageRow {
            day: r.day,
            server_id: ServerId::from_uuid(r.server_id),
            server: r.slug,
            key_id: (r.key_id != NO_KEY).then(|| ApiKeyId::from_uuid(r.key_id)),
            counts: Counts {
                requests: u64_of(r.requests),
                tool_calls: u64_of(r.tool_calls),
                errors: u64_of(r.errors),
                cpu_us: u64_of(r.cpu_us),
                bytes_in: u64_of(r.bytes_in),
                bytes_out: u64_of(r.bytes_out),
            },
        })
        .collect())
}
