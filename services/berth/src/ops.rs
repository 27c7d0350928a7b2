//! Operational endpoints: `/healthz` (live), `/readyz` (database reachable), `/metrics`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use berth_storage::PgPool;
use metrics::{Counter, Histogram};

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
    let method = method_label(req.method());
    // Found once per request by the root span (`telemetry::RootSpan`), which wraps this.
    let route = match req.extensions().get::<MatchedRoute>() {
        Some(MatchedRoute(route)) => route.clone(),
        None => req.match_pattern().map_or_else(|| Arc::from("unmatched"), Arc::from),
    };
    let response = next.call(req).await?;
    let (requests, duration) = handles(route, method, response.status().as_u16());
    requests.increment(1);
    duration.record(start.elapsed().as_secs_f64());
    Ok(response)
}

/// The method as a metric label: the standard ones by name, any other as `other`, so that a
/// client inventing methods cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD.iter().find(|m| *m == method).map_or("other", Method::as_str)
}

/// At most this many label sets have cached handles per worker thread; handles of any further
/// one are registered per request (the label sets are bounded anyway: routes × methods ×
/// statuses).
const MAX_CACHED_LABEL_SETS: usize = 4096;

type LabelSet = (Arc<str>, &'static str, u16);

thread_local! {
    /// The counter and histogram of each label set seen on this worker: registering them
    /// builds and hashes a key of three owned labels, twice per request.
    static HANDLES: RefCell<HashMap<LabelSet, (Counter, Histogram)>> = RefCell::new(HashMap::new());
}

/// The request counter and duration histogram for one label set.
fn handles(route: Arc<str>, method: &'static str, status: u16) -> (Counter, Histogram) {
    let key = (route, method, status);
    if let Some(found) = HANDLES.with_borrow(|cache| cache.get(&key).cloned()) {
        return found;
    }
    // The recorder is installed before the first request (`startup.rs`); make sure of it so that
    // no handle of the no-op recorder is ever cached.
    crate::telemetry::metrics();
    let (route, method, status) = key;
    let labels = [("method", method.to_owned()), ("route", route.to_string()), ("status", status.to_string())];
    let made = (
        metrics::counter!("berth_http_requests_total", &labels),
        metrics::histogram!("berth_http_request_duration_seconds", &labels),
    );
    HANDLES.with_borrow_mut(|cache| {
        if cache.len() < MAX_CACHED_LABEL_SETS {
            cache.insert((route, method, status), made.clone());
        }
    });
    made
}

#[cfg(test)]
mod tests {
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, HttpResponse, web};

    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"PURGE123").unwrap()), "other");
    }

    fn count_line(rendered: &str, route: &str, method: &str, status: u16) -> Option<f64> {
        let wanted = [format!("method=\"{method}\""), format!("route=\"{route}\""), format!("status=\"{status}\"")];
        rendered
            .lines()
            .filter(|l| l.starts_with("berth_http_requests_total{"))
            .find(|l| wanted.iter().all(|w| l.contains(w.as_str())))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[actix_web::test]
    async fn requests_are_counted_by_route_method_and_status_through_the_cached_handles() {
        let route = "/ops-test/{tenant}/counted";
        let app = init_service(App::new().wrap(actix_web::middleware::from_fn(record)).route(
            route,
            web::route().to(|req: actix_web::HttpRequest| async move {
                if req.match_info().get("tenant") == Some("missing") {
                    HttpResponse::NotFound().finish()
                } else {
                    HttpResponse::Ok().finish()
                }
            }),
        ))
        .await;
        let send = |method: &'static [u8], tenant: &'static str| {
            TestRequest::default()
                .method(Method::from_bytes(method).unwrap())
                .uri(&format!("/ops-test/{tenant}/counted"))
                .to_request()
        };
        for _ in 0..3 {
            call_service(&app, send(b"GET", "acme")).await;
        }
        call_service(&app, send(b"GET", "missing")).await;
        call_service(&app, send(b"BREW", "acme")).await;
        call_service(&app, send(b"BREWED", "globex")).await;

        let rendered = crate::telemetry::metrics().render();
        assert_eq!(count_line(&rendered, route, "GET", 200), Some(3.0), "{rendered}");
        assert_eq!(count_line(&rendered, route, "GET", 404), Some(1.0), "{rendered}");
        assert_eq!(count_line(&rendered, route, "other", 200), Some(2.0), "{rendered}");
        assert!(!rendered.contains("BREW"), "no invented method becomes a label: {rendered}");
    }
}
