//! Traces across kites: three kites with tracing on (a caller → `middle` → `leaf`) export
//! their spans over OTLP to a receiver in the test, which checks that they form one trace
//! with the right parent links. (One test per binary: the `tracing` subscriber is global.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use kite::sockjs::Transport;
use kite::telemetry::Telemetry;
use kite::{Config, Kite, KiteError, Method, Request};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// An OTLP/HTTP receiver on port 0: keeps every span posted to `/v1/traces`.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
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
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
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
    (format!("http://{addr}/v1/traces"), spans)
}

fn traced(name: &str) -> Kite {
    let config = Config {
        ip: "127.0.0.1".into(),
        tracing: true,
        ..Config::default()
    };
    Kite::with_config(name, "1.0.0", config).expect("kite")
}

/// The one span named `name` whose `method` attribute is `method`.
fn find<'a>(spans: &'a [Span], name: &str, method: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            s.name == name
                && s.attributes.iter().any(|a| {
                    a.key == "method"
                    && a.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(
                            &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                method.into(),
                            ),
                        )
                })
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {method}: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_three_kites() {
    let (url, received) = receiver().await;
    let telemetry = Telemetry::with_endpoint("tracing-test", &url).expect("exporter");
    tracing_subscriber::registry()
        .with(
            telemetry
                .layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();

    let leaf = traced("leaf");
    leaf.add_method(
        Method::new(
            "leaf",
            |_req: Request| async move { Ok::<_, KiteError>(42) },
        )
        .disable_authentication(),
    )
    .expect("leaf");
    within(leaf.listen()).await.expect("listen");
    let middle = traced("middle");
    let to_leaf = middle.client(&leaf.url().expect("url"));
    to_leaf.set_transport(Transport::WebSocket);
    within(to_leaf.dial()).await.expect("dial leaf");
    middle
        .add_method(
            Method::new("middle", move |_req: Request| {
                let to_leaf = to_leaf.clone();
                async move {
                    let v = to_leaf.call("leaf", ()).await?;
                    Ok::<_, KiteError>(v)
                }
            })
            .disable_authentication(),
        )
        .expect("middle");
    within(middle.listen()).await.expect("listen");
    let caller = traced("caller");
    let to_middle = caller.client(&middle.url().expect("url"));
    to_middle.set_transport(Transport::WebSocket);
    within(to_middle.dial()).await.expect("dial middle");

    let root = tracing::info_span!("root");
    let answer = within(async { to_middle.call("middle", ()).await }.instrument(root))
        .await
        .expect("middle");
    assert_eq!(answer, serde_json::json!(42));

    // Ended spans are exported on flush (it blocks until the receiver answered).
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .expect("flush task")
        .expect("flush");
    let spans = received.lock().expect("spans").clone();
    let root = spans.iter().find(|s| s.name == "root").expect("root span");
    let call_middle = find(&spans, "kite.call", "middle");
    let serve_middle = find(&spans, "kite.request", "middle");
    let call_leaf = find(&spans, "kite.call", "leaf");
    let serve_leaf = find(&spans, "kite.request", "leaf");
    for s in [call_middle, serve_middle, call_leaf, serve_leaf] {
        assert_eq!(s.trace_id, root.trace_id, "{} in another trace", s.name);
    }
    assert!(root.parent_span_id.is_empty());
    assert_eq!(call_middle.parent_span_id, root.span_id);
    assert_eq!(serve_middle.parent_span_id, call_middle.span_id);
    assert_eq!(call_leaf.parent_span_id, serve_middle.span_id);
    assert_eq!(serve_leaf.parent_span_id, call_leaf.span_id);
    telemetry.shutdown().expect("shutdown");
}
