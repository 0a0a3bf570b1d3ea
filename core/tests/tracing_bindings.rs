//! Traces across the three languages, through both bindings' handlers: a Rust kite calls
//! `middle` on a Python kite whose `async def` handler calls `leaf` on a Node kite, then
//! `middle` on a Node kite whose handler calls `leaf` on a Python kite (`tests/traces/`), all
//! with tracing on. Each process exports its spans over OTLP (the bindings through the
//! core's exporter, from `OTEL_EXPORTER_OTLP_ENDPOINT`) to a receiver in the test, which
//! checks that each chain is one trace with the right parent links, each span from the
//! right process. Needs the Python package in `.venv` and the Node addon built
//! (`scripts/setup.sh`). (One test per binary: the `tracing` subscriber is global.)

mod common;
#[path = "common/otlp.rs"]
mod otlp;

use std::path::PathBuf;
use std::time::Duration;

use common::peers::{repo_root, Peer};
use kite::sockjs::Transport;
use kite::{Client, Config, Kite};
use tokio::process::Command;
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A kite of `tests/traces/` in `language` (`python` or `node`) serving `role`, exporting
/// to `otlp` as service `{language}-{role}`.
async fn start(language: &str, role: &str, next: Option<&str>, otlp: &str) -> Peer {
    let (program, script) = match language {
        "python" => {
            let python = repo_root().join(".venv/bin/python");
            assert!(
                python.is_file(),
                "{} is missing: run `scripts/setup.sh`",
                python.display()
            );
            (python, "kite.py")
        }
        _ => (PathBuf::from("node"), "kite.mjs"),
    };
    let mut cmd = Command::new(program);
    cmd.current_dir(repo_root())
        .arg(repo_root().join("tests/traces").join(script))
        .arg(role)
        .args(next)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_SERVICE_NAME", format!("{language}-{role}"))
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("KITE_TRACING");
    Peer::start(&format!("{language} {role}"), cmd).await
}

/// Calls `middle` through `client` inside a root span named `root`.
async fn call_middle(client: &Client, root: &str, peers: &[&Peer]) {
    let span = tracing::info_span!("root", chain = root);
    let answer = within(async { client.call("middle", ()).await }.instrument(span))
        .await
        .unwrap_or_else(|e| {
            let logs: Vec<String> = peers.iter().map(|p| p.stderr()).collect();
            panic!("{root}: {e}\n{}", logs.join("\n---\n"))
        });
    assert_eq!(answer, serde_json::json!(42), "{root}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_chain_through_python_and_node_handlers() {
    let exporting = otlp::Exporting::install("rust-caller").await;
    let otlp = exporting.url.clone();

    let node_leaf = start("node", "leaf", None, &otlp).await;
    let python_middle = start("python", "middle", Some(&node_leaf.url()), &otlp).await;
    let python_leaf = start("python", "leaf", None, &otlp).await;
    let node_middle = start("node", "middle", Some(&python_leaf.url()), &otlp).await;

    let config = Config {
        ip: "127.0.0.1".into(),
        tracing: true,
        ..Config::default()
    };
    let caller = Kite::with_config("caller", "1.0.0", config).expect("kite");
    for (middle, leaf, root) in [
        (&python_middle, &node_leaf, "python-first"),
        (&node_middle, &python_leaf, "node-first"),
    ] {
        let client = caller.client(&middle.url());
        client.set_transport(Transport::WebSocket);
        within(client.dial()).await.expect("dial middle");
        call_middle(&client, root, &[middle, leaf]).await;
        client.close();
    }

    // Each peer sends its spans (blocking until the receiver answered) before exiting.
    let logs: Vec<String> = [&python_middle, &node_leaf, &node_middle, &python_leaf]
        .iter()
        .map(|p| p.stderr())
        .collect();
    for peer in [python_middle, node_leaf, node_middle, python_leaf] {
        peer.stop().await;
    }
    let spans = exporting.flushed().await;
    let logs = logs.join("\n---\n");
    assert_chain(
        &spans,
        "python-first",
        ["python-middle", "node-leaf"],
        &logs,
    );
    assert_chain(&spans, "node-first", ["node-middle", "python-leaf"], &logs);
    exporting.shutdown();
}

/// The spans of chain `root` form one trace: the root and its call from the Rust caller,
/// `middle` served and `leaf` called by `services[0]`, `leaf` served by `services[1]`, each
/// the child of the one before.
fn assert_chain(all: &[otlp::Received], root: &str, services: [&str; 2], logs: &str) {
    let context = || format!("spans: {all:#?}\n{logs}");
    let root_span = all
        .iter()
        .find(|r| {
            r.span.name == "root" && otlp::attribute(&r.span.attributes, "chain") == Some(root)
        })
        .unwrap_or_else(|| panic!("no root span {root}; {}", context()));
    let trace: Vec<otlp::Received> = all
        .iter()
        .filter(|r| r.span.trace_id == root_span.span.trace_id)
        .cloned()
        .collect();
    let found = |name: &str, method: &str| {
        let n = trace
            .iter()
            .filter(|r| {
                r.span.name == name && otlp::attribute(&r.span.attributes, "method") == Some(method)
            })
            .count();
        assert_eq!(
            n,
            1,
            "{root}: {name} {method} not in the trace once; {}",
            context()
        );
        otlp::find(&trace, name, method).clone()
    };
    let call_middle = found("kite.call", "middle");
    let serve_middle = found("kite.request", "middle");
    let call_leaf = found("kite.call", "leaf");
    let serve_leaf = found("kite.request", "leaf");
    let chain = [
        root_span,
        &call_middle,
        &serve_middle,
        &call_leaf,
        &serve_leaf,
    ];
    let expected = [
        "rust-caller",
        "rust-caller",
        services[0],
        services[0],
        services[1],
    ];
    for (r, service) in chain.iter().zip(expected) {
        assert_eq!(
            r.service, service,
            "{root}: {} {:?}",
            r.span.name, r.span.attributes
        );
    }
    assert!(root_span.span.parent_span_id.is_empty());
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].span.parent_span_id,
            pair[0].span.span_id,
            "{root}: {} of {} is not a child of {} of {}; {}",
            pair[1].span.name,
            pair[1].service,
            pair[0].span.name,
            pair[0].service,
            context()
        );
    }
}
