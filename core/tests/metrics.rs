//! `/metrics`: a kite's Prometheus metrics after known traffic, scraped over HTTP and read
//! with a Prometheus text parser (`prometheus-parse`).

use std::time::Duration;

use kite::sockjs::Transport;
use kite::{Callback, Config, Kite, KiteError, Method, Payload, Request};
use prometheus_parse::{Sample, Scrape, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

fn config(metrics: bool) -> Config {
    Config {
        ip: "127.0.0.1".into(),
        username: "testuser".into(),
        metrics,
        ..Config::default()
    }
}

fn server(metrics: bool) -> Kite {
    let k = Kite::with_config("math", "1.0.0", config(metrics)).expect("setup");
    k.add_method(
        Method::new("square", |req: Request| async move {
            let n: f64 = req.args().one()?;
            Ok::<_, KiteError>(n * n)
        })
        .disable_authentication(),
    )
    .expect("setup");
    k.add_method(
        Method::new("fail", |_req: Request| async move {
            Err::<(), _>(anyhow::anyhow!("boom"))
        })
        .disable_authentication(),
    )
    .expect("setup");
    // Hands the caller a function: one entry in the server's callback table.
    k.add_method(
        Method::new("subscribe", |_req: Request| async move {
            Ok::<_, KiteError>(Payload::list().callback(Callback::new(|_| {})))
        })
        .disable_authentication(),
    )
    .expect("setup");
    k.add_method(
        Method::new("once", |_req: Request| async move { Ok::<_, KiteError>(1) })
            .disable_authentication()
            .throttle(Duration::from_secs(3600), 1),
    )
    .expect("setup");
    k.handle("secret", |req: Request| async move {
        Ok::<_, KiteError>(req.username().to_string())
    })
    .expect("setup");
    k
}

struct Metrics {
    text: String,
    samples: Vec<Sample>,
}

impl Metrics {
    async fn scrape(addr: std::net::SocketAddr) -> Metrics {
        let r = within(reqwest::get(format!("http://{addr}/metrics")))
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .expect("setup")
            .starts_with("application/openmetrics-text"));
        let text = r.text().await.expect("setup");
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse");
        Metrics {
            text,
            samples: scrape.samples,
        }
    }

    /// The value of the sample `name` with exactly these labels (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
        found.first().map_or(0.0, |s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => panic!("{name} is a summary"),
        })
    }
}

/// Known traffic over a websocket connection `c`: 3 squares, a failure, an unknown method,
/// an unauthenticated call, a throttled method twice, a function handed back.
async fn websocket_traffic(c: &kite::Client) {
    within(c.dial()).await.expect("dial");
    for n in 1..=3 {
        within(c.call("square", [n])).await.expect("square");
    }
    assert!(within(c.call("fail", ())).await.is_err());
    assert!(within(c.call("no-such-method", ())).await.is_err());
    assert!(within(c.call("secret", ())).await.is_err());
    within(c.call("once", ())).await.expect("once");
    assert!(within(c.call("once", ())).await.is_err());
    within(c.call("subscribe", ())).await.expect("subscribe");
}

fn assert_calls(m: &Metrics) {
    let calls = |method, outcome| {
        m.value(
            "kite_calls_total",
            &[("method", method), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("square", "ok"), 4.0);
    assert_eq!(calls("square", "error"), 0.0);
    assert_eq!(calls("fail", "error"), 1.0);
    assert_eq!(calls("other", "error"), 1.0);
    assert_eq!(calls("secret", "error"), 1.0);
    assert_eq!(calls("once", "ok"), 1.0);
    assert_eq!(calls("once", "error"), 1.0);
    let errors = |method, kind| {
        m.value(
            "kite_call_errors_total",
            &[("method", method), ("kind", kind)],
        )
    };
    assert_eq!(errors("fail", "genericError"), 1.0);
    assert_eq!(errors("other", "methodNotFound"), 1.0);
    assert_eq!(errors("secret", "authenticationError"), 1.0);
    assert_eq!(errors("once", "requestLimitError"), 1.0);
    // Only registered names are label values.
    assert!(!m.text.contains("no-such-method"));
    assert_eq!(
        m.value("kite_call_duration_seconds", &[("method", "square")]),
        4.0
    );
    assert_eq!(
        m.value("kite_auth_refusals_total", &[("reason", "missing")]),
        1.0
    );
    assert_eq!(
        m.value("kite_limits_reached_total", &[("limit", "throttle")]),
        1.0
    );
}

fn assert_connections(m: &Metrics) {
    assert_eq!(open(m, "websocket"), 1.0);
    assert_eq!(open(m, "xhr"), 1.0);
    for transport in ["websocket", "xhr"] {
        assert_eq!(
            m.value("kite_sockjs_sessions_open", &[("transport", transport)]),
            1.0
        );
    }
    assert_eq!(m.value("kite_callbacks_pending", &[]), 1.0);
    assert!(m.value("kite_received_bytes_total", &[]) > 0.0);
    assert!(m.value("kite_sent_bytes_total", &[]) > 0.0);
}

fn open(m: &Metrics, transport: &str) -> f64 {
    m.value(
        "kite_connections_open",
        &[("transport", transport), ("direction", "accepted")],
    )
}

#[tokio::test]
async fn counts_known_traffic() {
    let k = server(true);
    let (gone_tx, mut gone) = tokio::sync::mpsc::unbounded_channel();
    k.on_disconnect(move |_| {
        let _ = gone_tx.send(());
    });
    let addr = within(k.listen()).await.expect("listen");
    let url = k.url().expect("url");
    let caller = Kite::with_config("caller", "1.0.0", config(false)).expect("caller");
    let c = caller.client(&url);
    c.set_transport(Transport::WebSocket);
    websocket_traffic(&c).await;
    let polling = caller.client(&url);
    polling.set_transport(Transport::XhrPolling);
    within(polling.dial()).await.expect("dial");
    within(polling.call("square", [4])).await.expect("square");

    let m = Metrics::scrape(addr).await;
    assert_calls(&m);
    assert_connections(&m);
    // No kite ids or usernames as label values.
    assert!(!m.text.contains(&caller.identity().id));
    assert!(!m.text.contains("testuser"));

    // The websocket connection ends: no longer open, its callback table emptied.
    c.close();
    within(gone.recv()).await;
    let m = Metrics::scrape(addr).await;
    assert_eq!(open(&m, "websocket"), 0.0);
    assert_eq!(open(&m, "xhr"), 1.0);
    assert_eq!(m.value("kite_callbacks_pending", &[]), 0.0);
    assert_eq!(
        m.value(
            "kite_connections_total",
            &[("transport", "websocket"), ("direction", "accepted")]
        ),
        1.0
    );
    polling.close();
    k.close();
}

#[tokio::test]
async fn dialed_connections_are_counted_on_the_caller() {
    let k = server(false);
    within(k.listen()).await.expect("setup");
    let caller = Kite::with_config("caller", "1.0.0", config(true)).expect("setup");
    let caller_addr = within(caller.listen()).await.expect("setup");
    let c = caller.client(&k.url().expect("url"));
    c.set_transport(Transport::WebSocket);
    within(c.dial()).await.expect("setup");
    within(c.call("square", [2])).await.expect("square");
    let m = Metrics::scrape(caller_addr).await;
    assert_eq!(
        m.value(
            "kite_connections_open",
            &[("transport", "websocket"), ("direction", "dialed")]
        ),
        1.0
    );
    // The caller serves no call: nothing counted as served.
    assert_eq!(
        m.value(
            "kite_calls_total",
            &[("method", "square"), ("outcome", "ok")]
        ),
        0.0
    );
    assert!(m.value("kite_sent_bytes_total", &[]) > 0.0);
    c.close();
    k.close();
    caller.close();
}

#[tokio::test]
async fn off_by_default() {
    let k = Kite::with_config(
        "plain",
        "1.0.0",
        Config {
            ip: "127.0.0.1".into(),
            ..Config::default()
        },
    )
    .expect("setup");
    assert!(k.metrics().is_none());
    let addr = within(k.listen()).await.expect("setup");
    let r = within(reqwest::get(format!("http://{addr}/metrics")))
        .await
        .expect("setup");
    assert_eq!(r.status(), 404);
    k.close();
}

#[tokio::test]
async fn user_metrics_join_the_registry() {
    let k = Kite::with_config("mine", "1.0.0", config(true)).expect("setup");
    let jobs = prometheus_client::metrics::counter::Counter::<u64>::default();
    k.metrics()
        .expect("setup")
        .registry()
        .register("jobs", "Jobs done", jobs.clone());
    jobs.inc_by(7);
    let addr = within(k.listen()).await.expect("setup");
    let m = Metrics::scrape(addr).await;
    assert_eq!(m.value("jobs_total", &[]), 7.0);
    k.close();
}

/// A kite of `name` for `username` with a kite key from `kontrol` at `url`.
async fn kite_for(kontrol: &kite::kontrol::Kontrol, url: &str, name: &str, username: &str) -> Kite {
    let key = kontrol.new_kite_key(username).await.expect("kite key");
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        ..Config::default()
    };
    config.use_kite_key(&key).expect("use key");
    config.kontrol_url = url.to_string();
    Kite::with_config(name, "1.0.0", config).expect("kite")
}

#[tokio::test]
async fn kontrol_counts_kites_watchers_tokens_and_storage() {
    use kite::kontrol::storage::memory::Memory;
    use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig};
    let kite = Kite::with_config("kontrol", "0.0.4", {
        let mut c = config(true);
        c.username = "kontrol".into();
        c
    })
    .expect("kontrol kite");
    let config = KontrolConfig {
        machine_check: Some(allow_all_machines()),
        ..KontrolConfig::default()
    };
    let kontrol = Kontrol::new(kite, std::sync::Arc::new(Memory::new()), config)
        .await
        .expect("kontrol");
    let addr = within(kontrol.listen()).await.expect("listen");
    let url = kontrol.kite().url().expect("url");

    // A watcher of alice's kites, then one of them registers.
    let caller = kite_for(&kontrol, &url, "caller", "bob").await;
    let c = within(caller.kontrol()).await.expect("kontrol client");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let watch = Callback::new(move |a| {
        let _ = tx.send(a.values()[0].clone());
    });
    within(
        c.call(
            "getKites",
            Payload::list()
                .arg(serde_json::json!({"query": {"username": "alice", "environment": "test"}}))
                .with_callback(
                    [kite::dnode::Segment::from(0), "watchCallback".into()],
                    watch.clone(),
                ),
        ),
    )
    .await
    .expect("watch");
    let math = kite_for(&kontrol, &url, "math", "alice").await;
    within(math.listen()).await.expect("listen");
    within(math.register(&math.url().expect("url")))
        .await
        .expect("register");
    let ev = within(events.recv()).await.expect("event");
    assert_eq!(ev["action"], "REGISTER", "{ev}");

    let m = Metrics::scrape(addr).await;
    assert_eq!(m.value("kontrol_kites_registered", &[]), 1.0, "{}", m.text);
    assert_eq!(m.value("kontrol_watchers", &[]), 1.0);
    // The watcher's REGISTER event carried a token.
    assert!(m.value("kontrol_tokens_issued_total", &[]) >= 1.0);
    assert_eq!(
        m.value(
            "kite_calls_total",
            &[("method", "register"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        m.value("kite_call_duration_seconds", &[("method", "getKites")]),
        1.0
    );
    assert!(
        m.value("kontrol_storage_duration_seconds", &[("op", "upsert")]) >= 1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.value("kontrol_storage_errors_total", &[("op", "upsert")]),
        0.0
    );

    // The kite leaves: no longer counted.
    math.close();
    let ev = within(events.recv()).await.expect("event");
    assert_eq!(ev["action"], "DEREGISTER", "{ev}");
    let m = Metrics::scrape(addr).await;
    assert_eq!(m.value("kontrol_kites_registered", &[]), 0.0);
    caller.close();
    kontrol.close();
}

#[tokio::test]
async fn reading_paused_at_the_in_flight_limit_is_counted_once() {
    let k = Kite::with_config(
        "held",
        "1.0.0",
        Config {
            max_calls_in_flight: 1,
            ..config(true)
        },
    )
    .expect("kite");
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    k.add_method(
        Method::new("hold", move |_req: Request| {
            let entered_tx = entered_tx.clone();
            let held = held.clone();
            async move {
                let _ = entered_tx.send(());
                held.notified().await;
                Ok::<_, KiteError>(())
            }
        })
        .disable_authentication(),
    )
    .expect("hold");
    let addr = within(k.listen()).await.expect("listen");
    let caller = Kite::with_config("caller", "1.0.0", config(false)).expect("caller");
    let c = caller.client(&k.url().expect("url"));
    c.set_transport(Transport::WebSocket);
    within(c.dial()).await.expect("dial");
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.call("hold", ()).await })
    };
    within(entered.recv()).await.expect("entered");
    // One call in flight: the connection stops reading until it is answered.
    let m = Metrics::scrape(addr).await;
    assert_eq!(
        m.value("kite_limits_reached_total", &[("limit", "calls_in_flight")]),
        1.0
    );
    release.notify_one();
    within(call).await.expect("join").expect("hold");
    // Reading went on: still one pause, and calls are served again.
    within(c.call("kite.ping", ())).await.expect("ping");
    let m = Metrics::scrape(addr).await;
    assert_eq!(
        m.value("kite_limits_reached_total", &[("limit", "calls_in_flight")]),
        1.0
    );
    c.close();
    k.close();
}
