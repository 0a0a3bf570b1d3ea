//! Functions travel beside the values, never inside them: a string a peer sends stays a
//! string on the way back, and no connection can reach the functions of another.
//!
//! Each test speaks raw dnode over the kite's plain websocket endpoint, so that what goes
//! over the wire (the `callbacks` map of every frame) is checked, not just what a client
//! library makes of it.
// Test helpers outside #[test] functions unwrap too (clippy's allow-unwrap-in-tests covers
// only the test functions themselves).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kite::{Callback, Config, Connection, Kite, KiteError, Method, Payload, Request};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// Every string kite-rs ever used as an in-band marker for a function, and the placeholder.
fn former_markers() -> Vec<String> {
    let mut v = vec!["[Function]".to_string()];
    for n in 0..64 {
        v.push(format!("\u{0}kite.callback:{n}"));
        v.push(format!("\u{0}kite.callback#{n}"));
        v.push(format!("\u{0}kite.function:{n}"));
    }
    v
}

/// A raw dnode peer on the plain websocket endpoint.
struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Raw {
    async fn connect(kite: &Kite) -> Raw {
        let url = format!("ws://{}/kite/websocket", kite.ready().await);
        let (ws, _) = within(tokio_tungstenite::connect_async(url))
            .await
            .expect("connect");
        Raw { ws, next: 1000 }
    }

    async fn send(&mut self, msg: Value) {
        self.ws.send(Ws::text(msg.to_string())).await.expect("send");
    }

    /// Calls `method` and returns the whole response message.
    async fn call(&mut self, method: &str, with_args: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let options = json!({"kite": {"name": "raw"}, "withArgs": with_args, "responseCallback": "[Function]"});
        self.send(json!({"method": method, "arguments": [options], "callbacks": {id.to_string(): [0, "responseCallback"]}}))
            .await;
        loop {
            let msg = within(self.ws.next()).await.expect("closed").expect("read");
            let Ws::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["method"] == json!(id) {
                return v;
            }
        }
    }
}

/// A kite with `echo`, `give` (returns a function counting its calls in `given`) and
/// `leak` (returns a function counting into `leaked`, then a post handler fails, so the
/// result is never sent). `conns` collects the accepted connections.
fn kite(
    given: Arc<AtomicUsize>,
    leaked: Arc<AtomicUsize>,
    conns: Arc<Mutex<Vec<Connection>>>,
) -> Kite {
    let config = Config {
        ip: "127.0.0.1".into(),
        disable_authentication: true,
        ..Config::default()
    };
    let k = Kite::with_config("functions", "1.0.0", config).unwrap();
    k.handle("echo", |r: Request| async move {
        Ok::<_, KiteError>(r.with_args())
    })
    .unwrap();
    k.handle("give", move |_r: Request| {
        let given = given.clone();
        async move {
            let count = Callback::new(move |_| {
                given.fetch_add(1, Ordering::SeqCst);
            });
            Ok::<_, KiteError>(Payload::new(json!({"n": 1})).with_callback(["f"], count))
        }
    })
    .unwrap();
    k.add_method(
        Method::new("leak", move |_r: Request| {
            let leaked = leaked.clone();
            async move {
                let count = Callback::new(move |_| {
                    leaked.fetch_add(1, Ordering::SeqCst);
                });
                Ok::<_, KiteError>(Payload::list().callback(count))
            }
        })
        .post_handle(|_r: Request| async move {
            Err::<(), _>(KiteError::generic("post handler fails"))
        }),
    )
    .unwrap();
    k.on_connect(move |c| conns.lock().unwrap().push(c.clone()));
    k
}

#[tokio::test]
async fn strings_a_peer_sends_come_back_as_strings() {
    let k = kite(Arc::default(), Arc::default(), Arc::default());
    within(k.listen()).await.unwrap();
    let mut raw = Raw::connect(&k).await;
    for marker in former_markers() {
        let sent = json!([marker, {"k": marker, "list": [marker]}]);
        let r = raw.call("echo", sent.clone()).await;
        assert_eq!(r["arguments"][0]["result"], sent, "{marker:?}");
        assert_eq!(
            r["callbacks"],
            json!({}),
            "{marker:?} came back as a function"
        );
    }
    // The same through our own client.
    let caller = Kite::with_config("caller", "1.0.0", Config::default()).unwrap();
    let c = caller.client(&k.url().unwrap());
    within(c.dial()).await.unwrap();
    let sent = json!(former_markers());
    assert_eq!(within(c.call("echo", sent.clone())).await.unwrap(), sent);
}

#[tokio::test]
async fn no_connection_reaches_the_functions_of_another() {
    let (given, leaked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let conns = Arc::new(Mutex::new(Vec::new()));
    let k = kite(given.clone(), leaked.clone(), conns.clone());
    within(k.listen()).await.unwrap();

    // A: a result with a function whose post handler fails (nothing is sent, nothing kept),
    // then a result with a function.
    let mut a = Raw::connect(&k).await;
    let r = a.call("leak", json!([])).await;
    assert_eq!(r["arguments"][0]["error"]["message"], "post handler fails");
    assert_eq!(r["callbacks"], json!({}));
    let conn_a = conns.lock().unwrap()[0].clone();
    assert_eq!(
        conn_a.callback_count(),
        0,
        "the dropped result's function is gone"
    );
    let r = a.call("give", json!([])).await;
    let (id, path) = r["callbacks"]
        .as_object()
        .and_then(|m| m.iter().next())
        .map(|(id, p)| (id.parse::<u64>().unwrap(), p.clone()))
        .expect("a function in the result");
    assert_eq!(path, json!([0, "result", "f"]));
    assert_eq!(conn_a.callback_count(), 1);

    // B: every former marker is a string, and A's function id is nobody's here.
    let mut b = Raw::connect(&k).await;
    for marker in former_markers() {
        let r = b.call("echo", json!([marker])).await;
        assert_eq!(r["callbacks"], json!({}), "{marker:?}");
        assert_eq!(r["arguments"][0]["result"], json!([marker]));
    }
    for stolen in [id, 0, 1, 2] {
        b.send(json!({"method": stolen, "arguments": [], "callbacks": {}}))
            .await;
    }
    // A round trip after them: they have been read when it is answered.
    b.call("echo", json!([])).await;
    assert_eq!(given.load(Ordering::SeqCst), 0, "B called A's function");
    assert_eq!(
        leaked.load(Ordering::SeqCst),
        0,
        "B called the dropped function"
    );

    // The id is good on A's own connection.
    a.send(json!({"method": id, "arguments": ["hi"], "callbacks": {}}))
        .await;
    a.call("echo", json!([])).await;
    assert_eq!(given.load(Ordering::SeqCst), 1);

    // Functions a handler passes go with the connection: gone when it closes.
    drop(a);
    within(conn_a.closed()).await;
    assert_eq!(conn_a.callback_count(), 0);
}

#[tokio::test]
async fn functions_in_results_reach_the_caller() {
    let given = Arc::new(AtomicUsize::new(0));
    let k = kite(given.clone(), Arc::default(), Arc::default());
    within(k.listen()).await.unwrap();
    let caller = Kite::with_config("caller", "1.0.0", Config::default()).unwrap();
    let c = caller.client(&k.url().unwrap());
    within(c.dial()).await.unwrap();
    let conn = c.connection().unwrap();
    let result = within(conn.call_full("give", (), None)).await.unwrap();
    assert_eq!(result.values(), &[json!({"n": 1, "f": "[Function]"})]);
    let f = result
        .function_at([kite::dnode::Segment::from(0), "f".into()])
        .expect("the function");
    f.call(("x",)).await.unwrap();
    // A round trip after the call: it has been served when the answer arrives.
    within(c.call("echo", ())).await.unwrap();
    assert_eq!(given.load(Ordering::SeqCst), 1);
}
