//! Traces across kites: three kites with tracing on (a caller → `middle` → `leaf`) export
//! their spans over OTLP to a receiver in the test, which checks that they form one trace
//! with the right parent links. (One test per binary: the `tracing` subscriber is global.)

#[path = "common/otlp.rs"]
mod otlp;

use std::time::Duration;

use kite::sockjs::Transport;
use kite::{Config, Kite, KiteError, Method, Request};
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

fn traced(name: &str) -> Kite {
    let config = Config {
        ip: "127.0.0.1".into(),
        tracing: true,
        ..Config::default()
    };
    Kite::with_config(name, "1.0.0", config).expect("kite")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_three_kites() {
    let exporting = otlp::Exporting::install("tracing-test").await;

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
    let spans = exporting.flushed().await;
    let root = &spans
        .iter()
        .find(|r| r.span.name == "root")
        .expect("root span")
        .span;
    let call_middle = &otlp::find(&spans, "kite.call", "middle").span;
    let serve_middle = &otlp::find(&spans, "kite.request", "middle").span;
    let call_leaf = &otlp::find(&spans, "kite.call", "leaf").span;
    let serve_leaf = &otlp::find(&spans, "kite.request", "leaf").span;
    for s in [call_middle, serve_middle, call_leaf, serve_leaf] {
        assert_eq!(s.trace_id, root.trace_id, "{} in another trace", s.name);
    }
    assert!(root.parent_span_id.is_empty());
    assert_eq!(call_middle.parent_span_id, root.span_id);
    assert_eq!(serve_middle.parent_span_id, call_middle.span_id);
    assert_eq!(call_leaf.parent_span_id, serve_middle.span_id);
    assert_eq!(serve_leaf.parent_span_id, call_leaf.span_id);
    exporting.shutdown();
}
