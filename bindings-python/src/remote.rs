//! Functions that cross the wire, seen from Python: a Python callable passed as an argument
//! becomes a dnode [`Callback`]; a function received from the remote side is a
//! [`RemoteFunction`], an awaitable callable.

use std::sync::Arc;

use kite::dnode::{Arguments, Callback, Function};
use kite::KiteError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tokio::sync::{mpsc, oneshot};

use crate::bridge::{self, runtime, Dispatcher};
use crate::convert::{args_to_py, to_arg, Arg, Outgoing};
use crate::errors::kite_error_to_py;

enum Out {
    Call {
        function: Function,
        args: Arg,
        done: Option<(Arc<Dispatcher>, Py<PyAny>)>,
    },
    Flush(oneshot::Sender<()>),
}

/// Sends the calls of remote functions received together (e.g. one request's arguments) in
/// the order Python made them, whether or not Python awaits them.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
}

impl Outbox {
    pub(crate) fn new() -> Arc<Outbox> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        runtime().spawn(async move {
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Call {
                        function,
                        args,
                        done,
                    } => {
                        let r = function.call(args).await;
                        if let Some((d, future)) = done {
                            d.push(Box::new(move |py| resolve(py, future.bind(py), r)));
                        }
                    }
                    Out::Flush(tx) => {
                        let _ = tx.send(());
                    }
                }
            }
        });
        Arc::new(Outbox { tx })
    }

    /// Waits until every call queued so far has been handed to the connection.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Out::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, r: Result<(), KiteError>) {
    let done = future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if done {
        return;
    }
    let outcome = match r {
        Ok(()) => future.call_method1("set_result", (py.None(),)),
        Err(e) => future.call_method1("set_exception", (kite_error_to_py(py, &e).value(py),)),
    };
    if let Err(e) = outcome {
        crate::logging::log_exception(py, "could not complete a callback future", &e);
    }
}

/// A function of the remote kite, received as an argument (or inside one).
///
/// Call it with any JSON-serializable arguments (and callables, which become callbacks);
/// calls are sent in order. On an event loop the call returns an awaitable that completes
/// once the message is handed to the connection; elsewhere (a plain ``def`` handler's
/// worker thread) it returns ``None`` and the call is still sent, before the handler's
/// response.
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct RemoteFunction {
    function: Function,
    outbox: Arc<Outbox>,
}

impl RemoteFunction {
    pub(crate) fn new(function: Function, outbox: Arc<Outbox>) -> Self {
        Self { function, outbox }
    }

    pub(crate) fn function(&self) -> Function {
        self.function.clone()
    }
}

#[pymethods]
impl RemoteFunction {
    #[pyo3(signature = (*args))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        let dispatcher = Dispatcher::current(py)?;
        let out = Outgoing {
            dispatcher: dispatcher.clone(),
        };
        let args = to_arg(args.as_any(), &out)?;
        let (done, ret) = match dispatcher {
            Some(d) => {
                let future = d.event_loop(py).call_method0("create_future")?.unbind();
                let ret = future.clone_ref(py);
                (Some((d, future)), ret)
            }
            None => (None, py.None()),
        };
        self.outbox
            .tx
            .send(Out::Call {
                function: self.function.clone(),
                args,
                done,
            })
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("kite runtime is gone"))?;
        Ok(ret)
    }

    /// The callback id the remote side gave this function.
    #[getter]
    fn id(&self) -> u64 {
        self.function.id()
    }

    fn __repr__(&self) -> String {
        format!("<RemoteFunction {}>", self.function.id())
    }
}

/// A dnode callback that calls the Python callable `func` on `dispatcher`'s loop (a
/// coroutine it returns runs as a task), or in a worker thread when there is no loop.
pub(crate) fn python_callback(func: Py<PyAny>, dispatcher: Option<Arc<Dispatcher>>) -> Callback {
    let func = Arc::new(func);
    Callback::new(move |args: Arguments| {
        let func = func.clone();
        match &dispatcher {
            Some(d) => {
                let d2 = d.clone();
                d.push(Box::new(move |py| invoke(py, &func, &args, Some(&d2))));
            }
            None => {
                runtime().spawn_blocking(move || {
                    crate::lifecycle::attach(|py| invoke(py, &func, &args, None));
                });
            }
        }
    })
}

fn invoke(py: Python<'_>, func: &Py<PyAny>, args: &Arguments, d: Option<&Arc<Dispatcher>>) {
    let r = args_to_py(py, args).and_then(|(values, _)| {
        let result = func.bind(py).call1(PyTuple::new(py, values)?)?;
        if bridge::is_awaitable(&result)? {
            match d {
                Some(d) => bridge::spawn(py, d, result)?,
                None => {
                    let asyncio = py.import("asyncio")?;
                    asyncio.call_method1("run", (result,))?;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = r {
        crate::logging::log_exception(py, "kite callback failed", &e);
    }
}
