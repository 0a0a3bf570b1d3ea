//! Traces across the three languages: a Rust kite calls `middle` on a Python kite, whose
//! `async def` handler calls `leaf` on a Node kite (`tests/traces/`), all with tracing on.
//! Each process exports its spans over OTLP (the bindings through the core's exporter, from
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) to a receiver in the test, which checks that they form one
//! trace with the right parent links and come from the right processes. Needs the Python
//! package in `.venv` and the Node addon built (`scripts/setup.sh`).

mod common;
#[path = "common/otlp.rs"]
mod otlp;

use std::time::Duration;

use common::peers::{repo_root, Peer};
use kite::sockjs::Transport;
use kite::telemetry::Telemetry;
use kite::{Config, Kite};
use tokio::process::Command;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A peer process exporting to `otlp` as `service`.
fn traced(program: &str, script: &str, service: &str, otlp: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(repo_root())
        .arg(repo_root().join("tests/traces").join(script))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_SERVICE_NAME", service)
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("KITE_TRACING");
    cmd
}

/// The Node `leaf` kite, then the Python `middle` kite calling it.
async fn start_peers(otlp: &str) -> (Peer, Peer) {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `scripts/setup.sh`",
        python.display()
    );
    let leaf = Peer::start("node leaf", traced("node", "leaf.mjs", "node-leaf", otlp)).await;
    let mut middle_cmd = traced(
        python.to_str().expect("path"),
        "middle.py",
        "python-middle",
        otlp,
    );
    middle_cmd.arg(leaf.url());
    let middle = Peer::start("python middle", middle_cmd).await;
    (leaf, middle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_rust_through_python_to_node() {
    let (otlp, received) = otlp::receiver().await;
    let telemetry =
        Telemetry::with_endpoint("rust-caller", &format!("{otlp}/v1/traces")).expect("exporter");
    tracing_subscriber::registry()
        .with(
            telemetry
                .layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();

    let (leaf, middle) = start_peers(&otlp).await;

    let config = Config {
        ip: "127.0.0.1".into(),
        tracing: true,
        ..Config::default()
    };
    let caller = Kite::with_config("caller", "1.0.0", config).expect("kite");
    let to_middle = caller.client(&middle.url());
    to_middle.set_transport(Transport::WebSocket);
    within(to_middle.dial()).await.expect("dial middle");
    let root = tracing::info_span!("root");
    let answer = within(async { to_middle.call("middle", ()).await }.instrument(root))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "middle: {e}\npython:\n{}\nnode:\n{}",
                middle.stderr(),
                leaf.stderr()
            )
        });
    assert_eq!(answer, serde_json::json!(42));
    to_middle.close();

    // Each peer sends its spans (blocking until the receiver answered) before exiting.
    let (middle_log, leaf_log) = (middle.stderr(), leaf.stderr());
    middle.stop().await;
    leaf.stop().await;
    let flushing = telemetry.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .expect("flush task")
        .expect("flush");

    let spans = received.lock().expect("spans").clone();
    assert_one_trace(&spans, &format!("python:\n{middle_log}\nnode:\n{leaf_log}"));
    telemetry.shutdown().expect("shutdown");
}

/// The five spans form one trace, each from its process, each the child of the one before.
fn assert_one_trace(spans: &[otlp::Received], logs: &str) {
    let context = || format!("spans: {spans:#?}\n{logs}");
    let root = spans
        .iter()
        .find(|r| r.span.name == "root")
        .unwrap_or_else(|| panic!("no root span; {}", context()));
    let call_middle = otlp::find(spans, "kite.call", "middle");
    let serve_middle = otlp::find(spans, "kite.request", "middle");
    let call_leaf = otlp::find(spans, "kite.call", "leaf");
    let serve_leaf = otlp::find(spans, "kite.request", "leaf");
    for (r, service) in [
        (root, "rust-caller"),
        (call_middle, "rust-caller"),
        (serve_middle, "python-middle"),
        (call_leaf, "python-middle"),
        (serve_leaf, "node-leaf"),
    ] {
        assert_eq!(
            r.service, service,
            "{} {:?}",
            r.span.name, r.span.attributes
        );
        assert_eq!(
            r.span.trace_id,
            root.span.trace_id,
            "{} from {} in another trace; {}",
            r.span.name,
            r.service,
            context()
        );
    }
    assert!(root.span.parent_span_id.is_empty());
    assert_eq!(call_middle.span.parent_span_id, root.span.span_id);
    assert_eq!(serve_middle.span.parent_span_id, call_middle.span.span_id);
    assert_eq!(
        call_leaf.span.parent_span_id,
        serve_middle.span.span_id,
        "the Python handler's call is not a child of its request; {}",
        context()
    );
    assert_eq!(serve_leaf.span.parent_span_id, call_leaf.span.span_id);
}
