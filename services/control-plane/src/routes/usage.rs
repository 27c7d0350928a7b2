//! `/tenants/{tenant}/usage`: usage per day, server and key, with totals.
//!
//! Data-plane nodes write their counters every second, so the newest second may be missing.

use actix_web::{HttpResponse, web};
use berth_core::{ApiKeyId, Error as Invalid, Scope, Slug};
use berth_quotas::Counts;
use berth_storage::{quotas, servers, usage};
use chrono::{Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::problem::ApiError;

/// Rows returned at most.
const MAX_ROWS: i64 = 10_000;

/// The usage query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageQuery {
    /// First day (UTC, `YYYY-MM-DD`); default the first of this month.
    pub(crate) from: Option<NaiveDate>,
    /// Last day (UTC, inclusive); default today.
    pub(crate) to: Option<NaiveDate>,
    /// Only this server (slug).
    pub(crate) server: Option<String>,
    /// Only this API key (id).
    pub(crate) key: Option<Uuid>,
}

/// Counters.
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct CountsBody {
    /// Requests a server answered.
    pub(crate) requests: u64,
    /// `tools/call` requests admitted.
    pub(crate) tool_calls: u64,
    /// Requests answered with a JSON-RPC error.
    pub(crate) errors: u64,
    /// WASM CPU time, milliseconds.
    pub(crate) wasm_cpu_ms: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl CountsBody {
    fn add(&mut self, c: &Counts) {
        self.requests += c.requests;
        self.tool_calls += c.tool_calls;
        self.errors += c.errors;
        self.wasm_cpu_ms += c.cpu_us / 1000;
        self.bytes_in += c.bytes_in;
        self.bytes_out += c.bytes_out;
    }
}

/// Usage of one server through one key on one day.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageRowBody {
    pub(crate) day: NaiveDate,
    /// Server slug (`null` once the server is deleted).
    pub(crate) server: Option<String>,
    pub(crate) server_id: Uuid,
    /// API key id (`null`: calls without a key: anonymous, OAuth, platform administrator).
    pub(crate) key_id: Option<Uuid>,
    #[serde(flatten)]
    pub(crate) counts: CountsBody,
}

/// The usage report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageBody {
    pub(crate) from: NaiveDate,
    pub(crate) to: NaiveDate,
    pub(crate) items: Vec<UsageRowBody>,
    /// Sums over `items`.
    pub(crate) totals: CountsBody,
    /// The plan's limits, for comparison.
    pub(crate) quotas: crate::routes::quotas::QuotasBody,
}

/// Usage per day, server and key.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/usage", tag = "quotas", params(UsageQuery),
    responses((status = 200, body = UsageBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn get(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let today = Utc::now().date_naive();
    let from = query.from.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let to = query.to.unwrap_or(today);
    if to < from {
        return Err(Invalid::invalid("to", "must not be before `from`").into());
    }
    let server = match &query.server {
        Some(slug) => Some(servers::get(&mut conn, &scope, &Slug::parse("server", slug)?).await?.id),
        None => None,
    };
    let key = query.key.map(ApiKeyId::from_uuid);
    let rows = usage::list(&mut conn, &scope, from, to, server, key, MAX_ROWS).await?;
    let mut totals = CountsBody::default();
    let items = rows
        .into_iter()
        .map(|r| {
            totals.add(&r.counts);
            let mut counts = CountsBody::default();
            counts.add(&r.counts);
            UsageRowBody {
                day: r.day,
                server: r.server,
                server_id: r.server_id.as_uuid(),
                key_id: r.key_id.map(|k| k.as_uuid()),
                counts,
            }
        })
        .collect();
    let plan = quotas::tenant_limits(&mut conn, &scope).await?;
    Ok(HttpResponse::Ok().json(UsageBody { from, to, items, totals, quotas: plan.into() }))
}
