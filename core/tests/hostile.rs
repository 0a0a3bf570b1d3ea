//! Malformed and hostile messages, table driven: each gets the right kite error or is
//! dropped (logged), the connection and the process stay up, and a concurrent healthy
//! client is unaffected.
// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use kite::auth::{mint_kite_key, mint_token, KeyPair};
use kite::{Config, Kite, Request};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

/// What a hostile message must produce.
enum Expect {
    /// No reply; the connection stays usable.
    Dropped,
    /// A response whose error has this type (and, if given, a message containing this).
    Error(&'static str, &'static str),
    /// A successful response.
    Ok,
}

fn call(method: &str, with_args: Value, extra: Value) -> String {
    let mut options = json!({"kite": {"name": "hostile"}, "withArgs": with_args, "responseCallback": "[Function]"});
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    json!({"method": method, "arguments": [options], "callbacks": {"1000": [0, "responseCallback"]}}).to_string()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A kite `target` (64 KiB message limit, trusting `kontrol`) with an unauthenticated
/// `square` and an authenticated `secret`; returns it and its raw websocket URL.
async fn start_target(kontrol: &KeyPair) -> (Kite, String) {
    let config = Config {
        ip: "127.0.0.1".into(),
        username: "testuser".into(),
        kontrol_key: kontrol.public_pem.clone(),
        kontrol_user: "kontrol".into(),
        sockjs: kite::sockjs::ServerConfig {
            max_message_size: 64 * 1024,
            ..Default::default()
        },
        ..Config::default()
    };
    let k = Kite::with_config("target", "1.0.0", config).unwrap();
    k.add_method(
        kite::Method::typed("square", |_r: Request, (n,): (f64,)| async move {
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )
    .unwrap();
    k.handle("secret", |r: Request| async move {
        Ok::<_, kite::KiteError>(r.username().to_string())
    })
    .unwrap();
    let addr = within(k.listen()).await.unwrap();
    (k, format!("ws://{addr}/kite/websocket"))
}

/// Credentials good and bad for the table.
struct Tokens {
    good_token: String,
    forged: String,
    expired: String,
    alg_none: String,
    hs256: String,
    foreign_key: String,
}

fn tokens(kontrol: &KeyPair, foreign: &KeyPair) -> Tokens {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let good_token = mint_token(
        kontrol,
        "kontrol",
        "alice",
        "/testuser",
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .unwrap();
    let forged = mint_token(
        foreign,
        "kontrol",
        "mallory",
        "/",
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .unwrap();
    let expired = kite::auth::sign(
        kontrol,
        &kite::auth::KiteClaims {
            iss: "kontrol".into(),
            sub: "bob".into(),
            aud: "/".into(),
            exp: now - 3600,
            iat: now - 7200,
            ..Default::default()
        },
    )
    .unwrap();
    let claims = json!({"iss": "kontrol", "sub": "root", "aud": "/", "exp": now + 3600});
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let hs256 = {
        // HS256 "signed" with the public key as the HMAC secret.
        let key = jsonwebtoken::EncodingKey::from_secret(kontrol.public_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let foreign_key = mint_kite_key(foreign, "kontrol", "mallory", "http://evil/kite").unwrap();
    Tokens {
        good_token,
        forged,
        expired,
        alg_none,
        hs256,
        foreign_key,
    }
}

/// Every hostile message: its name, its text, and what it must produce.
fn hostile_table(t: &Tokens) -> Vec<(&'static str, String, Expect)> {
    let auth = |t: &str, k: &str| json!({"authentication": {"type": t, "key": k}});
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    vec![
        ("not JSON", "hello".into(), Expect::Dropped),
        ("empty frame", "".into(), Expect::Dropped),
        ("array", "[1,2,3]".into(), Expect::Dropped),
        ("string", "\"square\"".into(), Expect::Dropped),
        ("number", "42".into(), Expect::Dropped),
        ("method bool", r#"{"method":true,"arguments":[]}"#.into(), Expect::Dropped),
        ("method float", r#"{"method":1.5,"arguments":[]}"#.into(), Expect::Dropped),
        ("method negative", r#"{"method":-3,"arguments":[]}"#.into(), Expect::Dropped),
        ("method object", r#"{"method":{},"arguments":[]}"#.into(), Expect::Dropped),
        ("no method", r#"{"arguments":[]}"#.into(), Expect::Dropped),
        ("arguments object", r#"{"method":"square","arguments":{}}"#.into(), Expect::Dropped),
        ("callbacks array", r#"{"method":"square","arguments":[],"callbacks":[]}"#.into(), Expect::Dropped),
        ("callback id not a number", r#"{"method":"square","arguments":[],"callbacks":{"x":[0]}}"#.into(), Expect::Dropped),
        ("callback path not array", r#"{"method":"square","arguments":[],"callbacks":{"1":"p"}}"#.into(), Expect::Dropped),
        ("callback path bad element", r#"{"method":"square","arguments":[],"callbacks":{"1":[0,true]}}"#.into(), Expect::Dropped),
        ("unknown callback id", r#"{"method":123456,"arguments":[1]}"#.into(), Expect::Dropped),
        ("no responseCallback", r#"{"method":"square","arguments":[{"withArgs":[2]}]}"#.into(), Expect::Dropped),
        ("deeply nested JSON", format!(r#"{{"method":"square","arguments":[{{"withArgs":{deep}}}]}}"#), Expect::Dropped),
        ("number out of range", r#"{"method":"square","arguments":[{"withArgs":[1e400]}],"callbacks":{"1000":[0,"responseCallback"]}}"#.into(), Expect::Dropped),
        ("options not an object", r#"{"method":"square","arguments":["x"],"callbacks":{"1000":[0,"responseCallback"]}}"#.into(), Expect::Error("argumentError", "call options")),
        ("options missing", r#"{"method":"square","arguments":[],"callbacks":{"1000":[0,"responseCallback"]}}"#.into(), Expect::Error("argumentError", "call options")),
        ("kite not an object", call("square", json!([2]), json!({"kite": 7})), Expect::Error("argumentError", "call options")),
        ("unknown method", call("nope", json!([]), json!({})), Expect::Error("methodNotFound", "Method not found: nope")),
        ("wrong type", call("square", json!(["four"]), json!({})), Expect::Error("argumentError", "")),
        ("missing argument", call("square", json!([]), json!({})), Expect::Error("argumentError", "")),
        ("null withArgs", call("square", Value::Null, json!({})), Expect::Error("argumentError", "")),
        ("object for number", call("square", json!([{"n": 2}]), json!({})), Expect::Error("argumentError", "")),
        ("huge integer", call("square", json!([123456789012345678901234567890u128 as f64]), json!({})), Expect::Ok),
        ("scalar withArgs", call("square", json!(3), json!({})), Expect::Ok),
        ("string path indices", r#"{"method":"square","arguments":[{"withArgs":[3],"responseCallback":"[Function]"}],"callbacks":{"1000":["0","responseCallback"]}}"#.into(), Expect::Ok),
        ("callback path into nowhere", r#"{"method":"square","arguments":[{"withArgs":[3],"responseCallback":"[Function]"}],"callbacks":{"1000":[0,"responseCallback"],"7":[0,"withArgs",9,"x"]}}"#.into(), Expect::Ok),
        ("no authentication", call("secret", json!([]), json!({})), Expect::Error("authenticationError", "No authentication information is provided")),
        ("authentication not an object", call("secret", json!([]), json!({"authentication": "abc"})), Expect::Error("argumentError", "call options")),
        ("authentication without key", call("secret", json!([]), json!({"authentication": {"type": "token"}})), Expect::Error("authenticationError", "token: ")),
        ("unknown auth type", call("secret", json!([]), auth("sessionID", "x")), Expect::Error("authenticationError", "Unknown authentication type: sessionID")),
        ("garbage token", call("secret", json!([]), auth("token", "a.b.c")), Expect::Error("authenticationError", "token: ")),
        ("forged token", call("secret", json!([]), auth("token", &t.forged)), Expect::Error("authenticationError", "token: token is expired")),
        ("expired token", call("secret", json!([]), auth("token", &t.expired)), Expect::Error("authenticationError", "token: token is expired by")),
        ("alg none token", call("secret", json!([]), auth("token", &t.alg_none)), Expect::Error("authenticationError", "token: ")),
        ("HS256 with public key", call("secret", json!([]), auth("token", &t.hs256)), Expect::Error("authenticationError", "token: ")),
        ("foreign kite key", call("secret", json!([]), auth("kiteKey", &t.foreign_key)), Expect::Error("authenticationError", "kiteKey: ")),
        ("token as kite key", call("secret", json!([]), auth("kiteKey", &t.good_token)), Expect::Error("authenticationError", "kiteKey: ")),
        ("valid token", call("secret", json!([]), auth("token", &t.good_token)), Expect::Ok),
        ("bad heartbeat interval", call("kite.heartbeat", json!([-1, "[Function]"]), auth("token", &t.good_token)), Expect::Error("argumentError", "")),
    ]
}

/// A `kite.ping` call whose response callback has this id.
fn ping(id: u64) -> String {
    json!({"method": "kite.ping", "arguments": [{"kite": {}, "withArgs": [], "responseCallback": "[Function]"}], "callbacks": {id.to_string(): [0, "responseCallback"]}}).to_string()
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `msg` followed by a ping and returns every reply that came before the pong: the
/// ping tells whether the hostile message was answered (and how) or dropped, without
/// waiting on a timer.
async fn replies_before_pong(ws: &mut RawWs, name: &str, msg: String, ping_id: u64) -> Vec<Value> {
    ws.send(Ws::text(msg)).await.unwrap();
    ws.send(Ws::text(ping(ping_id))).await.unwrap();
    let mut replies = Vec::new();
    loop {
        let frame = match within(ws.next()).await {
            Some(Ok(Ws::Text(t))) => t.to_string(),
            other => panic!("{name}: connection lost: {other:?}"),
        };
        let v: Value = serde_json::from_str(&frame).unwrap();
        if v["method"] == json!(ping_id) {
            assert_eq!(v["arguments"][0]["result"], "pong", "{name}");
            break;
        }
        replies.push(v);
    }
    replies
}

fn assert_replies(name: &str, replies: &[Value], expect: &Expect) {
    match expect {
        Expect::Dropped => assert!(
            replies.is_empty(),
            "{name}: expected no reply, got {replies:?}"
        ),
        Expect::Ok => {
            assert_eq!(replies.len(), 1, "{name}: {replies:?}");
            assert_eq!(
                replies[0]["arguments"][0]["error"],
                Value::Null,
                "{name}: {replies:?}"
            );
        }
        Expect::Error(kind, text) => {
            assert_eq!(replies.len(), 1, "{name}: {replies:?}");
            let err = &replies[0]["arguments"][0]["error"];
            assert_eq!(err["type"], *kind, "{name}: {err}");
            let message = err["message"].as_str().unwrap_or("");
            assert!(message.contains(text), "{name}: {message:?} lacks {text:?}");
            if *kind != "methodNotFound" {
                assert_eq!(
                    err["id"].as_str().map(str::len),
                    Some(16),
                    "{name}: request id"
                );
            }
        }
    }
}

/// An oversize message closes only its own connection: `ws` gets a 1009 close, the healthy
/// client keeps working and a new connection to `raw_url` answers a ping.
async fn oversize_closes_only_its_connection(
    ws: &mut RawWs,
    healthy: &kite::Client,
    raw_url: &str,
) {
    let big = call("square", json!(["x".repeat(100 * 1024)]), json!({}));
    ws.send(Ws::text(big)).await.ok();
    loop {
        match within(ws.next()).await {
            Some(Ok(Ws::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1009);
                assert_eq!(f.reason.as_str(), "Message too big");
                break;
            }
            Some(Ok(Ws::Text(_) | Ws::Ping(_) | Ws::Pong(_))) => continue,
            other => panic!("expected a 1009 close, got {other:?}"),
        }
    }
    assert_eq!(
        within(healthy.call("square", [4])).await.unwrap(),
        json!(16.0)
    );
    let (mut again, _) = within(tokio_tungstenite::connect_async(raw_url))
        .await
        .unwrap();
    again.send(Ws::text(ping(1))).await.unwrap();
    match within(again.next()).await {
        Some(Ok(Ws::Text(t))) => assert!(t.contains("pong")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hostile_messages_table() {
    let kontrol = KeyPair::generate().unwrap();
    let foreign = KeyPair::generate().unwrap();
    let (k, raw_url) = start_target(&kontrol).await;

    // A healthy client runs beside the whole table.
    let healthy_kite = Kite::with_config("healthy", "1.0.0", Config::default()).unwrap();
    let healthy = healthy_kite.client(&k.url().unwrap());
    within(healthy.dial()).await.unwrap();

    let table = hostile_table(&tokens(&kontrol, &foreign));
    assert!(table.len() >= 30);

    let (mut ws, _) = within(tokio_tungstenite::connect_async(&raw_url))
        .await
        .unwrap();
    let mut next_ping = 5000u64;
    for (name, msg, expect) in table {
        // Follow every message with a ping: the next reply tells whether the hostile one was
        // answered (and how) or dropped, without waiting on a timer.
        next_ping += 1;
        let replies = replies_before_pong(&mut ws, name, msg, next_ping).await;
        assert_replies(name, &replies, &expect);
        // The healthy client is unaffected throughout.
        assert_eq!(
            within(healthy.call("square", [3])).await.unwrap(),
            json!(9.0),
            "{name}"
        );
    }

    // An oversize message closes only its own connection.
    oversize_closes_only_its_connection(&mut ws, &healthy, &raw_url).await;
}
