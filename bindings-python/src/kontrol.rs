//! Kontrol from Python: running a Kontrol ([`Kontrol`]) and the kite's side of it
//! (register, find kites, tokens), as `Kite` methods.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kite::kontrol::storage::StorageSpec;
use kite::kontrol::{allow_all_machines, KontrolConfig, RegisterResult};
use kite::protocol::KiteQuery;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::bridge::Failure;
use crate::client::Client;
use crate::convert::to_py;
use crate::errors::{error_to_py, to_py_err};
use crate::kite::{fire_hook, Kite, Shared};
use crate::request::KiteInfo;

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

/// The URL to register: the given one, or the kite's own once it listens.
pub(crate) fn register_url(k: &kite::Kite, url: Option<String>) -> PyResult<String> {
    url.or_else(|| k.register_url())
        .ok_or_else(|| PyRuntimeError::new_err("start the kite first, or pass the URL to register"))
}

/// The kite's side of Kontrol (methods of `Kite`).
pub(crate) mod kite_side {
    use super::*;

    pub(crate) fn register<'py>(
        py: Python<'py>,
        k: &kite::Kite,
        url: Option<String>,
        forever: bool,
        http: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let url = register_url(k, url)?;
        let k = k.clone();
        crate::bridge::future_into_py(py, async move {
            match (forever, http) {
                (false, false) => registered(k.register(&url).await),
                (true, false) => registered(Ok(k.register_forever(&url).await)),
                (false, true) => registered(k.register_http(&url).await),
                (true, true) => registered(Ok(k.register_http_forever(&url).await)),
            }
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
        crate::kite::ensure_callable(func)?;
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

/// Kontrol, the registry and token authority of a kite mesh, itself a kite.
///
/// ``Kontrol(Kite("kontrol", "1.0.0", username="kontrol"))`` keeps its registry and key pairs
/// in memory; ``storage="sqlite:PATH"`` keeps them in a SQLite file and
/// ``storage="postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME"`` in PostgreSQL.
/// ``await kontrol.start(port=0)`` serves it. Kites register to it and find each other
/// through it (``kite.register()``, ``kite.get_kites(…)``).
#[pyclass(frozen, module = "kite_rs")]
pub(crate) struct Kontrol {
    kite: Py<Kite>,
    storage: StorageSpec,
    config: KontrolConfig,
    inner: Arc<Mutex<Option<kite::kontrol::Kontrol>>>,
}

fn seconds(name: &str, s: Option<f64>, default: Duration) -> PyResult<Duration> {
    match s {
        None => Ok(default),
        Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
            PyValueError::new_err(format!("{name} must be a non-negative number of seconds"))
        }),
    }
}

impl Kontrol {
    fn running(&self) -> PyResult<kite::kontrol::Kontrol> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("start the Kontrol first"))
    }
}

#[pymethods]
impl Kontrol {
    #[new]
    #[pyo3(signature = (kite, *, storage="memory", heartbeat_interval=None, heartbeat_delay=None,
        expire_after=None, register_url=None, allow_machines=false))]
    fn new(
        py: Python<'_>,
        kite: Py<Kite>,
        storage: &str,
        heartbeat_interval: Option<f64>,
        heartbeat_delay: Option<f64>,
        expire_after: Option<f64>,
        register_url: Option<String>,
        allow_machines: bool,
    ) -> PyResult<Self> {
        // A bad spec, or a backend not compiled in: ValueError now, not at start().
        let storage = StorageSpec::parse(storage).map_err(|e| error_to_py(py, &e))?;
        let d = KontrolConfig::default();
        let config = KontrolConfig {
            heartbeat_interval: seconds(
                "heartbeat_interval",
                heartbeat_interval,
                d.heartbeat_interval,
            )?,
            heartbeat_delay: seconds("heartbeat_delay", heartbeat_delay, d.heartbeat_delay)?,
            expire_after: seconds("expire_after", expire_after, d.expire_after)?,
            register_url,
            machine_check: allow_machines.then(allow_all_machines),
            ..d
        };
        Ok(Kontrol {
            kite,
            storage,
            config,
            inner: Arc::new(Mutex::new(None)),
        })
    }

    /// The Kontrol kite.
    #[getter]
    fn kite(&self, py: Python<'_>) -> Py<Kite> {
        self.kite.clone_ref(py)
    }

    /// Kontrol's URL, once started.
    #[getter]
    fn url(&self) -> Option<String> {
        self.kite.get().core().url()
    }

    /// Opens the storage, creates the registry (generating Kontrol's first key pair when the
    /// storage has none) and serves it; returns the port.
    #[pyo3(signature = (port=None, host=None))]
    fn start<'py>(
        &self,
        py: Python<'py>,
        port: Option<u16>,
        host: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kite = self.kite.get();
        let (ip, port) = kite.prepare_start(py, port, host)?;
        let (k, config, slot) = (kite.core().clone(), self.config.clone(), self.inner.clone());
        let spec = self.storage.clone();
        crate::bridge::future_into_py(py, async move {
            let existing = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let kontrol = match existing {
                Some(k) => k,
                None => {
                    let storage = spec.open().await.map_err(to_py_err)?;
                    let kontrol = kite::kontrol::Kontrol::new(k, storage, config)
                        .await
                        .map_err(to_py_err)?;
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(kontrol.clone());
                    kontrol
                }
            };
            let addr = kontrol.listen_on(&ip, port).await.map_err(to_py_err)?;
            Ok(addr.port())
        })
    }

    /// A kite key for ``username``, signed with Kontrol's current key pair.
    fn new_kite_key<'py>(&self, py: Python<'py>, username: String) -> PyResult<Bound<'py, PyAny>> {
        let k = self.running()?;
        crate::bridge::future_into_py(py, async move {
            k.new_kite_key(&username).await.map_err(to_py_err)
        })
    }

    /// Kontrol's current public key (PEM).
    fn public_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let k = self.running()?;
        crate::bridge::future_into_py(py, async move {
            Ok(k.current_key().await.map_err(to_py_err)?.public_pem)
        })
    }

    /// Replaces the current key pair with a new one; kites signed by the old one get
    /// re-signed keys when they register again. Returns the new public key.
    fn rotate_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let k = self.running()?;
        crate::bridge::future_into_py(py, async move {
            Ok(k.rotate_key().await.map_err(to_py_err)?.public_pem)
        })
    }

    /// Stops serving. Idempotent.
    fn close(&self) {
        if let Some(k) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            k.close();
        }
        self.kite.get().close_kite();
    }

    /// The storage spec in its canonical form, any password replaced by ``***``.
    #[getter]
    fn storage(&self) -> String {
        self.storage.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Kontrol {} storage={}>",
            self.kite.get().core().identity(),
            self.storage
        )
    }
}
