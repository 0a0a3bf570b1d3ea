//! The kite's side of the proxies: register to a reverse proxy or a tunnel proxy, register
//! the public URL it hands out to Kontrol, and do both again whenever the proxy connection
//! drops (a restarted proxy gets every kite back); `kite.tunnel`, through which a tunnel
//! proxy opens tunnels.
#![deny(clippy::arithmetic_side_effects)]

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tokio::sync::watch;

use super::reverse::METHOD_PROXY_REGISTER;
use crate::protocol::{KiteError, KiteQuery};
use crate::{Client, Error, Kite, Request};

/// Wait before trying again after a failed proxy registration (the reference's 10 s).
pub const PROXY_RETRY: Duration = Duration::from_secs(10);
/// Name of the method through which a tunnel proxy asks a kite to open a tunnel.
pub const METHOD_TUNNEL: &str = "kite.tunnel";
/// The name tunnel proxies register under (found through Kontrol by
/// [`Kite::register_to_tunnel`]).
pub const TUNNEL_PROXY_NAME: &str = "tunnelproxy";

/// The public URLs of a kite's proxy registration while its loop runs (a kite extension).
#[derive(Default)]
struct Registering(std::sync::Mutex<Option<watch::Receiver<Option<String>>>>);

/// How a kite registers to a proxy ([`Kite::register_to_proxy`]).
#[derive(Debug, Clone)]
pub struct ProxyRegistration {
    /// The kite's own URL, which a reverse proxy forwards to; `None` for a tunnel proxy
    /// (it reaches the kite through its tunnels).
    pub url: Option<String>,
    /// The proxy's URL. Default: `KITE_PROXY_URL`, else a kite matching `query` found
    /// through Kontrol (one of them at random).
    pub proxy_url: Option<String>,
    /// Which proxies Kontrol is asked for when there is no proxy URL.
    pub query: KiteQuery,
    /// Wait between failed attempts. Default: [`PROXY_RETRY`].
    pub retry: Duration,
}

impl ProxyRegistration {
    /// Registration of `url` to a reverse proxy (Kontrol query: name `proxy`, the kite's
    /// Kontrol user and environment).
    pub fn reverse(kite: &Kite, url: &str) -> ProxyRegistration {
        ProxyRegistration::with_query(kite, Some(url.to_string()), super::REVERSE_PROXY_NAME)
    }

    /// Registration to a tunnel proxy (Kontrol query: name `tunnelproxy`, the kite's
    /// Kontrol user and environment, as the reference's `RegisterToTunnel`).
    pub fn tunnel(kite: &Kite) -> ProxyRegistration {
        ProxyRegistration::with_query(kite, None, TUNNEL_PROXY_NAME)
    }

    fn with_query(kite: &Kite, url: Option<String>, name: &str) -> ProxyRegistration {
        ProxyRegistration {
            url,
            proxy_url: std::env::var("KITE_PROXY_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            query: KiteQuery {
                username: kite.keys().kontrol_user,
                environment: kite.config().environment.clone(),
                name: name.to_string(),
                ..KiteQuery::default()
            },
            retry: PROXY_RETRY,
        }
    }
}

impl Kite {
    /// Registers to a proxy (the reference's `RegisterToProxy`) and, when a Kontrol is
    /// configured, registers the public URL the proxy hands out to Kontrol. Resolves with
    /// that URL after the first success (retrying every `retry` until then); from then on,
    /// in the background until the kite closes, every time the proxy connection drops the
    /// kite registers again (to the same proxy URL, or a proxy Kontrol names). A kite has
    /// one proxy registration: calling this again while it runs (a proxy would refuse a
    /// second connection with the same kite id) resolves with that registration's URL.
    pub async fn register_to_proxy(&self, reg: ProxyRegistration) -> String {
        let mut rx = {
            let slot = self.extension::<Registering>();
            let mut slot = slot.0.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref().filter(|rx| rx.has_changed().is_ok()) {
                // One registration per kite: a proxy refuses a second connection with the
                // same kite id, so a second loop would retry forever. Join the first.
                Some(rx) => {
                    tracing::debug!("already registering through a proxy; waiting for its URL");
                    rx.clone()
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    self.spawn_proxy_loop(reg, tx);
                    rx
                }
            }
        };
        let url = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|u| u.clone());
        url.unwrap_or_default()
    }

    /// The registration loop of [`Kite::register_to_proxy`]: each public URL goes to `tx`;
    /// it ends (dropping `tx`) when the kite closes.
    fn spawn_proxy_loop(&self, reg: ProxyRegistration, tx: watch::Sender<Option<String>>) {
        let weak = self.downgrade();
        tokio::spawn(async move {
            let mut last_error = None;
            loop {
                let Some(kite) = weak.upgrade() else { return };
                if kite.is_closing() {
                    return;
                }
                let closed = kite.inner.closed.clone();
                match kite.proxy_once(&reg).await {
                    Ok((client, public)) => {
                        last_error = None;
                        tx.send_replace(Some(public));
                        let conn = client.connection();
                        drop(kite);
                        if let Some(conn) = conn {
                            tokio::select! {
                                _ = conn.closed() => {}
                                _ = closed.cancelled() => { client.close(); return; }
                            }
                        }
                        client.close();
                        tracing::info!("the proxy connection dropped; registering again");
                        continue;
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_deref() != Some(text.as_str()) {
                            tracing::warn!(error = %e, "cannot register to the proxy; retrying");
                            last_error = Some(text);
                        }
                        drop(kite);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(reg.retry) => {}
                    _ = closed.cancelled() => return,
                }
            }
        });
    }

    /// Registers to a tunnel proxy (the reference's `RegisterToTunnel`): serves
    /// `kite.tunnel` (if not served yet), then [`Kite::register_to_proxy`] with
    /// [`ProxyRegistration::tunnel`]. A kite that only dials out is then reachable at the
    /// URL this resolves with.
    pub async fn register_to_tunnel(&self) -> String {
        self.serve_tunnels();
        self.register_to_proxy(ProxyRegistration::tunnel(self))
            .await
    }

    /// [`Kite::register_to_tunnel`] with explicit options (a proxy URL, a retry interval).
    pub async fn register_to_tunnel_with(&self, reg: ProxyRegistration) -> String {
        self.serve_tunnels();
        self.register_to_proxy(reg).await
    }

    /// Serves `kite.tunnel` (if not served yet): a tunnel proxy this kite registered to
    /// calls it with `{"url": "ws://…"}`; the kite dials that SockJS websocket and serves
    /// it as an accepted connection (its calls are authenticated as any other).
    pub fn serve_tunnels(&self) {
        let weak = self.downgrade();
        let _ = self.handle(METHOD_TUNNEL, move |req: Request| {
            let weak = weak.clone();
            async move {
                #[derive(Deserialize)]
                struct Args {
                    #[serde(alias = "URL", alias = "Url")]
                    url: String,
                }
                let Args { url } = req.args().one()?;
                if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                    return Err(KiteError::argument(format!(
                        "kite.tunnel: want a ws:// or wss:// URL, got {:?}",
                        url.chars().take(200).collect::<String>()
                    )));
                }
                let kite = weak
                    .upgrade()
                    .ok_or_else(|| KiteError::generic("the kite is closing"))?;
                let config = crate::sockjs::ClientConfig {
                    connect_timeout: kite.config().handshake_timeout,
                    tls: crate::tls::client_config(&kite.config().tls_trust()).ok(),
                    ..crate::sockjs::ClientConfig::default()
                };
                let session = crate::sockjs::client::connect_websocket(&url, &config)
                    .await
                    .map_err(|e| KiteError::generic(format!("kite.tunnel: {e}")))?;
                tokio::spawn(async move { kite.serve_session(session).await });
                Ok::<_, KiteError>(())
            }
        });
    }

    /// One registration: the proxy's client (connected) and the public URL.
    async fn proxy_once(&self, reg: &ProxyRegistration) -> Result<(Client, String), Error> {
        let client = match &reg.proxy_url {
            Some(url) => self.client(url),
            None => {
                let mut kites = self.get_kites(&reg.query).await?;
                let i = rand::rng().random_range(0..kites.len().max(1));
                if i >= kites.len() {
                    return Err(Error::Config("Kontrol knows no proxy".into()));
                }
                kites.swap_remove(i)
            }
        };
        client.dial().await?;
        let result = client
            .call(METHOD_PROXY_REGISTER, [reg.url.clone().unwrap_or_default()])
            .await;
        let public = match result {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => {
                client.close();
                return Err(Error::InvalidResponse(format!(
                    "the proxy's register answered {other}, not a URL"
                )));
            }
            Err(e) => {
                client.close();
                return Err(e);
            }
        };
        tracing::info!(%public, "registered to the proxy");
        if !self.config().kontrol_url.is_empty() {
            if let Err(e) = self.register(&public).await {
                client.close();
                return Err(e);
            }
        }
        Ok((client, public))
    }
}
