//! Python objects <-> dnode arguments, functions included, directly (no `json.dumps`/`loads`
//! strings). Converting values and calling functions across the wire need each other, so
//! they live here together: a Python callable passed as an argument becomes a dnode
//! [`Callback`] ([`python_callback`]); a function received from the remote side is a
//! [`RemoteFunction`], an awaitable callable (moved unchanged from the former `remote.rs`).
//!
//! Outgoing values are [`Arg`] trees: plain JSON where no function occurs, with Python
//! callables turned into dnode [`Callback`]s and received remote functions forwarded (the core
//! gets them as a `Payload`: the value plus each function at its path). Incoming arguments are
//! converted as JSON, then each function the core found at a path
//! ([`Arguments::functions`]) is put there as a `RemoteFunction` object.

use std::sync::Arc;

use kite::dnode::{Arguments, Callback, Function, Segment};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde_json::{Map, Value};

use crate::arg::{Arg, Outgoing};
use crate::bridge::{self, runtime, Dispatcher};
use crate::identity::KiteInfo;
use crate::outbox::{Out, Outbox};
use crate::values::{
    asdict, exact_scalar, is_dataclass_instance, key_string, subclass_scalar, to_py,
};

/// Converts a Python object to an outgoing value.
pub(crate) fn to_arg(obj: &Bound<'_, PyAny>, out: &Outgoing) -> PyResult<Arg> {
    to_arg_depth(obj, out, 0)
}

const MAX_DEPTH: usize = 256;

fn seq_to_arg<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    out: &Outgoing,
    depth: usize,
) -> PyResult<Arg> {
    let mut args = Vec::with_capacity(len);
    let mut plain = true;
    for item in items {
        let a = to_arg_depth(&item, out, depth + 1)?;
        plain &= matches!(a, Arg::Json(_));
        args.push(a);
    }
    if plain {
        Ok(Arg::Json(Value::Array(
            args.into_iter()
                .filter_map(|a| a.into_json().ok())
                .collect(),
        )))
    } else {
        Ok(Arg::List(args))
    }
}

fn dict_to_arg(d: &Bound<'_, PyDict>, out: &Outgoing, depth: usize) -> PyResult<Arg> {
    let mut entries = Vec::with_capacity(d.len());
    let mut plain = true;
    for (k, v) in d.iter() {
        let a = to_arg_depth(&v, out, depth + 1)?;
        plain &= matches!(a, Arg::Json(_));
        entries.push((key_string(&k)?, a));
    }
    if plain {
        let mut map = Map::with_capacity(entries.len());
        for (k, a) in entries {
            if let Ok(v) = a.into_json() {
                map.insert(k, v);
            }
        }
        return Ok(Arg::Json(Value::Object(map)));
    }
    Ok(Arg::Map(entries))
}

fn to_arg_depth(obj: &Bound<'_, PyAny>, out: &Outgoing, depth: usize) -> PyResult<Arg> {
    if depth > MAX_DEPTH {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "value is nested too deeply (circular reference?)",
        ));
    }
    // Exact types first: the common case, and the cheapest checks.
    if let Some(v) = exact_scalar(obj)? {
        return Ok(Arg::Json(v));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return seq_to_arg(l.iter(), l.len(), out, depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return seq_to_arg(t.iter(), t.len(), out, depth);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_to_arg(d, out, depth);
    }
    // Subclasses (IntEnum, str enums, …): bool before int.
    if let Some(v) = subclass_scalar(obj)? {
        return Ok(Arg::Json(v));
    }
    if let Ok(f) = obj.cast::<RemoteFunction>() {
        return Ok(Arg::Function(f.get().function()));
    }
    if let Ok(k) = obj.cast::<KiteInfo>() {
        return Ok(Arg::Json(
            serde_json::to_value(&k.get().0).unwrap_or(Value::Null),
        ));
    }
    let py = obj.py();
    if obj.hasattr(pyo3::intern!(py, "model_dump"))? && !obj.is_instance_of::<pyo3::types::PyType>()
    {
        let kwargs = PyDict::new(py);
        kwargs.set_item("mode", "json")?;
        let dumped = obj.call_method("model_dump", (), Some(&kwargs))?;
        return to_arg_depth(&dumped, out, depth + 1);
    }
    if is_dataclass_instance(obj)? {
        return to_arg_depth(&asdict(obj)?, out, depth + 1);
    }
    if obj.is_callable() {
        return Ok(Arg::Callback(python_callback(
            obj.clone().unbind(),
            out.dispatcher.clone(),
        )));
    }
    if obj.is_instance_of::<pyo3::types::PyBytes>() {
        return Err(PyTypeError::new_err(
            "Object of type bytes is not JSON serializable",
        ));
    }
    if let Ok(iter) = obj.try_iter() {
        // Sets, generators, other iterables: as arrays.
        let items: Vec<Bound<'_, PyAny>> = iter.collect::<PyResult<_>>()?;
        let n = items.len();
        return seq_to_arg(items.into_iter(), n, out, depth);
    }
    Err(PyTypeError::new_err(format!(
        "Object of type {} is not JSON serializable",
        obj.get_type().name()?
    )))
}

/// Converts a Python object to plain JSON; functions are not allowed.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_arg(obj, &Outgoing::default())?
        .into_json()
        .map_err(|_| PyTypeError::new_err("functions cannot be sent here"))
}

/// Received arguments as Python objects, and the outbox of the functions among them.
pub(crate) type PyArgs<'py> = (Vec<Bound<'py, PyAny>>, Option<Arc<Outbox>>);

/// Received arguments as Python objects. Functions inside become `RemoteFunction`s sharing
/// one outbox (returned, so the caller can wait until their calls are sent).
pub(crate) fn args_to_py<'py>(py: Python<'py>, args: &Arguments) -> PyResult<PyArgs<'py>> {
    let mut values = args
        .values()
        .iter()
        .map(|v| to_py(py, v))
        .collect::<PyResult<Vec<_>>>()?;
    if !args.has_functions() {
        return Ok((values, None));
    }
    let outbox = Outbox::new();
    for (path, f) in args.functions() {
        let func = Bound::new(py, RemoteFunction::new(f.clone(), outbox.clone()))?.into_any();
        place(&mut values, path, func)?;
    }
    Ok((values, Some(outbox)))
}

/// The list index a path segment names (Go and kite.js write numbers, some peers strings).
fn index(seg: &Segment) -> Option<usize> {
    match seg {
        Segment::Index(i) => Some(*i),
        Segment::Key(k) => k.parse().ok(),
    }
}

/// Puts `func` at `path` inside the converted arguments; a path that leads nowhere (a
/// peer's mistake) is ignored, as the core ignores it.
fn place<'py>(
    values: &mut [Bound<'py, PyAny>],
    path: &[Segment],
    func: Bound<'py, PyAny>,
) -> PyResult<()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let Some(slot) = index(first).and_then(|i| values.get_mut(i)) else {
        return Ok(());
    };
    let Some((last, inner)) = rest.split_last() else {
        *slot = func;
        return Ok(());
    };
    let mut cur = slot.clone();
    for seg in inner {
        match child(&cur, seg)? {
            Some(next) => cur = next,
            None => return Ok(()),
        }
    }
    if let Ok(list) = cur.cast::<PyList>() {
        if let Some(i) = index(last).filter(|i| *i < list.len()) {
            list.set_item(i, func)?;
        }
    } else if let (Ok(dict), Segment::Key(k)) = (cur.cast::<PyDict>(), last) {
        dict.set_item(k, func)?;
    }
    Ok(())
}

fn child<'py>(cur: &Bound<'py, PyAny>, seg: &Segment) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(list) = cur.cast::<PyList>() {
        return index(seg)
            .filter(|i| *i < list.len())
            .map(|i| list.get_item(i))
            .transpose();
    }
    match (cur.cast::<PyDict>(), seg) {
        (Ok(dict), Segment::Key(k)) => dict.get_item(k),
        _ => Ok(None),
    }
}

/// A function of the remote kite, received as an argument (or inside one).
///
/// Call it with any JSON-serializable arguments (and callables, which become callbacks);
/// calls are sent in order. On an event loop the call returns an awaitable that completes
/// once the message is handed to the connection; elsewhere (a plain ``def`` handler's
/// worker thread) it returns ``None`` and the call is still sent, before the handler's
/// response.
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct RemoteFunction {
    function: Function,
    outbox: Arc<Outbox>,
}

impl RemoteFunction {
    pub(crate) fn new(function: Function, outbox: Arc<Outbox>) -> Self {
        Self { function, outbox }
    }

    pub(crate) fn function(&self) -> Function {
        self.function.clone()
    }
}

#[pymethods]
impl RemoteFunction {
    #[pyo3(signature = (*args))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        let dispatcher = Dispatcher::current(py)?;
        let out = Outgoing {
            dispatcher: dispatcher.clone(),
        };
        let args = to_arg(args.as_any(), &out)?;
        let (done, ret) = match dispatcher {
            Some(d) => {
                let future = d.event_loop(py).call_method0("create_future")?.unbind();
                let ret = future.clone_ref(py);
                (Some((d, future)), ret)
            }
            None => (None, py.None()),
        };
        self.outbox
            .tx
            .send(Out::Call {
                function: self.function.clone(),
                args,
                done,
            })
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("kite runtime is gone"))?;
        Ok(ret)
    }

    /// The callback id the remote side gave this function.
    #[getter]
    fn id(&self) -> u64 {
        self.function.id()
    }

    fn __repr__(&self) -> String {
        format!("<RemoteFunction {}>", self.function.id())
    }
}

/// A dnode callback that calls the Python callable `func` on `dispatcher`'s loop (a
/// coroutine it returns runs as a task), or in a worker thread when there is no loop.
pub(crate) fn python_callback(func: Py<PyAny>, dispatcher: Option<Arc<Dispatcher>>) -> Callback {
    let func = Arc::new(func);
    Callback::new(move |args: Arguments| {
        let func = func.clone();
        match &dispatcher {
            Some(d) => {
                let d2 = d.clone();
                d.push(Box::new(move |py| invoke(py, &func, &args, Some(&d2))));
            }
            None => {
                runtime().spawn_blocking(move || {
                    crate::lifecycle::attach(|py| invoke(py, &func, &args, None));
                });
            }
        }
    })
}

fn invoke(py: Python<'_>, func: &Py<PyAny>, args: &Arguments, d: Option<&Arc<Dispatcher>>) {
    let r = args_to_py(py, args).and_then(|(values, _)| {
        let result = func.bind(py).call1(PyTuple::new(py, values)?)?;
        if bridge::is_awaitable(&result)? {
            match d {
                Some(d) => bridge::spawn(py, d, result)?,
                None => {
                    let asyncio = py.import("asyncio")?;
                    asyncio.call_method1("run", (result,))?;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = r {
        crate::logging::log_exception(py, "kite callback failed", &e);
    }
}
