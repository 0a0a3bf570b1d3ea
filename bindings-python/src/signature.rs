//! What a handler's signature says, read once at registration: its [`Role`], its
//! parameters and the simple annotations (``float``, ``int``, ``str``, ``bool``, ``list``,
//! ``dict``, ``Optional[…]``, callables) its arguments are checked against ([`Check`]).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::convert::RemoteFunction;

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
pub(crate) enum Check {
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
    /// The annotation as messages name it.
    pub(crate) fn describe(&self) -> String {
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
    /// The argument converted for the handler, or `None` when it does not fit.
    pub(crate) fn apply<'py>(&self, v: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
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

/// The JSON type name of a value, for messages.
pub(crate) fn json_type(v: &Bound<'_, PyAny>) -> &'static str {
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

/// A handler's parameters as `inspect.signature` (and `typing.get_type_hints`) tell them.
pub(crate) struct Parameters<'py> {
    /// Positional parameters: name, whether it has a default, annotation.
    pub(crate) positional: Vec<(String, bool, Bound<'py, PyAny>)>,
    /// Whether it takes `*args`.
    pub(crate) varargs: bool,
    /// `inspect.Parameter.empty` (no annotation).
    pub(crate) empty: Bound<'py, PyAny>,
}

/// The parameters of `func` (the handler of `label`); a keyword-only parameter without a
/// default is a `TypeError`.
pub(crate) fn parameters<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
    label: &str,
) -> PyResult<Parameters<'py>> {
    let inspect = py.import("inspect")?;
    let sig = inspect.call_method1("signature", (func,))?;
    let hints = typing(py, "get_type_hints")
        .and_then(|f| f.call1((func,)))
        .ok();
    let kind_of =
        |name: &str| -> PyResult<Bound<'_, PyAny>> { inspect.getattr("Parameter")?.getattr(name) };
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
    Ok(Parameters {
        positional,
        varargs,
        empty,
    })
}

/// The checks of the parameters after the fixed ones (`Any` where not annotated).
pub(crate) fn checks_of<'py>(
    py: Python<'py>,
    rest: &[(String, bool, Bound<'py, PyAny>)],
    empty: &Bound<'py, PyAny>,
) -> PyResult<Vec<(String, Check)>> {
    let mut checks = Vec::with_capacity(rest.len());
    for (name, _, ann) in rest {
        let check = if ann.is(empty) {
            Check::Any
        } else {
            check_for(py, ann)?
        };
        checks.push((name.clone(), check));
    }
    Ok(checks)
}
