//! Python handlers behind kite methods.
//!
//! A handler is inspected once, at registration: ``async def`` or plain ``def``, how many
//! arguments it takes, and which simple annotations (``float``, ``int``, ``str``, ``bool``,
//! ``list``, ``dict``, ``Optional[…]``, callables) to check. Arguments that do not fit are
//! answered with ``argumentError`` without calling Python code.
//!
//! An ``async def`` handler is started on the kite's event loop through its
//! [`Dispatcher`] (one batch per loop wake-up) and runs as an asyncio task; the task is
//! cancelled when the caller disconnects. A plain ``def`` runs on a worker thread (at most
//! `workers` at once), never on the loop.

use std::sync::{Arc, Mutex};

use kite::KiteError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::arg::{Arg, Outgoing};
use crate::bridge::{self, Dispatcher};
use crate::errors::{kite_error_to_py, py_to_kite_error};
use crate::outbox::Outbox;
use crate::reply::{finish, log_handler_error, Input, Outcome, Reply};
use crate::request::Request;
use crate::shared::Shared;
use crate::signature::{checks_of, json_type, parameters, Check, Parameters, Role};
use crate::values::to_py;

/// Handlers made for a kite.
impl Shared {
    /// Inspects a Python handler; the first plain `def` starts the worker threads.
    pub(crate) fn handler(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        role: Role,
        label: &str,
    ) -> PyResult<Arc<PyHandler>> {
        let h = PyHandler::inspect(py, func, role, label)?;
        if !h.is_async() {
            self.ensure_pool(py)?;
        }
        Ok(Arc::new(h))
    }
}

/// A Python callable registered as a handler, inspected once.
pub(crate) struct PyHandler {
    func: Py<PyAny>,
    label: String,
    role: Role,
    is_async: bool,
    /// Arguments after `req`: at least `min`, at most `max` (`None`: any number).
    min: usize,
    max: Option<usize>,
    /// (parameter name, check) for the positional parameters after `req`.
    checks: Vec<(String, Check)>,
}

fn is_coroutine_function(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<bool> {
    static ISCORO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let iscoro = ISCORO.import(py, "inspect", "iscoroutinefunction")?;
    if iscoro.call1((f,))?.is_truthy()? {
        return Ok(true);
    }
    // A callable object with an `async def __call__`.
    if !f.is_instance_of::<pyo3::types::PyFunction>() {
        if let Ok(call) = f.getattr("__call__") {
            return iscoro.call1((call,))?.is_truthy();
        }
    }
    Ok(false)
}

impl PyHandler {
    /// Inspects `func` for `role`; `label` names it in messages (the method name).
    pub(crate) fn inspect(
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        role: Role,
        label: &str,
    ) -> PyResult<Self> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "handler for {label:?} is not callable"
            )));
        }
        let is_async = is_coroutine_function(py, func)?;
        let Parameters {
            positional,
            varargs,
            empty,
        } = parameters(py, func, label)?;
        let fixed = match role {
            Role::Main | Role::Chain => 1,
            Role::Final => 3,
        };
        if positional.len() < fixed && !varargs {
            let want = match role {
                Role::Main => "(req, *args)",
                Role::Chain => "(req)",
                Role::Final => "(req, result, error)",
            };
            return Err(PyTypeError::new_err(format!(
                "handler for {label:?} must take {want}"
            )));
        }
        let rest: Vec<_> = positional.into_iter().skip(fixed).collect();
        if role != Role::Main && rest.iter().any(|(_, has_default, _)| !has_default) {
            return Err(PyTypeError::new_err(format!(
                "handler for {label:?} takes too many arguments"
            )));
        }
        let min = rest.iter().filter(|(_, d, _)| !d).count();
        let max = (!varargs).then_some(rest.len());
        let checks = checks_of(py, &rest, &empty)?;
        Ok(PyHandler {
            func: func.clone().unbind(),
            label: label.to_string(),
            role,
            is_async,
            min,
            max,
            checks,
        })
    }

    /// Whether the handler is an `async def` (else it runs on the worker threads).
    pub(crate) fn is_async(&self) -> bool {
        self.is_async
    }

    /// Runs the handler for `req` (main, pre or post role).
    pub(crate) async fn call(
        self: Arc<Self>,
        shared: Arc<Shared>,
        req: kite::Request,
    ) -> anyhow::Result<Arg> {
        match self.run(shared, req, Input::Value).await {
            Outcome::Value(r) => r.map_err(anyhow::Error::from),
            Outcome::Final(..) => Err(KiteError::generic("internal: unexpected outcome").into()),
        }
    }

    /// Runs a final function.
    pub(crate) async fn call_final(
        self: Arc<Self>,
        shared: Arc<Shared>,
        req: kite::Request,
        result: Option<Value>,
        error: Option<KiteError>,
    ) -> (Option<Value>, Option<KiteError>) {
        match self.run(shared, req, Input::Final(result, error)).await {
            Outcome::Final(r, e) => (r, e),
            Outcome::Value(r) => (None, r.err()),
        }
    }

    async fn run(
        self: Arc<Self>,
        shared: Arc<Shared>,
        req: kite::Request,
        input: Input,
    ) -> Outcome {
        if self.is_async {
            match shared.dispatcher() {
                Some(d) => self.run_async(d, req, input).await,
                None => input.error(KiteError::generic(
                    "the kite has no running event loop (start it with `await kite.start()`)",
                )),
            }
        } else {
            self.run_sync(shared, req, input).await
        }
    }

    async fn run_async(
        self: Arc<Self>,
        d: Arc<Dispatcher>,
        req: kite::Request,
        input: Input,
    ) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let slot = Arc::new(Slot {
            parent: crate::traces::serving(),
            ..Slot::default()
        });
        {
            let (h, d2, req, slot) = (self.clone(), d.clone(), req.clone(), slot.clone());
            d.push(Box::new(move |py| {
                h.start_async(py, &d2, &req, input, tx, &slot)
            }));
        }
        let outcome = tokio::select! {
            r = rx => r.unwrap_or_else(|_| Outcome::Value(Err(KiteError::generic("the handler was dropped")))),
            _ = req.cancelled() => {
                let slot = slot.clone();
                d.push(Box::new(move |py| {
                    let task = slot.task.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(t) = task {
                        let _ = t.bind(py).call_method0("cancel");
                    }
                }));
                return Outcome::Value(Err(KiteError::generic("the caller disconnected")));
            }
        };
        let outbox = slot.outbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(o) = outbox {
            o.flush().await;
        }
        outcome
    }

    fn start_async(
        &self,
        py: Python<'_>,
        d: &Arc<Dispatcher>,
        req: &kite::Request,
        input: Input,
        tx: oneshot::Sender<Outcome>,
        slot: &Slot,
    ) {
        if req.is_cancelled() {
            return;
        }
        let call_args = match self.prepare(py, req, &input) {
            Ok((a, outbox)) => {
                *slot.outbox.lock().unwrap_or_else(|e| e.into_inner()) = outbox;
                a
            }
            Err(e) => {
                let _ = tx.send(input.error(e));
                return;
            }
        };
        let out = Outgoing {
            dispatcher: Some(d.clone()),
        };
        match self.func.bind(py).call1(call_args) {
            Err(e) => {
                let _ = tx.send(self.failed(py, input, &e));
            }
            Ok(obj) => match bridge::is_awaitable(&obj) {
                Ok(true) => {
                    let reply = Reply {
                        tx: Mutex::new(Some(tx)),
                        input: Mutex::new(Some(input)),
                        out,
                        label: self.label.clone(),
                    };
                    let parent = crate::traces::to_py(py, slot.parent.clone());
                    let started = Bound::new(py, reply)
                        .and_then(|r| bridge::start_task(py, d, obj, r.into_any(), parent));
                    match started {
                        Ok(task) => {
                            *slot.task.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(task.unbind())
                        }
                        Err(e) => crate::logging::log_exception(py, "could not start handler", &e),
                    }
                }
                _ => {
                    let _ = tx.send(finish(py, input, &obj, &out));
                }
            },
        }
    }

    async fn run_sync(
        self: Arc<Self>,
        shared: Arc<Shared>,
        req: kite::Request,
        input: Input,
    ) -> Outcome {
        let Some(pool) = shared.pool().cloned() else {
            return input.error(KiteError::generic("internal: no worker threads"));
        };
        let (tx, rx) = oneshot::channel();
        let (h, s) = (self.clone(), shared.clone());
        pool.push(Box::new(move |py| {
            let _ = tx.send(h.call_sync(py, &s, &req, input));
        }));
        match rx.await {
            Ok((outcome, outbox)) => {
                if let Some(o) = outbox {
                    o.flush().await;
                }
                outcome
            }
            Err(_) => Outcome::Value(Err(KiteError::generic("the worker threads are gone"))),
        }
    }

    fn call_sync(
        &self,
        py: Python<'_>,
        shared: &Arc<Shared>,
        req: &kite::Request,
        input: Input,
    ) -> (Outcome, Option<Arc<Outbox>>) {
        let (call_args, outbox) = match self.prepare(py, req, &input) {
            Ok(x) => x,
            Err(e) => return (input.error(e), None),
        };
        let dispatcher = shared.dispatcher();
        let out = Outgoing {
            dispatcher: dispatcher.clone(),
        };
        let outcome = match self.func.bind(py).call1(call_args) {
            Err(e) => self.failed(py, input, &e),
            Ok(obj) => match (bridge::is_awaitable(&obj), dispatcher) {
                // A plain function that returned an awaitable: run it on the kite's loop.
                (Ok(true), Some(d)) => {
                    let (tx, rx) = oneshot::channel();
                    let reply = Reply {
                        tx: Mutex::new(Some(tx)),
                        input: Mutex::new(Some(input)),
                        out,
                        label: self.label.clone(),
                    };
                    let (obj, d2) = (obj.unbind(), d.clone());
                    let started = Py::new(py, reply).map(|reply| {
                        d.push(Box::new(move |py| {
                            if let Err(e) = bridge::start_task(
                                py,
                                &d2,
                                obj.into_bound(py),
                                reply.into_bound(py).into_any(),
                                None,
                            ) {
                                crate::logging::log_exception(py, "could not start handler", &e);
                            }
                        }))
                    });
                    match started {
                        Ok(()) => py.detach(|| rx.blocking_recv()).unwrap_or_else(|_| {
                            Outcome::Value(Err(KiteError::generic("the handler was dropped")))
                        }),
                        Err(e) => Outcome::Value(Err(py_to_kite_error(py, &e))),
                    }
                }
                _ => finish(py, input, &obj, &out),
            },
        };
        (outcome, outbox)
    }

    fn failed(&self, py: Python<'_>, input: Input, err: &PyErr) -> Outcome {
        log_handler_error(py, &self.label, err);
        input.error(py_to_kite_error(py, err))
    }

    /// The Python arguments of the call; `argumentError` when they do not fit.
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        req: &kite::Request,
        input: &Input,
    ) -> Result<(Bound<'py, PyTuple>, Option<Arc<Outbox>>), KiteError> {
        let internal = |e: PyErr| KiteError::generic(format!("internal error: {e}"));
        let request = Request::new(req.clone());
        match (self.role, input) {
            (Role::Main, _) => {
                let (values, outbox) = crate::convert::args_to_py(py, req.args())
                    .map_err(|e| KiteError::argument(e.to_string()))?;
                let n = values.len();
                if n < self.min || self.max.is_some_and(|m| n > m) {
                    let want = match self.max {
                        Some(m) if m == self.min => format!("{m}"),
                        Some(m) => format!("{} to {m}", self.min),
                        None => format!("at least {}", self.min),
                    };
                    let s = if want == "1" { "" } else { "s" };
                    return Err(KiteError::argument(format!(
                        "{} takes {want} argument{s} ({n} given)",
                        self.label
                    )));
                }
                let mut call = Vec::with_capacity(n + 1);
                let list = PyList::new(py, &values).map_err(internal)?;
                call.push(
                    Bound::new(py, request.preset_args(py, list))
                        .map_err(internal)?
                        .into_any(),
                );
                for (i, v) in values.into_iter().enumerate() {
                    match self.checks.get(i) {
                        Some((name, check)) => match check.apply(&v) {
                            Some(v) => call.push(v),
                            None => {
                                return Err(KiteError::argument(format!(
                                    "argument {name:?} of {}: expected {}, got {}",
                                    self.label,
                                    check.describe(),
                                    json_type(&v)
                                )))
                            }
                        },
                        None => call.push(v),
                    }
                }
                Ok((PyTuple::new(py, call).map_err(internal)?, outbox))
            }
            (Role::Chain, _) => {
                let r = Bound::new(py, request).map_err(internal)?;
                Ok((PyTuple::new(py, [r]).map_err(internal)?, None))
            }
            (Role::Final, Input::Final(result, error)) => {
                let r = Bound::new(py, request).map_err(internal)?.into_any();
                let result = match result {
                    Some(v) => to_py(py, v).map_err(internal)?,
                    None => py.None().into_bound(py),
                };
                let error = match error {
                    Some(e) => kite_error_to_py(py, e)
                        .into_value(py)
                        .into_bound(py)
                        .into_any(),
                    None => py.None().into_bound(py),
                };
                Ok((
                    PyTuple::new(py, [r, result, error]).map_err(internal)?,
                    None,
                ))
            }
            (Role::Final, Input::Value) => Err(KiteError::generic("internal: final without input")),
        }
    }
}

/// The running task of an `async def` handler, the outbox of its arguments' functions and
/// the traced request it serves (see `traces`).
#[derive(Default)]
struct Slot {
    task: Mutex<Option<Py<PyAny>>>,
    outbox: Mutex<Option<Arc<Outbox>>>,
    parent: Option<tracing::Span>,
}
