//! The core's `tracing` events, delivered to Python's `logging`.
//!
//! Events are formatted where they happen and queued; one forwarding thread takes the GIL to
//! hand them to `logging.getLogger("kite_rs.…")`, so no runtime thread ever waits for the
//! GIL to log. Only levels the `kite_rs` logger enables are queued: the level is read from
//! Python when a kite is created, started or dialed ([`refresh`]). The same subscriber
//! hands spans to the process's OTLP exporter (`kite::telemetry`) when one is configured.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::OnceLock;

use kite::logging::{Forwarder, LevelGate, Record};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

/// What the `kite_rs` logger enables (WARNING until [`refresh`] reads it).
static GATE: LevelGate = LevelGate::new(Some(Level::WARN));
static SENDER: OnceLock<std::sync::Mutex<mpsc::Sender<Record>>> = OnceLock::new();

/// The Python logger name for a `tracing` target: `kite::server::kite` → `kite_rs.server.kite`.
fn logger_name(target: &str) -> String {
    let rest = target
        .strip_prefix("kite::")
        .or_else(|| (target == "kite").then_some(""))
        .map(str::to_string)
        .unwrap_or_else(|| target.to_string());
    let rest = rest.replace("::", ".");
    if rest.is_empty() {
        "kite_rs".into()
    } else {
        format!("kite_rs.{rest}")
    }
}

fn py_level(l: Level) -> u32 {
    match l {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn forward(rx: mpsc::Receiver<Record>) {
    let mut loggers: HashMap<String, Py<PyAny>> = HashMap::new();
    while let Ok(first) = rx.recv() {
        // Records that arrive once the interpreter is shutting down are dropped.
        if crate::lifecycle::finalizing() {
            continue;
        }
        crate::lifecycle::attach(|py| {
            let mut next = Some(first);
            while let Some(rec) = next.take() {
                let name = logger_name(&rec.target);
                let logger = match loggers.get(&name) {
                    Some(l) => Ok(l.bind(py).clone()),
                    None => py
                        .import("logging")
                        .and_then(|m| m.call_method1("getLogger", (name.as_str(),))),
                };
                if let Ok(logger) = logger {
                    let _ = logger.call_method1("log", (py_level(rec.level), rec.message));
                    loggers.entry(name).or_insert_with(|| logger.unbind());
                }
                next = rx.try_recv().ok();
            }
        });
    }
}

/// Installs the forwarding subscriber (once per process) and reads the level.
pub(crate) fn install(py: Python<'_>) {
    let (tx, rx) = mpsc::channel();
    if SENDER.set(std::sync::Mutex::new(tx)).is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("kite-rs-logging".into())
        .spawn(move || forward(rx));
    let queue = |rec: Record| {
        if let Some(tx) = SENDER.get() {
            let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(rec);
        }
    };
    // Spans go to the process's OTLP exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
    // (kites with `tracing=True` make them).
    let (spans, failed) = kite::telemetry::Telemetry::process_layer("kite-rs-python");
    let subscriber = tracing_subscriber::registry()
        .with(Forwarder::new(&GATE, queue).into_layer())
        .with(spans);
    let _ = tracing::subscriber::set_global_default(subscriber);
    refresh(py);
    if let Some(e) = failed {
        tracing::error!("traces are not exported: {e}");
    }
}

/// Re-reads the effective level of the `kite_rs` logger.
pub(crate) fn refresh(py: Python<'_>) {
    let level = py
        .import("logging")
        .and_then(|m| m.call_method1("getLogger", ("kite_rs",)))
        .and_then(|l| l.call_method0("getEffectiveLevel"))
        .and_then(|l| l.extract::<u32>())
        .unwrap_or(30);
    GATE.set(match level {
        0..=5 => Some(Level::TRACE),
        6..=10 => Some(Level::DEBUG),
        11..=20 => Some(Level::INFO),
        21..=30 => Some(Level::WARN),
        31..=40 => Some(Level::ERROR),
        _ => None,
    });
}

/// Logs `err` with its traceback on the `kite_rs` logger at ERROR.
pub(crate) fn log_exception(py: Python<'_>, message: &str, err: &PyErr) {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let logger = LOGGER.get_or_try_init(py, || {
        py.import("logging")
            .and_then(|m| m.call_method1("getLogger", ("kite_rs",)))
            .map(Bound::unbind)
    });
    match logger {
        Ok(l) => {
            let kwargs = pyo3::types::PyDict::new(py);
            let _ = kwargs.set_item("exc_info", err.value(py));
            let _ = l.bind(py).call_method("error", (message,), Some(&kwargs));
        }
        Err(_) => err.print(py),
    }
}
