//! The `kite-proxy` and `kite-tunnelproxy` commands, run as processes with a kite key in a
//! temporary `KITE_HOME`: an in-process kite registers through `KITE_PROXY_URL` and is
//! called through the public URL each hands out (the reverse proxy forwarding to the kite's
//! own listener, the tunnel proxy reaching a kite that never listens).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kite::auth::{mint_kite_key, KeyPair};
use kite::proxy::ProxyRegistration;
use kite::{Config, Kite, KiteError, Request};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const PROXY: &str = env!("CARGO_BIN_EXE_kite-proxy");
const TUNNEL: &str = env!("CARGO_BIN_EXE_kite-tunnelproxy");
const WAIT: Duration = Duration::from_secs(30);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A temporary kite home, removed on drop.
struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running proxy process (killed on drop) and the URL it printed.
struct Running {
    _child: Child,
    url: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts `bin --ip 127.0.0.1 --port 0` on `home` and waits for `NAME listening on URL`.
async fn start(bin: &str, name: &str, home: &Path) -> Running {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("KITE_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .env("KITE_HOME", home)
        .env("RUST_LOG", "warn")
        .args(["-ip", "127.0.0.1", "-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the proxy");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("{name} listening on ");
    let url = within(async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix(&prefix) {
                return url.to_string();
            }
        }
        panic!(
            "{name} exited before it was ready: {:?}",
            child.wait().await
        );
    })
    .await;
    Running {
        _child: child,
        url,
        _stdout: lines,
    }
}

fn kite_with(pair: &KeyPair, name: &str, user: &str) -> Kite {
    let mut c = Config {
        ip: "127.0.0.1".into(),
        ..Config::default()
    };
    c.use_kite_key(&mint_kite_key(pair, "kontrol", user, "").unwrap())
        .unwrap();
    let k = Kite::with_config(name, "1.0.0", c).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, KiteError>(n * n)
    })
    .unwrap();
    k
}

async fn square_through(caller: &Kite, url: &str) {
    let c = caller.client(url);
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("square", [6.0])).await.unwrap(), json!(36.0));
    c.close();
}

#[tokio::test]
async fn kites_register_through_kite_proxy_url_and_are_called() {
    let pair = KeyPair::generate().unwrap();
    let home =
        Home(std::env::temp_dir().join(format!("kite-proxies-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&home.0).unwrap();
    std::fs::write(
        home.0.join("kite.key"),
        mint_kite_key(&pair, "kontrol", "kontrol", "").unwrap(),
    )
    .unwrap();
    let caller = kite_with(&pair, "caller", "bob");

    // The reverse proxy: the kite listens, the proxy forwards to it.
    let proxy = start(PROXY, "kite-proxy", &home.0).await;
    std::env::set_var("KITE_PROXY_URL", &proxy.url);
    let math = kite_with(&pair, "math", "alice");
    within(math.listen()).await.unwrap();
    let reg = ProxyRegistration::reverse(&math, &math.url().unwrap());
    assert_eq!(reg.proxy_url.as_deref(), Some(proxy.url.as_str()));
    let public = within(math.register_to_proxy(reg)).await;
    assert!(
        public.ends_with(&format!("/proxy/{}", math.identity().id)),
        "{public}"
    );
    square_through(&caller, &public).await;

    // The tunnel proxy: the kite never listens.
    let tunnel = start(TUNNEL, "kite-tunnelproxy", &home.0).await;
    std::env::set_var("KITE_PROXY_URL", &tunnel.url);
    let private = kite_with(&pair, "private", "alice");
    let public = within(private.register_to_tunnel()).await;
    assert!(
        public.ends_with(&format!("/proxy/{}", private.identity().id)),
        "{public}"
    );
    square_through(&caller, &public).await;
    std::env::remove_var("KITE_PROXY_URL");

    // Both proxies serve Prometheus metrics without being asked, their `register` counted.
    for p in [&proxy, &tunnel] {
        let metrics = common::scrape_metrics(&p.url).await;
        assert!(
            metrics
                .lines()
                .any(|l| l == r#"kite_calls_total{method="register",outcome="ok"} 1"#),
            "{}: {metrics}",
            p.url
        );
    }

    math.shutdown().await;
    private.shutdown().await;
}

#[tokio::test]
async fn version_flag_prints_the_reference_version() {
    let out = within(Command::new(PROXY).arg("-version").output())
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0.0.1");
}
