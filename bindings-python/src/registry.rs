//! The kite's side of Kontrol, for the `Kite` class: the four register modes (through the
//! core's `Kite::register_with`), finding kites, tokens, Kontrol's key, `on_register`.

use std::sync::Arc;

use kite::kontrol::{RegisterMode, RegisterResult};
use kite::protocol::KiteQuery;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::client::Client;
use crate::errors::{error_to_py, to_py_err, Failure};
use crate::identity::KiteInfo;
use crate::shared::{fire_hook, Shared};
use crate::values::to_py;

fn result_to_py(py: Python<'_>, r: &RegisterResult) -> PyResult<Py<PyAny>> {
    let v = serde_json::to_value(r).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(to_py(py, &v)?.unbind())
}

/// A JSON value handed to Python as plain objects.
pub(crate) struct Json(pub(crate) serde_json::Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.0)
    }
}

fn registered(r: Result<RegisterResult, kite::Error>) -> Result<Json, Failure> {
    let r = r?;
    let v = serde_json::to_value(&r).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(Json(v))
}

/// The kite's side of Kontrol (methods of `Kite`).
pub(crate) mod kite_side {
    use super::*;

    /// One of the four registrations; no URL yet is a `RuntimeError` (the kite's state),
    /// raised before the coroutine.
    pub(crate) fn register<'py>(
        py: Python<'py>,
        k: &kite::Kite,
        url: Option<String>,
        mode: RegisterMode,
    ) -> PyResult<Bound<'py, PyAny>> {
        let url = k.url_to_register(url).map_err(|e| match e {
            kite::Error::Config(m) => PyRuntimeError::new_err(m),
            other => error_to_py(py, &other),
        })?;
        let k = k.clone();
        crate::bridge::future_into_py(py, async move {
            registered(k.register_with(mode, Some(url)).await)
        })
    }

    pub(crate) fn query(q: Option<KiteInfo>, fields: [Option<String>; 7]) -> KiteQuery {
        let base = q.map(|k| k.0.query()).unwrap_or_default();
        let [username, environment, name, version, region, hostname, id] = fields;
        KiteQuery {
            username: username.unwrap_or(base.username),
            environment: environment.unwrap_or(base.environment),
            name: name.unwrap_or(base.name),
            version: version.unwrap_or(base.version),
            region: region.unwrap_or(base.region),
            hostname: hostname.unwrap_or(base.hostname),
            id: id.unwrap_or(base.id),
        }
    }

    pub(crate) fn get_kites<'py>(
        py: Python<'py>,
        k: &kite::Kite,
        shared: &Arc<Shared>,
        query: KiteQuery,
    ) -> PyResult<Bound<'py, PyAny>> {
        shared.bind_if_unbound(py)?;
        let (k, shared) = (k.clone(), shared.clone());
        crate::bridge::future_into_py(py, async move {
            let clients = k.get_kites(&query).await.map_err(to_py_err)?;
            Ok(clients
                .into_iter()
                .map(|c| Client::new(c, shared.clone()))
                .collect::<Vec<_>>())
        })
    }

    pub(crate) fn get_token<'py>(
        py: Python<'py>,
        k: &kite::Kite,
        kite: KiteInfo,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = k.clone();
        crate::bridge::future_into_py(py, async move {
            if force {
                k.get_token_force(&kite.0).await
            } else {
                k.get_token(&kite.0).await
            }
            .map_err(to_py_err)
        })
    }

    pub(crate) fn get_key<'py>(py: Python<'py>, k: &kite::Kite) -> PyResult<Bound<'py, PyAny>> {
        let k = k.clone();
        crate::bridge::future_into_py(py, async move { k.get_key().await.map_err(to_py_err) })
    }

    pub(crate) fn on_register(
        k: &kite::Kite,
        shared: &Arc<Shared>,
        func: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        crate::shared::ensure_callable(func)?;
        let (f, shared) = (Arc::new(func.clone().unbind()), shared.clone());
        k.on_register(move |r: &RegisterResult| {
            let r = r.clone();
            fire_hook(&shared, None, &f, move |py| {
                PyTuple::new(py, [result_to_py(py, &r)?])
            });
        });
        Ok(())
    }
}
