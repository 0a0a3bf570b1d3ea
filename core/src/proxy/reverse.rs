//! The reverse proxy (the reference's `reverseproxy`): a kite named `proxy` whose
//! `register(url)` method gives the calling kite a public URL,
//! `{scheme}://{public host}:{public port}/proxy/{kite id}`, and whose `/proxy/{kite id}/…`
//! routes forward that kite's websocket and XHR traffic to the URL it registered, without
//! parsing it. A kite's entry leaves when its connection to the proxy ends.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::StatusCode;
use url::Url;

use super::forward::Forwarder;
use super::table::Registry;
use crate::protocol::KiteError;
use crate::{Error, Kite, Method, Request as KiteRequest};

/// The reference's name and version of the reverse proxy kite.
pub const REVERSE_PROXY_NAME: &str = "proxy";
/// Version of the reverse proxy kite (the reference's).
pub const REVERSE_PROXY_VERSION: &str = "0.0.1";
/// The method kites call to get a public URL (`[url]` → the URL).
pub const METHOD_PROXY_REGISTER: &str = "register";

/// Options of a [`ReverseProxy`] (the reference's `reverseproxy` flags).
#[derive(Debug, Clone)]
pub struct ReverseProxyConfig {
    /// Scheme of the public URLs. Default: `http` (`https` when the kite serves TLS).
    pub scheme: String,
    /// Host of the public URLs (`-publicHost`). Default: `127.0.0.1`.
    pub public_host: String,
    /// Port of the public URLs (`-publicPort`); 0: the port the kite listens on. Default: 0.
    pub public_port: u16,
    /// Most kites registered at once; more are refused. Default: 10,000.
    pub max_kites: usize,
    /// Time a kite behind the proxy has to accept a forwarded request and answer its head
    /// (an XHR poll's head comes at once; its body may take the SockJS heartbeat delay).
    /// Default: 30 s.
    pub backend_timeout: Duration,
}

impl Default for ReverseProxyConfig {
    fn default() -> Self {
        ReverseProxyConfig {
            scheme: "http".into(),
            public_host: "127.0.0.1".into(),
            public_port: 0,
            max_kites: 10_000,
            backend_timeout: Duration::from_secs(30),
        }
    }
}

/// A reverse proxy kite. Cheap to clone.
#[derive(Clone)]
pub struct ReverseProxy {
    kite: Kite,
    kites: Arc<Registry<Url>>,
}

impl ReverseProxy {
    /// Makes `kite` (usually named [`REVERSE_PROXY_NAME`]) a reverse proxy: registers the
    /// `register` method and the `/proxy/` routes. Listen with [`Kite::listen`].
    pub fn new(kite: Kite, config: ReverseProxyConfig) -> Result<ReverseProxy, Error> {
        let kites = Registry::new(config.max_kites);
        let config = Arc::new(config);
        let (reg, weak, cfg) = (kites.clone(), kite.downgrade(), config.clone());
        kite.add_method(Method::new(
            METHOD_PROXY_REGISTER,
            move |req: KiteRequest| {
                let (reg, weak, cfg) = (reg.clone(), weak.clone(), cfg.clone());
                async move {
                    let url: String = req.args().one()?;
                    let url = backend_url(&url)?;
                    let id = req.caller().id.clone();
                    reg.enter(&id, req.client(), url.clone())?;
                    let port = match (cfg.public_port, weak.upgrade().and_then(|k| k.port())) {
                        (0, Some(p)) => p,
                        (p, _) => p,
                    };
                    let public = format!("{}://{}:{port}/proxy/{id}", cfg.scheme, cfg.public_host);
                    tracing::info!(kite = %req.caller(), backend = %url, %public, "kite registered to the proxy");
                    Ok::<_, KiteError>(public)
                }
            },
        ))?;
        let forwarder = Forwarder {
            timeout: config.backend_timeout,
            tls: crate::tls::client_config(&kite.config().tls_trust()).ok(),
        };
        let reg = kites.clone();
        let handler = move |Path(params): Path<Vec<(String, String)>>, req: Request| {
            let (reg, forwarder) = (reg.clone(), forwarder.clone());
            async move {
                let id = params.first().map(|(_, v)| v.clone()).unwrap_or_default();
                let rest = params.get(1).map(|(_, v)| v.clone()).unwrap_or_default();
                forward(&reg, &forwarder, &id, &rest, req).await
            }
        };
        kite.merge_routes(
            axum::Router::new()
                .route("/proxy/{id}", any(handler.clone()))
                .route("/proxy/{id}/{*rest}", any(handler)),
        );
        Ok(ReverseProxy { kite, kites })
    }

    /// The proxy kite.
    pub fn kite(&self) -> &Kite {
        &self.kite
    }

    /// Ids of the kites registered now, sorted.
    pub fn kites(&self) -> Vec<String> {
        self.kites.ids()
    }
}

/// The URL a kite registers: an absolute http(s) or ws(s) URL with a host.
fn backend_url(url: &str) -> Result<Url, KiteError> {
    let u = Url::parse(url)
        .map_err(|e| KiteError::argument(format!("invalid kite URL {url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https" | "ws" | "wss") || u.host_str().is_none() {
        return Err(KiteError::argument(format!(
            "invalid kite URL {url:?}: want http(s)://host:port/path"
        )));
    }
    Ok(u)
}

async fn forward(
    reg: &Registry<Url>,
    f: &Forwarder,
    id: &str,
    rest: &str,
    req: Request,
) -> Response {
    let Some((_, mut target)) = reg.get(id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no kite with id {id:?} is registered to this proxy"),
        )
            .into_response();
    };
    let scheme = if matches!(target.scheme(), "https" | "wss") {
        "https"
    } else {
        "http"
    };
    let _ = target.set_scheme(scheme);
    let path = format!("{}/{rest}", target.path().trim_end_matches('/'));
    target.set_path(&path);
    target.set_query(req.uri().query());
    f.forward(req, target).await
}
