//! Telemetry shared by every Rapport process: one subscriber carrying logs
//! and OpenTelemetry traces, W3C trace-context propagation, and the
//! Prometheus metrics recorder.
//!
//! - **Traces**: every span is an OpenTelemetry span. Spans are exported
//!   over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*`
//!   variables (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//!   `OTEL_BSP_SCHEDULE_DELAY`, …) apply. Without an endpoint, trace ids
//!   still exist and propagate, so logs and responses carry them.
//! - **Logs**: JSON lines with `trace_id` and `span_id` when stderr is not a
//!   terminal, a readable format on a terminal; `RUST_LOG` filters them.
//!   Fields that can hold personal data are redacted by name.
//! - **Metrics**: the `metrics` facade with a Prometheus recorder; the
//!   admin endpoint renders [`prometheus()`].

mod json;
pub mod propagation;

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Histogram buckets (seconds) for every `*_seconds` metric: dense below
/// 10 ms, where routing lives, and up to 10 s for slow dependencies.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes buffered spans and stops the exporter. Call it after the
    /// server has drained, from inside the runtime.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = result {
                // Logging is still up; the exporter is what failed.
                tracing::warn!(error = %e, "failed to flush traces on shutdown");
            }
        }
    }
}

fn otlp_endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// Installs the global subscriber, propagator and metrics recorder for a
/// service. Must run inside a Tokio runtime (the OTLP exporter needs it).
/// Calling it again in the same process (tests build several services)
/// keeps the first setup.
pub fn init(service: &'static str) -> Telemetry {
    metrics_handle();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    let mut builder = SdkTracerProvider::builder();
    let mut export_error = None;
    if otlp_endpoint_configured() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    // OTEL_SERVICE_NAME wins when set; otherwise the binary's name.
    let resource = if std::env::var("OTEL_SERVICE_NAME").is_ok() {
        opentelemetry_sdk::Resource::builder().build()
    } else {
        opentelemetry_sdk::Resource::builder()
            .with_service_name(format!("rapport-{service}"))
            .build()
    };
    let provider = builder.with_resource(resource).build();
    let tracer = provider.tracer("rapport");
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if std::io::stderr().is_terminal() {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(json::JsonLines::new(service))
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if result.is_err() {
        // Already initialised in this process; the first setup stays.
        let _ = provider.shutdown();
        return Telemetry { provider: None };
    }
    match export_error {
        Some(e) => {
            tracing::error!(error = %e, "failed to set up the OTLP exporter; traces are not exported")
        }
        None if otlp_endpoint_configured() => tracing::info!("exporting traces over OTLP"),
        None => tracing::debug!("no OTLP endpoint configured; traces are not exported"),
    }
    Telemetry {
        provider: Some(provider),
    }
}

/// The process-wide Prometheus recorder, installed on first use.
fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist (a test harness); ours then only
        // renders what it saw, which is nothing, rather than failing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Renders every metric in the Prometheus text format.
pub fn prometheus() -> String {
    metrics_handle().render()
}

/// Housekeeping for histograms; run every few seconds.
pub fn run_metrics_upkeep() {
    metrics_handle().run_upkeep();
}

/// The W3C trace id of the current span, if it is being traced.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
