//! The `Kite` class: configuration, decorator handlers, events, serving and clients.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tokio_util::sync::CancellationToken;

use crate::bridge;
use crate::client::{connection_hook, Client};
use crate::config;
use crate::errors::{error_to_py, to_py_err};
use crate::identity::{Auth, KiteInfo};
use crate::method::PyMethodHandling;
use crate::method::{Method, Registration, Settings};
use crate::shared::{ensure_callable, Shared};
use crate::signature::Role;

/// A kite: serves methods to other kites and calls theirs.
///
/// Configuration comes from ``kite.key`` and the ``KITE_*`` environment, then from the
/// keyword arguments.
#[pyclass(frozen, subclass, module = "kite_rs")]
pub(crate) struct Kite {
    inner: kite::Kite,
    shared: Arc<Shared>,
}

impl Kite {
    fn register_handler(
        &self,
        py: Python<'_>,
        name: &str,
        func: &Bound<'_, PyAny>,
        settings: Settings,
    ) -> PyResult<()> {
        crate::method::register(py, &self.inner, &self.shared, name, func, settings)
    }
}

#[pymethods]
impl Kite {
    #[new]
    #[pyo3(signature = (name, version, *, workers=None, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        version: &str,
        workers: Option<usize>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        crate::logging::refresh(py);
        let (c, handling) = config::from_options(py, options)?;
        let workers = config::workers(workers)?;
        // Creating a kite starts nothing; the runtime is only needed to serve and dial.
        let _ = bridge::runtime();
        let inner = kite::Kite::with_config(name, version, c).map_err(|e| error_to_py(py, &e))?;
        if let Some(m) = handling {
            inner.set_method_handling(m);
        }
        Ok(Kite {
            inner,
            shared: Arc::new(Shared {
                dispatcher: RwLock::new(None),
                pool: std::sync::OnceLock::new(),
                workers,
                closed: CancellationToken::new(),
            }),
        })
    }

    /// The kite's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.identity().name.clone()
    }

    /// The kite's version.
    #[getter]
    fn version(&self) -> String {
        self.inner.identity().version.clone()
    }

    /// The kite's identity.
    #[getter]
    fn kite(&self) -> KiteInfo {
        KiteInfo(self.inner.identity().clone())
    }

    /// The kite's id (a fresh random UUID per kite unless one was given).
    #[getter]
    fn id(&self) -> String {
        self.inner.identity().id.clone()
    }

    /// The kite's username.
    #[getter]
    fn username(&self) -> String {
        self.inner.identity().username.clone()
    }

    /// The port the kite listens on, once started.
    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.port()
    }

    /// The URL other kites dial (``http://HOST:PORT/kite``), once started.
    #[getter]
    fn url(&self) -> Option<String> {
        self.inner.url()
    }

    /// The names of the registered methods (including the default ``kite.*`` ones).
    #[getter]
    fn methods(&self) -> Vec<String> {
        self.inner.methods()
    }

    /// Registers a method handler; use as ``@kite.handle("name")`` or
    /// ``kite.handle("name", func)``.
    #[pyo3(signature = (name, func=None, /, *, auth=None, throttle=None, handling=None))]
    fn handle(
        slf: &Bound<'_, Self>,
        name: String,
        func: Option<&Bound<'_, PyAny>>,
        auth: Option<bool>,
        throttle: Option<(f64, u32)>,
        handling: Option<PyMethodHandling>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match func {
            Some(f) => {
                slf.get()
                    .register_handler(py, &name, f, (auth, throttle, handling))?;
                Ok(Py::new(
                    py,
                    Method {
                        kite: slf.get().inner.clone(),
                        shared: slf.get().shared.clone(),
                        name,
                    },
                )?
                .into_any())
            }
            None => Ok(Py::new(
                py,
                Registration {
                    kite: slf.get().inner.clone(),
                    shared: slf.get().shared.clone(),
                    name,
                    settings: (auth, throttle, handling),
                },
            )?
            .into_any()),
        }
    }

    /// The registered method ``name`` (e.g. to add handlers or change ``kite.*`` methods).
    fn method(&self, name: String) -> PyResult<Method> {
        match self.inner.method(&name) {
            Some(_) => Ok(Method {
                kite: self.inner.clone(),
                shared: self.shared.clone(),
                name,
            }),
            None => Err(PyValueError::new_err(format!("no method {name:?}"))),
        }
    }

    /// Removes a method; returns whether it existed.
    fn remove_handler(&self, name: &str) -> bool {
        self.inner.remove_handler(name)
    }

    /// Kite-wide pre handler ``(req)``: runs before every method's handler.
    fn pre_handle(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Chain, "pre_handle")?;
        let shared = self.shared.clone();
        self.inner
            .pre_handle(move |req| h.clone().call(shared.clone(), req));
        Ok(func)
    }

    /// Kite-wide post handler ``(req)``: runs after every method's handler.
    fn post_handle(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Chain, "post_handle")?;
        let shared = self.shared.clone();
        self.inner
            .post_handle(move |req| h.clone().call(shared.clone(), req));
        Ok(func)
    }

    /// Kite-wide final function ``(req, result, error)``: runs last; returns
    /// ``(result, error)`` to replace them, or ``None`` to keep them.
    fn final_func(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let h = self
            .shared
            .handler(py, func.bind(py), Role::Final, "final_func")?;
        let shared = self.shared.clone();
        self.inner.final_func(move |req, result, error| {
            h.clone().call_final(shared.clone(), req, result, error)
        });
        Ok(func)
    }

    /// Default handling mode of methods registered after this call.
    fn set_method_handling(&self, handling: PyMethodHandling) {
        self.inner.set_method_handling(handling.into());
    }

    /// Calls ``func(connection)`` on every new connection.
    fn on_connect<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.inner.on_connect(connection_hook(&self.shared, &func)?);
        Ok(func)
    }

    /// Calls ``func(connection)`` when a connection makes its first request.
    fn on_first_request<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.inner
            .on_first_request(connection_hook(&self.shared, &func)?);
        Ok(func)
    }

    /// Calls ``func(connection)`` when a connection ends.
    fn on_disconnect<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.inner
            .on_disconnect(connection_hook(&self.shared, &func)?);
        Ok(func)
    }

    /// Starts serving on the running event loop; returns the port.
    #[pyo3(signature = (port=None, host=None))]
    fn start<'py>(
        &self,
        py: Python<'py>,
        port: Option<u16>,
        host: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ip, port) = self.prepare_start(py, port, host)?;
        let k = self.inner.clone();
        crate::bridge::future_into_py(py, async move {
            let addr = k.listen_on(&ip, port).await.map_err(to_py_err)?;
            Ok(addr.port())
        })
    }

    /// Serves on the running event loop until ``close()`` (or until cancelled).
    #[pyo3(signature = (port=None, host=None))]
    fn serve<'py>(
        &self,
        py: Python<'py>,
        port: Option<u16>,
        host: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let addr = self.prepare_start(py, port, host)?;
        self.shared.serve(py, &self.inner, addr)
    }

    /// Serves in a new event loop until ``close()`` or Ctrl-C (blocking).
    #[pyo3(signature = (port=None, host=None))]
    fn run(slf: &Bound<'_, Self>, port: Option<u16>, host: Option<String>) -> PyResult<()> {
        let py = slf.py();
        let asyncio = py.import("asyncio")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("port", port)?;
        kwargs.set_item("host", host)?;
        let main = bridge::helper(py, "serve_until_signal")?.call((slf,), Some(&kwargs))?;
        match asyncio.call_method1("run", (main,)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops serving and closes every connection of this kite. Idempotent.
    fn close(&self) {
        self.inner.close();
        self.shared.closed.cancel();
    }

    /// Waits until the kite is closed.
    fn wait_closed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let closed = self.shared.closed.clone();
        crate::bridge::future_into_py(py, async move {
            closed.cancelled().await;
            Ok(())
        })
    }

    /// A client to the kite at ``url`` (``http://host:port/kite``), calling on behalf of
    /// this kite.
    #[pyo3(signature = (url, *, auth=None, transport=None))]
    fn client(
        &self,
        py: Python<'_>,
        url: &str,
        auth: Option<Auth>,
        transport: Option<String>,
    ) -> PyResult<Client> {
        self.shared.bind_if_unbound(py)?;
        let c = self.inner.client(url);
        if let Some(a) = auth {
            c.set_auth(Some(a.0));
        }
        if let Some(t) = transport {
            c.set_transport(t.parse().map_err(PyValueError::new_err)?);
        }
        Ok(Client::new(c, self.shared.clone()))
    }

    /// Adds (or replaces) the authenticator of authentication type ``kind``:
    /// ``func(auth, caller, local)`` (``Auth``, the caller's and this kite's ``KiteInfo``;
    /// ``def`` or ``async def``, run on the kite's event loop) returns the authenticated
    /// username; what it raises is the refusal's reason. Returns ``func``.
    fn add_authenticator(&self, kind: &str, func: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        ensure_callable(&func)?;
        let (f, shared) = (Arc::new(func.clone().unbind()), self.shared.clone());
        self.inner.add_authenticator(kind, move |check| {
            crate::hooks::authenticate(shared.clone(), f.clone(), check)
        });
        Ok(func.unbind())
    }

    /// Serves ``func(request)`` for ``method`` on the literal ``path`` beside ``/kite``
    /// (health checks, webhooks). ``func`` (``def`` or ``async def``, run on the kite's event
    /// loop) gets an ``HttpRequest`` and returns the body (``str``, ``bytes``, a value sent as
    /// JSON, ``None`` for 204) or ``(status, body)`` / ``(status, body, headers)``. Add routes
    /// before ``start()``. Returns ``func``.
    fn add_route(
        &self,
        py: Python<'_>,
        method: &str,
        path: &str,
        func: Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        ensure_callable(&func)?;
        let (f, shared) = (Arc::new(func.clone().unbind()), self.shared.clone());
        self.inner
            .add_route(method, path, move |req| {
                crate::hooks::route(shared.clone(), f.clone(), req)
            })
            .map_err(|e| error_to_py(py, &e))?;
        Ok(func.unbind())
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        bridge::ready_future(slf.py(), slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close();
        bridge::ready_future(py, false)
    }

    fn __repr__(&self) -> String {
        format!("<Kite {}>", self.inner.identity())
    }
}

impl Kite {
    /// The core kite.
    pub(crate) fn core(&self) -> &kite::Kite {
        &self.inner
    }

    /// What the kite's handlers, clients and hooks share.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Binds the running loop, refreshes the log level and applies the listen address.
    pub(crate) fn prepare_start(
        &self,
        py: Python<'_>,
        port: Option<u16>,
        host: Option<String>,
    ) -> PyResult<(String, u16)> {
        self.shared.prepare_start(py, &self.inner, port, host)
    }

    /// Closes the kite (for `Kontrol.close`).
    pub(crate) fn close_kite(&self) {
        self.close();
    }
}
