//! Plain JSON values and Python objects, without functions: JSON to Python ([`to_py`]) and
//! the pieces of the other direction that `convert.rs` uses.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::{Number, Value};

/// Whether `obj` is an instance (not a class) of a dataclass.
pub(crate) fn is_dataclass_instance(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static IS_DC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if obj.is_instance_of::<pyo3::types::PyType>() {
        return Ok(false);
    }
    IS_DC
        .import(obj.py(), "dataclasses", "is_dataclass")?
        .call1((obj,))?
        .is_truthy()
}

/// `dataclasses.asdict(obj)`.
pub(crate) fn asdict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static ASDICT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ASDICT
        .import(obj.py(), "dataclasses", "asdict")?
        .call1((obj,))
}

/// A Python `int` as a JSON number (beyond 64 bits: a float).
pub(crate) fn number_from_int(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
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

/// An object key as JSON has it (`str`, numbers, `bool`, `None`).
pub(crate) fn key_string(k: &Bound<'_, PyAny>) -> PyResult<String> {
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

/// `None` and objects of exactly `str`, `bool`, `int` or `float` as JSON (`None` for any
/// other object).
pub(crate) fn exact_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if obj.is_none() {
        return Ok(Some(Value::Null));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Ok(Some(Value::String(s.to_cow()?.into_owned())));
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Some(Value::Bool(obj.is_truthy()?)));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return number_from_int(obj).map(Some);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Some(
            Number::from_f64(f.value())
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ));
    }
    Ok(None)
}

/// Objects of subclasses of `bool`, `int`, `float` or `str` (IntEnum, str enums, …) as
/// JSON, `bool` before `int` (`None` for any other object).
pub(crate) fn subclass_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(Some(Value::Bool(obj.is_truthy()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        return number_from_int(obj).map(Some);
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return Ok(Some(
            Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        ));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(Value::String(s.to_cow()?.into_owned())));
    }
    Ok(None)
}
