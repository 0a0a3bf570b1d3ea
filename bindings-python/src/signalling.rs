//! WebRTC signalling and proxies from Python, for the `Kite` class: the core's
//! `Kite::send_webrtc`, `Kite::register_to_proxy` and `Kite::register_to_tunnel`.
//! Receiving signalling messages is a method like any other:
//! `@kite.handle("kite.handleWebRTC")`.

use std::time::Duration;

use kite::protocol::SignalMessage;
use kite::proxy::ProxyRegistration;
use pyo3::prelude::*;

use crate::errors::to_py_err;

/// `kite.send_webrtc(message)`: the message checked (an `ArgumentError` for a bad one) and
/// sent through Kontrol.
pub(crate) fn send_webrtc<'py>(
    py: Python<'py>,
    k: &kite::Kite,
    message: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = crate::convert::to_json(message)?;
    let k = k.clone();
    crate::bridge::future_into_py(py, async move {
        let msg =
            SignalMessage::from_value(&value).map_err(|e| to_py_err(kite::Error::Remote(e)))?;
        k.send_webrtc(&msg).await.map_err(to_py_err)
    })
}

fn registration(
    base: ProxyRegistration,
    proxy_url: Option<String>,
    retry: Option<f64>,
) -> ProxyRegistration {
    ProxyRegistration {
        proxy_url: proxy_url.or(base.proxy_url.clone()),
        retry: retry
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(base.retry),
        ..base
    }
}

/// `kite.register_to_proxy(url, proxy_url=…, retry=…)` and `kite.register_to_tunnel(…)`
/// (`url` ignored): the public URL once registered.
pub(crate) fn register_to_proxy<'py>(
    py: Python<'py>,
    k: &kite::Kite,
    tunnel: bool,
    url: Option<String>,
    proxy_url: Option<String>,
    retry: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let k = k.clone();
    crate::bridge::future_into_py(py, async move {
        if tunnel {
            let reg = registration(ProxyRegistration::tunnel(&k), proxy_url, retry);
            return Ok(k.register_to_tunnel_with(reg).await);
        }
        let url = k.url_to_register(url).map_err(to_py_err)?;
        let reg = registration(ProxyRegistration::reverse(&k, &url), proxy_url, retry);
        Ok(k.register_to_proxy(reg).await)
    })
}
