//! JSON values <-> Python objects, directly (no `json.dumps`/`loads` strings).
//!
//! Outgoing values are [`Arg`] trees: plain JSON where no function occurs, with Python
//! callables turned into dnode [`Callback`]s and received remote functions forwarded. Incoming
//! arguments that carry functions are decoded through [`Tree`], which binds each function to
//! its connection ([`Function`]) and becomes a `RemoteFunction` object in Python.

use std::sync::Arc;

use kite::dnode::{Arguments, Callback, Function};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
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

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Json(v) => v.serialize(s),
            Arg::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Arg::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Arg::Callback(cb) => cb.serialize(s),
            Arg::Function(f) => f.serialize(s),
        }
    }
}

impl Arg {
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
    match to_arg(obj, &Outgoing::default())? {
        Arg::Json(v) => Ok(v),
        other => serde_json::to_value(&other)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string())),
    }
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
