//! What a kite's handlers, clients and hooks share ([`Shared`]: its event loop, its worker
//! threads, whether it is closed) and how user hooks are called on that loop.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tokio_util::sync::CancellationToken;

use crate::bridge::{self, Dispatcher, WorkerPool};

/// State shared by a kite's handlers, clients and hooks.
pub(crate) struct Shared {
    pub(crate) dispatcher: RwLock<Option<Arc<Dispatcher>>>,
    /// Threads for plain `def` handlers, started with the first one registered.
    pub(crate) pool: std::sync::OnceLock<Arc<WorkerPool>>,
    pub(crate) workers: usize,
    pub(crate) closed: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(p) = self.pool.get() {
            p.close();
        }
    }
}

impl Shared {
    /// The worker threads of plain `def` handlers (none before the first is registered).
    pub(crate) fn pool(&self) -> Option<&Arc<WorkerPool>> {
        self.pool.get()
    }

    /// Starts the worker threads if they are not running yet.
    pub(crate) fn ensure_pool(&self, py: Python<'_>) -> PyResult<()> {
        if self.pool.get().is_none() {
            let pool = WorkerPool::start(py, self.workers)?;
            if let Err(extra) = self.pool.set(pool) {
                extra.close();
            }
        }
        Ok(())
    }

    /// The event loop the kite's `async def` handlers run on.
    pub(crate) fn dispatcher(&self) -> Option<Arc<Dispatcher>> {
        self.dispatcher
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Uses the running event loop from now on (called from `start`, `dial`, …).
    pub(crate) fn bind_running_loop(&self, py: Python<'_>) -> PyResult<Arc<Dispatcher>> {
        let d = Dispatcher::require(py, "this")?;
        *self.dispatcher.write().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
        Ok(d)
    }

    /// Binds the running loop when there is one and none is bound yet.
    pub(crate) fn bind_if_unbound(&self, py: Python<'_>) -> PyResult<()> {
        if self.dispatcher().is_none() {
            if let Some(d) = Dispatcher::current(py)? {
                *self.dispatcher.write().unwrap_or_else(|e| e.into_inner()) = Some(d);
            }
        }
        Ok(())
    }
}

/// Calls a user hook on the kite's loop; a coroutine it returns runs as a task.
pub(crate) fn fire_hook(
    shared: &Arc<Shared>,
    bound: Option<&Arc<Dispatcher>>,
    func: &Arc<Py<PyAny>>,
    make_args: impl FnOnce(Python<'_>) -> PyResult<Bound<'_, PyTuple>> + Send + 'static,
) {
    let Some(d) = bound.cloned().or_else(|| shared.dispatcher()) else {
        tracing::debug!("event hook skipped: the kite has no event loop");
        return;
    };
    let (func, d2) = (func.clone(), d.clone());
    d.push(Box::new(move |py| {
        let r = make_args(py).and_then(|args| {
            let out = func.bind(py).call1(args)?;
            if bridge::is_awaitable(&out)? {
                bridge::spawn(py, &d2, out)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            crate::logging::log_exception(py, "kite event hook failed", &e);
        }
    }));
}

/// Rejects a non-callable hook early.
pub(crate) fn ensure_callable(f: &Bound<'_, PyAny>) -> PyResult<()> {
    if f.is_callable() {
        Ok(())
    } else {
        Err(PyTypeError::new_err("expected a callable"))
    }
}

impl Shared {
    /// Binds the running loop, refreshes the log level; returns the address to listen on
    /// (the arguments, else the configured ones: the configuration itself is fixed).
    pub(crate) fn prepare_start(
        &self,
        py: Python<'_>,
        kite: &kite::Kite,
        port: Option<u16>,
        host: Option<String>,
    ) -> PyResult<(String, u16)> {
        self.bind_running_loop(py)?;
        crate::logging::refresh(py);
        let c = kite.config();
        Ok((host.unwrap_or_else(|| c.ip.clone()), port.unwrap_or(c.port)))
    }

    /// A future that serves `kite` (listening if it does not yet) until it is closed; the
    /// kite is closed when the future ends or is cancelled.
    pub(crate) fn serve<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        kite: &kite::Kite,
        (ip, port): (String, u16),
    ) -> PyResult<Bound<'py, PyAny>> {
        let k = kite.clone();
        let shared = self.clone();
        struct CloseOnDrop(kite::Kite, Arc<Shared>);
        impl Drop for CloseOnDrop {
            fn drop(&mut self) {
                self.0.close();
                self.1.closed.cancel();
            }
        }
        // Made here, not in the future: cancelling before the future first runs drops it
        // unpolled, and must close the kite too.
        let guard = CloseOnDrop(k.clone(), shared.clone());
        bridge::future_into_py(py, async move {
            let guard = guard;
            if k.port().is_none() {
                k.listen_on(&ip, port)
                    .await
                    .map_err(crate::errors::to_py_err)?;
            }
            shared.closed.cancelled().await;
            drop(guard);
            Ok(())
        })
    }
}
