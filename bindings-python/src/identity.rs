//! The caller's identity ([`KiteInfo`]) and credentials ([`Auth`]) as Python sees them.

use kite::protocol::{Auth as WireAuth, Kite as Identity};
use pyo3::prelude::*;
use pyo3::types::PyDict;

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
