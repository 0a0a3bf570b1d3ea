//! Calling other kites from Python: [`Client`] (dial a URL) and [`Connection`] (one live
//! connection, e.g. `req.client` to call the caller back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tracing::Instrument;

use crate::arg::Outgoing;
use crate::bridge::{runtime, Dispatcher};
use crate::convert::{args_to_py, to_arg};
use crate::errors::{error_to_py, to_py_err};
use crate::identity::{Auth, KiteInfo};
use crate::shared::{ensure_callable, fire_hook, Shared};

fn timeout_of(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|t| {
            Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err("timeout must be a non-negative number of seconds")
            })
        })
        .transpose()
}

/// Completes `future` with the result (functions inside it as `RemoteFunction`s) or error.
fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, r: Result<kite::Arguments, kite::Error>) {
    let done = future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if done {
        // Cancelled by the caller: the result is dropped.
        return;
    }
    let set = match r {
        Ok(result) => match args_to_py(py, &result) {
            Ok((mut values, _)) => {
                let obj = values.pop().unwrap_or_else(|| py.None().into_bound(py));
                future.call_method1("set_result", (obj,))
            }
            Err(e) => future.call_method1("set_exception", (e.into_value(py),)),
        },
        Err(e) => future.call_method1("set_exception", (error_to_py(py, &e).into_value(py),)),
    };
    if let Err(e) = set {
        crate::logging::log_exception(py, "could not complete a call", &e);
    }
}

/// Calls `method` over `conn` and returns an asyncio future of the result.
fn tell<'py>(
    py: Python<'py>,
    conn: Option<kite::Connection>,
    method: String,
    args: &Bound<'py, PyTuple>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let d = Dispatcher::require(py, "tell()")?;
    let timeout = timeout_of(timeout)?;
    let args = to_arg(
        args.as_any(),
        &Outgoing {
            dispatcher: Some(d.clone()),
        },
    )?;
    let future = d.event_loop(py).call_method0("create_future")?;
    let target = future.clone().unbind();
    // Inside a traced handler, the call's span is a child of the request's.
    let parent = crate::traces::parent(py).unwrap_or_else(tracing::Span::none);
    runtime().spawn(
        async move {
            let r = match conn {
                Some(c) => c.call_full(&method, args, timeout).await,
                None => Err(kite::Error::Send("not connected".into())),
            };
            d.push(Box::new(move |py| resolve(py, target.bind(py), r)));
        }
        .instrument(parent),
    );
    Ok(future)
}

/// A client to one remote kite. Create it with ``kite.client(url)``, then ``await
/// client.dial()`` (or use it as ``async with kite.client(url) as client:``).
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct Client {
    inner: kite::Client,
    shared: Arc<Shared>,
    /// `close()` was called (the core notices the end of the connection a moment later).
    closed: AtomicBool,
}

impl Client {
    pub(crate) fn new(inner: kite::Client, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            closed: AtomicBool::new(false),
        }
    }

    fn hook(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        register: impl FnOnce(&kite::Client, Box<dyn Fn() + Send + Sync>),
    ) -> PyResult<()> {
        ensure_callable(func)?;
        let bound = Dispatcher::current(py)?;
        let (f, shared) = (Arc::new(func.clone().unbind()), self.shared.clone());
        register(
            &self.inner,
            Box::new(move || fire_hook(&shared, bound.as_ref(), &f, |py| Ok(PyTuple::empty(py)))),
        );
        Ok(())
    }
}

#[pymethods]
impl Client {
    /// The URL dialed.
    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// Connects once; ``timeout`` in seconds (default: the kite's handshake timeout).
    #[pyo3(signature = (timeout=None))]
    fn dial<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        self.shared.bind_if_unbound(py)?;
        crate::logging::refresh(py);
        let timeout = timeout_of(timeout)?;
        let c = self.inner.clone();
        crate::bridge::future_into_py(py, async move {
            match timeout {
                Some(t) => c.dial_timeout(t).await,
                None => c.dial().await,
            }
            .map_err(to_py_err)
        })
    }

    /// Connects, retrying with backoff until it succeeds, and reconnects after every drop
    /// until ``close()``. Completes at the first connection.
    fn dial_forever<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.shared.bind_if_unbound(py)?;
        crate::logging::refresh(py);
        let c = self.inner.clone();
        crate::bridge::future_into_py(py, async move {
            c.dial_forever().await;
            Ok(())
        })
    }

    /// Calls ``method`` with ``args``; returns its result. ``timeout`` in seconds (default:
    /// the kite's, 15 s).
    #[pyo3(signature = (method, *args, timeout=None))]
    fn tell<'py>(
        &self,
        py: Python<'py>,
        method: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        tell(py, self.inner.connection(), method, args, timeout)
    }

    /// Closes the connection and stops reconnecting. Idempotent.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.inner.close();
    }

    /// Whether connected now (false once ``close()`` was called).
    #[getter]
    fn connected(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && self.inner.is_connected()
    }

    /// Waits until connected (after ``dial_forever``, or a reconnect).
    fn wait_connected<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        crate::bridge::future_into_py(py, async move {
            c.connected().await;
            Ok(())
        })
    }

    /// The credentials sent with every call (default: the kite's kite key, if any).
    #[getter]
    fn get_auth(&self) -> Option<Auth> {
        self.inner.auth().map(Auth)
    }

    #[setter]
    fn set_auth(&self, auth: Option<Auth>) {
        self.inner.set_auth(auth.map(|a| a.0));
    }

    /// The transport for the next dial: ``"WebSocket"``, ``"XHRPolling"`` or ``"auto"``.
    #[setter]
    fn set_transport(&self, transport: &str) -> PyResult<()> {
        self.inner
            .set_transport(transport.parse().map_err(PyValueError::new_err)?);
        Ok(())
    }

    /// The remote kite's identity, when known.
    #[getter]
    fn get_remote_kite(&self) -> KiteInfo {
        KiteInfo(self.inner.remote_kite())
    }

    #[setter]
    fn set_remote_kite(&self, kite: KiteInfo) {
        self.inner.set_remote_kite(kite.0);
    }

    /// The current connection, if connected.
    #[getter]
    fn connection(&self) -> Option<Connection> {
        self.inner.connection().map(Connection::new)
    }

    /// Replaces the token sent with calls and fires the token-renew hooks.
    fn renew_token(&self, token: String) {
        self.inner.renew_token(token);
    }

    /// Calls ``func()`` after every successful dial.
    fn on_connect<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.hook(func.py(), &func, |c, f| c.on_connect(f))?;
        Ok(func)
    }

    /// Calls ``func()`` when the connection drops.
    fn on_disconnect<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.hook(func.py(), &func, |c, f| c.on_disconnect(f))?;
        Ok(func)
    }

    /// Calls ``func()`` when a call fails with "token is expired".
    fn on_token_expire<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.hook(func.py(), &func, |c, f| c.on_token_expire(f))?;
        Ok(func)
    }

    /// Calls ``func()`` when the token was renewed.
    fn on_token_renew<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.hook(func.py(), &func, |c, f| c.on_token_renew(f))?;
        Ok(func)
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        slf.get().shared.bind_if_unbound(py)?;
        let c = slf.get().inner.clone();
        let me = slf.clone().unbind();
        crate::bridge::future_into_py(py, async move {
            c.dial().await.map_err(to_py_err)?;
            Ok(me)
        })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close();
        let fut = py
            .import("asyncio")?
            .call_method0("get_running_loop")?
            .call_method0("create_future")?;
        fut.call_method1("set_result", (false,))?;
        Ok(fut)
    }

    fn __repr__(&self) -> String {
        format!("<Client {}>", self.inner.url())
    }
}

/// One connection to a remote kite (accepted or dialed).
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct Connection {
    inner: kite::Connection,
}

impl Connection {
    pub(crate) fn new(inner: kite::Connection) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Connection {
    /// Calls ``method`` on the remote kite over this connection.
    #[pyo3(signature = (method, *args, timeout=None))]
    fn tell<'py>(
        &self,
        py: Python<'py>,
        method: String,
        args: &Bound<'py, PyTuple>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        tell(py, Some(self.inner.clone()), method, args, timeout)
    }

    /// The remote kite's identity (learned from its first request, or set when dialing).
    #[getter]
    fn kite(&self) -> KiteInfo {
        KiteInfo(self.inner.remote_kite())
    }

    /// The SockJS transport in use (``websocket``, ``xhr-polling``, …).
    #[getter]
    fn transport(&self) -> &'static str {
        self.inner.transport()
    }

    /// Whether this side dialed the connection.
    #[getter]
    fn dialed(&self) -> bool {
        self.inner.is_dialed()
    }

    /// Whether the connection has ended.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Closes the connection. Idempotent.
    fn close(&self) {
        self.inner.close();
    }

    /// Waits until the connection ends.
    fn wait_closed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.inner.clone();
        crate::bridge::future_into_py(py, async move {
            c.closed().await;
            Ok(())
        })
    }

    /// Entries in the connection's callback table (functions passed, calls awaiting a
    /// response), for leak checks.
    #[getter]
    fn callback_count(&self) -> usize {
        self.inner.callback_count()
    }

    fn __repr__(&self) -> String {
        format!("<Connection to {}>", self.inner.remote_kite())
    }
}

/// The core hook of `on_connect`, `on_first_request` and `on_disconnect`: calls `func` with
/// the `Connection` on the kite's loop.
pub(crate) fn connection_hook(
    shared: &Arc<Shared>,
    func: &Bound<'_, PyAny>,
) -> PyResult<impl Fn(&kite::Connection) + Send + Sync + 'static> {
    ensure_callable(func)?;
    let (f, shared) = (Arc::new(func.clone().unbind()), shared.clone());
    Ok(move |c: &kite::Connection| {
        let c = c.clone();
        fire_hook(&shared, None, &f, move |py| {
            PyTuple::new(py, [Py::new(py, Connection::new(c))?])
        });
    })
}
