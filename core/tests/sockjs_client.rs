//! The SockJS client against our server (every client transport) and against small
//! hand-made servers that misbehave in the ways the client must survive.
// Test helpers outside #[test] functions unwrap too (clippy's allow-unwrap-in-tests covers
// only the test functions themselves).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use common::*;
use kite::sockjs::{
    connect, ClientConfig, CloseReason, ConnectError, ServeOptions, ServerConfig, Session,
    SockJsServer, Transport,
};

fn cfg(transport: Transport) -> ClientConfig {
    ClientConfig {
        transport,
        ..ClientConfig::default()
    }
}

const TRICKY: &[&str] = &[
    "plain",
    "",
    "quote \" and \\ backslash",
    "line\nbreak\r\t",
    "\u{0}\u{1f}",
    "ünïcödé ☃ 🚀",
    "\u{2028}\u{2029}\u{fff0}\u{ffff}",
];

async fn echo_roundtrip(session: &Session) {
    for m in TRICKY {
        within(session.send(*m)).await.unwrap();
    }
    let big = "y".repeat(256 * 1024);
    within(session.send(big.clone())).await.unwrap();
    for m in TRICKY {
        assert_eq!(within(session.recv()).await.as_deref(), Some(*m));
    }
    assert_eq!(within(session.recv()).await.unwrap(), big);
}

#[tokio::test]
async fn every_client_transport_against_our_server() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    for (transport, name) in [
        (Transport::WebSocket, "websocket"),
        (Transport::XhrPolling, "xhr-polling"),
        (Transport::Auto, "websocket"),
    ] {
        let session = within(connect(&srv.url("/echo"), &cfg(transport)))
            .await
            .unwrap();
        assert_eq!(session.transport(), name);
        echo_roundtrip(&session).await;
        session.close();
        assert_eq!(within(session.recv()).await, None);
    }
}

#[tokio::test]
async fn auto_falls_back_to_xhr_when_websocket_is_refused() {
    let server = SockJsServer::new(
        ServerConfig {
            websocket: false,
            ..ServerConfig::default()
        },
        echo,
    );
    let srv = start_app(server.router("/kite"), ServeOptions::default()).await;
    let session = within(connect(&srv.url("/kite"), &cfg(Transport::Auto)))
        .await
        .unwrap();
    assert_eq!(session.transport(), "xhr-polling");
    echo_roundtrip(&session).await;
    match within(connect(&srv.url("/kite"), &cfg(Transport::WebSocket))).await {
        Err(ConnectError::Refused(404)) => {}
        other => panic!("expected a refused websocket, got {other:?}"),
    }
}

#[tokio::test]
async fn many_concurrent_senders_keep_per_sender_order() {
    let (srv, _) = start_echo(ServerConfig::default()).await;
    for transport in [Transport::WebSocket, Transport::XhrPolling] {
        let session = within(connect(&srv.url("/echo"), &cfg(transport)))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = session.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..200 {
                    s.send(format!("{t}:{i}")).await.unwrap();
                }
            }));
        }
        let mut next = [0usize; 8];
        for _ in 0..1600 {
            let m = within(session.recv()).await.unwrap();
            let (t, i) = m.split_once(':').unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(i.parse::<usize>().unwrap(), next[t], "{transport:?}");
            next[t] += 1;
        }
        for t in tasks {
            t.await.unwrap();
        }
        session.close();
    }
}

#[tokio::test]
async fn server_close_reaches_the_client_with_its_code() {
    let server = SockJsServer::new(ServerConfig::default(), |s: Session| async move {
        s.send("bye").await.ok();
        s.close_with(CloseReason::new(3001, "custom"));
    });
    let srv = start_app(server.router("/c"), ServeOptions::default()).await;
    for transport in [Transport::WebSocket, Transport::XhrPolling] {
        let session = within(connect(&srv.url("/c"), &cfg(transport)))
            .await
            .unwrap();
        assert_eq!(within(session.recv()).await.as_deref(), Some("bye"));
        assert_eq!(within(session.recv()).await, None);
        assert_eq!(
            session.close_reason(),
            Some(CloseReason::new(3001, "custom")),
            "{transport:?}"
        );
        assert!(session.send("late").await.is_err());
    }
}

#[tokio::test]
async fn client_close_reaches_the_server() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = SockJsServer::new(fast_config(), move |s: Session| {
        let tx = tx.clone();
        async move {
            while s.recv().await.is_some() {}
            let _ = tx.send(s.transport());
        }
    });
    let srv = start_app(server.router("/k"), ServeOptions::default()).await;
    for transport in [Transport::WebSocket, Transport::XhrPolling] {
        let session = within(connect(&srv.url("/k"), &cfg(transport)))
            .await
            .unwrap();
        session.send("hi").await.unwrap();
        session.close();
        // Websocket: at once; XHR: when the disconnect delay passes without polls.
        let ended = within(rx.recv()).await.unwrap();
        assert!(ended == "websocket" || ended == "xhr", "{ended}");
    }
    eventually(|| server.session_count() == 0).await;
}

#[tokio::test]
async fn connect_errors_are_typed() {
    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for transport in [Transport::WebSocket, Transport::XhrPolling, Transport::Auto] {
        match within(connect(
            &format!("http://127.0.0.1:{port}/kite"),
            &cfg(transport),
        ))
        .await
        {
            Err(ConnectError::Io(_)) => {}
            other => panic!("{transport:?}: expected Io error, got {other:?}"),
        }
    }
    assert!(matches!(
        connect("mailto:x@y", &ClientConfig::default()).await,
        Err(ConnectError::InvalidUrl(_))
    ));
    // A server that accepts but never answers: the connect timeout fires.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let config = ClientConfig {
        connect_timeout: Duration::from_millis(200),
        ..cfg(Transport::WebSocket)
    };
    assert!(matches!(
        within(connect(&format!("http://{addr}/kite"), &config)).await,
        Err(ConnectError::Timeout)
    ));
    // A server that closes the session straight away.
    let server = SockJsServer::new(ServerConfig::default(), |s: Session| async move {
        s.close();
    });
    let srv = start_app(server.router("/close"), ServeOptions::default()).await;
    let s = within(connect(&srv.url("/close"), &cfg(Transport::XhrPolling)))
        .await
        .unwrap();
    assert_eq!(within(s.recv()).await, None);
    assert_eq!(s.close_reason(), Some(CloseReason::go_away()));
}

/// A hand-made XHR server: `o`, then a scripted sequence of poll answers.
async fn scripted_xhr(script: Vec<(u16, &'static str, Duration)>) -> (Running, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let script = Arc::new(script);
    let app = axum::Router::new()
        .route(
            "/s/{server}/{session}/xhr",
            post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                async move {
                    if n == 0 {
                        return (axum::http::StatusCode::OK, "o\n".to_string());
                    }
                    match script.get(n - 1) {
                        Some((status, body, delay)) => {
                            tokio::time::sleep(*delay).await;
                            (
                                axum::http::StatusCode::from_u16(*status).unwrap(),
                                body.to_string(),
                            )
                        }
                        None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                    }
                }
            }),
        )
        .route(
            "/s/{server}/{session}/xhr_send",
            post(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
    (start_app(app, ServeOptions::default()).await, polls)
}

#[tokio::test]
async fn xhr_client_handles_every_frame_kind_and_404() {
    let (srv, _) = scripted_xhr(vec![
        (200, "h\n", Duration::ZERO),
        (200, "a[\"x\",\"y\"]\n", Duration::ZERO),
        (200, "m\"z\"\n", Duration::ZERO),
        (404, "", Duration::ZERO),
    ])
    .await;
    let s = within(connect(&srv.url("/s"), &cfg(Transport::XhrPolling)))
        .await
        .unwrap();
    for want in ["x", "y", "z"] {
        assert_eq!(within(s.recv()).await.as_deref(), Some(want));
    }
    assert_eq!(within(s.recv()).await, None);
    assert_eq!(s.close_reason().unwrap().reason, "Session not found");
}

#[tokio::test]
async fn xhr_poll_timeouts_are_retried() {
    // The first poll hangs past the client's poll timeout; the retry gets the message.
    let (srv, polls) = scripted_xhr(vec![
        (200, "h\n", Duration::from_secs(30)),
        (200, "a[\"after retry\"]\n", Duration::ZERO),
        (200, "c[3000,\"Go away!\"]\n", Duration::ZERO),
    ])
    .await;
    let config = ClientConfig {
        poll_timeout: Duration::from_millis(200),
        ..cfg(Transport::XhrPolling)
    };
    let s = within(connect(&srv.url("/s"), &config)).await.unwrap();
    assert_eq!(within(s.recv()).await.as_deref(), Some("after retry"));
    assert_eq!(within(s.recv()).await, None);
    assert_eq!(s.close_reason(), Some(CloseReason::go_away()));
    assert_eq!(polls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn client_survives_garbage_from_the_server() {
    let (srv, _) = scripted_xhr(vec![(200, "zzz not a frame\n", Duration::ZERO)]).await;
    let s = within(connect(&srv.url("/s"), &cfg(Transport::XhrPolling)))
        .await
        .unwrap();
    assert_eq!(within(s.recv()).await, None);
    assert_eq!(s.close_reason().unwrap().code, 1002);
}
