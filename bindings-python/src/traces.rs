//! Traces through Python handlers. The core makes the spans and carries the trace context
//! (`Kite(tracing=True)`, exported by the process's one OTLP exporter when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set). What Python adds: the `kite.request` span an
//! `async def` handler serves travels in a context variable of the handler's task, so that
//! the calls the handler makes (`client.tell`, `req.client.tell`) are its children.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::Span;

use crate::bridge::helper;
use crate::errors::error_to_py;

/// The span a handler serves, kept in its task's context (`kite_rs._bridge`).
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct TraceParent(Span);

/// The request span being served here, when it is traced (else `None`: nothing to carry).
pub(crate) fn serving() -> Option<Span> {
    let span = Span::current();
    (!span.is_disabled()).then_some(span)
}

/// `span` for a handler's task context.
pub(crate) fn to_py(py: Python<'_>, span: Option<Span>) -> Option<Py<PyAny>> {
    Py::new(py, TraceParent(span?)).ok().map(Py::into_any)
}

/// The span of the handler whose task is running (the parent of a call it makes).
pub(crate) fn parent(py: Python<'_>) -> Option<Span> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET
        .get_or_try_init(py, || helper(py, "trace_parent").map(Bound::unbind))
        .ok()?;
    let p = get.bind(py).call0().ok()?;
    let p = p.cast::<TraceParent>().ok()?;
    Some(p.get().0.clone())
}

/// Sends the spans this process has ended to the OTLP receiver and waits for its answer
/// (call it before exiting); `False` when no exporter is configured
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` unset).
#[pyfunction]
pub(crate) fn flush_traces(py: Python<'_>) -> PyResult<bool> {
    py.detach(kite::telemetry::Telemetry::flush_process)
        .map_err(|e| error_to_py(py, &e))
}
