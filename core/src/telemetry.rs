//! Traces across kites with OpenTelemetry: [`Telemetry`] exports the `tracing` spans of a
//! process over OTLP (http/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and a kite
//! with [`Config::tracing`](crate::Config::tracing) on carries the W3C trace context of
//! each call in its call options (`traceContext`, which the Go reference and kite.js
//! ignore), so that the callee's `kite.request` span is a child of the caller's
//! `kite.call` span. Off by default: the frames are then exactly what they were.

use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer as _;

use crate::protocol::TraceContext;
use crate::Error;

/// The longest `traceparent` accepted from a peer (version 00 is 55 characters; later
/// versions may append fields).
const MAX_TRACEPARENT: usize = 256;

/// The longest `tracestate` accepted from a peer (the W3C limit is 512 characters).
const MAX_TRACESTATE: usize = 512;

/// The layer of [`Telemetry::process_layer`].
pub type ProcessLayer<S> = Filtered<Option<OpenTelemetryLayer<S, SdkTracer>>, LevelFilter, S>;

/// The process's exporter when the bindings share one (see [`Telemetry::process`]).
static PROCESS: OnceLock<Option<Telemetry>> = OnceLock::new();

/// An OTLP trace exporter and the tracer provider feeding it. Add [`Telemetry::layer`] to
/// the `tracing` subscriber; call [`Telemetry::shutdown`] before exiting to send what is
/// buffered.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// An exporter configured by the standard `OTEL_EXPORTER_OTLP_*` variables (the
    /// endpoint gets `/v1/traces` appended), naming the process `OTEL_SERVICE_NAME` or else
    /// `service`; `None` when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is not set.
    pub fn from_env(service: &str) -> Result<Option<Telemetry>, Error> {
        let set = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let service = set("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_string());
        let service = service.as_str();
        let exporter = SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| Error::Config(format!("OTLP exporter: {e}")))?;
        Ok(Some(Self::with_exporter(service, exporter)))
    }

    /// The exporter shared by the kites of this process (the Python and Node bindings add
    /// its [`layer`](Telemetry::layer) to the subscriber they install): built from the
    /// environment by the first call ([`Telemetry::from_env`]), `None` when no endpoint is
    /// set. An exporter that cannot be built is an error on every call.
    pub fn process(service: &str) -> Result<Option<&'static Telemetry>, Error> {
        if let Some(t) = PROCESS.get() {
            return Ok(t.as_ref());
        }
        let built = Self::from_env(service)?;
        // Two first calls at once: one exporter is kept, the other dropped unused.
        let _ = PROCESS.set(built);
        Ok(PROCESS.get().and_then(Option::as_ref))
    }

    /// The layer a binding adds to the subscriber it installs: the process's exporter
    /// ([`Telemetry::process`]) with spans at info and above, or — with no exporter — a
    /// layer that enables no span at all (leaving the layer out would enable every span).
    /// An exporter that cannot be built gives the no-span layer and the error, for the
    /// binding to log once its subscriber is installed.
    pub fn process_layer<S>(service: &str) -> (ProcessLayer<S>, Option<Error>)
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let (telemetry, failed) = match Self::process(service) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        };
        let spans = if telemetry.is_some() {
            LevelFilter::INFO
        } else {
            LevelFilter::OFF
        };
        (telemetry.map(|t| t.layer()).with_filter(spans), failed)
    }

    /// Sends the spans the process's exporter holds (see [`Telemetry::process`]); `false`
    /// when there is none. Blocks until the receiver has answered.
    pub fn flush_process() -> Result<bool, Error> {
        match PROCESS.get().and_then(Option::as_ref) {
            Some(t) => t.flush().map(|()| true),
            None => Ok(false),
        }
    }

    /// An exporter posting to `traces_url` (the full URL, e.g.
    /// `http://127.0.0.1:4318/v1/traces`), naming the process `service`.
    pub fn with_endpoint(service: &str, traces_url: &str) -> Result<Telemetry, Error> {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url)
            .build()
            .map_err(|e| Error::Config(format!("OTLP exporter: {e}")))?;
        Ok(Self::with_exporter(service, exporter))
    }

    fn with_exporter(service: &str, exporter: SpanExporter) -> Telemetry {
        let resource = Resource::builder()
            .with_service_name(service.to_string())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        Telemetry { provider }
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("kite"))
    }

    /// Sends the spans ended so far (blocks until the exporter has answered).
    pub fn flush(&self) -> Result<(), Error> {
        self.provider
            .force_flush()
            .map_err(|e| Error::Config(format!("OTLP flush: {e}")))
    }

    /// Sends what is buffered and stops the exporter.
    pub fn shutdown(&self) -> Result<(), Error> {
        self.provider
            .shutdown()
            .map_err(|e| Error::Config(format!("OTLP shutdown: {e}")))
    }
}

impl Injector for TraceContext {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for TraceContext {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent.as_str()),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The trace context of `span` to send with a call; `None` when it is not being traced
/// (no OpenTelemetry layer, or the span is disabled).
pub(crate) fn inject(span: &tracing::Span) -> Option<TraceContext> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = TraceContext::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    (!carrier.traceparent.is_empty()).then_some(carrier)
}

/// Makes the trace context a caller sent the parent of `span`. Oversized or invalid
/// contexts are ignored (the span starts a trace of its own).
pub(crate) fn set_parent(span: &tracing::Span, received: &TraceContext) {
    if received.traceparent.len() > MAX_TRACEPARENT {
        return;
    }
    let mut carrier = received.clone();
    if carrier
        .tracestate
        .as_ref()
        .is_some_and(|s| s.len() > MAX_TRACESTATE)
    {
        carrier.tracestate = None;
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_contexts_are_ignored() {
        // No panics, no parent, on anything a peer may send.
        let span = tracing::info_span!("t");
        for traceparent in [
            String::new(),
            "00-zz-yy-01".into(),
            "x".repeat(10_000),
            "00-00000000000000000000000000000000-0000000000000000-01".into(),
        ] {
            set_parent(
                &span,
                &TraceContext {
                    traceparent,
                    tracestate: Some("k=v".repeat(1000)),
                },
            );
        }
        // Without a layer, nothing is traced: nothing to inject.
        assert!(inject(&span).is_none());
    }
}
