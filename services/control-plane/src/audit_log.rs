//! Audit events for the admin API: one `admin` event per mutation (`POST`, `PUT`, `PATCH`,
//! `DELETE`), whatever its outcome, and one `auth` event per refused credential.
//!
//! The middleware runs after the handler: the route pattern names the action
//! (`PATCH /api/v1/tenants/{tenant}/servers/{server}`), the concrete path is the event's `name`,
//! the status gives the outcome, and the [`Caller`](crate::caller::Caller) extractor leaves the
//! principal's label in the request's extensions. The event joins the chain of the tenant the
//! path names (for `POST /tenants`, the tenant it created). Requests naming no existing tenant
//! leave no event: there is no chain to put them in (the server's log has them).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use berth_audit::event::{AuditEvent, Kind, micros};
use berth_core::Slug;

use crate::ControlPlaneState;

/// The label of the verified caller, left by the `Caller` extractor.
#[derive(Debug, Clone)]
pub(crate) struct Verified(pub(crate) String);

fn outcome(status: StatusCode) -> &'static str {
    if status.is_success() {
        "ok"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "denied"
    } else {
        "error"
    }
}

/// The principal a refused request claimed to be.
fn claimed(req: &actix_web::HttpRequest) -> String {
    let token =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(berth_auth::bearer_token);
    match token {
        None => "anonymous".to_owned(),
        Some(token) => match berth_auth::ParsedKey::parse(token) {
            Some(key) => format!("api-key-prefix:{}", key.prefix()),
            None => "bearer-token".to_owned(),
        },
    }
}

/// Records mutations and refused credentials.
pub(crate) async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let mutation = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let bytes_in =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let response = next.call(req).await?;
    let status = response.status();
    if !mutation && status != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let request = response.request();
    let Some(state) = request.app_data::<web::Data<ControlPlaneState>>().cloned() else { return Ok(response) };
    let tenant = match request.match_info().get("tenant") {
        Some(slug) => Some(slug.to_owned()),
        // `POST /tenants` names the new tenant in its Location header.
        None if status == StatusCode::CREATED => response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .map(str::to_owned),
        None => None,
    };
    let Some(slug) = tenant.and_then(|t| Slug::parse("tenant", &t).ok()) else { return Ok(response) };
    let verified = request.extensions().get::<Verified>().map(|v| v.0.clone());
    let pattern = request.match_pattern().unwrap_or_else(|| request.path().to_owned());
    let path = request.path().to_owned();
    let server = request.match_info().get("server").map(str::to_owned);
    let method = request.method().to_string();
    let refused = verified.is_none() && status == StatusCode::UNAUTHORIZED;
    let principal = verified.unwrap_or_else(|| claimed(request));
    let Ok(mut conn) = state.pool.acquire().await else { return Ok(response) };
    let Ok(tenant) = berth_storage::tenants::find_by_slug_for_routing(&mut conn, &slug).await else {
        return Ok(response);
    };
    drop(conn);
    let mut event = if refused {
        let mut event = AuditEvent::new(tenant.id, Kind::Auth, "authenticate", principal);
        event.detail = Some(format!("{method} {path}"));
        event
    } else {
        let mut event = AuditEvent::new(tenant.id, Kind::Admin, format!("{method} {pattern}"), principal);
        event.name = Some(path);
        event.server = server;
        event.latency_us = Some(micros(started.elapsed()));
        event.bytes_in = bytes_in;
        event
    };
    event.outcome = outcome(status).to_owned();
    if !status.is_success() {
        event.error_code = Some(i64::from(status.as_u16()));
    }
    state.auditor.record(event);
    Ok(response)
}
