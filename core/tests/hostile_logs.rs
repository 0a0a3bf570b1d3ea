//! No credential in any log line at any level: calls with kite keys and tokens (accepted
//! and refused), registrations over dnode and HTTP, token requests and key lookups run
//! under a trace-level subscriber (with `log` records of the dependencies bridged in), and
//! the captured output is searched for every key and token used.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig};
use kite::protocol::{Auth, KiteQuery};
use kite::{Config, Kite, Request};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secret parts of a JWT: the whole, and its payload and signature segments.
fn jwt_parts(jwt: &str) -> Vec<String> {
    let mut v = vec![jwt.to_string()];
    v.extend(jwt.split('.').skip(1).map(str::to_string));
    v
}

/// Installs a subscriber at trace level that writes into the returned capture.
fn capture_trace_logs() -> Capture {
    let capture = Capture::default();
    let writer = capture.clone();
    // Everything at trace, as the `kontrol` and `kitectl` commands log with RUST_LOG=trace:
    // tungstenite's own trace lines dump whole frames, so they cap it at debug (README).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,tungstenite=debug",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();
    capture
}

/// A listening Kontrol on memory storage; its private key (whole and a few body lines) goes
/// into `secrets`.
async fn start_kontrol(secrets: &mut Vec<String>) -> Kontrol {
    let kontrol_kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
            ..Config::default()
        },
    )
    .unwrap();
    let kontrol = Kontrol::new(
        kontrol_kite,
        Arc::new(Memory::new()),
        KontrolConfig {
            heartbeat_interval: Duration::from_secs(1),
            machine_check: Some(allow_all_machines()),
            ..KontrolConfig::default()
        },
    )
    .await
    .unwrap();
    within(kontrol.listen()).await.unwrap();

    let pair = kontrol.current_key().await.unwrap();
    secrets.push(pair.private_pem.trim().to_string());
    // A line of the private key's body is enough to leak it.
    secrets.extend(
        pair.private_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 40)
            .take(3)
            .map(str::to_string),
    );
    kontrol
}

/// The kites `math` (alice), `web` (carol) and `caller` (bob), listening, each with a kite
/// key from Kontrol (added to `secrets`) and a `square` method; `math` registered over
/// dnode, `web` over HTTP.
async fn start_kites(kontrol: &Kontrol, secrets: &mut Vec<String>) -> Vec<Kite> {
    let url = kontrol.kite().url().unwrap();
    let mut kites = Vec::new();
    for (name, user) in [("math", "alice"), ("web", "carol"), ("caller", "bob")] {
        let key = kontrol.new_kite_key(user).await.unwrap();
        secrets.extend(jwt_parts(&key));
        let mut config = Config {
            ip: "127.0.0.1".into(),
            environment: "test".into(),
            ..Config::default()
        };
        config.use_kite_key(&key).unwrap();
        config.id = uuid::Uuid::new_v4().to_string();
        config.kontrol_url = url.clone();
        let k = Kite::with_config(name, "1.0.0", config).unwrap();
        k.handle("square", |r: Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .unwrap();
        within(k.listen()).await.unwrap();
        kites.push(k);
    }
    let (math, web) = (&kites[0], &kites[1]);
    within(math.register(&math.url().unwrap())).await.unwrap();
    within(web.register_http(&web.url().unwrap()))
        .await
        .unwrap();
    kites
}

/// `caller` finds `math` through Kontrol and calls it with the token it got (and then forces
/// a new token); both tokens go into `secrets`. Returns the first token.
async fn call_with_token(caller: &Kite, secrets: &mut Vec<String>) -> String {
    let query = KiteQuery {
        username: "alice".into(),
        environment: "test".into(),
        name: "math".into(),
        ..KiteQuery::default()
    };
    let clients = within(caller.get_kites(&query)).await.unwrap();
    let c = &clients[0];
    let token = c.auth().unwrap().key;
    secrets.extend(jwt_parts(&token));
    within(c.dial()).await.unwrap();
    assert_eq!(within(c.call("square", [5])).await.unwrap(), json!(25.0));
    let forced = within(caller.get_token_force(&c.remote_kite()))
        .await
        .unwrap();
    secrets.extend(jwt_parts(&forced));
    token
}

/// Calls from `caller` to `math` with the caller's kite key (accepted), then refused ones: a
/// kite key of another Kontrol, and a broken copy of `token`. All go into `secrets`.
async fn call_with_kite_keys(caller: &Kite, math: &Kite, token: &str, secrets: &mut Vec<String>) {
    let direct = caller.client(&math.url().unwrap());
    direct.set_auth(Some(Auth::kite_key(caller.kite_key())));
    within(direct.dial()).await.unwrap();
    assert_eq!(
        within(direct.call("square", [2])).await.unwrap(),
        json!(4.0)
    );
    let foreign = kite::auth::KeyPair::generate().unwrap();
    let forged =
        kite::auth::mint_kite_key(&foreign, "kontrol", "mallory", "http://x/kite").unwrap();
    secrets.extend(jwt_parts(&forged));
    secrets.push(foreign.private_pem.trim().to_string());
    direct.set_auth(Some(Auth::kite_key(forged)));
    assert!(within(direct.call("square", [2])).await.is_err());
    let broken = format!("{token}x");
    direct.set_auth(Some(Auth::token(broken.clone())));
    assert!(within(direct.call("square", [2])).await.is_err());
    secrets.push(broken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_in_logs_at_trace_level() {
    let capture = capture_trace_logs();

    // Kontrol, a kite registered over dnode and one over HTTP, a caller with a token.
    let mut secrets: Vec<String> = Vec::new();
    let kontrol = start_kontrol(&mut secrets).await;
    let kites = start_kites(&kontrol, &mut secrets).await;
    let (math, caller) = (&kites[0], &kites[2]);

    // A call with a token from Kontrol.
    let token = call_with_token(caller, &mut secrets).await;

    // Calls with the caller's kite key, accepted and refused (a kite key of another
    // Kontrol, and a broken token).
    call_with_kite_keys(caller, math, &token, &mut secrets).await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("TRACE"), "the subscriber captured nothing");
    for secret in &secrets {
        assert!(!secret.is_empty());
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a credential is in the logs: {line}");
        }
    }
}
