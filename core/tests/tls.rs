//! TLS on every client path, against a certificate authority made at test time (rcgen):
//! our kite and Kontrol served over HTTPS and dialed over websocket, XHR polling and raw
//! `wss://`; kites registering to an HTTPS Kontrol over dnode and over HTTP; and the bad
//! cases — untrusted, expired and wrong-host certificates, a CA file that does not parse,
//! plain HTTP and TLS mixed up, a handshake that stalls — each a typed `tlsError` naming
//! the URL and the reason, within a bounded wait. Also one identity per kite, register
//! URLs from the interface list, and Kontrol's own record outliving its cleaner.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::peers::{build_examples, go_bin, run_once, Peer};
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig};
use kite::protocol::KiteQuery;
use kite::server::addrs::InterfaceAddr;
use kite::sockjs::Transport;
use kite::{Config, Error, Kite, Request};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A certificate authority for one test, and the files it writes.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("kite-tls-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kite test CA");
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        Pki {
            dir,
            ca: Issuer::new(params, key),
            ca_file,
        }
    }

    /// A certificate for `names` signed by the CA (expired when `expired`); its PEM files.
    fn cert(&self, tag: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.ca).unwrap();
        self.write(tag, &cert.pem(), &key.serialize_pem())
    }

    /// A self-signed certificate for `names` (no CA of ours).
    fn self_signed(&self, tag: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let c = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        self.write(tag, &c.cert.pem(), &c.signing_key.serialize_pem())
    }

    fn write(&self, tag: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            self.dir.join(format!("{tag}.pem")),
            self.dir.join(format!("{tag}-key.pem")),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn base() -> Config {
    Config {
        ip: "127.0.0.1".into(),
        handshake_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// A kite with `square` (no authentication), listening (over TLS when given files).
async fn math(tls: Option<(PathBuf, PathBuf)>) -> Kite {
    let k = Kite::with_config("math", "1.0.0", Config { tls, ..base() }).unwrap();
    k.add_method(
        kite::Method::new("square", |r: Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )
    .unwrap();
    within(k.listen()).await.unwrap();
    k
}

/// A calling kite trusting `ca` (beside the system's roots).
fn caller(ca: Option<PathBuf>) -> Kite {
    Kite::with_config(
        "caller",
        "1.0.0",
        Config {
            tls_ca_file: ca,
            ..base()
        },
    )
    .unwrap()
}

/// Dials `url` with `transport` and expects a TLS error naming `url` and saying `reason`,
/// returned well before the dial timeout.
async fn expect_tls_error(k: &Kite, url: &str, transport: Transport, reason: &str) {
    let c = k.client(url);
    c.set_transport(transport);
    let t0 = Instant::now();
    let e = within(c.dial_timeout(Duration::from_secs(10)))
        .await
        .expect_err("dial should fail");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "{transport}: took {:?}",
        t0.elapsed()
    );
    match &e {
        Error::Tls { url: u, reason: r } => {
            assert_eq!(u, url, "{transport}: {e}");
            assert!(r.contains(reason), "{transport}: {e}");
        }
        other => panic!("{transport}: expected a TLS error, got {other:?}"),
    }
    assert_eq!(e.kind().as_str(), kite::tls::TLS_ERROR);
    assert!(e.to_string().contains(url), "{e}");
}

#[tokio::test]
async fn rust_client_calls_a_tls_kite_over_every_transport() {
    let pki = Pki::new();
    let server = math(Some(pki.cert("server", &["127.0.0.1", "localhost"], false))).await;
    let url = server.url().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let k = caller(Some(pki.ca_file.clone()));
    let port = server.port().unwrap();
    for (url, transport) in [
        (url.clone(), Transport::WebSocket),
        (url.clone(), Transport::XhrPolling),
        (url.clone(), Transport::Auto),
        // The certificate's DNS name, too.
        (
            format!("https://localhost:{port}/kite"),
            Transport::WebSocket,
        ),
        // A raw websocket, no SockJS framing.
        (
            format!("wss://127.0.0.1:{port}/kite/websocket"),
            Transport::Auto,
        ),
    ] {
        let c = k.client(&url);
        c.set_transport(transport);
        within(c.dial())
            .await
            .unwrap_or_else(|e| panic!("{url} {transport}: {e}"));
        let got = within(c.call("square", [7])).await.unwrap();
        assert_eq!(got, json!(49.0), "{url} {transport}");
        c.close();
    }
    // One configuration shared by every dial: the same kite dials many times without
    // rebuilding it (and a plain kite still works beside).
    let plain = math(None).await;
    let c = k.client(&plain.url().unwrap());
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("square", [3])).await.unwrap(), json!(9.0));
}

#[tokio::test]
async fn certificate_errors_are_typed_and_immediate() {
    let pki = Pki::new();
    let k = caller(Some(pki.ca_file.clone()));
    let untrusting = caller(None);

    // Self-signed, not trusted.
    let self_signed = math(Some(pki.self_signed("self", &["127.0.0.1"]))).await;
    // Signed by our CA but expired.
    let expired = math(Some(pki.cert("expired", &["127.0.0.1"], true))).await;
    // Signed by our CA for another host.
    let elsewhere = math(Some(pki.cert("elsewhere", &["example.com"], false))).await;
    // Trusted and valid: for the other connections, which must be unaffected.
    let good = math(Some(pki.cert("good", &["127.0.0.1"], false))).await;
    let good_client = k.client(&good.url().unwrap());
    within(good_client.dial()).await.unwrap();

    for t in [Transport::WebSocket, Transport::XhrPolling, Transport::Auto] {
        expect_tls_error(&k, &self_signed.url().unwrap(), t, "unknown authority").await;
        expect_tls_error(&untrusting, &good.url().unwrap(), t, "unknown authority").await;
        expect_tls_error(&k, &expired.url().unwrap(), t, "expired").await;
        expect_tls_error(&k, &elsewhere.url().unwrap(), t, "not valid for").await;
    }
    let raw = format!("wss://127.0.0.1:{}/kite/websocket", expired.port().unwrap());
    expect_tls_error(&k, &raw, Transport::Auto, "expired").await;

    // The working connection never noticed.
    assert_eq!(
        within(good_client.call("square", [4])).await.unwrap(),
        json!(16.0)
    );
}

#[tokio::test]
async fn plain_and_tls_mixed_up() {
    let pki = Pki::new();
    let k = caller(Some(pki.ca_file.clone()));
    let tls = math(Some(pki.cert("server", &["127.0.0.1"], false))).await;
    let plain = math(None).await;
    let tls_port = tls.port().unwrap();
    let plain_port = plain.port().unwrap();
    for t in [Transport::WebSocket, Transport::XhrPolling, Transport::Auto] {
        // http:// to a TLS port: the server says so, the client reports it.
        expect_tls_error(
            &k,
            &format!("http://127.0.0.1:{tls_port}/kite"),
            t,
            "speaks TLS",
        )
        .await;
        // https:// to a plain port.
        expect_tls_error(
            &k,
            &format!("https://127.0.0.1:{plain_port}/kite"),
            t,
            "did not answer with TLS",
        )
        .await;
    }
    expect_tls_error(
        &k,
        &format!("wss://127.0.0.1:{plain_port}/kite/websocket"),
        Transport::Auto,
        "did not answer with TLS",
    )
    .await;
    // Both servers still serve their own kind.
    for url in [tls.url().unwrap(), plain.url().unwrap()] {
        let c = k.client(&url);
        within(c.dial()).await.unwrap();
        assert_eq!(within(c.call("square", [2])).await.unwrap(), json!(4.0));
    }
}

#[tokio::test]
async fn a_stalled_handshake_is_bounded() {
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h2.lock().await.push(s);
        }
    });
    let k = caller(None);
    let url = format!("https://127.0.0.1:{port}/kite");
    let c = k.client(&url);
    c.set_transport(Transport::WebSocket);
    let t0 = Instant::now();
    let e = within(c.dial_timeout(Duration::from_millis(700)))
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    match e {
        Error::Tls { url: u, reason } => {
            assert_eq!(u, url);
            assert!(reason.contains("did not complete within 700ms"), "{reason}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // XHR polling: bounded by the same timeout.
    c.set_transport(Transport::XhrPolling);
    let t0 = Instant::now();
    assert!(within(c.dial_timeout(Duration::from_millis(700)))
        .await
        .is_err());
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_ca_file_that_does_not_parse() {
    let pki = Pki::new();
    let bad = pki.dir.join("garbage.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let k = caller(Some(bad));
    let server = math(Some(pki.cert("server", &["127.0.0.1"], false))).await;
    for t in [Transport::WebSocket, Transport::XhrPolling] {
        expect_tls_error(&k, &server.url().unwrap(), t, "garbage.pem").await;
    }
    // Plain URLs do not care.
    let plain = math(None).await;
    let c = k.client(&plain.url().unwrap());
    within(c.dial()).await.unwrap();
}

async fn tls_kontrol(pki: &Pki, config: KontrolConfig) -> (Kontrol, String) {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            username: "kontrol".into(),
            tls: Some(pki.cert("kontrol", &["127.0.0.1"], false)),
            tls_ca_file: Some(pki.ca_file.clone()),
            ..base()
        },
    )
    .unwrap();
    let k = Kontrol::new(kite, Arc::new(Memory::new()), config)
        .await
        .unwrap();
    within(k.listen()).await.unwrap();
    let url = k.kite().url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    (k, url)
}

fn fast() -> KontrolConfig {
    KontrolConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_delay: Duration::from_millis(500),
        machine_check: Some(allow_all_machines()),
        ..KontrolConfig::default()
    }
}

/// A kite of `name` for `username` with a kite key from `kontrol`, trusting the CA.
async fn kite_for(kontrol: &Kontrol, pki: &Pki, name: &str, username: &str) -> Kite {
    let key = kontrol
        .new_kite_key_for(username, &kontrol.kite().url().unwrap())
        .await
        .unwrap();
    let mut config = Config {
        environment: "test".into(),
        tls: Some(pki.cert(name, &["127.0.0.1"], false)),
        tls_ca_file: Some(pki.ca_file.clone()),
        ..base()
    };
    config.use_kite_key(&key).unwrap();
    let k = Kite::with_config(name, "1.0.0", config).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })
    .unwrap();
    within(k.listen()).await.unwrap();
    k
}

fn query(username: &str, name: &str) -> KiteQuery {
    KiteQuery {
        username: username.into(),
        environment: "test".into(),
        name: name.into(),
        ..KiteQuery::default()
    }
}

#[tokio::test]
async fn kontrol_over_https_with_dnode_and_http_registrations() {
    let pki = Pki::new();
    let (kontrol, kontrol_url) = tls_kontrol(&pki, fast()).await;
    let over_dnode = kite_for(&kontrol, &pki, "alpha", "alice").await;
    let over_http = kite_for(&kontrol, &pki, "beta", "alice").await;
    let r = within(over_dnode.register(&over_dnode.url().unwrap()))
        .await
        .unwrap();
    assert!(r.url.starts_with("https://"), "{}", r.url);
    let r = within(over_http.register_http(&over_http.url().unwrap()))
        .await
        .unwrap();
    assert!(r.heartbeat_interval > 0);

    let finder = kite_for(&kontrol, &pki, "finder", "bob").await;
    for name in ["alpha", "beta"] {
        let clients = within(finder.get_kites(&query("alice", name)))
            .await
            .unwrap();
        assert_eq!(clients.len(), 1, "{name}");
        let c = &clients[0];
        assert!(c.url().starts_with("https://"), "{}", c.url());
        within(c.dial()).await.unwrap();
        // `square` needs authentication: the token from Kontrol, over TLS.
        assert_eq!(within(c.call("square", [6])).await.unwrap(), json!(36.0));
    }
    // HTTP heartbeats over TLS keep `beta` registered past Kontrol's grace period.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        within(finder.get_kites(&query("alice", "beta")))
            .await
            .unwrap()
            .len(),
        1
    );

    // A kite that does not trust Kontrol's certificate gets the TLS error at once, from
    // dnode and from HTTP, not a timeout.
    let key = kontrol.new_kite_key("carol").await.unwrap();
    let mut config = Config {
        timeout: Duration::from_secs(10),
        ..base()
    };
    config.use_kite_key(&key).unwrap();
    config.kontrol_url = kontrol_url.clone();
    let stranger = Kite::with_config("stranger", "1.0.0", config).unwrap();
    let t0 = Instant::now();
    match within(stranger.get_kites(&query("alice", "alpha"))).await {
        Err(Error::Tls { url, reason }) => {
            assert_eq!(url, kontrol_url);
            assert!(reason.contains("unknown authority"), "{reason}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    match within(stranger.register_http("http://127.0.0.1:1/kite")).await {
        Err(Error::Tls { url, reason }) => {
            assert!(url.ends_with("/register"), "{url}");
            assert!(reason.contains("unknown authority"), "{reason}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    stranger.close();
}

#[tokio::test]
async fn kites_sharing_a_kite_key_are_distinct() {
    let pki = Pki::new();
    let (kontrol, _) = tls_kontrol(&pki, fast()).await;
    let key = kontrol.new_kite_key("alice").await.unwrap();
    let jti = kite::auth::parse_unverified(&key).unwrap().jti;
    // One kite key (as from one KITE_HOME), three kites of one name.
    let mut config = Config {
        environment: "test".into(),
        tls_ca_file: Some(pki.ca_file.clone()),
        ..base()
    };
    config.use_kite_key(&key).unwrap();
    let mut ids = Vec::new();
    let mut kites = Vec::new();
    for _ in 0..3 {
        let k = Kite::with_config("worker", "1.0.0", config.clone()).unwrap();
        k.handle("square", |r: Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .unwrap();
        within(k.listen()).await.unwrap();
        within(k.register(&k.url().unwrap())).await.unwrap();
        let id = k.identity().id.clone();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_ne!(id, jti, "the key's jti is not a kite id");
        // Still the key's user, Kontrol and key.
        assert_eq!(k.identity().username, "alice");
        assert_eq!(k.config().kite_key, key);
        ids.push(id);
        kites.push(k);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let found = within(kites[0].get_kites(&query("alice", "worker")))
        .await
        .unwrap();
    let mut found_ids: Vec<String> = found.iter().map(|c| c.remote_kite().id).collect();
    found_ids.sort();
    assert_eq!(found_ids, ids);
    // An id the program sets is kept.
    let mut fixed = config.clone();
    fixed.id = "my-fixed-id".into();
    let k = Kite::with_config("worker", "1.0.0", fixed).unwrap();
    assert_eq!(k.identity().id, "my-fixed-id");
}

fn iface(name: &str, ip: &str, loopback: bool) -> InterfaceAddr {
    InterfaceAddr {
        name: name.into(),
        ip: ip.parse().unwrap(),
        up: true,
        loopback,
    }
}

#[tokio::test]
async fn register_urls_others_can_reach() {
    let interfaces = vec![
        iface("lo", "127.0.0.1", true),
        iface("lo", "::1", true),
        iface("eth0", "fe80::1", false),
        iface("eth0", "2001:db8::7", false),
        iface("eth0", "192.0.2.10", false),
    ];
    // Every interface, IPv4.
    let k = Kite::with_config(
        "any",
        "1.0.0",
        Config {
            ip: "0.0.0.0".into(),
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(k.register_url(), None, "not listening yet");
    let port = within(k.listen()).await.unwrap().port();
    assert_eq!(
        k.register_url_from(&interfaces).unwrap(),
        format!("http://192.0.2.10:{port}/kite")
    );
    // Locally it is still dialed on the loopback address.
    assert_eq!(k.url().unwrap(), format!("http://127.0.0.1:{port}/kite"));
    // This machine's own list: never a loopback address when another one exists.
    let real = kite::server::addrs::interface_addrs();
    let url = k.register_url().unwrap();
    let expected = kite::server::addrs::register_host("0.0.0.0".parse().unwrap(), &real);
    assert!(
        url.contains(&kite::server::addrs::url_host(expected)),
        "{url} {real:?}"
    );
    // The registered URL answers.
    let c = caller(None).client(&url);
    within(c.dial()).await.unwrap();

    // Every interface, IPv6 (dual stack), on a host with only IPv6 addresses.
    let k6 = Kite::with_config(
        "any6",
        "1.0.0",
        Config {
            ip: "::".into(),
            ..Config::default()
        },
    )
    .unwrap();
    if let Ok(addr) = k6.listen().await {
        let v6: Vec<_> = interfaces
            .iter()
            .filter(|a| matches!(a.ip, IpAddr::V6(_)))
            .cloned()
            .collect();
        assert_eq!(
            k6.register_url_from(&v6).unwrap(),
            format!("http://[2001:db8::7]:{}/kite", addr.port())
        );
    }

    // KITE_REGISTER_URL / Config::register_url wins.
    let fixed = Kite::with_config(
        "fixed",
        "1.0.0",
        Config {
            register_url: Some("https://kites.example.com/math".into()),
            ..base()
        },
    )
    .unwrap();
    within(fixed.listen()).await.unwrap();
    assert_eq!(
        fixed.register_url().unwrap(),
        "https://kites.example.com/math"
    );
}

#[tokio::test]
async fn kontrols_own_record_outlives_the_cleaner() {
    let pki = Pki::new();
    let config = KontrolConfig {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_delay: Duration::from_millis(200),
        expire_after: Duration::from_millis(800),
        register_url: Some("https://kontrol.example.com/kite".into()),
        ..fast()
    };
    let (kontrol, _) = tls_kontrol(&pki, config).await;
    let finder = kite_for(&kontrol, &pki, "finder", "bob").await;
    let q = KiteQuery {
        username: "kontrol".into(),
        environment: "unknown".into(),
        name: "kontrol".into(),
        ..KiteQuery::default()
    };
    // Several cleaner passes and expiry periods later, still listed.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let found = within(finder.get_kites(&q)).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].url(), "https://kontrol.example.com/kite");
    }
    // Once Kontrol is closed the refresh stops.
    kontrol.close();
}

/// The Go reference client (its SCENARIOS.md run, trusting our CA through `SSL_CERT_FILE`
/// as Go programs do) calls our kite served over TLS, over both transports.
#[tokio::test]
async fn go_client_calls_our_tls_kite() {
    let pki = Pki::new();
    let (cert, key) = pki.cert("server", &["127.0.0.1"], false);
    let [server] = tokio::task::spawn_blocking(|| build_examples(["interop-server"]))
        .await
        .unwrap();
    let mut cmd = tokio::process::Command::new(server);
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    let server = Peer::start("kite-rs TLS server", cmd).await;
    let url = server.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    for transport in ["WebSocket", "XHRPolling"] {
        let mut cmd = tokio::process::Command::new(go_bin("client"));
        cmd.args(["--url", &url, "--transport", transport])
            .env("SSL_CERT_FILE", &pki.ca_file);
        let run = run_once("Go client", cmd).await.unwrap();
        let lines: Vec<serde_json::Value> = run
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let line = |name: &str| {
            lines
                .iter()
                .find(|l| l["scenario"] == name)
                .unwrap_or_else(|| panic!("{transport}: no {name} line; stderr:\n{}", run.stderr))
        };
        for scenario in ["square", "echoObject", "callback", "ping", "callMeBack"] {
            assert_eq!(
                line(scenario)["ok"],
                true,
                "{transport} {scenario}: {}",
                line(scenario)
            );
        }
        assert_eq!(line("square")["result"].as_f64(), Some(16.0), "{transport}");
    }
    // Without the CA the Go client refuses the certificate.
    let mut cmd = tokio::process::Command::new(go_bin("client"));
    cmd.args(["--url", &url, "--transport", "WebSocket"])
        .env("SSL_CERT_FILE", pki.dir.join("absent.pem"));
    let run = run_once("Go client", cmd).await.unwrap();
    assert!(!run.status.success());
    assert!(run.stdout.contains("\"connect\""), "{}", run.stdout);
    server.stop().await;
}

/// Our client calls the Go reference kite served over TLS (the reference's UseTLSFile).
#[tokio::test]
async fn our_client_calls_a_go_tls_kite() {
    let pki = Pki::new();
    let (cert, key) = pki.cert("go", &["127.0.0.1"], false);
    let mut cmd = tokio::process::Command::new(go_bin("server"));
    cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    let server = Peer::start("Go TLS server", cmd).await;
    let url = server.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let k = caller(Some(pki.ca_file.clone()));
    for transport in [Transport::WebSocket, Transport::XhrPolling] {
        let c = k.client(&url);
        c.set_transport(transport);
        within(c.dial())
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e}; Go stderr:\n{}", server.stderr()));
        let got = within(c.call("square", [5])).await.unwrap();
        assert_eq!(got.as_f64(), Some(25.0), "{transport}");
        c.close();
    }
    // Not trusted: the typed error, at once.
    expect_tls_error(
        &caller(None),
        &url,
        Transport::WebSocket,
        "unknown authority",
    )
    .await;
    server.stop().await;
}
