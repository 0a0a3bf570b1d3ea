//! Failures that say what went wrong, at once (issue 11, items 2 and 4): a refused,
//! unresolvable or non-kite URL is a typed `Error::Connect(DialError)` naming the URL, its
//! origin and the cause, returned at once by one-shot operations; forever variants keep
//! retrying, log each distinct failure once, and expose the last cause.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kite::auth::{mint_kite_key, KeyPair};
use kite::protocol::KiteQuery;
use kite::{Config, DialCause, Error, Kite, Request};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// A local URL nothing listens on.
fn refused_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("http://127.0.0.1:{port}/kite")
}

fn plain_kite() -> Kite {
    Kite::with_config("caller", "1.0.0", Config::default()).expect("kite")
}

fn dial_error(e: &Error) -> &kite::DialError {
    e.dial_error()
        .unwrap_or_else(|| panic!("not a dial error: {e:?}"))
}

#[tokio::test]
async fn a_refused_dial_says_so_at_once() {
    let url = refused_url();
    let c = plain_kite().client(&url);
    let t = Instant::now();
    let e = within(c.dial()).await.expect_err("refused");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(e.code(), "dialError");
    let d = dial_error(&e);
    assert_eq!(d.cause, DialCause::Refused, "{e}");
    assert_eq!(d.cause.code(), "refused");
    assert_eq!(d.url, url);
    assert!(e.to_string().contains("connection refused at"), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert_eq!(c.last_dial_error().as_ref(), Some(d));
}

#[tokio::test]
async fn an_unresolvable_host_and_a_non_kite_say_so() {
    let k = plain_kite();
    let e = within(k.client("http://no-such-host.invalid:4000/kite").dial())
        .await
        .expect_err("unresolved");
    assert_eq!(dial_error(&e).cause, DialCause::Unresolved, "{e}");

    // An HTTP server that is not a kite: 404 on the SockJS paths.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new()).await;
    });
    let e = within(k.client(&format!("http://127.0.0.1:{port}/kite")).dial())
        .await
        .expect_err("not a kite");
    assert_eq!(dial_error(&e).cause, DialCause::NotAKite, "{e}");
}

#[tokio::test]
async fn timeouts_name_the_method_and_the_url() {
    let server = Kite::with_config(
        "server",
        "1.0.0",
        Config {
            ip: "127.0.0.1".into(),
            ..Config::default()
        },
    )
    .expect("kite");
    server
        .add_method(
            kite::Method::new("hang", |req: Request| async move {
                req.cancelled().await;
                Ok::<_, kite::KiteError>(())
            })
            .disable_authentication(),
        )
        .expect("hang");
    within(server.listen()).await.expect("listen");
    let url = server.url().expect("url");
    let c = plain_kite().client(&url);
    within(c.dial()).await.expect("dial");
    let e = within(c.call("hang", ()).timeout(Duration::from_millis(100)))
        .await
        .expect_err("timeout");
    assert_eq!(e.code(), "timeout");
    assert_eq!(
        e.to_string(),
        format!("timeout: No response to \"hang\" method from {url} in 100ms")
    );
    // The wire text stays the reference's.
    assert_eq!(
        e.to_kite_error().message,
        "No response to \"hang\" method in 100ms"
    );
    server.close();
}

/// A kite configured from `KITE_HOME` holding a kite key whose Kontrol URL refuses.
fn kite_with_key_to(kontrol_url: &str, home: &std::path::Path) -> Kite {
    let pair = KeyPair::generate().expect("key pair");
    let key = mint_kite_key(&pair, "kontrol", "alice", kontrol_url).expect("kite key");
    kite::auth::write_kite_key(home, &key).expect("write kite.key");
    // The only test of this binary that reads the environment.
    std::env::set_var("KITE_HOME", home);
    std::env::remove_var("KITE_KONTROL_URL");
    let config = Config::from_env().expect("config");
    Kite::with_config("math", "1.0.0", config).expect("kite")
}

#[tokio::test]
async fn a_kite_key_pointing_at_the_wrong_place_says_so() {
    let home = std::env::temp_dir().join(format!("kite-dial-{}", uuid::Uuid::new_v4()));
    let url = refused_url();
    let k = kite_with_key_to(&url, &home);
    let path = home.join("kite.key");
    let origin = format!("kite.key at {}", path.display());
    assert_eq!(
        k.config().kontrol_url_source().as_deref(),
        Some(origin.as_str())
    );

    // One-shot operations fail at once with the cause, the URL and where it came from.
    let t = Instant::now();
    let e = within(k.register("http://127.0.0.1:1/kite"))
        .await
        .expect_err("register");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let d = dial_error(&e);
    assert_eq!(d.cause, DialCause::Refused, "{e}");
    assert_eq!(d.url, url);
    assert_eq!(d.origin.as_deref(), Some(origin.as_str()));
    assert!(e.to_string().contains(&origin), "{e}");
    let q = KiteQuery {
        username: "alice".into(),
        environment: "unknown".into(),
        ..KiteQuery::default()
    };
    let t = Instant::now();
    let e = within(k.get_kites(&q)).await.expect_err("get_kites");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(dial_error(&e).cause, DialCause::Refused, "{e}");
    let e = within(k.register_http("http://127.0.0.1:1/kite"))
        .await
        .expect_err("register_http");
    assert_eq!(dial_error(&e).cause, DialCause::Refused, "{e}");
    assert_eq!(dial_error(&e).origin.as_deref(), Some(origin.as_str()));

    // An override names itself instead.
    let mut config = k.config().clone();
    config.set_kontrol_url(&url, "--kontrol-url");
    assert_eq!(
        config.kontrol_url_source().as_deref(),
        Some("--kontrol-url")
    );
    config.kontrol_url = refused_url();
    assert_eq!(config.kontrol_url_source(), None);
    k.close();
    let _ = std::fs::remove_dir_all(&home);
}

/// Counts the warnings logged while it is the default subscriber.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            struct V<'a>(&'a mut String);
            impl tracing::field::Visit for V<'_> {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!("{}={v:?} ", f.name()));
                }
            }
            event.record(&mut V(&mut text));
            self.0.lock().expect("lock").push(text);
        }
    }
}

#[test]
fn dialing_forever_logs_each_distinct_failure_once() {
    use tracing_subscriber::layer::SubscriberExt;
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = refused_url();
        let k = plain_kite();
        let c = k.client(&url);
        let forever = tokio::spawn({
            let c = c.clone();
            async move { c.dial_forever().await }
        });
        // Attempts at 0, 0.5, 1.5 s: three failures, one of them logged.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let last = c.last_dial_error().expect("a failure");
        assert_eq!(last.cause, DialCause::Refused);
        // A one-shot wait on it gets the cause at once, not a timeout.
        let t = Instant::now();
        let e = c
            .connected_or_cause("connect", Duration::from_secs(5))
            .await
            .expect_err("refused");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(dial_error(&e).cause, DialCause::Refused);
        c.close();
        k.close();
        let _ = forever.await;
    });
    let logged: Vec<String> = warnings
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|w| w.contains("dial failed"))
        .cloned()
        .collect();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("connection refused"), "{logged:#?}");
}
