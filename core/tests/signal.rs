//! SIGTERM, as the binaries and the math example handle it (`shutdown_signal` then
//! `shutdown`): a registered kite leaves Kontrol at once and watchers see `DEREGISTER`.
//! Its own test binary: it sends SIGTERM to its own process.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{Kontrol, KontrolConfig};
use kite::{Callback, Config, Kite};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

fn config() -> Config {
    Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        ..Config::default()
    }
}

#[tokio::test]
async fn sigterm_unregisters_and_closes() {
    let kontrol_kite = Kite::with_config(
        "kontrol",
        "1.0.0",
        Config {
            username: "kontrol".into(),
            ..config()
        },
    )
    .unwrap();
    let kontrol = Kontrol::new(
        kontrol_kite,
        Arc::new(Memory::new()),
        KontrolConfig::default(),
    )
    .await
    .unwrap();
    within(kontrol.listen()).await.unwrap();
    let kite_for = |key: String| {
        let mut c = config();
        c.use_kite_key(&key).unwrap();
        c.id = uuid::Uuid::new_v4().to_string();
        Kite::with_config("math", "1.0.0", c).unwrap()
    };
    let math = kite_for(kontrol.new_kite_key("alice").await.unwrap());
    let watcher = kite_for(kontrol.new_kite_key("bob").await.unwrap());
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watch = Callback::new(move |a| {
        let _ = tx.send(a.values()[0].clone());
    });
    let c = within(watcher.kontrol()).await.unwrap();
    within(
        c.call(
            "getKites",
            kite::Payload::list()
                .arg(json!({"query": {"username": "alice", "environment": "test"}}))
                .with_callback(
                    [kite::dnode::Segment::from(0), "watchCallback".into()],
                    watch.clone(),
                ),
        ),
    )
    .await
    .unwrap();
    within(math.listen()).await.unwrap();
    within(math.register_forever(&math.url().unwrap())).await;
    assert_eq!(within(events.recv()).await.unwrap()["action"], "REGISTER");

    // What `main` does in the binaries and the math example.
    let mut signalled = Box::pin(kite::server::shutdown_signal());
    // Polled once: the handlers are installed before the signal is sent.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut signalled)
            .await
            .is_err()
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    within(signalled).await;
    let t = Instant::now();
    let shutdown = tokio::spawn({
        let math = math.clone();
        async move { math.shutdown().await }
    });
    let ev = within(events.recv()).await.unwrap();
    assert_eq!(ev["action"], "DEREGISTER", "{ev}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    within(shutdown).await.unwrap();
    watcher.close();
    kontrol.close();
}
