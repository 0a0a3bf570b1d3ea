//! Kontrol across implementations (issue 4, item 6):
//!
//! - a Go reference kite registers to OUR Kontrol — over dnode (`RegisterForever`) and over
//!   HTTP (`RegisterHTTP`) — and is found through it, and called with the tokens our Kontrol
//!   minted, by our client (`get_kites` → `square`) and by a Go client (`GetKites` →
//!   `Tell("square")`); when it goes away, our Kontrol's watchers see it leave;
//! - OUR kite registers to the Go reference Kontrol running on its PostgreSQL storage (a real
//!   server, `common/postgres.rs`; the reference's schema laid out by our PostgreSQL backend)
//!   and is found, and called, through it by our client and by a Go client; the rows the Go
//!   Kontrol wrote are read back by our backend, and a kite-rs Kontrol on the same database
//!   finds the kite too, with tokens the kite accepts;
//! - kite.js 1.0.13's Kontrol client (`fetchKites`) finds our kite through our Kontrol and
//!   calls it with the token it got.
//!
//! Go programs (`tests/interop/go/`, built by its `build.sh`): `bin/kontrolpeer` (`serve`: a
//! reference kite that registers; `find`: a reference client) and `bin/kontrol` (the reference
//! Kontrol on PostgreSQL). kite.js: `tests/interop/kitejs/kontrol.js`. Our Kontrol runs in
//! process. Kite keys for every peer are minted by the Kontrol they talk to
//! ([`Kontrol::new_kite_key`]) or, for the Go Kontrol, with its key pair
//! ([`kite::auth::mint_kite_key`]), and handed over in files.
//!
//! Needs the Go programs built, kite.js installed, `node`, and PostgreSQL's server binaries:
//! `scripts/setup.sh` does all of it. Missing pieces fail the tests; nothing is skipped.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/postgres.rs"]
mod postgres_server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::peers::{go_bin, kitejs_dir, last_chars, run_once, Peer};
use kite::auth::{mint_kite_key, parse_unverified, KeyPair};
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::storage::postgres::Postgres;
use kite::kontrol::{Kontrol, KontrolConfig, Storage};
use kite::protocol::KiteQuery;
use kite::{Callback, Config, ErrorKind, Kite, Request};
use postgres_server::PgServer;
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::time::timeout;

/// Bound for any in-process wait (a call, a registration, an event).
const WAIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::IntoFuture>(what: &str, f: F) -> F::Output {
    timeout(WAIT, f.into_future())
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

// ---------------------------------------------------------------------------------------
// Scratch files and peer processes.

/// A scratch directory for key files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("kontrol-interop-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a one-shot client process printed: its JSON line, exit status and stderr.
struct ClientRun {
    ok: bool,
    out: Value,
    report: String,
}

async fn run_client(what: &str, cmd: Command) -> ClientRun {
    let out = run_once(what, cmd).await.unwrap_or_else(|e| panic!("{e}"));
    let report = format!(
        "{what}: exit {}\n--- stdout\n{}\n--- stderr (tail)\n{}",
        out.status,
        out.stdout,
        last_chars(&out.stderr, 8 * 1024)
    );
    let line = out
        .stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("");
    let parsed = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{what} printed no JSON line ({e})\n{report}"));
    ClientRun {
        ok: out.status.success(),
        out: parsed,
        report,
    }
}

/// `kontrolpeer serve`: a Go reference kite serving `square` that registers with the kite key
/// in `key` (which names its username, Kontrol URL and Kontrol key).
async fn go_kite(key: &Path, name: &str, over_http: bool) -> Peer {
    let mut cmd = Command::new(go_bin("kontrolpeer"));
    cmd.arg("serve").arg("--kite-key").arg(key).args([
        "--name",
        name,
        "--environment",
        "test",
        "--region",
        "here",
    ]);
    if over_http {
        cmd.arg("--http");
    }
    Peer::start(&format!("Go kite {name} (kontrolpeer serve)"), cmd).await
}

/// `kontrolpeer find --more`: the Go reference client finds `username/test/name` through the
/// Kontrol of its kite key and calls `square(arg)` on every kite found; then `GetToken`
/// (twice) and `GetTokenForce` for the first kite, and `GetKey`.
async fn go_find(key: &Path, username: &str, name: &str, arg: u32) -> ClientRun {
    let mut cmd = Command::new(go_bin("kontrolpeer"));
    cmd.arg("find")
        .arg("--kite-key")
        .arg(key)
        .args([
            "--username",
            username,
            "--environment",
            "test",
            "--name",
            name,
        ])
        .args(["--arg", &arg.to_string(), "--more", "--timeout", "40s"]);
    run_client("Go client (kontrolpeer find)", cmd).await
}

/// `kontrol.js`: kite.js's Kontrol client finds `alice/test/name` (`fetchKites`) through the
/// Kontrol at `url` with the kite key in `key`, then does what `more` says (by default, calls
/// `square(7)` on every kite found).
async fn kitejs_fetch(url: &str, key: &Path, name: &str, more: &[&str]) -> ClientRun {
    let mut cmd = Command::new("node");
    cmd.current_dir(kitejs_dir())
        .arg("kontrol.js")
        .args(["--url", url])
        .arg("--kite-key")
        .arg(key)
        .args([
            "--username",
            "alice",
            "--environment",
            "test",
            "--name",
            name,
        ])
        .args(more);
    run_client("kite.js Kontrol client (kontrol.js)", cmd).await
}

/// Checks the `--more` part of `kontrolpeer find`'s output: `GetToken` answers the token
/// `GetKites` handed out (tokens are cached per audience, user, issuer and key pair), again;
/// `GetTokenForce` a new one; `GetKey` the Kontrol key exactly as the client's kite key
/// carries it (the reference kite compares it as text with the `kontrolKey` of kite keys).
fn assert_go_token_and_key(run: &ClientRun, key_file: &Path) {
    let out = &run.out;
    let token = &out["kites"][0]["token"];
    assert_eq!(out["getToken"], *token, "getToken\n{}", run.report);
    assert_eq!(
        out["getTokenAgain"], *token,
        "getToken again\n{}",
        run.report
    );
    let forced = out["getTokenForce"]
        .as_str()
        .unwrap_or_else(|| panic!("getTokenForce\n{}", run.report));
    assert_ne!(Some(forced), token.as_str(), "{}", run.report);
    assert_eq!(
        parse_unverified(forced).unwrap().aud,
        parse_unverified(token.as_str().unwrap()).unwrap().aud
    );
    let key = std::fs::read_to_string(key_file).unwrap();
    let claims = parse_unverified(key.trim()).unwrap();
    assert_eq!(
        out["getKey"].as_str(),
        Some(claims.kontrol_key.as_str()),
        "getKey must answer the kontrolKey of the caller's kite key verbatim\n{}",
        run.report
    );
}

/// Checks the output of `kontrolpeer find` / `kontrol.js`: exactly one kite, `id`, called
/// with the token Kontrol minted for `caller` with audience `/username/test/name`, returning
/// `square`.
fn assert_found_one(run: &ClientRun, id: &str, caller: &str, aud: &str, issuer: &str, square: f64) {
    assert!(run.ok, "the client failed\n{}", run.report);
    let kites = run.out["kites"]
        .as_array()
        .unwrap_or_else(|| panic!("no kites array\n{}", run.report));
    assert_eq!(kites.len(), 1, "{}", run.report);
    let k = &kites[0];
    assert_eq!(k["kite"]["id"], id, "{}", run.report);
    assert_eq!(k["error"], Value::Null, "{}", run.report);
    assert_eq!(k["result"].as_f64(), Some(square), "{}", run.report);
    let token = k["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token\n{}", run.report));
    let claims = parse_unverified(token).expect("parse the token the client got");
    assert_eq!(claims.sub, caller);
    assert_eq!(claims.iss, issuer);
    assert_eq!(claims.aud, aud);
}

// ---------------------------------------------------------------------------------------
// Our side.

/// Heartbeats every second, a kite without one for 3 s is dropped.
fn fast() -> KontrolConfig {
    KontrolConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_delay: Duration::from_secs(2),
        ..KontrolConfig::default()
    }
}

/// Our Kontrol, in process, listening on 127.0.0.1:0; its URL.
async fn start_kontrol(storage: Arc<dyn Storage>) -> (Kontrol, String) {
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            username: "kontrol".into(),
            ..Config::default()
        },
    )
    .expect("the Kontrol kite");
    let k = Kontrol::new(kite, storage, fast())
        .await
        .expect("start Kontrol");
    within("Kontrol listens", k.listen())
        .await
        .expect("Kontrol listens");
    let url = k.kite().url().expect("Kontrol's URL");
    (k, url)
}

/// One of our kites (environment `test`, region `here`) with `key`; serves `square` (with
/// authentication, the default) when `serve`.
fn our_kite(name: &str, key: &str, serve: bool) -> Kite {
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        region: "here".into(),
        ..Config::default()
    };
    config.use_kite_key(key).expect("use the kite key");
    // A fresh UUID id per kite (the reference Kontrol's PostgreSQL schema needs a UUID).
    let k = Kite::with_config(name, "1.0.0", config).expect("our kite");
    if serve {
        k.handle("square", |r: Request| async move {
            let n: f64 = r.args().one()?;
            Ok::<_, kite::KiteError>(n * n)
        })
        .expect("handle square");
    }
    k
}

fn query(username: &str, name: &str) -> KiteQuery {
    KiteQuery {
        username: username.into(),
        environment: "test".into(),
        name: name.into(),
        ..KiteQuery::default()
    }
}

/// Finds `username/test/name` through `caller`'s Kontrol, expects exactly kite `id`, and
/// calls `square(arg)` on it with the token Kontrol handed out.
async fn our_find_and_call(caller: &Kite, username: &str, name: &str, id: &str, arg: f64) {
    let clients = within("get_kites", caller.get_kites(&query(username, name)))
        .await
        .unwrap_or_else(|e| panic!("get_kites {username}/test/{name}: {e}"));
    assert_eq!(clients.len(), 1, "one kite expected");
    let c = &clients[0];
    assert_eq!(c.remote_kite().id, id);
    assert_eq!(c.remote_kite().name, name);
    let auth = c.auth().expect("the client carries a token");
    assert_eq!(auth.kind, "token");
    let claims = parse_unverified(&auth.key).expect("parse the token");
    assert_eq!(claims.sub, caller.identity().username);
    assert_eq!(claims.aud, format!("/{username}/test/{name}"));
    within("dial the kite found", c.dial())
        .await
        .expect("dial the kite found");
    let got = within("square", c.call("square", [arg]))
        .await
        .unwrap_or_else(|e| panic!("square with the token from Kontrol: {e}"));
    assert_eq!(got.as_f64(), Some(arg * arg));
    c.close();
}

/// Subscribes `caller` to changes of alice's `math` kites (`getKites` with a
/// `watchCallback`); returns the events as they arrive.
async fn watch_kites(caller: &Kite) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let kc = within("connect to Kontrol", caller.kontrol())
        .await
        .expect("our client connects to Kontrol");
    let (tx, events) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watch = Callback::new(move |a| {
        let _ = tx.send(a.values()[0].clone());
    });
    within(
        "getKites with a watchCallback",
        kc.call(
            "getKites",
            kite::Payload::list()
                .arg(json!({"query": {"username": "alice", "environment": "test", "name": "math"}}))
                .with_callback(
                    [kite::dnode::Segment::from(0), "watchCallback".into()],
                    watch.clone(),
                ),
        ),
    )
    .await
    .expect("getKites with a watchCallback");
    events
}

/// What our Kontrol stored is what the Go kite said it is, under our current key pair.
async fn assert_stored_as_announced(kontrol: &Kontrol, go: &Peer, go_id: &str) {
    let stored = kontrol
        .storage()
        .get_by_id(go_id)
        .await
        .unwrap()
        .expect("the Go kite is in our storage");
    assert_eq!(stored.url, go.url());
    assert_eq!(
        serde_json::to_value(&stored.kite).unwrap(),
        go.ready["kite"]
    );
    assert_eq!(stored.key_id, kontrol.current_key().await.unwrap().id);
}

/// The Go kite checks authentication: our client's own kite key (signed by our Kontrol,
/// a client's default authentication) is accepted too, nothing is refused.
async fn assert_go_kite_checks_auth(caller: &Kite, go_url: &str) {
    let direct = caller.client(go_url);
    within("dial the Go kite", direct.dial())
        .await
        .expect("dial the Go kite");
    let got = within("square with our kite key", direct.call("square", [2]))
        .await
        .expect("the Go kite accepts a kite key signed by our Kontrol");
    assert_eq!(got.as_f64(), Some(4.0));
    direct.set_auth(None);
    let e = within("square without authentication", direct.call("square", [5]))
        .await
        .expect_err("the Go kite's square needs authentication");
    assert_eq!(e.kind(), ErrorKind::AuthenticationError, "{e}");
    direct.close();
}

/// The Go reference Kontrol on database `db`, with key pair `pair` and its own kite key
/// (what `kontrol --initial` would write).
async fn start_go_kontrol(dir: &Scratch, pg: &PgServer, db: &str, pair: &KeyPair) -> Peer {
    let public = dir.write("kontrol_pub.pem", &pair.public_pem);
    let private = dir.write("kontrol.pem", &pair.private_pem);
    let own_key = dir.write(
        "kontrol.key",
        &mint_kite_key(pair, "kontrol", "kontrol", "").unwrap(),
    );
    let mut cmd = Command::new(go_bin("kontrol"));
    cmd.arg("--public-key")
        .arg(&public)
        .arg("--private-key")
        .arg(&private)
        .arg("--kite-key")
        .arg(&own_key)
        .args(["--postgres-host", "127.0.0.1"])
        .args(["--postgres-port", &pg.port().to_string()])
        .args(["--postgres-username", postgres_server::SUPERUSER])
        .args(["--postgres-dbname", db]);
    Peer::start("the Go reference Kontrol (PostgreSQL)", cmd).await
}

/// getToken from the Go Kontrol (cached per audience, user, issuer and key pair; `force`
/// mints a new one) and getKey.
async fn assert_go_kontrol_tokens(caller: &Kite, math: &Kite, pair: &KeyPair) {
    let t1 = within("getToken", caller.get_token(math.identity()))
        .await
        .unwrap_or_else(|e| panic!("getToken from the Go Kontrol: {e}"));
    let t2 = within("getToken", caller.get_token(math.identity()))
        .await
        .unwrap();
    assert_eq!(t1, t2, "the Go Kontrol caches tokens");
    let t3 = within("getToken force", caller.get_token_force(math.identity()))
        .await
        .unwrap_or_else(|e| panic!("getToken force from the Go Kontrol: {e}"));
    assert_ne!(t1, t3, "force mints a new token");
    assert_eq!(parse_unverified(&t3).unwrap().aud, "/alice/test/math");
    assert_eq!(
        within("getKey", caller.get_key()).await.unwrap().trim(),
        pair.public_pem.trim()
    );
}

/// A kite-rs Kontrol on the same database is the same registry: it finds the kite the Go
/// Kontrol registered, with tokens (signed with the key pair from the database) it accepts.
async fn assert_same_registry(store: Arc<Postgres>, pair: &KeyPair, id: &str) {
    let (ours, our_url) = start_kontrol(store).await;
    assert_eq!(
        ours.current_key().await.unwrap().public_pem.trim(),
        pair.public_pem.trim()
    );
    let dave = our_kite("caller", &ours.new_kite_key("dave").await.unwrap(), false);
    assert_eq!(dave.config().kontrol_url, our_url);
    our_find_and_call(&dave, "alice", "math", id, 9.0).await;
    ours.close();
}

// ---------------------------------------------------------------------------------------
// (a) A Go reference kite on our Kontrol.

/// The Go kite registers with `RegisterForever`; our client and the Go client find it and
/// call it with our tokens; without a token the Go kite refuses; when it exits, our
/// Kontrol's watchers get `DEREGISTER` and it is gone from `getKites`.
#[tokio::test]
async fn go_kite_registers_to_our_kontrol_and_is_called_by_our_and_go_clients() {
    let dir = Scratch::new();
    #[cfg(feature = "sqlite")]
    let storage: Arc<dyn Storage> = Arc::new(
        kite::kontrol::storage::sqlite::Sqlite::open(dir.0.join("kontrol.db"))
            .await
            .expect("open SQLite storage"),
    );
    #[cfg(not(feature = "sqlite"))]
    let storage: Arc<dyn Storage> = Arc::new(Memory::new());
    let (kontrol, url) = start_kontrol(storage).await;

    // Our client watches alice's kites from the start.
    let caller = our_kite("caller", &kontrol.new_kite_key("bob").await.unwrap(), false);
    let mut events = watch_kites(&caller).await;

    // The Go kite, with a kite key from our Kontrol (which names our Kontrol's URL).
    let alice = kontrol.new_kite_key("alice").await.unwrap();
    assert_eq!(parse_unverified(&alice).unwrap().kontrol_url, url);
    let key = dir.write("alice.key", &alice);
    let go = go_kite(&key, "math", false).await;
    let go_id = go.ready["kite"]["id"]
        .as_str()
        .expect("kite id")
        .to_string();
    assert_eq!(go.ready["kite"]["username"], "alice", "{}", go.ready);
    let ev = within("REGISTER event", events.recv()).await.unwrap();
    assert_eq!(ev["action"], "REGISTER", "{ev}");
    assert_eq!(ev["kite"]["id"], go_id.as_str(), "{ev}");
    assert_eq!(ev["url"], go.url().as_str(), "{ev}");
    assert_stored_as_announced(&kontrol, &go, &go_id).await;

    // Our client finds it and calls it with our Kontrol's token...
    our_find_and_call(&caller, "alice", "math", &go_id, 5.0).await;
    assert_go_kite_checks_auth(&caller, &go.url()).await;

    // The Go client finds it through our Kontrol and calls it with our token.
    let carol = dir.write("carol.key", &kontrol.new_kite_key("carol").await.unwrap());
    let run = go_find(&carol, "alice", "math", 7).await;
    assert_found_one(&run, &go_id, "carol", "/alice/test/math", "kontrol", 49.0);
    assert_go_token_and_key(&run, &carol);

    // The Go kite goes away: its Kontrol connection closes, heartbeats stop.
    go.stop().await;
    let ev = within("DEREGISTER event", events.recv()).await.unwrap();
    assert_eq!(ev["action"], "DEREGISTER", "{ev}");
    assert_eq!(ev["kite"]["id"], go_id.as_str(), "{ev}");
    assert!(
        within("getKites", caller.get_kites(&query("alice", "math")))
            .await
            .is_err()
    );
    kontrol.close();
}

/// The Go kite registers over HTTP (`RegisterHTTP`: `POST /register`, then `GET /heartbeat`);
/// our client and the Go client find and call it.
#[tokio::test]
async fn go_kite_registers_to_our_kontrol_over_http() {
    let dir = Scratch::new();
    let (kontrol, _url) = start_kontrol(Arc::new(Memory::new())).await;
    let key = dir.write("alice.key", &kontrol.new_kite_key("alice").await.unwrap());
    let go = go_kite(&key, "math-http", true).await;
    let go_id = go.ready["kite"]["id"]
        .as_str()
        .expect("kite id")
        .to_string();

    let caller = our_kite("caller", &kontrol.new_kite_key("bob").await.unwrap(), false);
    our_find_and_call(&caller, "alice", "math-http", &go_id, 3.0).await;
    let carol = dir.write("carol.key", &kontrol.new_kite_key("carol").await.unwrap());
    let run = go_find(&carol, "alice", "math-http", 4).await;
    assert_found_one(
        &run,
        &go_id,
        "carol",
        "/alice/test/math-http",
        "kontrol",
        16.0,
    );
    assert!(!go.stderr().contains("Cannot register"), "{}", go.stderr());
    go.stop().await;
    kontrol.close();
}

// ---------------------------------------------------------------------------------------
// (b) Our kite on the Go reference Kontrol (PostgreSQL).

#[tokio::test]
async fn our_kite_registers_to_go_kontrol_on_postgres() {
    let dir = Scratch::new();
    let pg = PgServer::start();
    let db = pg.create_database().await;
    // The reference never creates its schema (operators run its SQL files); ours lays out the
    // same tables.
    let store = Arc::new(
        Postgres::connect(&pg.config(&db))
            .await
            .expect("prepare the reference schema with our PostgreSQL backend"),
    );

    // The Go Kontrol: our key pair, its own kite key (what `kontrol --initial` would write).
    let pair = KeyPair::generate().unwrap();
    let go_kontrol = start_go_kontrol(&dir, &pg, &db, &pair).await;
    let go_url = go_kontrol.url();

    // Our kite registers (register_forever: dnode, re-registering after reconnects).
    let math = our_kite(
        "math",
        &mint_kite_key(&pair, "kontrol", "alice", &go_url).unwrap(),
        true,
    );
    within("listen", math.listen()).await.unwrap();
    let math_url = math.url().unwrap();
    let result = match timeout(WAIT, math.register_forever(&math_url)).await {
        Ok(r) => r,
        Err(_) => panic!(
            "our kite did not register to the Go Kontrol within {WAIT:?}; Go Kontrol stderr:\n{}",
            go_kontrol.stderr()
        ),
    };
    assert_eq!(result.url, math_url);
    // The key is the one the Go Kontrol holds: nothing re-signed.
    assert!(result.kite_key.is_empty(), "{result:?}");
    assert!(result.public_key.is_empty(), "{result:?}");
    let id = math.config().id.clone();

    // The Go Kontrol wrote the reference's rows; our backend reads them.
    let rows = store.get(&query("alice", "math")).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&rows[0].kite, math.identity());
    assert_eq!(rows[0].url, math_url);
    let key = store.key_by_id(&rows[0].key_id).await.unwrap();
    assert_eq!(key.public_pem.trim(), pair.public_pem.trim());

    // Our client finds it through the Go Kontrol and calls it with the Go Kontrol's token.
    let caller = our_kite(
        "caller",
        &mint_kite_key(&pair, "kontrol", "bob", &go_url).unwrap(),
        false,
    );
    our_find_and_call(&caller, "alice", "math", &id, 6.0).await;
    assert_go_kontrol_tokens(&caller, &math, &pair).await;

    // The Go client finds it too.
    let carol = dir.write(
        "carol.key",
        &mint_kite_key(&pair, "kontrol", "carol", &go_url).unwrap(),
    );
    let run = go_find(&carol, "alice", "math", 8).await;
    assert_found_one(&run, &id, "carol", "/alice/test/math", "kontrol", 64.0);
    // The same checks hold for the reference Kontrol itself.
    assert_go_token_and_key(&run, &carol);

    assert_same_registry(store.clone(), &pair, &id).await;
    // Our kite closes cleanly: its `unregister` gets the Go Kontrol's methodNotFound, which
    // is ignored (no delay beyond the answer); the Go Kontrol drops the kite when its
    // heartbeats stop, as it always did, so the row is still there right after.
    let closing = std::time::Instant::now();
    within("close", math.shutdown()).await;
    assert!(
        closing.elapsed() < Duration::from_secs(3),
        "closing took {:?}",
        closing.elapsed()
    );
    assert_eq!(store.get(&query("alice", "math")).await.unwrap().len(), 1);
    // One connection, one registration (the reference logs each one).
    let log = go_kontrol.stderr();
    assert_eq!(
        log.matches("Register request from: ").count(),
        1,
        "our kite registered more than once on one connection; Go Kontrol stderr:\n{log}"
    );
    go_kontrol.stop().await;
}

// ---------------------------------------------------------------------------------------
// (c) kite.js's Kontrol client on our Kontrol.

#[tokio::test]
async fn kitejs_fetch_kites_finds_and_calls_our_kite() {
    let dir = Scratch::new();
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new())).await;
    let math = our_kite("math", &kontrol.new_kite_key("alice").await.unwrap(), true);
    within("listen", math.listen()).await.unwrap();
    within("register", math.register(&math.url().unwrap()))
        .await
        .expect("our kite registers");
    let id = math.config().id.clone();

    let key = dir.write("erin.key", &kontrol.new_kite_key("erin").await.unwrap());
    let run = kitejs_fetch(&url, &key, "math", &["--method", "square", "--arg", "7"]).await;
    assert_found_one(&run, &id, "erin", "/alice/test/math", "kontrol", 49.0);
    assert_eq!(run.out["kites"][0]["url"], math.url().unwrap().as_str());

    // Nothing matches: our Kontrol answers an empty list, which fetchKites passes on (the
    // script then exits 1).
    let run = kitejs_fetch(&url, &key, "nosuch", &[]).await;
    assert!(!run.ok, "{}", run.report);
    assert_eq!(run.out["kites"], json!([]), "{}", run.report);

    math.close();
    kontrol.close();
}
