//! Kontrol's `/ui` over HTTP: off by default, loopback-only without a token, the token
//! required when configured, and the event stream's snapshot and live changes. (The page
//! itself runs in a real browser in tests/ui/live_view.test.mjs.)

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig};
use kite::{Config, Kite};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

async fn kontrol(ui: bool, token: Option<&str>, ip: &str) -> (Kontrol, u16) {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: ip.into(),
            username: "kontrol".into(),
            ..Config::default()
        },
    )
    .expect("kite");
    let config = KontrolConfig {
        machine_check: Some(allow_all_machines()),
        ui,
        ui_token: token.map(str::to_string),
        ..KontrolConfig::default()
    };
    let k = Kontrol::new(kite, Arc::new(Memory::new()), config)
        .await
        .expect("kontrol");
    let addr = within(k.listen()).await.expect("listen");
    (k, addr.port())
}

async fn status(url: String) -> u16 {
    within(reqwest::get(url))
        .await
        .expect("GET")
        .status()
        .as_u16()
}

/// A non-loopback address of this machine.
fn outside_ip() -> IpAddr {
    kite::server::addrs::interface_addrs()
        .into_iter()
        .find(|a| a.up && a.ip.is_ipv4() && !a.ip.is_loopback())
        .expect("a non-loopback IPv4 interface")
        .ip
}

#[tokio::test]
async fn off_by_default_and_loopback_only_without_a_token() {
    let (off, port) = kontrol(false, None, "127.0.0.1").await;
    assert_eq!(status(format!("http://127.0.0.1:{port}/ui")).await, 404);
    off.close();

    let (on, port) = kontrol(true, None, "0.0.0.0").await;
    let page = within(reqwest::get(format!("http://127.0.0.1:{port}/ui")))
        .await
        .expect("GET /ui");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/html"));
    assert!(page.text().await.expect("body").contains("EventSource"));
    let stats: serde_json::Value =
        within(reqwest::get(format!("http://127.0.0.1:{port}/ui/stats")))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
    assert_eq!(stats["metrics"], false);
    // The same server reached through a non-loopback address refuses.
    let outside = outside_ip();
    for path in ["ui", "ui/events", "ui/stats"] {
        assert_eq!(
            status(format!("http://{outside}:{port}/{path}")).await,
            403,
            "{path}"
        );
    }
    on.close();
}

#[tokio::test]
async fn a_token_is_required_when_configured_and_changes_stream_live() {
    let (k, port) = kontrol(true, Some("s3cret"), "127.0.0.1").await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(status(format!("{base}/ui")).await, 401);
    assert_eq!(status(format!("{base}/ui?token=wrong")).await, 401);
    assert_eq!(status(format!("{base}/ui/events?token=s3cre")).await, 401);
    assert_eq!(status(format!("{base}/ui?token=s3cret")).await, 200);

    let mut events = within(reqwest::get(format!("{base}/ui/events?token=s3cret")))
        .await
        .expect("events");
    assert_eq!(events.status(), 200);
    let mut seen = String::new();
    while !seen.contains("event: snapshot") {
        let chunk = within(events.chunk()).await.expect("read").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("data: []"), "{seen}");

    // A kite registers: its record arrives on the stream.
    let key = k.new_kite_key("alice").await.expect("key");
    let mut config = Config {
        ip: "127.0.0.1".into(),
        ..Config::default()
    };
    config.use_kite_key(&key).expect("use key");
    config.kontrol_url = format!("{base}/kite");
    let math = Kite::with_config("math", "1.0.0", config).expect("kite");
    within(math.listen()).await.expect("listen");
    within(math.register(&math.url().expect("url")))
        .await
        .expect("register");
    let id = math.identity().id.clone();
    while !(seen.contains("event: register") && seen.contains(&id)) {
        let chunk = within(events.chunk()).await.expect("read").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Its age is known: this Kontrol registered it.
    assert!(
        seen.contains("\"since\":1") || seen.contains("\"since\":2"),
        "{seen}"
    );
    math.close();
    while !seen.contains("event: deregister") {
        let chunk = within(events.chunk()).await.expect("read").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    k.close();
}
