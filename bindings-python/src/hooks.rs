//! Python callables the core awaits outside method calls: custom authenticators and the
//! handlers of extra HTTP routes. Each runs on the kite's event loop (a coroutine it returns
//! as a task) and its result is converted there.

use std::sync::{Arc, Mutex};

use kite::auth::AuthError;
use kite::server::{AuthCheck, HttpRequest, HttpResponse};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use tokio::sync::oneshot;

use crate::bridge::{self, Dispatcher};
use crate::identity::{Auth, KiteInfo};
use crate::shared::Shared;

type Done = Box<dyn for<'py> FnOnce(Python<'py>, PyResult<Bound<'py, PyAny>>) + Send>;
type Args = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>> + Send>;

/// Receives the outcome of a hook's coroutine (called by `kite_rs._bridge._run`).
#[pyclass(frozen, module = "kite_rs._native")]
struct Finish(Mutex<Option<Done>>);

impl Finish {
    fn take(&self) -> Option<Done> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[pymethods]
impl Finish {
    fn done(&self, py: Python<'_>, result: Bound<'_, PyAny>) {
        if let Some(f) = self.take() {
            f(py, Ok(result));
        }
    }

    fn fail(&self, py: Python<'_>, exc: Bound<'_, PyAny>) {
        if let Some(f) = self.take() {
            f(py, Err(PyErr::from_value(exc)));
        }
    }
}

/// Calls `func(*args)` on the kite's loop, awaits a coroutine it returns, and converts the
/// outcome there with `convert`. `None` when the kite has no loop or the loop never ran it.
async fn call_on_loop<T: Send + 'static>(
    shared: &Shared,
    func: Arc<Py<PyAny>>,
    args: Args,
    convert: fn(Python<'_>, PyResult<Bound<'_, PyAny>>) -> T,
) -> Option<T> {
    let d: Arc<Dispatcher> = shared.dispatcher()?;
    let (tx, rx) = oneshot::channel::<T>();
    let d2 = d.clone();
    d.push(Box::new(move |py| {
        let finish: Done = Box::new(move |py, r| {
            let _ = tx.send(convert(py, r));
        });
        match args(py).and_then(|a| func.bind(py).call1(a)) {
            Err(e) => finish(py, Err(e)),
            Ok(obj) => match bridge::is_awaitable(&obj) {
                Ok(true) => {
                    let started = Bound::new(py, Finish(Mutex::new(Some(finish))))
                        .and_then(|f| bridge::start_task(py, &d2, obj, f.into_any(), None));
                    if let Err(e) = started {
                        crate::logging::log_exception(py, "could not start a kite hook", &e);
                    }
                }
                _ => finish(py, Ok(obj)),
            },
        }
    }));
    rx.await.ok()
}

/// Runs a Python authenticator `func(auth, caller, local)` → username.
pub(crate) async fn authenticate(
    shared: Arc<Shared>,
    func: Arc<Py<PyAny>>,
    check: AuthCheck,
) -> Result<String, AuthError> {
    let args: Args = Box::new(move |py| {
        PyTuple::new(
            py,
            [
                Py::new(py, Auth(check.auth))?.into_any(),
                Py::new(py, KiteInfo(check.caller))?.into_any(),
                Py::new(py, KiteInfo(check.local))?.into_any(),
            ],
        )
    });
    fn username(py: Python<'_>, r: PyResult<Bound<'_, PyAny>>) -> Result<String, String> {
        match r {
            Ok(v) => match v.extract::<String>() {
                Ok(u) if !u.is_empty() => Ok(u),
                _ => Err("the authenticator returned no username".into()),
            },
            Err(e) => Err(e
                .value(py)
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "refused".into())),
        }
    }
    call_on_loop(&shared, func, args, username)
        .await
        .unwrap_or_else(|| Err("the kite has no running event loop".into()))
        .map_err(AuthError::Rejected)
}

/// A request to an HTTP route added with ``Kite.add_route``.
#[pyclass(frozen, module = "kite_rs", name = "HttpRequest")]
pub(crate) struct PyHttpRequest(HttpRequest);

#[pymethods]
impl PyHttpRequest {
    /// ``GET``, ``POST``, …
    #[getter]
    fn method(&self) -> &str {
        &self.0.method
    }

    /// The path, e.g. ``/health``.
    #[getter]
    fn path(&self) -> &str {
        &self.0.path
    }

    /// The query string without ``?`` (may be empty).
    #[getter]
    fn query(&self) -> &str {
        &self.0.query
    }

    /// The headers (lower-case names).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.0.headers {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The body (at most 1 MiB).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.body)
    }

    fn __repr__(&self) -> String {
        format!("<HttpRequest {} {}>", self.0.method, self.0.path)
    }
}

fn body_of(v: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, &'static str)> {
    if v.is_none() {
        Ok((Vec::new(), ""))
    } else if let Ok(s) = v.cast::<PyString>() {
        Ok((
            s.extract::<String>()?.into_bytes(),
            "text/plain; charset=utf-8",
        ))
    } else if let Ok(b) = v.cast::<PyBytes>() {
        Ok((b.as_bytes().to_vec(), "application/octet-stream"))
    } else {
        let json = crate::convert::to_json(v)?;
        Ok((json.to_string().into_bytes(), "application/json"))
    }
}

/// A route handler's return value as the response: a body (``str``, ``bytes``, or a value
/// sent as JSON; ``None`` is 204), or ``(status, body)`` / ``(status, body, headers)``.
fn response(py: Python<'_>, r: PyResult<Bound<'_, PyAny>>) -> HttpResponse {
    let build = |v: &Bound<'_, PyAny>| -> PyResult<HttpResponse> {
        let (status, body, headers) = match v.cast::<PyTuple>() {
            Ok(t) if (2..=3).contains(&t.len()) => (
                t.get_item(0)?.extract::<u16>()?,
                t.get_item(1)?,
                if t.len() == 3 {
                    t.get_item(2)?
                        .extract::<Vec<(String, String)>>()
                        .or_else(|_| {
                            t.get_item(2)?
                                .cast::<PyDict>()?
                                .iter()
                                .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
                                .collect::<PyResult<Vec<(String, String)>>>()
                        })?
                } else {
                    Vec::new()
                },
            ),
            _ => (if v.is_none() { 204 } else { 200 }, v.clone(), Vec::new()),
        };
        let (body, kind) = body_of(&body)?;
        let mut all = Vec::new();
        if !kind.is_empty()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            all.push(("content-type".to_string(), kind.to_string()));
        }
        all.extend(headers);
        Ok(HttpResponse {
            status,
            headers: all,
            body,
        })
    };
    match r.and_then(|v| build(&v)) {
        Ok(resp) => resp,
        Err(e) => {
            crate::logging::log_exception(py, "kite route handler failed", &e);
            HttpResponse::text(500, "internal error")
        }
    }
}

/// Runs a Python route handler `func(request)`.
pub(crate) async fn route(
    shared: Arc<Shared>,
    func: Arc<Py<PyAny>>,
    req: HttpRequest,
) -> HttpResponse {
    let args: Args = Box::new(move |py| PyTuple::new(py, [Py::new(py, PyHttpRequest(req))?]));
    call_on_loop(&shared, func, args, response)
        .await
        .unwrap_or_else(|| HttpResponse::text(503, "the kite has no running event loop"))
}
