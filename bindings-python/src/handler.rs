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
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::arg::{Arg, Outgoing};
use crate::bridge::{self, Dispatcher};
use crate::convert::RemoteFunction;
use crate::convert::{to_arg, to_json};
use crate::errors::{kite_error_to_py, py_to_kite_error};
use crate::outbox::Outbox;
use crate::request::Request;
use crate::shared::Shared;
use crate::values::to_py;

/// What a handler is for; decides its parameters and its result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `(req, *args)` → result.
    Main,
    /// A pre or post handler: `(req)` → result.
    Chain,
    /// A final function: `(req, result, error)` → `(result, error)` or `None`.
    Final,
}

/// An annotation the arguments are checked against.
#[derive(Clone, Debug)]
enum Check {
    Any,
    Float,
    Int,
    Str,
    Bool,
    List,
    Dict,
    Function,
    Null,
    Union(Vec<Check>),
}

impl Check {
    fn describe(&self) -> String {
        match self {
            Check::Any => "anything".into(),
            Check::Float => "a number".into(),
            Check::Int => "an integer".into(),
            Check::Str => "a string".into(),
            Check::Bool => "a boolean".into(),
            Check::List => "an array".into(),
            Check::Dict => "an object".into(),
            Check::Function => "a function".into(),
            Check::Null => "null".into(),
            Check::Union(cs) => cs
                .iter()
                .map(Check::describe)
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// The argument as the handler gets it (`int` → `float` for `float`), or `None` when it
    /// does not fit.
    fn apply<'py>(&self, v: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let ok = |b: bool| b.then(|| v.clone());
        match self {
            Check::Any => Some(v.clone()),
            Check::Float => {
                if v.is_exact_instance_of::<PyFloat>() {
                    Some(v.clone())
                } else if v.is_exact_instance_of::<PyInt>() {
                    v.extract::<f64>()
                        .ok()
                        .map(|f| PyFloat::new(v.py(), f).into_any())
                } else {
                    None
                }
            }
            Check::Int => {
                if v.is_exact_instance_of::<PyInt>() {
                    Some(v.clone())
                } else if let Ok(f) = v.cast_exact::<PyFloat>() {
                    let f = f.value();
                    (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
                        .then(|| (f as i64).into_pyobject(v.py()).ok().map(|i| i.into_any()))
                        .flatten()
                } else {
                    None
                }
            }
            Check::Str => ok(v.is_instance_of::<PyString>()),
            Check::Bool => ok(v.is_instance_of::<PyBool>()),
            Check::List => ok(v.is_instance_of::<PyList>()),
            Check::Dict => ok(v.is_instance_of::<PyDict>()),
            Check::Function => ok(v.is_instance_of::<RemoteFunction>()),
            Check::Null => ok(v.is_none()),
            Check::Union(cs) => cs.iter().find_map(|c| c.apply(v)),
        }
    }
}

fn json_type(v: &Bound<'_, PyAny>) -> &'static str {
    if v.is_none() {
        "null"
    } else if v.is_instance_of::<PyBool>() {
        "boolean"
    } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        "number"
    } else if v.is_instance_of::<PyString>() {
        "string"
    } else if v.is_instance_of::<PyList>() {
        "array"
    } else if v.is_instance_of::<RemoteFunction>() {
        "function"
    } else {
        "object"
    }
}

fn typing<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("typing")?.getattr(name)
}

fn check_for(py: Python<'_>, ann: &Bound<'_, PyAny>) -> PyResult<Check> {
    let builtins = py.import("builtins")?;
    let is = |name: &str| -> PyResult<bool> { Ok(ann.is(&builtins.getattr(name)?)) };
    if is("float")? {
        return Ok(Check::Float);
    }
    if is("int")? {
        return Ok(Check::Int);
    }
    if is("str")? {
        return Ok(Check::Str);
    }
    if is("bool")? {
        return Ok(Check::Bool);
    }
    if is("list")? {
        return Ok(Check::List);
    }
    if is("dict")? {
        return Ok(Check::Dict);
    }
    if ann.is_none() || ann.is(py.None().into_bound(py).get_type()) {
        return Ok(Check::Null);
    }
    if ann.is(py.get_type::<RemoteFunction>().as_any()) {
        return Ok(Check::Function);
    }
    let origin = typing(py, "get_origin")?.call1((ann,))?;
    if origin.is_none() {
        return Ok(Check::Any);
    }
    if origin.is(&builtins.getattr("list")?) {
        return Ok(Check::List);
    }
    if origin.is(&builtins.getattr("dict")?) {
        return Ok(Check::Dict);
    }
    let abc_callable = py.import("collections.abc")?.getattr("Callable")?;
    if origin.is(&abc_callable) {
        return Ok(Check::Function);
    }
    let is_union = origin.is(&typing(py, "Union")?)
        || py
            .import("types")?
            .getattr("UnionType")
            .map(|u| origin.is(&u))
            .unwrap_or(false);
    if is_union {
        let mut checks = Vec::new();
        for a in typing(py, "get_args")?.call1((ann,))?.try_iter()? {
            match check_for(py, &a?)? {
                Check::Any => return Ok(Check::Any),
                c => checks.push(c),
            }
        }
        return Ok(Check::Union(checks));
    }
    Ok(Check::Any)
}

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
        let inspect = py.import("inspect")?;
        let sig = inspect.call_method1("signature", (func,))?;
        let hints = typing(py, "get_type_hints")
            .and_then(|f| f.call1((func,)))
            .ok();
        let kind_of = |name: &str| -> PyResult<Bound<'_, PyAny>> {
            inspect.getattr("Parameter")?.getattr(name)
        };
        let positional_only = kind_of("POSITIONAL_ONLY")?;
        let positional_or_kw = kind_of("POSITIONAL_OR_KEYWORD")?;
        let var_positional = kind_of("VAR_POSITIONAL")?;
        let keyword_only = kind_of("KEYWORD_ONLY")?;
        let empty = inspect.getattr("Parameter")?.getattr("empty")?;
        let mut positional: Vec<(String, bool, Bound<'_, PyAny>)> = Vec::new();
        let mut varargs = false;
        for p in sig
            .getattr("parameters")?
            .call_method0("values")?
            .try_iter()?
        {
            let p = p?;
            let kind = p.getattr("kind")?;
            let name: String = p.getattr("name")?.extract()?;
            let has_default = !p.getattr("default")?.is(&empty);
            if kind.eq(&positional_only)? || kind.eq(&positional_or_kw)? {
                let ann = match &hints {
                    Some(h) => h.get_item(&name).unwrap_or_else(|_| empty.clone()),
                    None => p.getattr("annotation")?,
                };
                positional.push((name, has_default, ann));
            } else if kind.eq(&var_positional)? {
                varargs = true;
            } else if kind.eq(&keyword_only)? && !has_default {
                return Err(PyTypeError::new_err(format!(
                    "handler for {label:?}: keyword-only parameter {name:?} needs a default"
                )));
            }
        }
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
        let mut checks = Vec::with_capacity(rest.len());
        for (name, _, ann) in &rest {
            let check = if ann.is(&empty) {
                Check::Any
            } else {
                check_for(py, ann)?
            };
            checks.push((name.clone(), check));
        }
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
        let slot = Arc::new(Slot::default());
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
                    let started = Bound::new(py, reply)
                        .and_then(|r| bridge::start_task(py, d, obj, r.into_any()));
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

fn log_handler_error(py: Python<'_>, label: &str, err: &PyErr) {
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
    fn error(self, e: KiteError) -> Outcome {
        match self {
            Input::Value => Outcome::Value(Err(e)),
            Input::Final(..) => Outcome::Final(None, Some(e)),
        }
    }
}

/// What a handler produced.
pub(crate) enum Outcome {
    Value(Result<Arg, KiteError>),
    Final(Option<Value>, Option<KiteError>),
}

/// Converts a handler's return value.
fn finish(py: Python<'_>, input: Input, obj: &Bound<'_, PyAny>, out: &Outgoing) -> Outcome {
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

/// The running task of an `async def` handler and the outbox of its arguments' functions.
#[derive(Default)]
struct Slot {
    task: Mutex<Option<Py<PyAny>>>,
    outbox: Mutex<Option<Arc<Outbox>>>,
}

/// Receives the outcome of a handler task (called by `kite_rs._bridge._run`).
#[pyclass(frozen, module = "kite_rs._native")]
pub(crate) struct Reply {
    tx: Mutex<Option<oneshot::Sender<Outcome>>>,
    input: Mutex<Option<Input>>,
    out: Outgoing,
    label: String,
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
