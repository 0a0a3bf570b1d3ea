//! What handlers see: the [`Request`], the caller's identity ([`KiteInfo`]) and its
//! credentials ([`Auth`]).

use kite::protocol::{Auth as WireAuth, Kite as Identity};
use kite::server::ArgsShape;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};

use crate::client::Connection;
use crate::convert::args_to_py;

/// A kite's identity: ``/username/environment/name/version/region/hostname/id``.
#[pyclass(frozen, from_py_object, module = "kite_rs", name = "KiteInfo")]
#[derive(Clone)]
pub(crate) struct KiteInfo(pub(crate) Identity);

#[pymethods]
impl KiteInfo {
    #[new]
    #[pyo3(signature = (*, username="", environment="", name="", version="", region="", hostname="", id=""))]
    fn new(
        username: &str,
        environment: &str,
        name: &str,
        version: &str,
        region: &str,
        hostname: &str,
        id: &str,
    ) -> Self {
        KiteInfo(Identity {
            username: username.into(),
            environment: environment.into(),
            name: name.into(),
            version: version.into(),
            region: region.into(),
            hostname: hostname.into(),
            id: id.into(),
        })
    }

    /// Owner of the kite.
    #[getter]
    fn username(&self) -> &str {
        &self.0.username
    }
    /// Environment, e.g. ``production``.
    #[getter]
    fn environment(&self) -> &str {
        &self.0.environment
    }
    /// Kind of kite, e.g. ``math``.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }
    /// Three-part semantic version.
    #[getter]
    fn version(&self) -> &str {
        &self.0.version
    }
    /// Region.
    #[getter]
    fn region(&self) -> &str {
        &self.0.region
    }
    /// Host name of the kite's machine.
    #[getter]
    fn hostname(&self) -> &str {
        &self.0.hostname
    }
    /// Unique id of the kite process.
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }

    /// The identity as a dict of its seven fields.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let k = &self.0;
        for (key, v) in [
            ("username", &k.username),
            ("environment", &k.environment),
            ("name", &k.name),
            ("version", &k.version),
            ("region", &k.region),
            ("hostname", &k.hostname),
            ("id", &k.id),
        ] {
            d.set_item(key, v)?;
        }
        Ok(d)
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("KiteInfo('{}')", self.0)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<KiteInfo>()
            .map(|o| o.get().0 == self.0)
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }
}

/// Credentials sent with a call: ``Auth("kiteKey", jwt)`` or ``Auth("token", jwt)``.
#[pyclass(frozen, from_py_object, module = "kite_rs", name = "Auth")]
#[derive(Clone)]
pub(crate) struct Auth(pub(crate) WireAuth);

#[pymethods]
impl Auth {
    #[new]
    fn new(r#type: String, key: String) -> Self {
        Auth(WireAuth { kind: r#type, key })
    }

    /// The authentication type: ``kiteKey``, ``token`` or a custom one.
    #[getter]
    fn r#type(&self) -> &str {
        &self.0.kind
    }

    /// The credential (a JWT for the built-in types).
    #[getter]
    fn key(&self) -> &str {
        &self.0.key
    }

    fn __repr__(&self) -> String {
        format!("Auth({:?}, <{} characters>)", self.0.kind, self.0.key.len())
    }
}

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
