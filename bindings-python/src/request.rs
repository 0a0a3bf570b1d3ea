//! What handlers see: the [`Request`] (the caller's identity and credentials are in
//! `identity.rs`).

use kite::server::ArgsShape;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

use crate::client::Connection;
use crate::convert::args_to_py;
use crate::identity::{Auth, KiteInfo};

/// One call of a method, as a handler sees it.
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct Request {
    req: kite::Request,
    args: PyOnceLock<Py<PyList>>,
}

impl Request {
    pub(crate) fn new(req: kite::Request) -> Self {
        Self {
            req,
            args: PyOnceLock::new(),
        }
    }

    /// Sets the converted arguments (the main handler converts them anyway).
    pub(crate) fn preset_args(self, py: Python<'_>, args: Bound<'_, PyList>) -> Self {
        let _ = self.args.set(py, args.unbind());
        self
    }
}

#[pymethods]
impl Request {
    /// The request id: 16 random characters, also returned in error responses.
    #[getter]
    fn id(&self) -> &str {
        self.req.id()
    }

    /// The method called.
    #[getter]
    fn method(&self) -> &str {
        self.req.method()
    }

    /// The caller's username: the authenticated one when the method requires
    /// authentication, else the one the caller claims.
    #[getter]
    fn username(&self) -> &str {
        self.req.username()
    }

    /// The arguments (``withArgs``) as a list; functions are ``RemoteFunction`` objects.
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.args
            .get_or_try_init(py, || {
                let (values, _) = args_to_py(py, self.req.args())?;
                PyList::new(py, values).map(Bound::unbind)
            })
            .map(|l| l.bind(py).clone())
    }

    /// ``withArgs`` exactly as the caller sent it: a list (Go, kite-rs), a single value
    /// (kite.js ``tell("echo", 5)``) or ``None``; functions are ``RemoteFunction`` objects.
    #[getter]
    fn with_args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // The core's `Request::with_args()` by its shape, but from the converted `args` so
        // that functions stay callable (the core's JSON shows them as "[Function]").
        let args = self.args(py)?;
        Ok(match self.req.args_shape() {
            ArgsShape::List => PyList::new(py, args.iter())?.into_any(),
            ArgsShape::Single => args.get_item(0)?,
            ArgsShape::Absent => py.None().into_bound(py),
        })
    }

    /// How the caller sent ``withArgs``: ``"list"``, ``"single"`` (one non-list value, which
    /// ``args`` holds as its only item) or ``"absent"`` (null or missing: no arguments).
    #[getter]
    fn args_shape(&self) -> &'static str {
        match self.req.args_shape() {
            ArgsShape::List => "list",
            ArgsShape::Single => "single",
            ArgsShape::Absent => "absent",
        }
    }

    /// The credentials the caller sent, if any.
    #[getter]
    fn auth(&self) -> Option<Auth> {
        self.req.auth().cloned().map(Auth)
    }

    /// The caller's kite identity.
    #[getter]
    fn kite(&self) -> KiteInfo {
        KiteInfo(self.req.caller().clone())
    }

    /// The connection to the caller: ``await req.client.tell(…)`` calls it back.
    #[getter]
    fn client(&self) -> Connection {
        Connection::new(self.req.client().clone())
    }

    /// Whether the caller has disconnected.
    #[getter]
    fn cancelled(&self) -> bool {
        self.req.is_cancelled()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Request {} id={} from {}>",
            self.req.method(),
            self.req.id(),
            self.req.caller()
        )
    }
}
