//! `/tenants/{tenant}/audit`: query the audit trail, and export it as JSON Lines or CSV.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use berth_audit::chain::SealedEvent;
use berth_audit::event::Kind;
use berth_core::{Error as Invalid, Scope, TenantScope};
use berth_storage::PgPool;
use berth_storage::audit::{self, AuditFilter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::conn;
use crate::ControlPlaneState;
use crate::caller::Caller;
use crate::dto::{Page, page};
use crate::problem::ApiError;

/// Filters and paging of the audit query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Events at or after this time (RFC 3339).
    pub(crate) from: Option<DateTime<Utc>>,
    /// Events before this time (RFC 3339).
    pub(crate) to: Option<DateTime<Utc>>,
    /// Exact principal label (`api-key:<id>`, `oauth:<client>:<subject>`, `platform-admin`, …).
    pub(crate) principal: Option<String>,
    /// Server slug.
    pub(crate) server: Option<String>,
    /// Tool or prompt name, or resource URI.
    pub(crate) tool: Option<String>,
    /// `ok`, `error`, `tool_error`, `denied`, `quota_exceeded`, `cancelled`, `killed`, …
    pub(crate) outcome: Option<String>,
    /// `admin`, `auth`, `session` or `call`.
    pub(crate) kind: Option<String>,
    /// MCP method (`tools/call`) or admin route (`PATCH /api/v1/tenants/{tenant}`).
    pub(crate) method: Option<String>,
    /// Page size (1-500, default 100). Query only.
    pub(crate) limit: Option<i64>,
    /// `next_cursor` of the previous page. Query only.
    pub(crate) cursor: Option<String>,
    /// Export only: `jsonl` (default) or `csv`.
    pub(crate) format: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let kind = self
            .kind
            .as_deref()
            .map(|k| Kind::parse(k).ok_or_else(|| Invalid::invalid("kind", "must be admin, auth, session or call")))
            .transpose()?;
        Ok(AuditFilter {
            from: self.from,
            to: self.to,
            principal: self.principal.clone(),
            server: self.server.clone(),
            name: self.tool.clone(),
            outcome: self.outcome.clone(),
            kind,
            method: self.method.clone(),
        })
    }
}

/// One audit event in its tenant's hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventBody {
    /// Position in the tenant's chain, from 1.
    pub(crate) seq: i64,
    pub(crate) id: Uuid,
    pub(crate) at: DateTime<Utc>,
    pub(crate) tenant_id: Uuid,
    /// `admin`, `auth`, `session` or `call`.
    pub(crate) kind: String,
    /// MCP method, admin route, `authenticate`, `open` or `close`.
    pub(crate) method: String,
    /// Tool, prompt or resource URI; admin request path; legacy session id.
    pub(crate) name: Option<String>,
    pub(crate) principal: String,
    /// MCP client (`clientInfo` name/version).
    pub(crate) client: Option<String>,
    pub(crate) server: Option<String>,
    pub(crate) version: Option<i32>,
    /// SHA-256 (hex) of the canonical JSON of the call's arguments.
    pub(crate) args_sha256: Option<String>,
    /// Redacted call parameters (canonical JSON), when the server opted in to capture.
    pub(crate) payload: Option<String>,
    pub(crate) outcome: String,
    /// JSON-RPC error code (calls) or HTTP status (admin, auth).
    pub(crate) error_code: Option<i64>,
    pub(crate) latency_us: Option<i64>,
    pub(crate) cpu_us: Option<i64>,
    pub(crate) bytes_in: Option<i64>,
    pub(crate) bytes_out: Option<i64>,
    pub(crate) detail: Option<String>,
    pub(crate) node: String,
    /// The previous event's hash (hex).
    pub(crate) prev_hash: String,
    /// SHA-256(prev_hash || canonical event), hex.
    pub(crate) hash: String,
}

impl From<SealedEvent> for AuditEventBody {
    fn from(s: SealedEvent) -> Self {
        let e = s.event;
        Self {
            seq: s.seq,
            id: e.id,
            at: e.at,
            tenant_id: e.tenant_id.as_uuid(),
            kind: e.kind.as_str().to_owned(),
            method: e.method,
            name: e.name,
            principal: e.principal,
            client: e.client,
            server: e.server,
            version: e.version,
            args_sha256: e.args_sha256,
            payload: e.payload,
            outcome: e.outcome,
            error_code: e.error_code,
            latency_us: e.latency_us,
            cpu_us: e.cpu_us,
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            detail: e.detail,
            node: e.node,
            prev_hash: s.prev_hash,
            hash: s.hash,
        }
    }
}

/// Queries the tenant's audit trail, newest first (keyset pagination by `seq`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEventBody>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn list(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    let filter = query.filter()?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map_err(|_| Invalid::invalid("cursor", "not a cursor from this endpoint")))
        .transpose()?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let rows = audit::list(&mut conn, &scope, &filter, before, limit + 1).await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |e| e.seq.to_string(), AuditEventBody::from)))
}

const EXPORT_PAGE: i64 = 1000;

struct Export {
    pool: PgPool,
    scope: TenantScope,
    filter: AuditFilter,
    after: Option<i64>,
    csv: bool,
    header: bool,
    done: bool,
}

async fn next_chunk(mut export: Export) -> Option<(Result<web::Bytes, actix_web::Error>, Export)> {
    if export.done {
        return None;
    }
    let mut out = String::new();
    if export.header {
        export.header = false;
        if export.csv {
            out.push_str(&berth_audit::export::csv_header());
        }
    }
    let page = match export.pool.acquire().await {
        Ok(mut conn) => audit::page_forward(&mut conn, &export.scope, &export.filter, export.after, EXPORT_PAGE).await,
        Err(e) => Err(berth_storage::Error::from(e)),
    };
    let page = match page {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error.message = %e, "audit export failed mid-stream");
            export.done = true;
            return Some((Err(actix_web::error::ErrorServiceUnavailable("audit export failed")), export));
        }
    };
    if (page.len() as i64) < EXPORT_PAGE {
        export.done = true;
    }
    export.after = page.last().map(|e| e.seq).or(export.after);
    for event in &page {
        if export.csv {
            out.push_str(&berth_audit::export::csv_row(event));
        } else {
            out.push_str(&berth_audit::export::jsonl_line(event));
        }
    }
    Some((Ok(web::Bytes::from(out)), export))
}

/// Exports the tenant's audit trail, oldest first, as JSON Lines (verifiable offline with
/// `berth audit verify --file`; export without filters for a whole chain) or CSV.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "`application/jsonl` (one event per line) or `text/csv`"),
        (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn export(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &path, Scope::AdminRead).await?;
    drop(conn);
    let csv = match query.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(_) => return Err(Invalid::invalid("format", "must be jsonl or csv").into()),
    };
    let filter = query.filter()?;
    let (content_type, extension) =
        if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/jsonl", "jsonl") };
    let filename = format!("audit-{}.{extension}", scope.slug());
    let export = Export { pool: state.pool.clone(), scope, filter, after: None, csv, header: true, done: false };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(futures::stream::unfold(export, next_chunk)))
}

/// Whether a server's audit events carry its call parameters.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaptureBody {
    /// Store the parameters of `tools/call`, `resources/read` and `prompts/get` (canonical JSON)
    /// in each audit event. Default false: events carry the arguments' SHA-256 only.
    #[serde(default)]
    pub(crate) capture_payloads: bool,
    /// Keys whose values are replaced with `"[REDACTED]"`, besides the defaults (`password`,
    /// `secret`, `token`, `api_key`, `authorization`, `cookie`, `private_key`, `credentials`,
    /// and keys ending in `_<one of them>`).
    #[serde(default)]
    pub(crate) redact: Vec<String>,
}

/// Reads a server's audit capture settings.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/servers/{server}/audit", tag = "audit",
    responses((status = 200, body = CaptureBody), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn get_capture(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::AdminRead).await?;
    let server = berth_storage::servers::get(&mut conn, &scope, &berth_core::Slug::parse("server", &server)?).await?;
    let capture = berth_storage::quotas::capture(&mut conn, &scope, server.id).await?;
    Ok(HttpResponse::Ok().json(CaptureBody { capture_payloads: capture.capture_payloads, redact: capture.redact }))
}

/// Opts a server in or out of payload capture (the `admin` scope).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/servers/{server}/audit", tag = "audit", request_body = CaptureBody,
    responses((status = 200, body = CaptureBody), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn put_capture(
    state: web::Data<ControlPlaneState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<CaptureBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, server) = path.into_inner();
    let body = body.into_inner();
    if body.redact.len() > 100 || body.redact.iter().any(|k| k.is_empty() || k.len() > 128) {
        return Err(Invalid::invalid("redact", "at most 100 key names of 1-128 characters").into());
    }
    let mut conn = conn(&state).await?;
    let scope = caller.tenant(&mut conn, &tenant, Scope::Admin).await?;
    let server = berth_storage::servers::get(&mut conn, &scope, &berth_core::Slug::parse("server", &server)?).await?;
    drop(conn);
    let capture =
        berth_storage::quotas::Capture { capture_payloads: body.capture_payloads, redact: body.redact.clone() };
    let mut tx = state.pool.begin().await.map_err(berth_storage::Error::from)?;
    berth_storage::quotas::set_capture(&mut tx, &scope, server.id, &capture).await?;
    berth_storage::notify::publish(&mut tx, &berth_storage::notify::Change::Quotas { tenant: scope.tenant_id() })
        .await?;
    tx.commit().await.map_err(berth_storage::Error::from)?;
    Ok(HttpResponse::Ok().json(body))
}
