//! Proxies across implementations (issue 14), with our Kontrol in process:
//!
//! - our kites behind the reference's `reverseproxy` and `tunnelproxy` (built from the Go
//!   module proxy: `tests/interop/go/proxypeer`);
//! - reference kites behind our [`ReverseProxy`] and [`TunnelProxy`], registering with the
//!   reference's `RegisterToProxy` / `RegisterToTunnel` through `KITE_PROXY_URL`.
//!
//! What does not interoperate, by the reference's design: through the reference's
//! `tunnelproxy` only websocket clients get through (its tunnel URL repeats the client's
//! transport path, and a kite dials it as a websocket), so XHR clients fail there.
//!
//! Needs `tests/interop/go/bin/proxypeer` (`scripts/setup.sh` or `tests/interop/go/build.sh`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::peers::{go_bin, Peer};
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{Kontrol, KontrolConfig};
use kite::protocol::KiteQuery;
use kite::proxy::{
    ProxyRegistration, ReverseProxy, ReverseProxyConfig, TunnelProxy, TunnelProxyConfig,
};
use kite::sockjs::Transport;
use kite::{Config, Kite, KiteError, Request};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A scratch directory for key files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("proxy-interop-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_kontrol() -> Kontrol {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
            ..Config::default()
        },
    )
    .unwrap();
    let k = Kontrol::new(kite, Arc::new(Memory::new()), KontrolConfig::default())
        .await
        .unwrap();
    within("Kontrol listens", k.listen()).await.unwrap();
    k
}

async fn config_from(kontrol: &Kontrol, user: &str) -> Config {
    let mut c = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        ..Config::default()
    };
    c.use_kite_key(&kontrol.new_kite_key(user).await.unwrap())
        .unwrap();
    c
}

async fn math_kite(kontrol: &Kontrol, name: &str) -> Kite {
    let k = Kite::with_config(name, "1.0.0", config_from(kontrol, "alice").await).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, KiteError>(n * n)
    })
    .unwrap();
    k
}

/// `square(n)` through `url` over `transport`.
async fn square(caller: &Kite, url: &str, transport: Transport, n: f64) -> Result<f64, String> {
    let c = caller.client(url);
    c.set_transport(transport);
    let r = async {
        c.dial().await.map_err(|e| e.to_string())?;
        let v = c
            .call("square", [n])
            .timeout(Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        v.as_f64().ok_or_else(|| format!("not a number: {v}"))
    };
    let r = within("square through the proxy", r).await;
    c.close();
    r
}

/// The reference's reverse proxy or tunnel proxy, trusting `kontrol`'s key.
async fn go_proxy(kontrol: &Kontrol, dir: &Scratch, which: &str) -> Peer {
    let key = kontrol.current_key().await.unwrap();
    let mut cmd = Command::new(go_bin("proxypeer"));
    cmd.arg(which)
        .args(["--kontrol-key", &dir.write("kontrol.pub", &key.public_pem)]);
    if which == "tunnel" {
        let tokens = kite::auth::KeyPair::generate().unwrap();
        cmd.args(["--public-key", &dir.write("tunnel.pub", &tokens.public_pem)])
            .args([
                "--private-key",
                &dir.write("tunnel.pem", &tokens.private_pem),
            ]);
    }
    Peer::start(&format!("the reference's {which} proxy"), cmd).await
}

/// A reference kite (`gomath`, serving `square`) registering through the proxy at
/// `proxy_url` (`via`: `reverse` or `tunnel`).
async fn go_kite_behind(kontrol: &Kontrol, dir: &Scratch, via: &str, proxy_url: &str) -> Peer {
    let key = dir.write("alice.key", &kontrol.new_kite_key("alice").await.unwrap());
    let mut cmd = Command::new(go_bin("proxypeer"));
    cmd.args(["behind", "--kite-key", &key, "--via", via])
        .env("KITE_PROXY_URL", proxy_url);
    Peer::start(&format!("a reference kite behind our {via} proxy"), cmd).await
}

#[tokio::test]
async fn our_kite_behind_the_reference_reverse_proxy() {
    let kontrol = start_kontrol().await;
    let dir = Scratch::new();
    let go = go_proxy(&kontrol, &dir, "reverse").await;
    let m = math_kite(&kontrol, "math").await;
    within("listen", m.listen()).await.unwrap();
    let reg = ProxyRegistration {
        proxy_url: Some(go.url()),
        ..ProxyRegistration::reverse(&m, &m.url().unwrap())
    };
    let public = within("register to the reference proxy", m.register_to_proxy(reg)).await;
    assert_eq!(
        public,
        format!(
            "http://127.0.0.1:{}/proxy/{}",
            go.ready["port"],
            m.identity().id
        )
    );
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    let found = within(
        "get_kites",
        caller.get_kites(&KiteQuery {
            username: "alice".into(),
            environment: "test".into(),
            name: "math".into(),
            ..KiteQuery::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(found[0].url(), public, "Kontrol hands out the proxy's URL");
    assert_eq!(
        square(&caller, &public, Transport::WebSocket, 3.0).await,
        Ok(9.0)
    );
    assert_eq!(
        square(&caller, &public, Transport::XhrPolling, 4.0).await,
        Ok(16.0)
    );
    m.shutdown().await;
    go.stop().await;
    kontrol.close();
}

#[tokio::test]
async fn our_kite_behind_the_reference_tunnel_proxy() {
    let kontrol = start_kontrol().await;
    let dir = Scratch::new();
    let go = go_proxy(&kontrol, &dir, "tunnel").await;
    let m = math_kite(&kontrol, "math").await;
    let reg = ProxyRegistration {
        proxy_url: Some(go.url()),
        ..ProxyRegistration::tunnel(&m)
    };
    let public = within(
        "register to the reference tunnel proxy",
        m.register_to_tunnel_with(reg),
    )
    .await;
    assert_eq!(
        public,
        format!(
            "http://127.0.0.1:{}/proxy?kiteID={}",
            go.ready["port"],
            m.identity().id
        )
    );
    assert_eq!(m.port(), None, "the kite never listens");
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    assert_eq!(
        square(&caller, &public, Transport::WebSocket, 5.0).await,
        Ok(25.0)
    );
    assert_eq!(
        square(&caller, &public, Transport::WebSocket, 6.0).await,
        Ok(36.0)
    );
    // The reference's design: its tunnel URL is the client's transport path, which a kite
    // dials as a websocket; XHR clients do not get through.
    assert!(square(&caller, &public, Transport::XhrPolling, 7.0)
        .await
        .is_err());
    m.shutdown().await;
    go.stop().await;
    kontrol.close();
}

#[tokio::test]
async fn reference_kite_behind_our_reverse_proxy() {
    let kontrol = start_kontrol().await;
    let dir = Scratch::new();
    let kite = Kite::with_config("proxy", "0.0.1", config_from(&kontrol, "kontrol").await).unwrap();
    let proxy = ReverseProxy::new(kite, ReverseProxyConfig::default()).unwrap();
    within("listen", proxy.kite().listen()).await.unwrap();
    let go = go_kite_behind(&kontrol, &dir, "reverse", &proxy.kite().url().unwrap()).await;
    let id = go.ready["id"].as_str().unwrap().to_string();
    let public = go.ready["url"].as_str().unwrap().to_string();
    assert_eq!(
        public,
        format!(
            "http://127.0.0.1:{}/proxy/{id}",
            proxy.kite().port().unwrap()
        )
    );
    assert_eq!(proxy.kites(), vec![id]);
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    assert_eq!(
        square(&caller, &public, Transport::WebSocket, 3.0).await,
        Ok(9.0)
    );
    assert_eq!(
        square(&caller, &public, Transport::XhrPolling, 4.0).await,
        Ok(16.0)
    );
    go.stop().await;
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

#[tokio::test]
async fn reference_kite_behind_our_tunnel_proxy() {
    let kontrol = start_kontrol().await;
    let dir = Scratch::new();
    let kite = Kite::with_config(
        "tunnelproxy",
        "0.0.2",
        config_from(&kontrol, "kontrol").await,
    )
    .unwrap();
    let proxy = TunnelProxy::new(kite, TunnelProxyConfig::default()).unwrap();
    within("listen", proxy.kite().listen()).await.unwrap();
    let go = go_kite_behind(&kontrol, &dir, "tunnel", &proxy.kite().url().unwrap()).await;
    let id = go.ready["id"].as_str().unwrap().to_string();
    let public = go.ready["url"].as_str().unwrap().to_string();
    assert_eq!(
        public,
        format!(
            "http://127.0.0.1:{}/proxy/{id}",
            proxy.kite().port().unwrap()
        )
    );
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    assert_eq!(
        square(&caller, &public, Transport::WebSocket, 3.0).await,
        Ok(9.0)
    );
    assert_eq!(
        square(&caller, &public, Transport::XhrPolling, 4.0).await,
        Ok(16.0)
    );
    until("the tunnels close", || proxy.tunnels() == (0, 0)).await;
    go.stop().await;
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}
