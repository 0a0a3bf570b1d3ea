//! An OTLP/HTTP trace receiver for the tracing tests: on 127.0.0.1, port 0, it keeps every
//! span posted to `/v1/traces` with the `service.name` of the process that sent it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use kite::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// A span received, and the service (process) that sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

/// The string value of attribute `key`.
pub fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Starts a receiver; its base URL (`http://127.0.0.1:PORT`, the exporters append
/// `/v1/traces`) and what it received so far.
pub async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().expect("spans");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .as_ref()
                        .and_then(|r| attribute(&r.attributes, "service.name"))
                        .unwrap_or_default()
                        .to_string();
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans.into_iter().map(|span| Received {
                            service: service.clone(),
                            span,
                        }));
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// A receiver and the process's `tracing` subscriber exporting to it (spans at info and
/// above), named `service`. One per test binary: the subscriber is global.
pub struct Exporting {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    telemetry: Telemetry,
}

impl Exporting {
    pub async fn install(service: &str) -> Exporting {
        let (url, received) = receiver().await;
        let telemetry =
            Telemetry::with_endpoint(service, &format!("{url}/v1/traces")).expect("exporter");
        tracing_subscriber::registry()
            .with(telemetry.layer().with_filter(LevelFilter::INFO))
            .init();
        Exporting {
            url,
            received,
            telemetry,
        }
    }

    /// Exports the spans ended so far (waiting for the receiver's answer, on a blocking
    /// thread) and returns every span received.
    pub async fn flushed(&self) -> Vec<Received> {
        let flushing = self.telemetry.clone();
        tokio::task::spawn_blocking(move || flushing.flush())
            .await
            .expect("flush task")
            .expect("flush");
        self.received.lock().expect("spans").clone()
    }

    pub fn shutdown(&self) {
        self.telemetry.shutdown().expect("shutdown");
    }
}

/// The one span named `name` whose `method` attribute is `method`.
pub fn find<'a>(spans: &'a [Received], name: &str, method: &str) -> &'a Received {
    let found: Vec<&Received> = spans
        .iter()
        .filter(|r| r.span.name == name && attribute(&r.span.attributes, "method") == Some(method))
        .collect();
    assert_eq!(found.len(), 1, "{name} {method}: {spans:#?}");
    found[0]
}
