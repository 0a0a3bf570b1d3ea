//! The `Method` class (a registered method: its pre/post handlers, final functions and
//! settings) and `MethodHandling`.

use std::sync::Arc;
use std::time::Duration;

use kite::MethodHandling;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::error_to_py;
use crate::shared::Shared;
use crate::signature::Role;

/// `s` seconds as a duration, or a `ValueError` naming `name`.
pub(crate) fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!("{name} must be a non-negative number of seconds"))
    })
}

/// A registered method: add per-method pre/post handlers and final functions, or change its
/// authentication, throttling and handling mode.
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct Method {
    pub(crate) kite: kite::Kite,
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: String,
}

impl Method {
    /// Replaces the method with `f` applied to it (the core's methods are immutable).
    fn change(&self, f: impl FnOnce(kite::Method) -> kite::Method) -> PyResult<()> {
        let m = self
            .kite
            .method(&self.name)
            .ok_or_else(|| PyValueError::new_err(format!("no method {:?}", self.name)))?;
        self.kite.replace_method(f(m));
        Ok(())
    }
}

#[pymethods]
impl Method {
    /// The method name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Adds a pre handler ``(req)``; returns it (usable as a decorator).
    fn pre_handle(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Chain, &self.name)?;
        let shared = self.shared.clone();
        self.change(|m| m.pre_handle(move |req| h.clone().call(shared.clone(), req)))?;
        Ok(func)
    }

    /// Adds a post handler ``(req)``; returns it (usable as a decorator).
    fn post_handle(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Chain, &self.name)?;
        let shared = self.shared.clone();
        self.change(|m| m.post_handle(move |req| h.clone().call(shared.clone(), req)))?;
        Ok(func)
    }

    /// Adds a final function ``(req, result, error)``; returns it (usable as a decorator).
    fn final_func(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Final, &self.name)?;
        let shared = self.shared.clone();
        self.change(|m| {
            m.final_func(move |req, result, error| {
                h.clone().call_final(shared.clone(), req, result, error)
            })
        })?;
        Ok(func)
    }

    /// Serves the method without authentication.
    fn disable_authentication(slf: Py<Self>) -> PyResult<Py<Self>> {
        slf.get().change(|m| m.disable_authentication())?;
        Ok(slf)
    }

    /// Token bucket: ``capacity`` calls at once, one more every ``interval`` seconds.
    fn throttle(slf: Py<Self>, interval: f64, capacity: u32) -> PyResult<Py<Self>> {
        let interval = seconds("interval", interval)?;
        slf.get().change(|m| m.throttle(interval, capacity))?;
        Ok(slf)
    }

    /// Sets how the result is chosen when pre/post handlers return values.
    fn set_handling(slf: Py<Self>, handling: PyMethodHandling) -> PyResult<Py<Self>> {
        slf.get().change(|m| m.method_handling(handling.into()))?;
        Ok(slf)
    }

    fn __repr__(&self) -> String {
        format!("<Method {}>", self.name)
    }
}

/// Method handling modes, as Python sees them.
#[pyclass(
    eq,
    eq_int,
    hash,
    frozen,
    from_py_object,
    module = "kite_rs",
    name = "MethodHandling"
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub(crate) enum PyMethodHandling {
    /// Return the main handler's result (default).
    RETURN_METHOD,
    /// Return the first non-null result of pre, main and post handlers.
    RETURN_FIRST,
    /// Return the last non-null result.
    RETURN_LATEST,
}

impl From<PyMethodHandling> for MethodHandling {
    fn from(m: PyMethodHandling) -> Self {
        match m {
            PyMethodHandling::RETURN_METHOD => MethodHandling::ReturnMethod,
            PyMethodHandling::RETURN_FIRST => MethodHandling::ReturnFirst,
            PyMethodHandling::RETURN_LATEST => MethodHandling::ReturnLatest,
        }
    }
}

/// How a method is registered: authentication (`Some(false)`: none), throttle (interval in
/// seconds, capacity), handling mode.
pub(crate) type Settings = (Option<bool>, Option<(f64, u32)>, Option<PyMethodHandling>);

/// Registers the Python handler `func` for method `name` of `kite`.
pub(crate) fn register(
    py: Python<'_>,
    kite: &kite::Kite,
    shared: &Arc<Shared>,
    name: &str,
    func: &Bound<'_, PyAny>,
    (auth, throttle, handling): Settings,
) -> PyResult<()> {
    let h = shared.handler(py, func, Role::Main, name)?;
    let shared = shared.clone();
    let mut m = kite::Method::new(name, move |req: kite::Request| {
        h.clone().call(shared.clone(), req)
    });
    if auth == Some(false) {
        m = m.disable_authentication();
    }
    if let Some((interval, capacity)) = throttle {
        m = m.throttle(seconds("throttle interval", interval)?, capacity);
    }
    if let Some(handling) = handling {
        m = m.method_handling(handling.into());
    }
    kite.add_method(m).map_err(|e| error_to_py(py, &e))
}

/// The decorator returned by ``kite.handle(name, …)``.
#[pyclass(frozen, module = "kite_rs._native")]
pub(crate) struct Registration {
    pub(crate) kite: kite::Kite,
    pub(crate) shared: Arc<Shared>,
    pub(crate) name: String,
    pub(crate) settings: Settings,
}

#[pymethods]
impl Registration {
    fn __call__(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        register(
            py,
            &self.kite,
            &self.shared,
            &self.name,
            func.bind(py),
            self.settings,
        )?;
        Ok(func)
    }
}
