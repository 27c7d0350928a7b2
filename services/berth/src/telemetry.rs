//! Logging, tracing and metrics set-up, done once per process.
//!
//! Logs are JSON lines on stderr by default. When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans
//! are also exported over OTLP/HTTP (the standard `OTEL_*` variables apply). Metrics are kept in
//! a Prometheus recorder rendered by `/metrics`.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{HttpMessage, web};

use anyhow::Context;
use berth_core::net::TrustedProxies;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::LogFormat;

/// Flushes exported spans when dropped; keep it alive for the life of the process.
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("failed to flush traces: {e}");
        }
    }
}

/// The route pattern an HTTP request matched (`/t/{tenant}/{server}/mcp`), found once by
/// [`RootSpan`] and kept in the request's extensions for the metrics middleware.
#[derive(Debug, Clone)]
pub struct MatchedRoute(pub Arc<str>);

/// The root span of every HTTP request: the OpenTelemetry HTTP fields tracing-actix-web's
/// default records, less three that cost without telling anything here (`http.flavor`,
/// `http.scheme`, `http.host`) and with `http.target` cut at the `?`: a query string is the
/// client's to keep (`/authorize` carries its `state` and PKCE challenge) and stays out of logs.
/// Matching the route walks the router's patterns, so it is done once per request and shared
/// through [`MatchedRoute`].
pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route: Arc<str> = request.match_pattern().map_or_else(|| Arc::from("unmatched"), Arc::from);
        let request_id = request.extensions().get::<RequestId>().copied();
        let user_agent = request.headers().get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or("");
        // The connection's address, or the client a trusted proxy forwarded the request for;
        // never a forwarding header that came straight from a client.
        let proxies = request.app_data::<web::Data<TrustedProxies>>();
        let client_ip = proxies
            .and_then(|proxies| berth_control_plane::client_ip(request.request(), proxies))
            .or_else(|| request.peer_addr().map(|peer| peer.ip()))
            .map(|ip| ip.to_string());
        let method = request.method().as_str();
        let span = tracing::info_span!(
            "HTTP request",
            http.method = method,
            http.route = &*route,
            http.client_ip = client_ip.as_deref().unwrap_or(""),
            http.user_agent = user_agent,
            http.target = request.path(),
            http.status_code = tracing::field::Empty,
            otel.name = tracing::field::display(format_args!("{method} {route}")),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = request_id.map(tracing::field::display),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        );
        request.extensions_mut().insert(MatchedRoute(route));
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, actix_web::Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Installs the global subscriber: `filter` in `tracing` syntax, logs to `writer`.
pub fn init<W>(filter: &str, format: LogFormat, writer: W) -> anyhow::Result<TelemetryGuard>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Every HTTPS client of the process (the OTLP exporter built below, JWKS, client metadata
    // documents, remote upstreams) uses rustls without a built-in provider: install ring first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = EnvFilter::try_new(filter).with_context(|| format!("invalid log filter {filter:?}"))?;
    let fmt = match format {
        LogFormat::Json => json_layer(writer).boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    };
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
                .context("failed to build the OTLP span exporter")?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("berth").build())
                    .build(),
            )
        }
        _ => None,
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("berth")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    Ok(TelemetryGuard { provider })
}

/// JSON lines with the current span's fields.
fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(SpliceJsonFields)
        .with_writer(writer)
}

/// Span fields as a JSON object, written straight into the span's stored text as they are
/// visited. `JsonFields` collects them into a map of `serde_json::Value`s first (an allocation
/// per field and per map node) and, for fields recorded on a span after it was created (every
/// request span records its status code when it ends), parses the stored object and serializes
/// it again, which cost about 8 µs of every request (B1). Here later fields are spliced into the
/// stored object. Values are written as `JsonFields` writes them; a field recorded twice then
/// appears twice in the stored text, and JSON readers, the JSON log format's among them, keep
/// the last.
struct SpliceJsonFields;

impl<'w> FormatFields<'w> for SpliceJsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> std::fmt::Result {
        writer.write_char('{')?;
        let mut members = JsonMembers { out: &mut writer, first: true, result: Ok(()) };
        fields.record(&mut members);
        members.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let stored = &mut current.fields;
        // `{}` or nothing: no member yet.
        let first = stored.len() <= 2;
        if first {
            stored.clear();
            stored.push('{');
        } else if stored.ends_with('}') {
            stored.pop();
        } else {
            return Err(std::fmt::Error);
        }
        let mut members = JsonMembers { out: &mut *stored, first, result: Ok(()) };
        fields.record(&mut members);
        let result = members.result;
        stored.push('}');
        result
    }
}

/// Writes visited fields as the members of a JSON object: `"name":value`, comma-separated.
struct JsonMembers<'a, W: std::fmt::Write + ?Sized> {
    out: &'a mut W,
    first: bool,
    result: std::fmt::Result,
}

impl<W: std::fmt::Write + ?Sized> JsonMembers<'_, W> {
    /// Writes one member; `value` writes the value itself.
    fn member(&mut self, name: &str, value: impl FnOnce(&mut W) -> std::fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let separator = if self.first { "\"" } else { ",\"" };
        self.first = false;
        let out = &mut *self.out;
        self.result = out
            .write_str(separator)
            .and_then(|()| JsonEscaped(&mut *out).write_str(name))
            .and_then(|()| out.write_str("\":"))
            .and_then(|()| value(out));
    }

    fn string(&mut self, name: &str, value: &str) {
        self.member(name, |out| {
            out.write_char('"')?;
            JsonEscaped(&mut *out).write_str(value)?;
            out.write_char('"')
        });
    }
}

impl<W: std::fmt::Write + ?Sized> tracing::field::Visit for JsonMembers<'_, W> {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // As `serde_json::Value::from(f64)` serializes it: a number when finite, else `null`.
        match serde_json::Number::from_f64(value) {
            Some(number) => self.member(field.name(), |out| write!(out, "{number}")),
            None => self.member(field.name(), |out| out.write_str("null")),
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.member(field.name(), |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.member(field.name(), |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.member(field.name(), |out| out.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.string(field.name(), value);
    }

    fn record_bytes(&mut self, field: &tracing::field::Field, value: &[u8]) {
        // An array of numbers, as `serde_json::Value::from(&[u8])`.
        self.member(field.name(), |out| {
            out.write_char('[')?;
            for (i, byte) in value.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write!(out, "{byte}")?;
            }
            out.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        // `log.*` fields carry a `log` record's metadata, which the event formatter writes.
        if field.name().starts_with("log.") {
            return;
        }
        self.member(field.name(), |out| {
            out.write_char('"')?;
            write!(JsonEscaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Escapes what is written through it as the inside of a JSON string, as `serde_json` does.
struct JsonEscaped<'a, W: std::fmt::Write + ?Sized>(&'a mut W);

impl<W: std::fmt::Write + ?Sized> std::fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // Most values need no escape: find the next byte that does with a plain scan, and write
        // the text before it in one piece.
        let mut rest = s;
        while let Some(at) = rest.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\') {
            let (plain, tail) = rest.split_at(at);
            self.0.write_str(plain)?;
            match tail.bytes().next() {
                Some(b'"') => self.0.write_str("\\\"")?,
                Some(b'\\') => self.0.write_str("\\\\")?,
                Some(b'\n') => self.0.write_str("\\n")?,
                Some(b'\r') => self.0.write_str("\\r")?,
                Some(b'\t') => self.0.write_str("\\t")?,
                Some(0x08) => self.0.write_str("\\b")?,
                Some(0x0c) => self.0.write_str("\\f")?,
                Some(byte) => write!(self.0, "\\u{byte:04x}")?,
                None => {}
            }
            // The byte escaped is ASCII, so the rest starts on a character boundary.
            rest = rest.get(at + 1..).unwrap_or_default();
        }
        self.0.write_str(rest)
    }
}

/// How often the recorder's histograms are drained when `/metrics` is not scraped.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with its upkeep thread.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests start several apps per process);
        // this handle then renders an empty registry, which is still valid output.
        let _ = metrics::set_global_recorder(recorder);
        // A histogram keeps every recorded value until it is drained into its buckets, which
        // only rendering or upkeep does: without a scraper, a few values per request would
        // pile up forever (about 1 GB an hour at 10,000 requests a second).
        let upkeep = handle.clone();
        if let Err(e) = start_upkeep(METRICS_UPKEEP_EVERY, move || upkeep.run_upkeep()) {
            tracing::error!(error.message = %e, "cannot start the metrics upkeep thread; histograms grow until /metrics is scraped");
        }
        handle
    })
}

/// Runs `upkeep` every `every` on a thread of its own, for the life of the process.
fn start_upkeep(every: Duration, upkeep: impl Fn() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name("berth-metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            upkeep();
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_metrics_upkeep_runs_again_and_again() {
        let (tx, rx) = std::sync::mpsc::channel();
        start_upkeep(Duration::from_millis(5), move || {
            let _ = tx.send(());
        })
        .expect("the thread starts");
        for n in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("upkeep run {n} never came"));
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The `span` object of the first log line an event inside a span with every kind of field
    /// gives, through `layer`.
    fn span_object_through<L>(layer: L, buffer: &Buffer) -> serde_json::Value
    where
        L: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Shape {
            label: &'static str,
        }
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                r#type = "kind",
                text = "quote\" back\\ nl\n tab\t ctl\u{1}\u{1f} del\u{7f} é ✓",
                negative = -42i64,
                big = u64::MAX,
                ratio = 1.5f64,
                not_a_number = f64::NAN,
                flag = true,
                shape = ?Shape { label: "a \"b\"" },
                shown = %"display \\ text",
                later = tracing::field::Empty,
                status = tracing::field::Empty,
            );
            span.record("later", "set after \"creation\"");
            span.record("status", 200u64);
            span.record("ratio", 2.25f64);
            span.in_scope(|| tracing::info!("inside"));
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.lines().next().expect("one line")).unwrap();
        line["span"].clone()
    }

    #[test]
    fn span_fields_are_written_as_json_fields_writes_them() {
        let ours = Buffer::default();
        let writer = ours.clone();
        let ours = span_object_through(json_layer(move || writer.clone()), &ours);
        let stock = Buffer::default();
        let writer = stock.clone();
        let stock_layer = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone());
        let stock = span_object_through(stock_layer, &stock);
        assert_eq!(ours, stock, "ours: {ours}\nstock: {stock}");
        assert_eq!(ours["text"], "quote\" back\\ nl\n tab\t ctl\u{1}\u{1f} del\u{7f} é ✓");
        assert_eq!(ours["type"], "kind");
        assert_eq!(ours["not_a_number"], serde_json::Value::Null);
        assert_eq!(ours["ratio"], 2.25, "the last recorded value wins");
        assert_eq!(ours["later"], "set after \"creation\"");
        assert_eq!(ours["status"], 200);
    }

    #[test]
    fn control_characters_are_escaped_as_serde_json_escapes_them() {
        let all: String = (0u8..0x80).map(char::from).chain("é✓".chars()).collect();
        let mut ours = String::new();
        std::fmt::Write::write_str(&mut JsonEscaped(&mut ours), &all).unwrap();
        let stock = serde_json::to_string(&all).unwrap();
        assert_eq!(format!("\"{ours}\""), stock);
    }

    #[test]
    fn fields_recorded_later_reach_the_log_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(json_layer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                method = "POST",
                status = tracing::field::Empty,
                tenant = tracing::field::Empty
            );
            span.record("status", 200);
            span.record("tenant", "acme");
            span.record("status", 201);
            span.in_scope(|| tracing::info!(n = 1, "inside"));
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        let span = &line["span"];
        assert_eq!(span["method"], "POST", "{line}");
        assert_eq!(span["tenant"], "acme", "{line}");
        assert_eq!(span["status"], 201, "the last recorded value wins: {line}");
        assert_eq!(span["name"], "request", "{line}");
        assert_eq!(line["fields"]["n"], 1, "{line}");
    }

    #[actix_web::test]
    async fn the_root_span_names_the_route_once_and_keeps_the_query_out_of_logs() {
        use actix_web::{App, HttpRequest, HttpResponse, test, web};

        let buffer = Buffer::default();
        let writer = buffer.clone();
        let _default =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(json_layer(move || writer.clone())));
        let app = test::init_service(App::new().wrap(tracing_actix_web::TracingLogger::<RootSpan>::new()).route(
            "/t/{tenant}/callback",
            web::get().to(|req: HttpRequest| async move {
                tracing::warn!("inside");
                let route = req.extensions().get::<MatchedRoute>().map(|r| r.0.to_string());
                HttpResponse::Ok().body(route.unwrap_or_default())
            }),
        ))
        .await;
        let req = test::TestRequest::get()
            .uri("/t/acme/callback?code=s3cret-code&state=s3cret-state")
            .insert_header(("user-agent", "probe/1"))
            .to_request();
        let body = test::call_and_read_body(&app, req).await;
        assert_eq!(body, "/t/{tenant}/callback", "the handler sees the route the span matched");

        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("s3cret"), "no query string in the logs: {out}");
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        let span = &line["span"];
        assert_eq!(span["name"], "HTTP request", "{line}");
        assert_eq!(span["http.method"], "GET", "{line}");
        assert_eq!(span["http.route"], "/t/{tenant}/callback", "{line}");
        assert_eq!(span["http.target"], "/t/acme/callback", "{line}");
        assert_eq!(span["http.user_agent"], "probe/1", "{line}");
        assert_eq!(span["otel.name"], "GET /t/{tenant}/callback", "{line}");
        assert!(span["request_id"].as_str().is_some_and(|id| id.len() == 36), "{line}");
    }
}
