//! The reverse and tunnel proxies (issue 14). Reverse proxy: kites register their URL to our `ReverseProxy` and are
//! called through the public URL it hands out, over websocket and XHR, with callbacks both
//! ways; the proxy forwards without parsing, carries several kites, forgets a kite that
//! leaves, refuses bad registrations, bounds a backend that never answers, and gets its
//! kites back after a restart. Tunnel proxy: a kite that never listens is called through
//! the proxy's public URL (websocket and XHR, callbacks both ways, many clients at once),
//! and bad input (a kite that disappears mid-request, one that never answers or never
//! opens its tunnel, floods of registrations, a stolen id, a bogus tunnel) is bounded,
//! with the tables back to empty. Kites and the proxy trust keys from our Kontrol (in process).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{Kontrol, KontrolConfig};
use kite::protocol::KiteQuery;
use kite::proxy::{
    ProxyRegistration, ReverseProxy, ReverseProxyConfig, TunnelProxy, TunnelProxyConfig,
    TUNNEL_PROXY_NAME, TUNNEL_PROXY_VERSION,
};
use kite::sockjs::Transport;
use kite::{Callback, Config, Error, ErrorKind, Kite, KiteError, Payload, Request};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn start_kontrol() -> Kontrol {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
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

async fn config_from(kontrol: &Kontrol, user: &str) -> Config {
    let mut c = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        ..Config::default()
    };
    c.use_kite_key(&kontrol.new_kite_key(user).await.unwrap())
        .unwrap();
    c
}

/// Our reverse proxy on 127.0.0.1:`port` (0: any), trusting `kontrol`'s keys.
async fn start_proxy(kontrol: &Kontrol, port: u16) -> ReverseProxy {
    let mut c = config_from(kontrol, "kontrol").await;
    c.port = port;
    let kite = Kite::with_config("proxy", "0.0.1", c).unwrap();
    let p = ReverseProxy::new(
        kite,
        ReverseProxyConfig {
            backend_timeout: Duration::from_secs(1),
            ..ReverseProxyConfig::default()
        },
    )
    .unwrap();
    // A restarted proxy takes its old port once the old listener is gone.
    within("the proxy listens", async {
        while let Err(e) = p.kite().listen().await {
            assert!(port != 0, "listen: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    p
}

/// A kite behind the proxy: `square` (authenticated) and `twice(n, cb)`, which calls
/// `cb(2n)` back and returns a function that adds one.
async fn math_kite(kontrol: &Kontrol, name: &str) -> Kite {
    let k = Kite::with_config(name, "1.0.0", config_from(kontrol, "alice").await).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, KiteError>(n * n)
    })
    .unwrap();
    k.handle("twice", |r: Request| async move {
        let n: f64 = r.args().at(0)?;
        r.args().function(1)?.call([n * 2.0]).await?;
        let plus_one = Callback::new(|args: kite::Arguments| {
            let n: f64 = args.at(0).unwrap_or(0.0);
            if let Ok(f) = args.function(1) {
                tokio::spawn(async move { f.call([n + 1.0]).await });
            }
        });
        Ok::<_, KiteError>(Payload::list().callback(plus_one).into_list())
    })
    .unwrap();
    within("the kite listens", k.listen()).await.unwrap();
    k
}

/// Calls `square` and `twice` through `url` over `transport`, as `caller`.
async fn call_through(caller: &Kite, url: &str, transport: Transport) {
    let c = caller.client(url);
    c.set_transport(transport);
    within("dial through the proxy", c.dial()).await.unwrap();
    let conn = c.connection().unwrap();
    assert_eq!(
        conn.transport(),
        if transport == Transport::WebSocket {
            "websocket"
        } else {
            "xhr-polling"
        }
    );
    let got = within("square", c.call("square", [7.0])).await.unwrap();
    assert_eq!(got, json!(49.0));
    // Callbacks both ways: the kite calls ours, and hands us one of its own.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cb = Callback::new(move |args: kite::Arguments| {
        let _ = tx.send(args.at::<f64>(0).unwrap());
    });
    let result = within(
        "twice",
        conn.call_full("twice", Payload::list().arg(5.0).callback(cb), None),
    )
    .await
    .unwrap();
    assert_eq!(within("our callback", rx.recv()).await, Some(10.0));
    let plus_one = result.function_at([0, 0]).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let back = Callback::new(move |args: kite::Arguments| {
        let _ = tx.send(args.at::<f64>(0).unwrap());
    });
    within(
        "its callback",
        plus_one.call(Payload::list().arg(41.0).callback(back)),
    )
    .await
    .unwrap();
    assert_eq!(within("its answer", rx.recv()).await, Some(42.0));
    c.close();
}

fn registration(proxy: &ReverseProxy, kite: &Kite) -> ProxyRegistration {
    ProxyRegistration {
        proxy_url: Some(proxy.kite().url().unwrap()),
        retry: Duration::from_millis(100),
        ..ProxyRegistration::reverse(kite, &kite.url().unwrap())
    }
}

#[tokio::test]
async fn kites_behind_our_reverse_proxy_are_called_over_websocket_and_xhr() {
    let kontrol = start_kontrol().await;
    let proxy = start_proxy(&kontrol, 0).await;
    let proxy_port = proxy.kite().port().unwrap();
    let m1 = math_kite(&kontrol, "math1").await;
    let m2 = math_kite(&kontrol, "math2").await;
    let u1 = within(
        "math1 registers",
        m1.register_to_proxy(registration(&proxy, &m1)),
    )
    .await;
    let u2 = within(
        "math2 registers",
        m2.register_to_proxy(registration(&proxy, &m2)),
    )
    .await;
    assert_eq!(
        u1,
        format!("http://127.0.0.1:{proxy_port}/proxy/{}", m1.identity().id)
    );
    assert_eq!(
        u2,
        format!("http://127.0.0.1:{proxy_port}/proxy/{}", m2.identity().id)
    );
    let mut both = vec![m1.identity().id.clone(), m2.identity().id.clone()];
    both.sort();
    assert_eq!(proxy.kites(), both);

    // Kontrol hands out the public URL.
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    let found = within(
        "get_kites",
        caller.get_kites(&KiteQuery {
            username: "alice".into(),
            environment: "test".into(),
            name: "math1".into(),
            ..KiteQuery::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(found[0].url(), u1);
    within("call with Kontrol's token", async {
        found[0].dial().await.unwrap();
        assert_eq!(found[0].call("square", [3.0]).await.unwrap(), json!(9.0));
    })
    .await;
    found[0].close();

    for url in [&u1, &u2] {
        call_through(&caller, url, Transport::WebSocket).await;
        call_through(&caller, url, Transport::XhrPolling).await;
    }

    // math2 leaves: its entry goes, its public URL answers 404, math1 is unaffected.
    m2.shutdown().await;
    until("math2 leaves the proxy", || {
        proxy.kites() == vec![m1.identity().id.clone()]
    })
    .await;
    let c = caller.client(&u2);
    c.set_transport(Transport::XhrPolling);
    let e = within("dial a kite that left", c.dial()).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    call_through(&caller, &u1, Transport::WebSocket).await;

    // The proxy restarts on the same port: math1 registers again by itself.
    proxy.kite().shutdown().await;
    let proxy = start_proxy(&kontrol, proxy_port).await;
    until("math1 is back", || {
        proxy.kites() == vec![m1.identity().id.clone()]
    })
    .await;
    call_through(&caller, &u1, Transport::XhrPolling).await;

    m1.shutdown().await;
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

#[tokio::test]
async fn bad_registrations_and_silent_backends_are_bounded() {
    let kontrol = start_kontrol().await;
    let proxy = start_proxy(&kontrol, 0).await;
    let m1 = math_kite(&kontrol, "math1").await;
    let u1 = within(
        "math1 registers",
        m1.register_to_proxy(registration(&proxy, &m1)),
    )
    .await;

    // Bad URLs are argument errors.
    let k = Kite::with_config("bad", "1.0.0", config_from(&kontrol, "mallory").await).unwrap();
    let c = k.client(&proxy.kite().url().unwrap());
    within("dial", c.dial()).await.unwrap();
    for (arg, want) in [
        (json!(["not a url"]), "invalid kite URL"),
        (json!(["ftp://host/kite"]), "want http(s)://host:port/path"),
        (json!([42]), "invalid type"),
        (json!([]), ""),
    ] {
        let e = within("register", c.call("register", arg.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentError, "{arg}: {e}");
        assert!(e.to_string().contains(want), "{arg}: {e}");
    }
    c.close();

    // A kite claiming math1's id is refused while math1 is connected.
    let mut cfg = config_from(&kontrol, "mallory").await;
    cfg.id = m1.identity().id.clone();
    let mallory = Kite::with_config("mallory", "1.0.0", cfg).unwrap();
    let c = mallory.client(&proxy.kite().url().unwrap());
    within("dial", c.dial()).await.unwrap();
    let e = within("register", c.call("register", ["http://127.0.0.1:1/kite"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Remote(r) if r.message.contains("held by another live connection")),
        "{e}"
    );
    c.close();

    // A backend that accepts connections and never answers: the client gets 504 within
    // the backend timeout (1 s here); math1 is unaffected.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/kite", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let sk = Kite::with_config("silent", "1.0.0", config_from(&kontrol, "carol").await).unwrap();
    let c = sk.client(&proxy.kite().url().unwrap());
    within("dial", c.dial()).await.unwrap();
    let public: String = serde_json::from_value(
        within("register", c.call("register", [silent_url]))
            .await
            .unwrap(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let resp = within("through the proxy", reqwest::get(format!("{public}/info")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("did not answer within 1s"));
    let resp = reqwest::get(format!(
        "http://{}/proxy/nobody/info",
        proxy.kite().ready().await
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    call_through(&caller, &u1, Transport::WebSocket).await;
    c.close();
    held.abort();

    m1.shutdown().await;
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

/// What reaches a backend through the reverse proxy: the path under the kite's URL, the
/// query, the backend's `Host`, and `X-Forwarded-For` naming the client (a forged one
/// replaced); the backend's answer comes back as it was.
#[tokio::test]
async fn forwarded_requests_name_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let kontrol = start_kontrol().await;
    let proxy = start_proxy(&kontrol, 0).await;
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = backend.local_addr().unwrap();
    let (tx, mut heads) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            let mut buf = vec![0; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).to_lowercase());
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: yes\r\n\r\nhello")
                .await;
        }
    });
    let k = Kite::with_config("k", "1.0.0", config_from(&kontrol, "alice").await).unwrap();
    let c = k.client(&proxy.kite().url().unwrap());
    within("dial", c.dial()).await.unwrap();
    let public: String = serde_json::from_value(
        within(
            "register",
            c.call("register", [format!("http://{addr}/kite")]),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let resp = within(
        "through the proxy",
        reqwest::Client::new()
            .get(format!("{public}/000/abc/xhr?x=1"))
            .header("X-Forwarded-For", "6.6.6.6")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-backend"], "yes");
    assert_eq!(resp.text().await.unwrap(), "hello");
    let head = within("the backend's request", heads.recv()).await.unwrap();
    assert!(
        head.starts_with("get /kite/000/abc/xhr?x=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(!head.contains("6.6.6.6"), "{head}");
    c.close();
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

// ---------------------------------------------------------------------------------------
// The tunnel proxy.

/// Our tunnel proxy on 127.0.0.1:`port` (0: any), trusting `kontrol`'s keys, registered to
/// Kontrol as `kontrol/test/tunnelproxy`.
async fn start_tunnel_proxy(
    kontrol: &Kontrol,
    port: u16,
    config: TunnelProxyConfig,
) -> TunnelProxy {
    let mut c = config_from(kontrol, "kontrol").await;
    c.port = port;
    let kite = Kite::with_config(TUNNEL_PROXY_NAME, TUNNEL_PROXY_VERSION, c).unwrap();
    let p = TunnelProxy::new(kite, config).unwrap();
    within("the tunnel proxy listens", async {
        while let Err(e) = p.kite().listen().await {
            assert!(port != 0, "listen: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within(
        "the tunnel proxy registers",
        p.kite().register(&p.kite().url().unwrap()),
    )
    .await
    .unwrap();
    p
}

/// Calls of `never` that reached a private kite (it never answers them).
static NEVER_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A kite that never listens: only dials out.
async fn private_kite(kontrol: &Kontrol, name: &str) -> Kite {
    let mut c = config_from(kontrol, "alice").await;
    c.drain_timeout = Duration::from_millis(100);
    let k = Kite::with_config(name, "1.0.0", c).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, KiteError>(n * n)
    })
    .unwrap();
    k.handle("twice", |r: Request| async move {
        let n: f64 = r.args().at(0)?;
        r.args().function(1)?.call([n * 2.0]).await?;
        let plus_one = Callback::new(|args: kite::Arguments| {
            let n: f64 = args.at(0).unwrap_or(0.0);
            if let Ok(f) = args.function(1) {
                tokio::spawn(async move { f.call([n + 1.0]).await });
            }
        });
        Ok::<_, KiteError>(Payload::list().callback(plus_one).into_list())
    })
    .unwrap();
    k.handle("slow", |r: Request| async move {
        let n: f64 = r.args().one()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, KiteError>(n)
    })
    .unwrap();
    k.handle("never", |_r: Request| async move {
        NEVER_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok::<_, KiteError>(())
    })
    .unwrap();
    k
}

fn via(proxy: &TunnelProxy, kite: &Kite) -> ProxyRegistration {
    ProxyRegistration {
        proxy_url: Some(proxy.kite().url().unwrap()),
        retry: Duration::from_millis(100),
        ..ProxyRegistration::tunnel(kite)
    }
}

/// A proxied kite that answers slowly: other calls on the same tunnel are not held behind
/// it, and its answer arrives. One that never answers: the caller's own timeout bounds the
/// call; the tunnel stays usable. Returns the client (still connected).
async fn assert_slow_and_silent_kites_are_bounded(caller: &Kite, u1: &str) -> kite::Client {
    let c = caller.client(u1);
    within("dial", c.dial()).await.unwrap();
    let started = std::time::Instant::now();
    let timed = |what: &'static str, method: &'static str, n: f64| {
        let call = c.call(method, [n]);
        async move { (within(what, call).await, started.elapsed()) }
    };
    let ((slow, slow_took), (square, square_took)) = tokio::join!(
        timed("slow", "slow", 5.0),
        timed("square while slow runs", "square", 2.0)
    );
    assert_eq!(slow.unwrap(), json!(5.0));
    assert_eq!(square.unwrap(), json!(4.0));
    assert!(
        square_took < slow_took,
        "square ({square_took:?}) was held behind slow ({slow_took:?})"
    );
    let e = within(
        "never",
        c.call("never", ()).timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(
        within("square", c.call("square", [3.0])).await.unwrap(),
        json!(9.0)
    );
    c
}

/// Many clients at once, each with its own tunnel; all gone once they close.
async fn assert_many_tunnels(proxy: &TunnelProxy, caller: &Kite, u1: &str) {
    let clients: Vec<_> = (0..8).map(|_| caller.client(u1)).collect();
    for c in &clients {
        within("dial", c.dial()).await.unwrap();
    }
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .enumerate()
            .map(|(i, c)| std::future::IntoFuture::into_future(c.call("square", [i as f64]))),
    )
    .await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(a.unwrap(), json!((i * i) as f64));
    }
    assert_eq!(proxy.tunnels(), (8, 0));
    clients.iter().for_each(|c| c.close());
    until("the tunnels close", || proxy.tunnels() == (0, 0)).await;
}

/// A kite whose kite.tunnel never answers: the client's session is closed after the
/// tunnel timeout, and nothing stays pending. Returns the kite (still registered).
async fn assert_stuck_kite_times_out(
    kontrol: &Kontrol,
    proxy: &TunnelProxy,
    caller: &Kite,
) -> Kite {
    let mut cfg = config_from(kontrol, "alice").await;
    cfg.drain_timeout = Duration::from_millis(100);
    let stuck = Kite::with_config("stuck", "1.0.0", cfg).unwrap();
    stuck
        .handle("kite.tunnel", |_r: Request| async move {
            std::future::pending::<()>().await;
            Ok::<_, KiteError>(())
        })
        .unwrap();
    let us = within(
        "stuck registers",
        stuck.register_to_proxy(via(proxy, &stuck)),
    )
    .await;
    let cs = caller.client(&us);
    cs.set_transport(Transport::XhrPolling);
    within("dial", cs.dial()).await.unwrap();
    let conn = cs.connection().unwrap();
    assert_eq!(proxy.tunnels(), (1, 1));
    within("the session closes after the tunnel timeout", conn.closed()).await;
    until("nothing pending", || proxy.tunnels() == (1, 0)).await;
    cs.close();

    stuck
}

/// A flood of registrations stops at max_kites (6; math1 and stuck hold 2 places).
async fn assert_flood_stops_at_max(kontrol: &Kontrol, proxy: &TunnelProxy) -> Vec<kite::Client> {
    let mut flood = Vec::new();
    let mut refused = 0;
    for i in 0..10 {
        let k = Kite::with_config(
            &format!("flood{i}"),
            "1.0.0",
            config_from(kontrol, "eve").await,
        )
        .unwrap();
        let c = k.client(&proxy.kite().url().unwrap());
        within("dial", c.dial()).await.unwrap();
        match within("register", c.call("register", [""])).await {
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().contains("the proxy is full (6 kites)"), "{e}");
                refused += 1;
            }
        }
        flood.push(c);
    }
    assert_eq!(proxy.kites().len(), 6);
    assert_eq!(refused, 6, "math1 and stuck hold 2 of the 6 places");
    flood
}

/// The kite behind the tunnel disappears mid-request: the caller sees the disconnect, and
/// its tunnel closes (math1's stays).
async fn assert_vanishing_kite_disconnects(kontrol: &Kontrol, proxy: &TunnelProxy, caller: &Kite) {
    let m3 = private_kite(kontrol, "math3").await;
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    m3.handle("hang", move |_r: Request| {
        let _ = arrived.send(());
        async move {
            std::future::pending::<()>().await;
            Ok::<_, KiteError>(())
        }
    })
    .unwrap();
    let u3 = within(
        "math3 registers",
        m3.register_to_tunnel_with(via(proxy, &m3)),
    )
    .await;
    let c3 = caller.client(&u3);
    within("dial", c3.dial()).await.unwrap();
    let pending = tokio::spawn(async move { c3.call("hang", ()).timeout(WAIT).await });
    within("the call reaches math3", arrivals.recv())
        .await
        .unwrap();
    m3.shutdown().await;
    let e = within("the call fails", pending)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnect, "{e}");
    until("math3's tunnel closes", || proxy.tunnels() == (1, 0)).await;
}

/// A client that disappears mid-request: its tunnel closes (math1's other tunnel stays).
async fn assert_vanishing_client_frees_its_tunnel(proxy: &TunnelProxy, caller: &Kite, url: &str) {
    let before = proxy.tunnels().0;
    let c = caller.client(url);
    c.set_transport(Transport::XhrPolling);
    within("dial", c.dial()).await.unwrap();
    until("its tunnel opens", || proxy.tunnels().0 == before + 1).await;
    let conn = c.connection().unwrap();
    let reached = NEVER_CALLS.load(std::sync::atomic::Ordering::SeqCst);
    let call = tokio::spawn(async move { conn.call("never", (), Some(WAIT)).await });
    until("the call reaches the kite", || {
        NEVER_CALLS.load(std::sync::atomic::Ordering::SeqCst) > reached
    })
    .await;
    c.close();
    let e = within("the call ends", call).await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnect, "{e}");
    until("its tunnel closes", || proxy.tunnels() == (before, 0)).await;
}

/// More clients than `max_tunnels_per_kite` (2; one is open): the one beyond is closed at
/// once, the others keep working.
async fn assert_tunnel_flood_refused(proxy: &TunnelProxy, caller: &Kite, url: &str) {
    assert_eq!(proxy.tunnels(), (1, 0));
    let second = caller.client(url);
    within("dial", second.dial()).await.unwrap();
    assert_eq!(
        within("square", second.call("square", [2.0]))
            .await
            .unwrap(),
        json!(4.0)
    );
    let third = caller.client(url);
    third.set_transport(Transport::XhrPolling);
    match within("dial", third.dial()).await {
        Ok(()) => {
            let conn = third.connection();
            if let Some(conn) = conn {
                within("the third session is closed", conn.closed()).await;
            }
            let e = within("square", third.call("square", [3.0]))
                .await
                .unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::SendError | ErrorKind::Disconnect),
                "{e}"
            );
        }
        Err(e) => assert!(e.to_string().contains("too many tunnels"), "{e}"),
    }
    third.close();
    assert_eq!(
        within("square", second.call("square", [5.0]))
            .await
            .unwrap(),
        json!(25.0)
    );
    second.close();
    until("back to one tunnel", || proxy.tunnels() == (1, 0)).await;
}

#[tokio::test]
async fn a_kite_that_only_dials_out_is_called_through_the_tunnel_proxy() {
    let kontrol = start_kontrol().await;
    let proxy = start_tunnel_proxy(&kontrol, 0, TunnelProxyConfig::default()).await;
    let port = proxy.kite().port().unwrap();
    let m1 = private_kite(&kontrol, "math1").await;
    let m2 = private_kite(&kontrol, "math2").await;
    // math1 finds the proxy through Kontrol (the reference's RegisterToTunnel, retrying
    // faster than its 10 s); math2 is given its URL.
    let through_kontrol = ProxyRegistration {
        retry: Duration::from_millis(100),
        ..ProxyRegistration::tunnel(&m1)
    };
    assert_eq!(through_kontrol.proxy_url, None);
    let u1 = within(
        "math1 registers",
        m1.register_to_tunnel_with(through_kontrol),
    )
    .await;
    let u2 = within(
        "math2 registers",
        m2.register_to_tunnel_with(via(&proxy, &m2)),
    )
    .await;
    assert_eq!(
        u1,
        format!("http://127.0.0.1:{port}/proxy/{}", m1.identity().id)
    );
    assert_eq!(
        u2,
        format!("http://127.0.0.1:{port}/proxy/{}", m2.identity().id)
    );
    assert_eq!(m1.port(), None, "math1 never listens");

    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();
    for url in [&u1, &u2] {
        call_through(&caller, url, Transport::WebSocket).await;
        call_through(&caller, url, Transport::XhrPolling).await;
    }
    // Kontrol hands out the tunnel URL.
    let found = within(
        "get_kites",
        caller.get_kites(&KiteQuery {
            username: "alice".into(),
            environment: "test".into(),
            name: "math2".into(),
            ..KiteQuery::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(found[0].url(), u2);

    assert_many_tunnels(&proxy, &caller, &u1).await;

    // math2 leaves.
    m2.shutdown().await;
    until("math2 leaves the proxy", || {
        proxy.kites() == vec![m1.identity().id.clone()]
    })
    .await;
    let c = caller.client(&u2);
    c.set_transport(Transport::XhrPolling);
    let e = within("dial a kite that left", c.dial()).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // The proxy restarts on the same port: math1 registers again by itself.
    proxy.kite().shutdown().await;
    let proxy = start_tunnel_proxy(&kontrol, port, TunnelProxyConfig::default()).await;
    until("math1 is back", || {
        proxy.kites() == vec![m1.identity().id.clone()]
    })
    .await;
    call_through(&caller, &u1, Transport::WebSocket).await;

    m1.shutdown().await;
    until("the proxy's tables empty", || {
        proxy.kites().is_empty() && proxy.tunnels() == (0, 0)
    })
    .await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

#[tokio::test]
async fn tunnel_proxy_bad_input_is_bounded() {
    let kontrol = start_kontrol().await;
    let config = TunnelProxyConfig {
        max_kites: 6,
        max_tunnels_per_kite: 2,
        tunnel_timeout: Duration::from_secs(1),
        ..TunnelProxyConfig::default()
    };
    let proxy = start_tunnel_proxy(&kontrol, 0, config).await;
    let m1 = private_kite(&kontrol, "math1").await;
    let u1 = within(
        "math1 registers",
        m1.register_to_tunnel_with(via(&proxy, &m1)),
    )
    .await;
    let caller = Kite::with_config("caller", "1.0.0", config_from(&kontrol, "bob").await).unwrap();

    let c = assert_slow_and_silent_kites_are_bounded(&caller, &u1).await;

    assert_vanishing_kite_disconnects(&kontrol, &proxy, &caller).await;
    assert_vanishing_client_frees_its_tunnel(&proxy, &caller, &u1).await;
    assert_tunnel_flood_refused(&proxy, &caller, &u1).await;

    let stuck = assert_stuck_kite_times_out(&kontrol, &proxy, &caller).await;

    // A tunnel with an unknown token is refused.
    let url = format!(
        "ws://{}/tunnel/bogus/000/bogus/websocket",
        proxy.kite().ready().await
    );
    let e = within(
        "dial a bogus tunnel",
        kite::sockjs::client::connect_websocket(&url, &Default::default()),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // A kite claiming math1's id is refused; a flood of registrations stops at max_kites.
    let mut cfg = config_from(&kontrol, "mallory").await;
    cfg.id = m1.identity().id.clone();
    let mallory = Kite::with_config("mallory", "1.0.0", cfg).unwrap();
    let mc = mallory.client(&proxy.kite().url().unwrap());
    within("dial", mc.dial()).await.unwrap();
    let e = within("register", mc.call("register", [""]))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("held by another live connection"),
        "{e}"
    );
    mc.close();
    let flood = assert_flood_stops_at_max(&kontrol, &proxy).await;
    flood.iter().for_each(|c| c.close());
    stuck.shutdown().await;
    until("the flood leaves", || {
        proxy.kites() == vec![m1.identity().id.clone()]
    })
    .await;

    // math1 was unaffected throughout.
    assert_eq!(
        within("square", c.call("square", [4.0])).await.unwrap(),
        json!(16.0)
    );
    call_through(&caller, &u1, Transport::XhrPolling).await;
    c.close();
    m1.shutdown().await;
    until("the proxy's tables empty", || {
        proxy.kites().is_empty() && proxy.tunnels() == (0, 0)
    })
    .await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

/// A kite that calls the tunnel proxy's `register` again on the same connection gets the same
/// URL and keeps its one entry.
#[tokio::test]
async fn registering_again_on_one_connection_keeps_the_entry() {
    let kontrol = start_kontrol().await;
    let proxy = start_tunnel_proxy(&kontrol, 0, TunnelProxyConfig::default()).await;
    let k = private_kite(&kontrol, "again").await;
    let c = k.client(&proxy.kite().url().unwrap());
    within("dial", c.dial()).await.unwrap();
    let first = within("register", c.call("register", [""])).await.unwrap();
    let again = within("register", c.call("register", [""])).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(proxy.kites(), vec![k.identity().id.clone()]);
    c.close();
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}

/// A kite that registers through the tunnel proxy twice at once (the proxy refuses a second
/// connection with the same kite id) gets one registration: both calls resolve with its URL.
#[tokio::test]
async fn registering_twice_at_once_joins_one_registration() {
    let kontrol = start_kontrol().await;
    let proxy = start_tunnel_proxy(&kontrol, 0, TunnelProxyConfig::default()).await;
    let k = private_kite(&kontrol, "twice").await;
    let (a, b) = within("both registrations resolve", async {
        tokio::join!(
            k.register_to_tunnel_with(via(&proxy, &k)),
            k.register_to_tunnel_with(via(&proxy, &k))
        )
    })
    .await;
    let port = proxy.kite().port().unwrap();
    assert_eq!(
        a,
        format!("http://127.0.0.1:{port}/proxy/{}", k.identity().id)
    );
    assert_eq!(a, b);
    assert_eq!(proxy.kites(), vec![k.identity().id.clone()]);
    // Later calls join the running registration too.
    let c = within(
        "a third registration",
        k.register_to_tunnel_with(via(&proxy, &k)),
    )
    .await;
    assert_eq!(c, a);
    k.shutdown().await;
    until("the proxy's table empties", || proxy.kites().is_empty()).await;
    proxy.kite().shutdown().await;
    kontrol.close();
}
