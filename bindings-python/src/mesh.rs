//! The `Kite` class's side of the mesh: registering to Kontrol (the four modes), finding
//! kites, tokens and Kontrol's key (through [`crate::registry`]), and reaching kites behind
//! proxies and WebRTC signalling (through [`crate::signalling`]). A second `#[pymethods]`
//! block of the class (pyo3's `multiple-pymethods`), so that `kite.rs` keeps the kite's own
//! serving.

use kite::kontrol::RegisterMode;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::bridge;
use crate::identity::KiteInfo;
use crate::kite::Kite;
use crate::method::seconds;
use crate::registry::kite_side;

#[pymethods]
impl Kite {
    /// Registers this kite to Kontrol (``kontrol_url`` from the kite key or the
    /// configuration) with ``url`` (default: the kite's own URL); returns Kontrol's answer.
    #[pyo3(signature = (url=None))]
    fn register<'py>(&self, py: Python<'py>, url: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        kite_side::register(py, self.core(), url, RegisterMode::ONCE)
    }

    /// Registers now (retrying every 10 s until it succeeds) and again after every
    /// reconnection to Kontrol; completes after the first registration.
    #[pyo3(signature = (url=None))]
    fn register_forever<'py>(
        &self,
        py: Python<'py>,
        url: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        kite_side::register(py, self.core(), url, RegisterMode::FOREVER)
    }

    /// Registers over HTTP and keeps sending HTTP heartbeats.
    #[pyo3(signature = (url=None))]
    fn register_http<'py>(
        &self,
        py: Python<'py>,
        url: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        kite_side::register(py, self.core(), url, RegisterMode::HTTP)
    }

    /// Registers over HTTP, retrying with backoff until it succeeds, and again whenever
    /// Kontrol asks to.
    #[pyo3(signature = (url=None))]
    fn register_http_forever<'py>(
        &self,
        py: Python<'py>,
        url: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        kite_side::register(py, self.core(), url, RegisterMode::HTTP_FOREVER)
    }

    /// Kites matching the query (a ``KiteInfo`` and/or keyword fields, general to
    /// specific; ``username`` is required), as clients (not yet dialed) carrying tokens from
    /// Kontrol that renew themselves.
    #[pyo3(signature = (query=None, *, username=None, environment=None, name=None,
        version=None, region=None, hostname=None, id=None))]
    #[allow(clippy::too_many_arguments)]
    fn get_kites<'py>(
        &self,
        py: Python<'py>,
        query: Option<KiteInfo>,
        username: Option<String>,
        environment: Option<String>,
        name: Option<String>,
        version: Option<String>,
        region: Option<String>,
        hostname: Option<String>,
        id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = kite_side::query(
            query,
            [username, environment, name, version, region, hostname, id],
        );
        kite_side::get_kites(py, self.core(), self.shared(), q)
    }

    /// A token for calling ``kite`` (from Kontrol's cache, or freshly minted with
    /// ``force=True``).
    #[pyo3(signature = (kite, *, force=false))]
    fn get_token<'py>(
        &self,
        py: Python<'py>,
        kite: KiteInfo,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        kite_side::get_token(py, self.core(), kite, force)
    }

    /// Kontrol's current public key (also adopted as this kite's trusted Kontrol key).
    fn get_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        kite_side::get_key(py, self.core())
    }

    /// Fetches Kontrol's public key every ``interval`` seconds until the kite closes, so
    /// that a rotated Kontrol key is picked up (call after the kite started).
    fn key_renewer(&self, py: Python<'_>, interval: f64) -> PyResult<()> {
        let interval = seconds("interval", interval)?;
        if interval.is_zero() {
            return Err(PyValueError::new_err("interval must be positive"));
        }
        self.shared().bind_if_unbound(py)?;
        let k = self.core().clone();
        let _guard = bridge::runtime().enter();
        k.key_renewer(interval);
        Ok(())
    }

    /// Sends a WebRTC signalling message (``{"type", "dst", "payload"}``) through Kontrol
    /// (run with ``use_webrtc``) to kite ``dst``'s own ``kite.handleWebRTC`` method.
    fn send_webrtc<'py>(
        &self,
        py: Python<'py>,
        msg: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.shared().bind_if_unbound(py)?;
        crate::signalling::send_webrtc(py, self.core(), &msg)
    }

    /// The kite ids in this kite's signalling relay (with ``use_webrtc``), sorted.
    fn webrtc_peers(&self) -> Vec<String> {
        self.core().webrtc_peers()
    }

    /// Registers ``url`` (default: the kite's) through a reverse proxy, then the public URL
    /// it hands out to Kontrol, again whenever the proxy drops; returns the public URL.
    #[pyo3(signature = (url=None, *, proxy_url=None, retry=None))]
    fn register_to_proxy<'py>(
        &self,
        py: Python<'py>,
        url: Option<String>,
        proxy_url: Option<String>,
        retry: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.shared().bind_if_unbound(py)?;
        crate::signalling::register_to_proxy(py, self.core(), false, url, proxy_url, retry)
    }

    /// Like ``register_to_proxy`` through a tunnel proxy: the kite need not listen.
    #[pyo3(signature = (*, proxy_url=None, retry=None))]
    fn register_to_tunnel<'py>(
        &self,
        py: Python<'py>,
        proxy_url: Option<String>,
        retry: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.shared().bind_if_unbound(py)?;
        crate::signalling::register_to_proxy(py, self.core(), true, None, proxy_url, retry)
    }

    /// Calls ``func(result)`` after every successful registration (decorator).
    fn on_register<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        kite_side::on_register(self.core(), self.shared(), &func)?;
        Ok(func)
    }
}
