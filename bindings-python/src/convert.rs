//! Python objects <-> dnode arguments, functions included, directly (no `json.dumps`/`loads`
//! strings). Converting values and calling functions across the wire need each other, so
//! they live here together: a Python callable passed as an argument becomes a dnode
//! [`Callback`] ([`python_callback`]); a function received from the remote side is a
//! [`RemoteFunction`], an awaitable callable (moved unchanged from the former `remote.rs`).
//!
//! Outgoing values are [`Arg`] trees: plain JSON where no function occurs, with Python
//! callables turned into dnode [`Callback`]s and received remote functions forwarded. Incoming
//! arguments that carry functions are decoded through [`Tree`], which binds each function to
//! its connection ([`Function`]) and becomes a `RemoteFunction` object in Python.

use std::sync::Arc;

use kite::dnode::{Arguments, Callback, Function};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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
    match to_arg(obj, &Outgoing::default())? {
        Arg::Json(v) => Ok(v),
        other => serde_json::to_value(&other)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string())),
    }
}

/// A received value with its functions bound to the connection.
pub(crate) enum Tree {
    Json(Value),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
    Function(Function),
}

impl Tree {
    fn is_json(&self) -> bool {
        matches!(self, Tree::Json(_))
    }

    fn to_py<'py>(&self, py: Python<'py>, outbox: &Arc<Outbox>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Tree::Json(v) => to_py(py, v),
            Tree::List(items) => {
                let list = PyList::empty(py);
                for i in items {
                    list.append(i.to_py(py, outbox)?)?;
                }
                Ok(list.into_any())
            }
            Tree::Map(entries) => {
                let dict = PyDict::new(py);
                for (k, v) in entries {
                    dict.set_item(k, v.to_py(py, outbox)?)?;
                }
                Ok(dict.into_any())
            }
            Tree::Function(f) => {
                Ok(Bound::new(py, RemoteFunction::new(f.clone(), outbox.clone()))?.into_any())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Json(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Json(Value::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Json(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Json(Value::Number(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Json(Value::Number(v.into())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Json(
            Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
        // Functions arrive as marked strings that only `Function` can decode.
        match Function::deserialize(de::value::StrDeserializer::<E>::new(v)) {
            Ok(f) => Ok(Tree::Function(f)),
            Err(_) => Ok(Tree::Json(Value::String(v.to_owned()))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(t) = seq.next_element::<Tree>()? {
            items.push(t);
        }
        if items.iter().all(Tree::is_json) {
            return Ok(Tree::Json(Value::Array(
                items
                    .into_iter()
                    .map(|t| match t {
                        Tree::Json(v) => v,
                        _ => Value::Null,
                    })
                    .collect(),
            )));
        }
        Ok(Tree::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Tree>()? {
            entries.push((k, v));
        }
        if entries.iter().all(|(_, t)| t.is_json()) {
            let mut m = Map::with_capacity(entries.len());
            for (k, t) in entries {
                if let Tree::Json(v) = t {
                    m.insert(k, v);
                }
            }
            return Ok(Tree::Json(Value::Object(m)));
        }
        Ok(Tree::Map(entries))
    }
}

/// Received arguments as Python objects, and the outbox of the functions among them.
pub(crate) type PyArgs<'py> = (Vec<Bound<'py, PyAny>>, Option<Arc<Outbox>>);

/// Received arguments as Python objects. Functions inside become `RemoteFunction`s sharing
/// one outbox (returned, so the caller can wait until their calls are sent).
pub(crate) fn args_to_py<'py>(py: Python<'py>, args: &Arguments) -> PyResult<PyArgs<'py>> {
    if !args.has_functions() {
        let values = args
            .values()
            .iter()
            .map(|v| to_py(py, v))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok((values, None));
    }
    let trees: Vec<Tree> = args.get().map_err(|e| PyTypeError::new_err(e.message))?;
    let outbox = Outbox::new();
    let values = trees
        .iter()
        .map(|t| t.to_py(py, &outbox))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((values, Some(outbox)))
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
