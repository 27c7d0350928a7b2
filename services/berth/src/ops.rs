//! Operational endpoints: `/healthz` (live), `/readyz` (database reachable), `/metrics`.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use berth_storage::PgPool;

use crate::telemetry::MatchedRoute;

/// Registers the three endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(pool: web::Data<PgPool>) -> HttpResponse {
    match tokio::time::timeout(Duration::from_secs(2), berth_storage::ping(&pool)).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({"status": "ready", "database": "ok"})),
        Ok(Err(e)) => {
            tracing::warn!(error.message = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable", "database": "timeout"}))
        }
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::metrics().render())
}

/// Counts requests and their latency by route pattern, method and status.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    // Found once per request by the root span (`telemetry::RootSpan`), which wraps this.
    let route = match req.extensions().get::<MatchedRoute>() {
        Some(MatchedRoute(route)) => route.to_string(),
        None => req.match_pattern().unwrap_or_else(|| "unmatched".to_owned()),
    };
    let response = next.call(req).await?;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("berth_http_requests_total", &labels).increment(1);
    metrics::histogram!("berth_http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    Ok(response)
}
