//! A client dialed forever stops redialing once its kite is closed (before, the closed kite
//! ended every new connection at once and the client redialed in a tight loop).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kite::{Config, Kite};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn closing_the_kite_stops_dial_forever() {
    let config = || Config {
        ip: "127.0.0.1".into(),
        ..Config::default()
    };
    let server = Kite::with_config("server", "1.0.0", config()).unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let n = connects.clone();
    server.on_connect(move |_| {
        n.fetch_add(1, Ordering::SeqCst);
    });
    tokio::time::timeout(WAIT, server.listen())
        .await
        .unwrap()
        .unwrap();
    let local = Kite::with_config("caller", "1.0.0", config()).unwrap();
    let c = local.client(&server.url().unwrap());
    tokio::time::timeout(WAIT, c.dial_forever()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    c.on_disconnect(move || {
        let _ = tx.send(());
    });
    local.close();
    tokio::time::timeout(WAIT, rx.recv()).await.unwrap();
    let after_close = connects.load(Ordering::SeqCst);
    assert!(!c.is_connected());
    // A redial loop holds the client, and so its kite: the kite is freed once no loop
    // runs any more (no timed window needed to show the absence of redials).
    let weak = local.downgrade();
    drop((c, local));
    tokio::time::timeout(WAIT, async {
        while weak.upgrade().is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a redial loop still holds the closed kite");
    assert!(
        connects.load(Ordering::SeqCst) <= after_close + 1,
        "redialed {} times after its kite closed",
        connects.load(Ordering::SeqCst) - after_close
    );
    server.close();
}
