//! Errors between Rust and Python: the wire error as the `KiteError` class family of
//! `kite_rs._errors`, and Python exceptions raised by handlers as wire errors.

use kite::{ErrorKind, KiteError};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    MODULE
        .get_or_try_init(py, || py.import("kite_rs._errors").map(Bound::unbind))
        .map(|m| m.bind(py))
}

fn kite_error_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS.import(py, "kite_rs._errors", "KiteError")
}

/// The Python exception for a wire error (`MethodNotFoundError`, `TimeoutError`, …).
pub(crate) fn kite_error_to_py(py: Python<'_>, e: &KiteError) -> PyErr {
    wire_error(py, e.kind.as_str(), &e.message, &e.code, &e.id)
}

fn wire_error(py: Python<'_>, kind: &str, message: &str, code: &str, id: &str) -> PyErr {
    match errors_module(py).and_then(|m| m.call_method1("_from_wire", (kind, message, code, id))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// The Python exception for a kite operation's error.
pub(crate) fn error_to_py(py: Python<'_>, e: &kite::Error) -> PyErr {
    // Local mistakes are Python's own exception classes; every other error is the
    // `KiteError` subclass of its code (`kite::Error::code`), remote or local.
    match e {
        kite::Error::Config(m) => PyValueError::new_err(m.clone()),
        kite::Error::DuplicateMethod(_) => PyValueError::new_err(e.to_string()),
        kite::Error::Io(io) => PyOSError::new_err(io.to_string()),
        kite::Error::Remote(k) => kite_error_to_py(py, k),
        other => {
            let k = other.to_kite_error();
            let message = other.dial_error().map_or(k.message, |d| d.to_string());
            wire_error(py, other.code(), &message, &k.code, &k.id)
        }
    }
}

/// A kite error as the failure of a future handed to Python (converted on the loop's
/// thread, never on a tokio thread).
pub(crate) fn to_py_err(e: kite::Error) -> Failure {
    Failure::Kite(e)
}

/// The wire error for an exception raised by a handler: a `KiteError` keeps its kind, message
/// and code; anything else is a `genericError` with the exception's text.
pub(crate) fn py_to_kite_error(py: Python<'_>, err: &PyErr) -> KiteError {
    let value = err.value(py);
    if let Ok(cls) = kite_error_class(py) {
        if value.is_instance(cls).unwrap_or(false) {
            let get = |name: &str| -> String {
                value
                    .getattr(name)
                    .and_then(|v| v.extract::<String>())
                    .unwrap_or_default()
            };
            let kind = get("kind");
            let kind = if kind.is_empty() {
                ErrorKind::GenericError
            } else {
                ErrorKind::parse(&kind)
            };
            return KiteError::new(kind, get("message")).with_code(get("code"));
        }
    }
    if err.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>(py) {
        return KiteError::generic("handler was cancelled");
    }
    let text = value.str().map(|s| s.to_string()).unwrap_or_default();
    if text.is_empty() {
        let name = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        return KiteError::generic(name);
    }
    KiteError::generic(text)
}

/// Why a Rust future handed to Python failed; turned into an exception on the loop's thread.
pub(crate) enum Failure {
    /// A kite operation's error (becomes the matching `KiteError` subclass).
    Kite(kite::Error),
    /// A Python exception.
    Py(PyErr),
}

impl From<kite::Error> for Failure {
    fn from(e: kite::Error) -> Self {
        Failure::Kite(e)
    }
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Py(e)
    }
}

impl Failure {
    /// The exception (made on the loop's thread).
    pub(crate) fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Kite(e) => error_to_py(py, &e),
            Failure::Py(e) => e,
        }
    }
}
