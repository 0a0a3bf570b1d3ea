//! WebRTC signalling (issue 14): a kite with `use_webrtc` relays `kite.handleWebRTC`
//! messages between the kites connected to it, by kite id.
//!
//! - two of our kites signal through our Kontrol, and the relay's table empties as they
//!   leave;
//! - a Go reference kite (`tests/interop/go/webrtcpeer peer`) signals with ours through our
//!   Kontrol, both ways; our kites signal through the Go reference relay
//!   (`webrtcpeer relay`, a kite built with `UseWebRTC`);
//! - bad messages (invalid type, invalid UTF-8, wrong shapes, to oneself, to a kite that
//!   left, a kite claiming another's id) get clear errors and leave other kites unaffected.
//!
//! Needs `tests/interop/go/bin/webrtcpeer` (`scripts/setup.sh` or `tests/interop/go/build.sh`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::peers::{drain, go_bin, tail};
use futures_util::{SinkExt, StreamExt};
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{Kontrol, KontrolConfig};
use kite::protocol::SignalMessage;
use kite::{Config, Error, ErrorKind, Kite, KiteError};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// Waits (bounded) until `f` holds, re-checking every few milliseconds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Our Kontrol with `use_webrtc`, in process on 127.0.0.1:0.
async fn start_kontrol() -> Kontrol {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
            use_webrtc: true,
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

/// One of our kites with a kite key from `kontrol` (optionally with a fixed `id`), whose
/// `kite.handleWebRTC` hands each message over; a payload `{"fail": TEXT}` is answered
/// with the error TEXT.
async fn signalling_kite(
    kontrol: &Kontrol,
    name: &str,
    id: Option<&str>,
) -> (Kite, UnboundedReceiver<SignalMessage>) {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        ..Config::default()
    };
    config
        .use_kite_key(&kontrol.new_kite_key(name).await.unwrap())
        .unwrap();
    if let Some(id) = id {
        config.id = id.into();
    }
    let k = Kite::with_config(name, "1.0.0", config).unwrap();
    let (tx, rx) = unbounded_channel();
    k.handle_webrtc(move |msg: SignalMessage| {
        let tx = tx.clone();
        async move {
            if let Some(text) = msg.payload.as_ref().and_then(|p| p["fail"].as_str()) {
                return Err(KiteError::generic(text));
            }
            let _ = tx.send(msg);
            Ok(())
        }
    })
    .unwrap();
    (k, rx)
}

fn remote(e: Error) -> KiteError {
    match e {
        Error::Remote(e) => e,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn our_kites_signal_through_our_kontrol() {
    let kontrol = start_kontrol().await;
    let relay = kontrol.kite().clone();
    let (a, mut a_rx) = signalling_kite(&kontrol, "alice", None).await;
    let (b, mut b_rx) = signalling_kite(&kontrol, "bob", None).await;
    let (a_id, b_id) = (a.identity().id.clone(), b.identity().id.clone());

    // b has not signalled yet: the relay does not know it (the reference's error).
    let offer = SignalMessage::new("OFFER", &b_id, Some(json!({"sdp": {"type": "offer"}})));
    let e = remote(within("send", a.send_webrtc(&offer)).await.unwrap_err());
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::GenericError, "dst not registered")
    );
    assert_eq!(relay.webrtc_peers(), ids(&[&a_id]));

    // b answers a: a's handler gets it, with src written by the relay.
    let payload = json!({"sdp": {"type": "answer", "sdp": "v=0"}, "label": "ü €"});
    let mut answer = SignalMessage::new("answer", &a_id, Some(payload.clone()));
    answer.src = "forged".into();
    within("send", b.send_webrtc(&answer)).await.unwrap();
    let got = within("a receives", a_rx.recv()).await.unwrap();
    assert_eq!(got.src, b_id, "the relay writes the sender's id");
    assert_eq!(
        (got.kind.as_str(), got.dst.as_str()),
        ("answer", a_id.as_str())
    );
    assert_eq!(got.payload, Some(payload));

    // Now a reaches b, and b's handler error comes back to a.
    within("send", a.send_webrtc(&offer)).await.unwrap();
    let got = within("b receives", b_rx.recv()).await.unwrap();
    assert_eq!(
        (got.src.as_str(), got.kind.as_str()),
        (a_id.as_str(), "OFFER")
    );
    let failing = SignalMessage::new("CANDIDATE", &b_id, Some(json!({"fail": "no candidates"})));
    let e = remote(within("send", a.send_webrtc(&failing)).await.unwrap_err());
    assert_eq!(e.message, "no candidates");
    assert_eq!(relay.webrtc_peers(), ids(&[&a_id, &b_id]));

    // b leaves: its entry goes, and a's messages to it get the reference's error.
    b.shutdown().await;
    until("b leaves the relay", || {
        relay.webrtc_peers() == ids(&[&a_id])
    })
    .await;
    let e = remote(within("send", a.send_webrtc(&offer)).await.unwrap_err());
    assert_eq!(e.message, "dst not registered");
    let leave = SignalMessage::new("LEAVE", &b_id, None);
    assert!(within("send", a.send_webrtc(&leave)).await.is_err());

    a.shutdown().await;
    until("the relay's table empties", || {
        relay.webrtc_peers().is_empty()
    })
    .await;
    kontrol.close();
}

/// A dnode call of `kite.handleWebRTC` as raw text: `message` is spliced in verbatim (so it
/// can carry escapes serde would not write), from kite `id` with `key` as kiteKey.
fn raw_call(id: &str, key: &str, message: &str, callback: u64) -> String {
    let options = json!({
        "kite": {"username": "alice", "environment": "unknown", "name": "raw", "version": "1.0.0",
                 "region": "unknown", "hostname": "h", "id": id},
        "authentication": {"type": "kiteKey", "key": key},
        "responseCallback": "[Function]",
    })
    .to_string();
    let options = format!(
        r#"{},"withArgs":[{message}]}}"#,
        options.trim_end_matches('}')
    );
    format!(
        r#"{{"method":"kite.handleWebRTC","arguments":[{options}],"callbacks":{{"{callback}":[0,"responseCallback"]}}}}"#
    )
}

/// Sends `text` as one message over a raw websocket (`/kite/websocket`: no SockJS framing)
/// and returns the error of the response to callback `callback`.
async fn raw_ws_error(ws: &mut RawWs, text: &str, callback: u64) -> Value {
    within("send", ws.send(Ws::Text(text.to_string().into())))
        .await
        .unwrap();
    loop {
        let msg = within("a response", ws.next()).await.unwrap().unwrap();
        let Ws::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["method"] == json!(callback) {
            return v["arguments"][0]["error"].clone();
        }
    }
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Wrong shapes, unknown types, no or self destination, an unknown one: each its error.
async fn assert_bad_messages(a: &Kite, a_id: &str, b_id: &str) {
    let kc = within("a's Kontrol connection", a.kontrol()).await.unwrap();
    let cases: Vec<(&str, Value, ErrorKind, &str)> = vec![
        (
            "a string",
            json!(["OFFER"]),
            ErrorKind::ArgumentError,
            "want an object with type, dst and payload, got a string",
        ),
        (
            "an array",
            json!([[1, 2]]),
            ErrorKind::ArgumentError,
            "got an array",
        ),
        (
            "no argument",
            json!([]),
            ErrorKind::ArgumentError,
            "want one argument, got none",
        ),
        (
            "unknown type",
            json!([{"type": "JOIN", "dst": b_id}]),
            ErrorKind::ArgumentError,
            "invalid signalling type \"JOIN\": want one of OFFER, ANSWER, CANDIDATE, LEAVE",
        ),
        (
            "no type",
            json!([{"dst": b_id}]),
            ErrorKind::ArgumentError,
            "invalid signalling type \"\"",
        ),
        (
            "type not a string",
            json!([{"type": 1, "dst": b_id}]),
            ErrorKind::ArgumentError,
            "invalid type: integer `1`, expected a string",
        ),
        (
            "dst not a string",
            json!([{"type": "OFFER", "dst": {"id": b_id}}]),
            ErrorKind::ArgumentError,
            "invalid type: map, expected a string",
        ),
        (
            "no dst",
            json!([{"type": "OFFER", "payload": 1}]),
            ErrorKind::GenericError,
            "dst not set",
        ),
        (
            "to itself",
            json!([{"type": "OFFER", "dst": a_id}]),
            ErrorKind::ArgumentError,
            "dst is the sender itself",
        ),
        (
            "to nobody",
            json!([{"type": "offer", "dst": "nobody"}]),
            ErrorKind::GenericError,
            "dst not registered",
        ),
    ];
    for (what, args, kind, want) in cases {
        let e = remote(
            within(what, kc.call("kite.handleWebRTC", args))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.kind, kind, "{what}: {e:?}");
        assert!(
            e.message.contains(want),
            "{what}: {:?} lacks {want:?}",
            e.message
        );
    }
}

/// Raw frames: a lone surrogate (what invalid UTF-8 becomes) in dst, one connection trying
/// to signal under a second id, and invalid UTF-8 bytes; the entry leaves with the connection.
async fn assert_raw_frames(kontrol: &Kontrol, b_id: &str) {
    let relay = kontrol.kite().clone();
    let key = kontrol.new_kite_key("alice").await.unwrap();
    let url = format!("ws://{}/kite/websocket", relay.ready().await);
    let (mut ws, _) = within(
        "raw websocket",
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .unwrap();
    let first = raw_call("raw-1", &key, r#"{"type":"OFFER","dst":"nobody"}"#, 3);
    let e = raw_ws_error(&mut ws, &first, 3).await;
    assert_eq!(e["message"], "dst not registered", "{e}");
    let bad_utf8 = raw_call("raw-1", &key, r#"{"type":"OFFER","dst":"\ud800x"}"#, 1);
    let e = raw_ws_error(&mut ws, &bad_utf8, 1).await;
    assert_eq!(e["type"], "argumentError", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("invalid UTF-8"),
        "{e}"
    );
    let second = raw_call(
        "raw-2",
        &key,
        &format!(r#"{{"type":"OFFER","dst":"{b_id}"}}"#),
        2,
    );
    let e = raw_ws_error(&mut ws, &second, 2).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("already signals as kite \"raw-1\""),
        "{e}"
    );
    // Invalid UTF-8 bytes in a websocket frame end that connection, nothing else.
    within(
        "send",
        ws.send(Ws::Binary(b"[\"\xff\xfe\"]".to_vec().into())),
    )
    .await
    .unwrap();
    let ended = within("the connection ends", async {
        loop {
            match ws.next().await {
                Some(Ok(Ws::Close(frame))) => return frame.map(|f| f.reason.to_string()),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await;
    assert_eq!(ended.as_deref(), Some("Invalid UTF-8"));
    until("raw-1 leaves", || {
        !relay.webrtc_peers().contains(&"raw-1".to_string())
    })
    .await;
}

#[tokio::test]
async fn bad_signalling_messages_get_clear_errors() {
    let kontrol = start_kontrol().await;
    let relay = kontrol.kite().clone();
    let (a, _a_rx) = signalling_kite(&kontrol, "alice", None).await;
    let (b, mut b_rx) = signalling_kite(&kontrol, "bob", None).await;
    let (a_id, b_id) = (a.identity().id.clone(), b.identity().id.clone());
    within(
        "b signals",
        b.send_webrtc(&SignalMessage::new("LEAVE", "nobody", None)),
    )
    .await
    .unwrap_err();

    assert_bad_messages(&a, &a_id, &b_id).await;
    assert!(b_rx.try_recv().is_err(), "nothing reached b");

    // A kite claiming a's id, while a is connected, is refused; a is unaffected.
    let (mallory, _m_rx) = signalling_kite(&kontrol, "mallory", Some(&a_id)).await;
    let e = remote(
        within(
            "mallory sends",
            mallory.send_webrtc(&SignalMessage::new("OFFER", &b_id, None)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        e.message,
        format!("kite id {a_id:?} is held by another live connection")
    );
    assert!(b_rx.try_recv().is_err(), "nothing from mallory reached b");
    within(
        "a sends",
        a.send_webrtc(&SignalMessage::new("OFFER", &b_id, None)),
    )
    .await
    .unwrap();
    assert_eq!(within("b receives", b_rx.recv()).await.unwrap().src, a_id);

    assert_raw_frames(&kontrol, &b_id).await;

    // Everything still works for a and b; when all leave the table empties.
    within(
        "a sends",
        a.send_webrtc(&SignalMessage::new("CANDIDATE", &b_id, None)),
    )
    .await
    .unwrap();
    mallory.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
    until("the relay's table empties", || {
        relay.webrtc_peers().is_empty()
    })
    .await;
    kontrol.close();
}

/// `webrtcpeer peer`: a Go reference kite that signals through its Kontrol; its stdout
/// lines arrive on `lines`.
struct GoPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: UnboundedReceiver<Value>,
    stderr: Arc<std::sync::Mutex<String>>,
    id: String,
    ready: Value,
}

impl GoPeer {
    async fn start(args: &[&str]) -> GoPeer {
        let mut child = Command::new(go_bin("webrtcpeer"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start webrtcpeer");
        let stderr = drain(child.stderr.take().unwrap());
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, lines) = unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(l)) = out.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut p = GoPeer {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            id: String::new(),
            ready: Value::Null,
        };
        p.ready = p.next("ready line").await;
        p.id = p.ready["id"].as_str().unwrap().to_string();
        p
    }

    async fn next(&mut self, what: &str) -> Value {
        match tokio::time::timeout(WAIT, self.lines.recv()).await {
            Ok(Some(v)) => v,
            _ => panic!("webrtcpeer: no {what}; stderr:\n{}", tail(&self.stderr)),
        }
    }

    /// Sends `msg` with `SendWebRTCRequest`; its error, if any.
    async fn send(&mut self, msg: Value) -> Option<String> {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let v = self.next("send result").await;
        assert!(v.get("sent").is_some(), "{v}");
        v["error"].as_str().map(str::to_string)
    }

    async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(WAIT, self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
        }
    }
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("webrtc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

#[tokio::test]
async fn go_kite_signals_with_ours_through_our_kontrol() {
    let kontrol = start_kontrol().await;
    let relay = kontrol.kite().clone();
    let dir = scratch();
    let key = dir.0.join("go.key");
    std::fs::write(&key, kontrol.new_kite_key("gopher").await.unwrap()).unwrap();
    let mut go = GoPeer::start(&["peer", "--kite-key", key.to_str().unwrap()]).await;
    let (a, mut a_rx) = signalling_kite(&kontrol, "alice", None).await;
    let a_id = a.identity().id.clone();

    // The Go kite has not signalled: not registered, as the reference says.
    let offer = SignalMessage::new("OFFER", &go.id, Some(json!({"sdp": {"type": "offer"}})));
    let e = remote(within("send", a.send_webrtc(&offer)).await.unwrap_err());
    assert_eq!(e.message, "dst not registered");

    // Go → ours.
    let err = go
        .send(json!({"type": "ANSWER", "dst": a_id, "payload": {"candidate": {"sdpMid": "0"}}}))
        .await;
    assert_eq!(err, None);
    let got = within("a receives", a_rx.recv()).await.unwrap();
    assert_eq!(
        (got.src.as_str(), got.kind.as_str()),
        (go.id.as_str(), "ANSWER")
    );
    assert_eq!(got.payload, Some(json!({"candidate": {"sdpMid": "0"}})));

    // Ours → Go, and the Go handler's error back to us.
    within("send", a.send_webrtc(&offer)).await.unwrap();
    let got = go.next("a received message").await;
    assert_eq!(
        got["received"],
        json!({"type": "OFFER", "src": a_id, "dst": go.id, "payload": {"sdp": {"type": "offer"}}})
    );
    let failing = SignalMessage::new("CANDIDATE", &go.id, Some(json!({"fail": "go says no"})));
    let e = remote(within("send", a.send_webrtc(&failing)).await.unwrap_err());
    assert_eq!(e.message, "go says no");
    // Our handler's error back to Go; and Go's bad type refused with our error.
    let err = go
        .send(json!({"type": "LEAVE", "dst": a_id, "payload": {"fail": "rust says no"}}))
        .await;
    assert!(err.unwrap().contains("rust says no"));
    let err = go
        .send(json!({"type": "HELLO", "dst": a_id}))
        .await
        .unwrap();
    assert!(err.contains("invalid signalling type \"HELLO\""), "{err}");
    assert_eq!(relay.webrtc_peers(), ids(&[&a_id, &go.id]));

    go.stop().await;
    until("the Go kite leaves the relay", || {
        relay.webrtc_peers() == ids(&[&a_id])
    })
    .await;
    a.shutdown().await;
    until("the relay's table empties", || {
        relay.webrtc_peers().is_empty()
    })
    .await;
    kontrol.close();
}

#[tokio::test]
async fn our_kites_signal_through_a_go_relay() {
    let go = GoPeer::start(&["relay"]).await;
    let go_url = go.ready["url"].as_str().unwrap().to_string();
    let kite = |name: &str| {
        let k = Kite::with_config(name, "1.0.0", Config::default()).unwrap();
        let (tx, rx) = unbounded_channel::<SignalMessage>();
        k.handle_webrtc(move |m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m);
                Ok(())
            }
        })
        .unwrap();
        (k, rx)
    };
    let (a, mut a_rx) = kite("alice");
    let (b, mut b_rx) = kite("bob");
    let (ca, cb) = (a.client(&go_url), b.client(&go_url));
    within("a dials", ca.dial()).await.unwrap();
    within("b dials", cb.dial()).await.unwrap();
    let (a_id, b_id) = (a.identity().id.clone(), b.identity().id.clone());

    let e = remote(
        within(
            "a sends",
            ca.send_webrtc(&SignalMessage::new("OFFER", &b_id, None)),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.message.contains("not registered"), "{e:?}");
    within(
        "b sends",
        cb.send_webrtc(&SignalMessage::new(
            "ANSWER",
            &a_id,
            Some(json!({"sdp": "x"})),
        )),
    )
    .await
    .unwrap();
    let got = within("a receives", a_rx.recv()).await.unwrap();
    assert_eq!(
        (got.src.as_str(), got.payload),
        (b_id.as_str(), Some(json!({"sdp": "x"})))
    );
    within(
        "a sends",
        ca.send_webrtc(&SignalMessage::new("OFFER", &b_id, None)),
    )
    .await
    .unwrap();
    let got = within("b receives", b_rx.recv()).await.unwrap();
    assert_eq!(
        (got.src.as_str(), got.kind.as_str()),
        (a_id.as_str(), "OFFER")
    );
    ca.close();
    cb.close();
    go.stop().await;
}
