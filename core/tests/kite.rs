//! The kite peer end to end, in process: methods, arguments, callbacks both ways, errors,
//! authentication, timeouts, disconnects and the callback table.
// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kite::auth::{mint_kite_key, mint_token, KeyPair};
use kite::protocol::Auth;
use kite::sockjs::Transport;
use kite::{Callback, Config, ErrorKind, Kite, MethodHandling, Request};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

fn config() -> Config {
    Config {
        ip: "127.0.0.1".into(),
        username: "testuser".into(),
        ..Config::default()
    }
}

fn math_kite(config: Config) -> Kite {
    let k = Kite::with_config("math", "1.0.0", config).unwrap();
    k.add_method(
        kite::Method::new("square", |req: Request| async move {
            let n: f64 = req.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .disable_authentication(),
    )
    .unwrap();
    k.add_method(
        kite::Method::new("echo", |req: Request| async move {
            Ok::<_, kite::KiteError>(Value::Array(req.args().values().to_vec()))
        })
        .disable_authentication(),
    )
    .unwrap();
    k.add_method(
        kite::Method::typed(
            "callback",
            |req: Request, (n, _f): (u32, Value)| async move {
                let f = req.args().function(1)?;
                for i in 0..n {
                    f.call(&[i]).await?;
                }
                Ok::<_, kite::KiteError>(n)
            },
        )
        .disable_authentication(),
    )
    .unwrap();
    k.add_method(
        kite::Method::new("fail", |_req: Request| async move {
            Err::<(), _>(anyhow::anyhow!("boom"))
        })
        .disable_authentication(),
    )
    .unwrap();
    k.add_method(
        kite::Method::new("slow", |req: Request| async move {
            req.cancelled().await;
            Ok::<_, kite::KiteError>(())
        })
        .disable_authentication(),
    )
    .unwrap();
    k.handle("secret", |req: Request| async move {
        Ok::<_, kite::KiteError>(req.username().to_string())
    })
    .unwrap();
    k
}

async fn start(k: &Kite) -> String {
    within(k.listen()).await.unwrap();
    k.url().unwrap()
}

fn caller() -> Kite {
    Kite::with_config("caller", "1.0.0", config()).unwrap()
}

#[tokio::test]
async fn calls_results_and_errors() {
    let server = math_kite(config());
    let url = start(&server).await;
    for transport in [Transport::WebSocket, Transport::XhrPolling] {
        let c = caller().client(&url);
        c.set_transport(transport);
        within(c.dial()).await.unwrap();
        assert_eq!(within(c.call("square", [4])).await.unwrap(), json!(16.0));
        assert_eq!(
            within(c.call("echo", json!([{"a": 1}, [true, null]])))
                .await
                .unwrap(),
            json!([{"a": 1}, [true, null]])
        );
        assert_eq!(within(c.call("echo", ())).await.unwrap(), json!([]));
        assert_eq!(within(c.call("echo", 5)).await.unwrap(), json!([5]));
        assert_eq!(
            within(c.call("kite.ping", ())).await.unwrap(),
            json!("pong")
        );
        let e = within(c.call("fail", ())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::GenericError);
        assert!(e.to_string().starts_with("boom ("), "{e}");
        let e = within(c.call("nope", ())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MethodNotFound);
        assert_eq!(e.to_kite_error().message, "Method not found: nope");
        let e = within(c.call("square", ["x"])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentError);
        assert_eq!(e.to_kite_error().id.len(), 16);
        let e = within(c.call("secret", ())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationError);
        assert_eq!(
            e.to_kite_error().message,
            "No authentication information is provided"
        );
        c.close();
    }
}

#[tokio::test]
async fn callbacks_both_ways_and_no_leaks() {
    let server = math_kite(config());
    let url = start(&server).await;
    let c = caller().client(&url);
    within(c.dial()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cb = Callback::new(move |args| {
        let _ = tx.send(args.one::<u32>().unwrap());
    });
    assert_eq!(
        within(c.call(
            "callback",
            kite::Payload::list().arg(3).callback(cb.clone())
        ))
        .await
        .unwrap(),
        json!(3)
    );
    for i in 0..3 {
        assert_eq!(within(rx.recv()).await, Some(i));
    }
    let conn = c.connection().unwrap();
    // The user callback stays (it may be called again); response callbacks are gone.
    assert_eq!(conn.callback_count(), 1);
    for _ in 0..50 {
        within(c.call("square", [2])).await.unwrap();
    }
    assert_eq!(conn.callback_count(), 1);
    // Timeouts free their response callback too.
    let e = within(c.call("slow", ()).timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(
        e.to_kite_error().message,
        "No response to \"slow\" method in 100ms"
    );
    assert_eq!(conn.callback_count(), 1);
    c.close();
    within(conn.closed()).await;
    assert_eq!(conn.callback_count(), 0);
}

#[tokio::test]
async fn server_calls_back_over_the_same_connection() {
    let server = math_kite(config());
    server
        .add_method(
            kite::Method::new("callMeBack", |req: Request| async move {
                let (method, args): (String, Value) = req.decode()?;
                Ok::<_, kite::KiteError>(req.client().call(&method, &args, None).await?)
            })
            .disable_authentication(),
        )
        .unwrap();
    let url = start(&server).await;
    let local = caller();
    local
        .handle("double", |req: Request| async move {
            Ok::<_, kite::KiteError>(req.args().one::<i64>()? * 2)
        })
        .unwrap();
    let c = local.client(&url);
    within(c.dial()).await.unwrap();
    assert_eq!(
        within(c.call("callMeBack", json!(["double", [21]])))
            .await
            .unwrap(),
        json!(42)
    );
}

#[tokio::test]
async fn disconnect_fails_calls_in_flight_and_cancels_requests() {
    let server = math_kite(config());
    let cancelled = Arc::new(tokio::sync::Notify::new());
    let c2 = cancelled.clone();
    server
        .add_method(
            kite::Method::new("hang", move |req: Request| {
                let c2 = c2.clone();
                async move {
                    req.cancelled().await;
                    c2.notify_one();
                    Ok::<_, kite::KiteError>(())
                }
            })
            .disable_authentication(),
        )
        .unwrap();
    let url = start(&server).await;
    let c = caller().client(&url);
    within(c.dial()).await.unwrap();
    let c1 = c.clone();
    let pending =
        tokio::spawn(async move { c1.call("hang", ()).timeout(Duration::from_secs(60)).await });
    // Wait until the call is in flight (its response callback is registered).
    let conn = c.connection().unwrap();
    while conn.callback_count() == 0 {
        tokio::task::yield_now().await;
    }
    c.close();
    let e = within(pending).await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnect);
    within(cancelled.notified()).await;
}

/// A kite key and a token from `kontrol` are accepted, and `secret` sees their users.
async fn accepts_kite_key_and_token(c: &kite::Client, kontrol: &KeyPair) {
    let key = mint_kite_key(kontrol, "kontrol", "alice", "http://kontrol/kite").unwrap();
    c.set_auth(Some(Auth::kite_key(key)));
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("secret", ())).await.unwrap(), json!("alice"));

    let token = mint_token(
        kontrol,
        "kontrol",
        "bob",
        "/testuser",
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .unwrap();
    c.set_auth(Some(Auth::token(token)));
    assert_eq!(within(c.call("secret", ())).await.unwrap(), json!("bob"));
}

/// A token for another audience and one of a foreign signer (which fires the token-expire
/// hook once) are refused, and so is an unknown authentication type.
async fn refuses_bad_credentials(c: &kite::Client, kontrol: &KeyPair) {
    let other = mint_token(
        kontrol,
        "kontrol",
        "bob",
        "/someoneelse",
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .unwrap();
    c.set_auth(Some(Auth::token(other)));
    assert_eq!(
        within(c.call("secret", ())).await.unwrap_err().kind(),
        ErrorKind::AuthenticationError
    );
    let foreign = KeyPair::generate().unwrap();
    let forged = mint_token(
        &foreign,
        "kontrol",
        "eve",
        "/",
        Duration::from_secs(60),
        Duration::ZERO,
    )
    .unwrap();
    c.set_auth(Some(Auth::token(forged)));
    let expired = Arc::new(AtomicUsize::new(0));
    let e2 = expired.clone();
    c.on_token_expire(move || {
        e2.fetch_add(1, Ordering::SeqCst);
    });
    let e = within(c.call("secret", ()))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.message, "token: token is expired");
    assert_eq!(expired.load(Ordering::SeqCst), 1);
    c.set_auth(Some(Auth {
        kind: "magic".into(),
        key: "x".into(),
    }));
    let e = within(c.call("secret", ()))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.message, "Unknown authentication type: magic");
}

/// A custom authenticator for the type `magic` accepts its word and refuses others.
async fn custom_authenticator(server: &Kite, c: &kite::Client) {
    server.add_authenticator("magic", |c| async move {
        if c.auth.key == "open sesame" {
            Ok("ali".to_string())
        } else {
            Err(kite::auth::AuthError::Rejected("wrong word".into()))
        }
    });
    c.set_auth(Some(Auth {
        kind: "magic".into(),
        key: "open sesame".into(),
    }));
    assert_eq!(within(c.call("secret", ())).await.unwrap(), json!("ali"));
    c.set_auth(Some(Auth {
        kind: "magic".into(),
        key: "nope".into(),
    }));
    assert_eq!(
        within(c.call("secret", ()))
            .await
            .unwrap_err()
            .to_kite_error()
            .message,
        "magic: wrong word"
    );
}

#[tokio::test]
async fn kite_key_and_token_authentication() {
    let kontrol = KeyPair::generate().unwrap();
    let server_config = Config {
        kontrol_key: kontrol.public_pem.clone(),
        kontrol_user: "kontrol".into(),
        ..config()
    };
    let server = math_kite(server_config);
    let url = start(&server).await;
    let c = caller().client(&url);
    accepts_kite_key_and_token(&c, &kontrol).await;
    // Wrong audience, foreign signer, unknown type.
    refuses_bad_credentials(&c, &kontrol).await;
    // A custom authenticator.
    custom_authenticator(&server, &c).await;
}

#[tokio::test]
async fn handlers_chain_throttle_and_duplicates() {
    let k = math_kite(config());
    assert!(matches!(
        k.handle("square", |_r: Request| async {
            Ok::<_, kite::KiteError>(())
        }),
        Err(kite::Error::DuplicateMethod(_))
    ));
    k.add_method(
        kite::Method::new("chain", |_r: Request| async {
            Ok::<_, kite::KiteError>("main")
        })
        .disable_authentication()
        .pre_handle(|_r: Request| async { Ok::<_, kite::KiteError>(Value::Null) })
        .post_handle(|_r: Request| async { Ok::<_, kite::KiteError>("post") })
        .method_handling(MethodHandling::ReturnLatest)
        .final_func(|_r, v, e| async move {
            (
                v.map(|v| json!(format!("final:{}", v.as_str().unwrap_or("")))),
                e,
            )
        }),
    )
    .unwrap();
    k.add_method(
        kite::Method::new("limited", |_r: Request| async {
            Ok::<_, kite::KiteError>(1)
        })
        .disable_authentication()
        .throttle(Duration::from_secs(3600), 1),
    )
    .unwrap();
    let url = start(&k).await;
    let c = caller().client(&url);
    within(c.dial()).await.unwrap();
    assert_eq!(
        within(c.call("chain", ())).await.unwrap(),
        json!("final:post")
    );
    within(c.call("limited", ())).await.unwrap();
    let e = within(c.call("limited", ()))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.kind, ErrorKind::RequestLimitError);
    assert_eq!(e.message, "The maximum request rate is exceeded.");
}

#[tokio::test]
async fn heartbeat_and_system_info() {
    let k = math_kite(Config {
        disable_authentication: true,
        ..config()
    });
    let url = start(&k).await;
    let c = caller().client(&url);
    within(c.dial()).await.unwrap();
    let info = within(c.call("kite.systemInfo", ())).await.unwrap();
    assert_eq!(info["state"], "RUNNING");
    assert!(info["diskTotal"].as_u64().unwrap() > 0);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let beat = Callback::new(move |_| {
        let _ = tx.send(());
    });
    within(c.call(
        "kite.heartbeat",
        kite::Payload::list().arg(0.05).callback(beat.clone()),
    ))
    .await
    .unwrap();
    for _ in 0..3 {
        within(rx.recv()).await.unwrap();
    }
}

#[tokio::test]
async fn dial_forever_reconnects() {
    let k = math_kite(config());
    let url = start(&k).await;
    let c = caller().client(&url);
    let connects = Arc::new(AtomicUsize::new(0));
    let n = connects.clone();
    c.on_connect(move || {
        n.fetch_add(1, Ordering::SeqCst);
    });
    within(c.dial_forever()).await;
    assert_eq!(within(c.call("square", [3])).await.unwrap(), json!(9.0));
    // Drop the connection from our side's transport: the client redials.
    c.connection().unwrap().close();
    while connects.load(Ordering::SeqCst) < 2 {
        within(c.connected()).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(within(c.call("square", [5])).await.unwrap(), json!(25.0));
    c.close();
}

#[tokio::test]
async fn serves_tls_from_pem_files() {
    use std::sync::Arc as StdArc;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("kite-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let k = math_kite(Config {
        tls: Some((cert_path, key_path)),
        ..config()
    });
    let url = start(&k).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(StdArc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(StdArc::new(tls));
    let tcp = within(tokio::net::TcpStream::connect((
        "127.0.0.1",
        k.port().unwrap(),
    )))
    .await
    .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = within(connector.connect(name, tcp)).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /kite/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    within(stream.read_to_end(&mut body)).await.ok();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"websocket\":true"), "{text}");
    // Plain HTTP on the TLS port is refused, and the kite keeps serving.
    let mut plain = within(tokio::net::TcpStream::connect((
        "127.0.0.1",
        k.port().unwrap(),
    )))
    .await
    .unwrap();
    plain
        .write_all(b"GET /kite/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut junk = Vec::new();
    let _ = within(plain.read_to_end(&mut junk)).await;
    assert!(!String::from_utf8_lossy(&junk).contains("websocket"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn raw_websocket_urls_skip_sockjs() {
    let server = math_kite(config());
    let url = start(&server).await;
    let raw = format!("{}/websocket", url.replacen("http://", "ws://", 1));
    let c = caller().client(&raw);
    within(c.dial()).await.unwrap();
    assert_eq!(c.connection().unwrap().transport(), "websocket-raw");
    assert_eq!(within(c.call("square", [6])).await.unwrap(), json!(36.0));
    assert_eq!(
        within(c.call("echo", json!([1, "two"]))).await.unwrap(),
        json!([1, "two"])
    );
}

/// Waits (bounded) until `weak` no longer upgrades: every task holding the kite has ended.
async fn freed(weak: &kite::WeakKite) {
    within(async {
        while weak.upgrade().is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn closed_kites_are_freed() {
    // A kite that served calls (kiteKey and token authenticators installed, a SockJS service,
    // connections, a heartbeat callback) and a caller kite whose client dialed it.
    let k = math_kite(config());
    let url = start(&k).await;
    let from = caller();
    let c = from.client(&url);
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("square", [3])).await.unwrap(), json!(9.0));
    let (weak_k, weak_caller) = (k.downgrade(), from.downgrade());
    k.close();
    from.close();
    drop((k, from, c));
    freed(&weak_k).await;
    freed(&weak_caller).await;

    // A listening kite lives on without handles, until closed through a weak one.
    let k = math_kite(config());
    let url = start(&k).await;
    let weak = k.downgrade();
    drop(k);
    let c = caller().client(&url);
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("square", [4])).await.unwrap(), json!(16.0));
    weak.upgrade().expect("a listening kite is alive").close();
    freed(&weak).await;

    // A kite that never listened is freed with its last handle.
    let k = math_kite(config());
    let weak = k.downgrade();
    drop(k);
    assert!(weak.upgrade().is_none());
}
