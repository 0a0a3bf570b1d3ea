//! What a handler produced: [`Input`] and [`Outcome`], the conversion of its return value
//! ([`finish`], moved unchanged from `handler.rs`), and [`Reply`], through which an
//! ``async def`` handler's task reports back.

use std::sync::Mutex;

use kite::KiteError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::arg::{Arg, Outgoing};
use crate::convert::{to_arg, to_json};
use crate::errors::py_to_kite_error;

pub(crate) fn log_handler_error(py: Python<'_>, label: &str, err: &PyErr) {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let Ok(logger) = LOGGER.get_or_try_init(py, || {
        py.import("logging")
            .and_then(|m| m.call_method1("getLogger", ("kite_rs.handler",)))
            .map(Bound::unbind)
    }) else {
        return;
    };
    let logger = logger.bind(py);
    if logger
        .call_method1("isEnabledFor", (10,))
        .and_then(|b| b.is_truthy())
        .unwrap_or(false)
    {
        let kwargs = PyDict::new(py);
        let _ = kwargs.set_item("exc_info", err.value(py));
        let _ = logger.call_method("debug", ("handler for %r raised", label), Some(&kwargs));
    }
}

/// What the handler is given besides the request.
pub(crate) enum Input {
    /// Main, pre and post handlers.
    Value,
    /// A final function: the chain's result and error.
    Final(Option<Value>, Option<KiteError>),
}

impl Input {
    /// The outcome of a handler that failed with `e`.
    pub(crate) fn error(self, e: KiteError) -> Outcome {
        match self {
            Input::Value => Outcome::Value(Err(e)),
            Input::Final(..) => Outcome::Final(None, Some(e)),
        }
    }
}

/// What a handler produced.
pub(crate) enum Outcome {
    /// Of a main, pre or post handler.
    Value(Result<Arg, KiteError>),
    /// Of a final function.
    Final(Option<Value>, Option<KiteError>),
}

/// Converts a handler's return value.
pub(crate) fn finish(
    py: Python<'_>,
    input: Input,
    obj: &Bound<'_, PyAny>,
    out: &Outgoing,
) -> Outcome {
    match input {
        Input::Value => Outcome::Value(to_arg(obj, out).map_err(|e| {
            KiteError::generic(format!("handler result cannot be sent: {}", e.value(py)))
        })),
        Input::Final(result, error) => {
            if obj.is_none() {
                return Outcome::Final(result, error);
            }
            let pair = obj
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .map(|t| (t.get_item(0), t.get_item(1)));
            let Some((Ok(r), Ok(e))) = pair else {
                return Outcome::Final(
                    None,
                    Some(KiteError::generic(
                        "a final function must return (result, error) or None",
                    )),
                );
            };
            let result = if r.is_none() {
                None
            } else {
                match to_json(&r) {
                    Ok(v) => Some(v),
                    Err(err) => {
                        return Outcome::Final(
                            None,
                            Some(KiteError::generic(format!(
                                "final result cannot be sent: {}",
                                err.value(py)
                            ))),
                        )
                    }
                }
            };
            let error = if e.is_none() {
                None
            } else if let Ok(s) = e.cast::<PyString>() {
                Some(KiteError::generic(s.to_string()))
            } else {
                Some(py_to_kite_error(py, &PyErr::from_value(e)))
            };
            Outcome::Final(result, error)
        }
    }
}

/// Receives the outcome of a handler task (called by `kite_rs._bridge._run`).
#[pyclass(frozen, module = "kite_rs._native")]
pub(crate) struct Reply {
    pub(crate) tx: Mutex<Option<oneshot::Sender<Outcome>>>,
    pub(crate) input: Mutex<Option<Input>>,
    pub(crate) out: Outgoing,
    pub(crate) label: String,
}

impl Reply {
    fn send(&self, make: impl FnOnce(Input) -> Outcome) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let input = self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(tx), Some(input)) = (tx, input) {
            let _ = tx.send(make(input));
        }
    }
}

#[pymethods]
impl Reply {
    fn done(&self, py: Python<'_>, result: &Bound<'_, PyAny>) {
        self.send(|input| finish(py, input, result, &self.out));
    }

    fn fail(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) {
        let err = PyErr::from_value(exc.clone());
        if !err.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>(py) {
            log_handler_error(py, &self.label, &err);
        }
        self.send(|input| input.error(py_to_kite_error(py, &err)));
    }
}
