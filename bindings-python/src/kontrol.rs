//! Kontrol from Python: running a Kontrol ([`Kontrol`]), configured through the core's
//! `kite::kontrol::KontrolOptions` (the kite's side of Kontrol is in `registry.rs`).

use std::sync::{Arc, Mutex};

use kite::kontrol::storage::StorageSpec;
use kite::kontrol::{KontrolConfig, KontrolOptions};
use kite::server::TimeUnit;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::options_json;
use crate::errors::{error_to_py, to_py_err};
use crate::kite::Kite;

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
    #[pyo3(signature = (kite, **options))]
    fn new(py: Python<'_>, kite: Py<Kite>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        // The core's Kontrol options (times in seconds); a bad spec, or a backend not
        // compiled in, is a ValueError now, not at start().
        let options = KontrolOptions::from_json(options_json(options)?, TimeUnit::Seconds)
            .map_err(|e| error_to_py(py, &e))?;
        let storage = options.storage().map_err(|e| error_to_py(py, &e))?;
        let config = options.config().map_err(|e| error_to_py(py, &e))?;
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
