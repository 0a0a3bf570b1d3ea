//! JSON values <-> Python objects, directly (no `json.dumps`/`loads` strings).
//!
//! Outgoing values are [`Arg`] trees: plain JSON where no function occurs, with Python
//! callables turned into dnode [`Callback`]s and received remote functions forwarded; an
//! `Arg` becomes the core's [`Payload`] (the JSON value plus each function at its path).
//! Incoming arguments are converted as JSON, then each function the core found at a path
//! ([`Arguments::functions`]) is put there as a `RemoteFunction` object.

use std::sync::Arc;

use kite::dnode::{
    Arguments, Callback, Function, IntoPayload, Path, Payload, Segment, PLACEHOLDER,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::bridge::Dispatcher;
use crate::remote::{python_callback, Outbox, RemoteFunction};
use crate::request::KiteInfo;

/// An outgoing value: JSON, possibly with functions inside.
pub(crate) enum Arg {
    /// Plain JSON (no functions anywhere below).
    Json(Value),
    /// An array with functions inside.
    List(Vec<Arg>),
    /// An object with functions inside.
    Map(Vec<(String, Arg)>),
    /// A local function the remote side may call.
    Callback(Callback),
    /// A remote function passed on (forwarded by a local callback).
    Function(Function),
}

impl IntoPayload for Arg {
    /// The value, with each function's place recorded beside it.
    fn into_payload(self) -> Payload {
        let mut functions = Vec::new();
        let value = self.flatten(&mut Vec::new(), &mut functions);
        Payload::from_parts(value, functions)
    }
}

impl Arg {
    /// The JSON value, functions replaced by their placeholder and collected with their paths.
    fn flatten(self, path: &mut Path, functions: &mut Vec<(Path, Callback)>) -> Value {
        match self {
            Arg::Json(v) => v,
            Arg::List(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| {
                        path.push(Segment::Index(i));
                        let v = a.flatten(path, functions);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            Arg::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, a)| {
                        path.push(Segment::Key(k.clone()));
                        let v = a.flatten(path, functions);
                        path.pop();
                        (k, v)
                    })
                    .collect(),
            ),
            Arg::Callback(cb) => {
                functions.push((path.clone(), cb));
                Value::String(PLACEHOLDER.into())
            }
            Arg::Function(f) => {
                functions.push((path.clone(), Callback::from(f)));
                Value::String(PLACEHOLDER.into())
            }
        }
    }

    /// The JSON value, when there are no functions inside.
    pub(crate) fn into_json(self) -> Result<Value, Arg> {
        match self {
            Arg::Json(v) => Ok(v),
            other => Err(other),
        }
    }
}

/// How Python callables found in outgoing values become callbacks: they run on `dispatcher`'s
/// loop (or in a worker thread when there is none).
#[derive(Clone, Default)]
pub(crate) struct Outgoing {
    pub(crate) dispatcher: Option<Arc<Dispatcher>>,
}

fn is_dataclass_instance(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static IS_DC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if obj.is_instance_of::<pyo3::types::PyType>() {
        return Ok(false);
    }
    IS_DC
        .import(obj.py(), "dataclasses", "is_dataclass")?
        .call1((obj,))?
        .is_truthy()
}

fn asdict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static ASDICT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ASDICT
        .import(obj.py(), "dataclasses", "asdict")?
        .call1((obj,))
}

fn number_from_int(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Ok(Value::Number(u.into()));
    }
    // Beyond 64 bits: a float, like JavaScript would read it.
    let f: f64 = obj.extract()?;
    Ok(Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null))
}

fn key_string(k: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = k.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if k.is_instance_of::<PyBool>() {
        return Ok(if k.is_truthy()? { "true" } else { "false" }.into());
    }
    if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
        return Ok(k.str()?.to_cow()?.into_owned());
    }
    if k.is_none() {
        return Ok("null".into());
    }
    Err(PyTypeError::new_err(format!(
        "keys must be str, int, float, bool or None, not {}",
        k.get_type().name()?
    )))
}

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

fn to_arg_depth(obj: &Bound<'_, PyAny>, out: &Outgoing, depth: usize) -> PyResult<Arg> {
    if depth > MAX_DEPTH {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "value is nested too deeply (circular reference?)",
        ));
    }
    // Exact types first: the common case, and the cheapest checks.
    if obj.is_none() {
        return Ok(Arg::Json(Value::Null));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(Arg::Json(Value::String(s.to_cow()?.into_owned())));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Arg::Json(Value::Bool(obj.is_truthy()?)));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return number_from_int(obj).map(Arg::Json);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Arg::Json(
            Number::from_f64(f.value())
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return seq_to_arg(l.iter(), l.len(), out, depth);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return seq_to_arg(t.iter(), t.len(), out, depth);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
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
        return Ok(Arg::Map(entries));
    }
    // Subclasses (IntEnum, str enums, …): bool before int.
    if obj.is_instance_of::<PyBool>() {
        return Ok(Arg::Json(Value::Bool(obj.is_truthy()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        return number_from_int(obj).map(Arg::Json);
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Ok(Arg::Json(
            Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Arg::Json(Value::String(s.to_cow()?.into_owned())));
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

/// Converts a JSON value to a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for i in items {
                list.append(to_py(py, i)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(PyString::new(py, k), to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
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
        return Ok(index(seg)
            .filter(|i| *i < list.len())
            .map(|i| list.get_item(i))
            .transpose()?);
    }
    match (cur.cast::<PyDict>(), seg) {
        (Ok(dict), Segment::Key(k)) => dict.get_item(k),
        _ => Ok(None),
    }
}
