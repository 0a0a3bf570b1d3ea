//! Closing a kite cleanly (issue 11, item 5): `close()` refuses new calls, lets the calls in
//! flight finish up to the drain timeout, then closes the connections; `run()` returns then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kite::{Config, ErrorKind, Kite, Request};
use serde_json::json;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A kite whose `hold` method answers when `release` is notified, and `square`.
fn kite(drain: Duration, release: Arc<Notify>, started: Arc<Notify>) -> Kite {
    let k = Kite::with_config(
        "server",
        "1.0.0",
        Config {
            ip: "127.0.0.1".into(),
            drain_timeout: drain,
            ..Config::default()
        },
    )
    .expect("kite");
    k.add_method(
        kite::Method::new("hold", move |_req: Request| {
            let release = release.clone();
            let started = started.clone();
            async move {
                started.notify_one();
                release.notified().await;
                Ok::<_, kite::KiteError>("done")
            }
        })
        .disable_authentication(),
    )
    .expect("hold");
    k.add_method(
        kite::Method::new("square", |req: Request| async move {
            let n: f64 = req.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )
    .expect("square");
    k
}

fn caller() -> Kite {
    Kite::with_config("caller", "1.0.0", Config::default()).expect("caller")
}

#[tokio::test]
async fn close_refuses_new_calls_and_lets_calls_in_flight_finish() {
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let server = kite(WAIT, release.clone(), started.clone());
    within(server.listen()).await.expect("listen");
    let url = server.url().expect("url");
    let me = caller();
    let a = me.client(&url);
    let b = me.client(&url);
    within(a.dial()).await.expect("dial a");
    within(b.dial()).await.expect("dial b");

    let held = tokio::spawn({
        let a = a.clone();
        async move { a.call("hold", ()).await }
    });
    within(started.notified()).await;
    server.close();
    assert!(server.is_closing());

    // A new call, on any connection, is refused at once with a stable code.
    let e = within(b.call("square", [3])).await.expect_err("refused");
    let wire = e.to_kite_error();
    assert_eq!(wire.kind, ErrorKind::GenericError, "{e}");
    assert_eq!(wire.code, "closing", "{e}");
    assert!(!wire.id.is_empty(), "{wire:?}");

    // The call in flight finishes with its result; then the kite closes.
    release.notify_one();
    let r = within(held).await.expect("join");
    assert_eq!(r.expect("the call in flight finishes"), json!("done"));
    within(server.closed()).await;
    if let Some(conn) = a.connection() {
        within(conn.closed()).await;
    }
}

#[tokio::test]
async fn the_drain_is_bounded_by_its_timeout() {
    let (release, started) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let server = kite(Duration::from_millis(300), release, started.clone());
    within(server.listen()).await.expect("listen");
    let me = caller();
    let c = me.client(&server.url().expect("url"));
    within(c.dial()).await.expect("dial");
    let held = tokio::spawn({
        let c = c.clone();
        async move { c.call("hold", ()).await }
    });
    within(started.notified()).await;
    let t = Instant::now();
    // `run` returns when the drain is over.
    let run = tokio::spawn({
        let server = server.clone();
        async move { server.run().await }
    });
    server.close();
    within(server.closed()).await;
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // The caller whose call never finished sees the connection go.
    let e = within(held).await.expect("join").expect_err("cut off");
    assert_eq!(e.kind(), ErrorKind::Disconnect, "{e}");
    let _ = within(run).await;
}

#[tokio::test]
async fn an_idle_kite_closes_at_once() {
    let server = kite(WAIT, Arc::new(Notify::new()), Arc::new(Notify::new()));
    within(server.listen()).await.expect("listen");
    let t = Instant::now();
    server.close();
    within(server.closed()).await;
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    // Outside a runtime too.
    let other = kite(WAIT, Arc::new(Notify::new()), Arc::new(Notify::new()));
    std::thread::spawn(move || other.close())
        .join()
        .expect("close outside a runtime");
}
