//! WebRTC signalling and proxies from Node: methods of `Kite` over the core's
//! `Kite::send_webrtc`, `Kite::webrtc_peers`, `Kite::register_to_proxy` and
//! `Kite::register_to_tunnel`. Receiving signalling messages is a method like any other:
//! `kite.handle('kite.handleWebRTC', (req, msg) => …)`.

use std::time::Duration;

use kite::protocol::SignalMessage;
use kite::proxy::ProxyRegistration;
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;

use crate::errors;
use crate::kite::Kite;

/// Where and how a kite registers through a proxy.
#[napi(object)]
#[derive(Default)]
pub struct ProxyOptions {
    /// The kite's own URL, which a reverse proxy forwards to (`registerToProxy` only).
    /// Default: the kite's URL (listen first).
    pub url: Option<String>,
    /// The proxy's URL. Default: `KITE_PROXY_URL`, else a proxy that Kontrol knows.
    pub proxy_url: Option<String>,
    /// Milliseconds between failed attempts. Default: 10000.
    pub retry: Option<f64>,
}

fn registration(base: ProxyRegistration, o: ProxyOptions) -> ProxyRegistration {
    ProxyRegistration {
        proxy_url: o.proxy_url.or(base.proxy_url.clone()),
        retry: o
            .retry
            .filter(|ms| ms.is_finite() && *ms > 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .unwrap_or(base.retry),
        ..base
    }
}

/// The promise of `registerToProxy`/`registerToTunnel`: the registration `make` builds
/// from the options, registered by the core; resolves with the public URL.
fn register<'e>(
    k: &Kite,
    env: &'e Env,
    options: Option<ProxyOptions>,
    make: impl FnOnce(&kite::Kite, ProxyOptions) -> Result<ProxyRegistration, kite::Error>
        + Send
        + 'static,
) -> napi::Result<PromiseRaw<'e, String>> {
    let kite = k.state().kite.clone();
    let o = options.unwrap_or_default();
    errors::promise(
        env,
        async move {
            let reg = make(&kite, o)?;
            Ok(kite.register_to_proxy(reg).await)
        },
        |_env, url| Ok(url),
    )
}

#[napi]
impl Kite {
    /// Sends a WebRTC signalling message (`{type: 'OFFER' | 'ANSWER' | 'CANDIDATE' |
    /// 'LEAVE', dst, payload}`) through Kontrol, which must run with `useWebRTC`; it reaches
    /// kite `dst`'s own `kite.handleWebRTC` with `src` set to this kite's id. Rejects with
    /// the relay's error (`dst not registered`, an `argumentError` for a bad message) or the
    /// destination handler's.
    #[napi(js_name = "sendWebRTC", ts_return_type = "Promise<void>")]
    pub fn send_webrtc<'e>(
        &self,
        env: &'e Env,
        message: serde_json::Value,
    ) -> napi::Result<PromiseRaw<'e, ()>> {
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move {
                let msg = SignalMessage::from_value(&message).map_err(kite::Error::Remote)?;
                kite.send_webrtc(&msg).await
            },
            |_env, ()| Ok(()),
        )
    }

    /// The kite ids in this kite's signalling relay (with `useWebRTC`), sorted.
    #[napi(js_name = "webRTCPeers")]
    pub fn webrtc_peers(&self) -> Vec<String> {
        self.state().kite.webrtc_peers()
    }

    /// Registers through a reverse proxy (the reference's `RegisterToProxy`): the proxy
    /// hands out a public URL forwarding to `options.url`, which is registered to Kontrol
    /// (when configured); both again whenever the proxy connection drops. Resolves with the
    /// public URL after the first success.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn register_to_proxy<'e>(
        &self,
        env: &'e Env,
        options: Option<ProxyOptions>,
    ) -> napi::Result<PromiseRaw<'e, String>> {
        register(self, env, options, |kite, o| {
            let url = kite.url_to_register(o.url.clone())?;
            Ok(registration(ProxyRegistration::reverse(kite, &url), o))
        })
    }

    /// Registers through a tunnel proxy (the reference's `RegisterToTunnel`): the kite need
    /// not listen; clients of the public URL reach it through tunnels it dials
    /// (`kite.tunnel`). Resolves with the public URL after the first success.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn register_to_tunnel<'e>(
        &self,
        env: &'e Env,
        options: Option<ProxyOptions>,
    ) -> napi::Result<PromiseRaw<'e, String>> {
        self.state().kite.serve_tunnels();
        register(self, env, options, |kite, o| {
            Ok(registration(ProxyRegistration::tunnel(kite), o))
        })
    }
}
