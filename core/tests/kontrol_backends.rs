//! Kontrol end to end on its real storage backends: SQLite in a temporary file, PostgreSQL on
//! a server started for the test run (`common/postgres.rs`) and etcd on a server started per
//! test (`common/etcd.rs`, with `--features etcd`). The same scenarios run on each:
//!
//! - a kite registers, `getKites` finds it with a token, and the token opens the kite;
//! - two Kontrols on one PostgreSQL or one etcd form one registry: kites registered through
//!   one are found through the other, whose tokens the kites accept;
//! - watchers (`getKites` with a `watchCallback`) see kites come and go, whichever Kontrol
//!   they came and went through (on SQLite, which serves one process, two Kontrols in one
//!   process share one storage value);
//! - a kite removed from storage behind Kontrol's back while it heartbeats is back by itself;
//! - the database goes away: calls fail quickly with a clear error, and Kontrol recovers by
//!   itself when the database returns;
//! - on etcd, kites whose heartbeats arrive are not dropped when their lease is as short as
//!   the heartbeat interval plus the delay (what the `kontrol` binary configures).
//!
//! Waits are bounded and wait on events or results (retries poll on a short timer), never on
//! fixed sleeps.
//!
//! Run the etcd scenarios with `cargo test -p kite-rs --features etcd --test kontrol_backends`.
#![allow(missing_docs, clippy::unwrap_used)]

#[cfg(feature = "etcd")]
#[path = "common/etcd.rs"]
mod etcd_server;
#[cfg(feature = "postgres")]
#[path = "common/postgres.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kite::kontrol::{Event, KiteRecord, Kontrol, KontrolConfig, Storage, StorageResult};
use kite::protocol::{Auth, Kite as KiteIdentity, KiteQuery};
use kite::{Callback, Config, Kite, Request};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Upper bound for any single wait.
const WAIT: Duration = Duration::from_secs(10);

/// Awaits `f` with the test bound.
async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

// ---------------------------------------------------------------------------------------
// Kontrols, kites and watchers.

/// Heartbeats every second, removal half a second after a missed one.
fn fast() -> KontrolConfig {
    KontrolConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_delay: Duration::from_millis(500),
        ..KontrolConfig::default()
    }
}

/// A Kontrol on `storage` with [`fast`] settings, listening on 127.0.0.1:0.
async fn start_kontrol(storage: Arc<dyn Storage>) -> Kontrol {
    start_kontrol_with(storage, fast()).await
}

/// A Kontrol on `storage` with `config`, listening on 127.0.0.1:0.
async fn start_kontrol_with(storage: Arc<dyn Storage>, config: KontrolConfig) -> Kontrol {
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
    let k = Kontrol::new(kite, storage, config).await.unwrap();
    within(k.listen()).await.unwrap();
    k
}

fn kontrol_url(k: &Kontrol) -> String {
    k.kite().url().unwrap()
}

/// A kite named `name` for `username`, with a kite key from `kontrol` and `kontrol` as its
/// Kontrol; it serves `square` (authenticated).
async fn kite_for(kontrol: &Kontrol, name: &str, username: &str) -> Kite {
    kite_with(kontrol, name, username, |_| {}).await
}

/// [`kite_for`], its configuration changed by `tweak` first.
async fn kite_with(
    kontrol: &Kontrol,
    name: &str,
    username: &str,
    tweak: impl FnOnce(&mut Config),
) -> Kite {
    let key = kontrol.new_kite_key(username).await.unwrap();
    let mut config = Config {
        ip: "127.0.0.1".into(),
        environment: "test".into(),
        region: "here".into(),
        ..Config::default()
    };
    config.use_kite_key(&key).unwrap();
    config.id = uuid::Uuid::new_v4().to_string();
    config.kontrol_url = kontrol_url(kontrol);
    tweak(&mut config);
    let k = Kite::with_config(name, "1.0.0", config).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })
    .unwrap();
    k
}

/// A serving kite registered through `kontrol`.
async fn registered(kontrol: &Kontrol, name: &str, username: &str) -> Kite {
    let k = kite_for(kontrol, name, username).await;
    within(k.listen()).await.unwrap();
    let url = k.url().unwrap();
    assert_eq!(within(k.register(&url)).await.unwrap().url, url);
    k
}

/// Stops a kite and its connection to Kontrol: its heartbeats stop.
async fn stop(k: &Kite) {
    k.close();
    if let Ok(c) = k.kontrol().await {
        c.close();
    }
}

fn query(username: &str) -> KiteQuery {
    KiteQuery {
        username: username.into(),
        environment: "test".into(),
        ..KiteQuery::default()
    }
}

fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

/// Calls `square` on the kite at `url` with `token`, from `caller`.
async fn square_with_token(caller: &Kite, url: &str, token: &str) -> Result<Value, kite::Error> {
    let c = caller.client(url);
    c.set_auth(Some(Auth::token(token.to_string())));
    within(c.dial()).await?;
    let r = within(c.call("square", [5])).await;
    c.close();
    r
}

/// Finds `username`'s kites through `caller`'s Kontrol and calls each with its token.
async fn find_and_call(caller: &Kite, username: &str, expect: &[&Kite]) {
    let clients = within(caller.get_kites(&query(username))).await.unwrap();
    let mut found: Vec<String> = clients.iter().map(|c| c.remote_kite().id).collect();
    let mut want: Vec<String> = expect.iter().map(|k| k.config().id.clone()).collect();
    found.sort();
    want.sort();
    assert_eq!(found, want);
    for c in &clients {
        assert_eq!(c.auth().unwrap().kind, "token");
        within(c.dial()).await.unwrap();
        // `square` requires authentication: the kite accepts the token from Kontrol.
        assert_eq!(within(c.call("square", [5])).await.unwrap(), json!(25.0));
        c.close();
    }
}

/// A `getKites` watch on one Kontrol: its events, in order.
struct Watcher {
    events: mpsc::UnboundedReceiver<Value>,
    _kite: Kite,
}

impl Watcher {
    /// Watches `username`'s kites in environment `test` through `kontrol`; returns once the
    /// watch is in place.
    async fn start(kontrol: &Kontrol, username: &str) -> Watcher {
        let k = kite_for(kontrol, "watcher", &user()).await;
        let c = within(k.kontrol()).await.unwrap();
        let (tx, events) = mpsc::unbounded_channel::<Value>();
        let cb = Callback::new(move |a| {
            let _ = tx.send(a.values()[0].clone());
        });
        let q = json!({"username": username, "environment": "test"});
        let r = within(
            c.call(
                "getKites",
                kite::Payload::list()
                    .arg(json!({"query": q}))
                    .with_callback(
                        [kite::dnode::Segment::from(0), "watchCallback".into()],
                        cb.clone(),
                    ),
            ),
        )
        .await
        .unwrap();
        assert!(r["kites"].is_array(), "{r}");
        Watcher { events, _kite: k }
    }

    async fn next(&mut self) -> Value {
        within(self.events.recv()).await.expect("watch ended")
    }

    /// The next event is `action` for `k`; returns it.
    async fn expect(&mut self, action: &str, k: &Kite) -> Value {
        let ev = self.next().await;
        assert_eq!(ev["action"], action, "{ev}");
        assert_eq!(ev["kite"]["id"], k.config().id.as_str(), "{ev}");
        assert_eq!(ev["kite"]["name"], k.identity().name.as_str(), "{ev}");
        if action == "REGISTER" {
            assert_eq!(ev["url"], k.url().unwrap().as_str(), "{ev}");
            assert!(ev["token"].as_str().is_some_and(|t| !t.is_empty()), "{ev}");
        }
        ev
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios, each run on several backends.

/// A kite registers; `getKites` finds it with a token; the token opens the kite; version
/// constraints apply on top of the backend's matching.
async fn register_find_and_call(storage: Arc<dyn Storage>) {
    let kontrol = start_kontrol(storage).await;
    let alice = user();
    let math = registered(&kontrol, "math", &alice).await;
    let caller = kite_for(&kontrol, "caller", &user()).await;
    find_and_call(&caller, &alice, &[&math]).await;

    let mut q = query(&alice);
    q.name = "math".into();
    q.version = ">= 1.0, < 1.4".into();
    assert_eq!(within(caller.get_kites(&q)).await.unwrap().len(), 1);
    q.version = ">= 2.0".into();
    assert!(within(caller.get_kites(&q)).await.is_err());
    let t = within(caller.get_token(math.identity())).await.unwrap();
    assert_eq!(
        square_with_token(&caller, &math.url().unwrap(), &t)
            .await
            .unwrap(),
        json!(25.0)
    );
}

/// Two Kontrols on one database: what is registered through one is found through the other,
/// and the other's tokens are accepted by the kite.
async fn two_kontrols_form_one_registry(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    let ka = start_kontrol(a).await;
    let kb = start_kontrol(b).await;
    // The second found the first's key pair in storage instead of making its own.
    assert_eq!(
        ka.current_key().await.unwrap(),
        kb.current_key().await.unwrap()
    );
    let alice = user();
    let via_a = registered(&ka, "math", &alice).await;
    let caller_b = kite_for(&kb, "caller", &user()).await;
    find_and_call(&caller_b, &alice, &[&via_a]).await;

    let via_b = registered(&kb, "math", &alice).await;
    let caller_a = kite_for(&ka, "caller", &user()).await;
    find_and_call(&caller_a, &alice, &[&via_a, &via_b]).await;
    find_and_call(&caller_b, &alice, &[&via_a, &via_b]).await;

    // getToken through B for the kite registered through A.
    let t = within(caller_b.get_token_force(via_a.identity()))
        .await
        .unwrap();
    assert_eq!(
        square_with_token(&caller_b, &via_a.url().unwrap(), &t)
            .await
            .unwrap(),
        json!(25.0)
    );
    // A kite key minted by B registers through A.
    let crossed = kite_with(&kb, "math", &alice, |c| c.kontrol_url = kontrol_url(&ka)).await;
    within(crossed.listen()).await.unwrap();
    within(crossed.register(&crossed.url().unwrap()))
        .await
        .unwrap();
    find_and_call(&caller_b, &alice, &[&via_a, &via_b, &crossed]).await;
}

/// Watchers on both Kontrols see REGISTER and DEREGISTER for kites that came and went through
/// either; the token in a REGISTER event opens the kite.
async fn watchers_see_both_kontrols(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    let ka = start_kontrol(a).await;
    let kb = start_kontrol(b).await;
    let alice = user();
    let mut wa = Watcher::start(&ka, &alice).await;
    let mut wb = Watcher::start(&kb, &alice).await;

    let m1 = registered(&ka, "math", &alice).await;
    wa.expect("REGISTER", &m1).await;
    let ev = wb.expect("REGISTER", &m1).await;
    let caller = kite_for(&kb, "caller", &user()).await;
    let token = ev["token"].as_str().unwrap();
    assert_eq!(
        square_with_token(&caller, &m1.url().unwrap(), token)
            .await
            .unwrap(),
        json!(25.0)
    );

    let m2 = registered(&kb, "math", &alice).await;
    wa.expect("REGISTER", &m2).await;
    wb.expect("REGISTER", &m2).await;

    // Heartbeats stop: the Kontrol each registered through removes it.
    stop(&m1).await;
    wa.expect("DEREGISTER", &m1).await;
    wb.expect("DEREGISTER", &m1).await;
    stop(&m2).await;
    wa.expect("DEREGISTER", &m2).await;
    wb.expect("DEREGISTER", &m2).await;
    assert!(within(caller.get_kites(&query(&alice))).await.is_err());
}

/// A heartbeating kite that disappears from storage behind Kontrol's back (another Kontrol's
/// cleaner, an etcd lease that ran out, a crashed database that lost its unlogged table) is
/// written back by its Kontrol on a following heartbeat.
async fn heartbeating_kite_comes_back(storage: Arc<dyn Storage>) {
    let kontrol = start_kontrol(storage.clone()).await;
    let alice = user();
    let mut w = Watcher::start(&kontrol, &alice).await;
    let math = registered(&kontrol, "math", &alice).await;
    w.expect("REGISTER", &math).await;
    assert!(storage.delete(math.identity()).await.unwrap());
    w.expect("DEREGISTER", &math).await;
    w.expect("REGISTER", &math).await;
    let caller = kite_for(&kontrol, "caller", &user()).await;
    find_and_call(&caller, &alice, &[&math]).await;
}

/// A kite registered with `config` stays while its heartbeats arrive: its Kontrol refreshes
/// storage `touches` times (about one heartbeat each) with no DEREGISTER, and it is still found;
/// once its heartbeats stop it goes.
async fn heartbeating_kite_stays(storage: Arc<dyn Storage>, config: KontrolConfig, touches: u64) {
    let (count, mut touched) = tokio::sync::watch::channel(0u64);
    let kontrol = start_kontrol_with(
        Arc::new(Touches {
            inner: storage,
            count,
        }),
        config,
    )
    .await;
    let alice = user();
    let mut w = Watcher::start(&kontrol, &alice).await;
    let math = registered(&kontrol, "math", &alice).await;
    w.expect("REGISTER", &math).await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3 * touches + 10), async {
        tokio::select! {
            ev = w.events.recv() => panic!(
                "kite dropped while heartbeating: {ev:?} after {:?}",
                started.elapsed()
            ),
            r = touched.wait_for(|n| *n >= touches) => r.map(drop).unwrap(),
        }
    })
    .await
    .expect("heartbeats reach storage");
    let caller = kite_for(&kontrol, "caller", &user()).await;
    find_and_call(&caller, &alice, &[&math]).await;
    assert!(w.events.try_recv().is_err(), "no events while heartbeating");

    stop(&math).await;
    w.expect("DEREGISTER", &math).await;
}

/// Ids of the kites the Kontrol of `caller` finds for `username`, retrying (bounded) while the
/// storage is on its way back.
async fn found_again(caller: &Kite, username: &str) -> Vec<String> {
    within(async {
        loop {
            match caller.get_kites(&query(username)).await {
                Ok(clients) => break clients.iter().map(|c| c.remote_kite().id).collect(),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

/// While the database is away, Kontrol's calls fail within `bound` with an error naming the
/// storage; nothing hangs or panics. `late` (its kite key minted while the database was up)
/// tries to register.
async fn calls_fail_clearly(caller: &Kite, late: &Kite, username: &str, bound: Duration) {
    let started = Instant::now();
    let e = within(caller.get_kites(&query(username)))
        .await
        .unwrap_err()
        .to_kite_error();
    assert!(e.message.contains("storage unavailable"), "getKites: {e:?}");
    let e = within(late.register(&late.url().unwrap()))
        .await
        .unwrap_err()
        .to_kite_error();
    assert!(e.message.contains("storage unavailable"), "register: {e:?}");
    assert!(
        started.elapsed() < bound,
        "calls fail quickly: {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// A storage that reports its touches, to wait on heartbeats reaching storage.

struct Touches {
    inner: Arc<dyn Storage>,
    count: tokio::sync::watch::Sender<u64>,
}

#[async_trait::async_trait]
impl Storage for Touches {
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
        self.inner.upsert(record).await
    }
    async fn touch(&self, kite: &KiteIdentity) -> StorageResult<bool> {
        let r = self.inner.touch(kite).await;
        self.count.send_modify(|n| *n += 1);
        r
    }
    async fn delete(&self, kite: &KiteIdentity) -> StorageResult<bool> {
        self.inner.delete(kite).await
    }
    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        self.inner.get(query).await
    }
    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        self.inner.get_by_id(id).await
    }
    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<KiteIdentity>> {
        self.inner.expire(older_than).await
    }
    async fn watch(&self) -> StorageResult<futures_util::stream::BoxStream<'static, Event>> {
        self.inner.watch().await
    }
    async fn add_key(&self, pair: &kite::auth::KeyPair) -> StorageResult<()> {
        self.inner.add_key(pair).await
    }
    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        self.inner.delete_key(id).await
    }
    async fn key_by_id(&self, id: &str) -> StorageResult<kite::auth::KeyPair> {
        self.inner.key_by_id(id).await
    }
    async fn key_by_public(&self, public_pem: &str) -> StorageResult<kite::auth::KeyPair> {
        self.inner.key_by_public(public_pem).await
    }
    async fn active_keys(&self) -> StorageResult<Vec<kite::auth::KeyPair>> {
        self.inner.active_keys().await
    }
}

// ---------------------------------------------------------------------------------------
// SQLite.

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use kite::kontrol::storage::sqlite::Sqlite;

    /// A SQLite file in a directory removed when dropped.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new() -> TempDb {
            TempDb(
                std::env::temp_dir()
                    .join(format!("kite-kontrol-{}", uuid::Uuid::new_v4().simple())),
            )
        }

        async fn open(&self) -> Arc<dyn Storage> {
            Arc::new(Sqlite::open(self.0.join("kontrol.db")).await.unwrap())
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn sqlite_register_find_and_call() {
        let db = TempDb::new();
        register_find_and_call(db.open().await).await;
    }

    /// SQLite serves one process: two Kontrols in it share one storage value.
    #[tokio::test]
    async fn sqlite_watchers_see_both_kontrols() {
        let db = TempDb::new();
        let s = db.open().await;
        watchers_see_both_kontrols(s.clone(), s).await;
    }

    #[tokio::test]
    async fn sqlite_heartbeating_kite_comes_back() {
        let db = TempDb::new();
        heartbeating_kite_comes_back(db.open().await).await;
    }

    /// Kites are asked for heartbeats in whole seconds (at least one): with an interval and a
    /// delay shorter than that, Kontrol still waits a whole heartbeat plus the delay.
    #[tokio::test]
    async fn sqlite_subsecond_interval_keeps_heartbeating_kites() {
        let db = TempDb::new();
        let config = KontrolConfig {
            heartbeat_interval: Duration::from_millis(300),
            heartbeat_delay: Duration::from_millis(300),
            ..KontrolConfig::default()
        };
        heartbeating_kite_stays(db.open().await, config, 4).await;
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL.

#[cfg(feature = "postgres")]
mod postgres {
    use super::postgres_server::PgServer;
    use super::*;
    use kite::kontrol::storage::postgres::{Postgres, PostgresConfig};

    async fn connect(config: &PostgresConfig) -> Arc<dyn Storage> {
        Arc::new(Postgres::connect(config).await.unwrap())
    }

    /// A fresh database on the shared server; the server is kept while the test runs.
    async fn fresh() -> (Arc<PgServer>, PostgresConfig) {
        let server = tokio::task::spawn_blocking(PgServer::shared).await.unwrap();
        let db = server.create_database().await;
        let config = server.config(&db);
        (server, config)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_register_find_and_call() {
        let (_server, config) = fresh().await;
        register_find_and_call(connect(&config).await).await;
    }

    /// The same on storage opened from a `postgres://` URL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_url_register_find_and_call() {
        let (_server, c) = fresh().await;
        let url = format!(
            "postgresql://{}@{}:{}/{}?sslmode=disable",
            c.username, c.host, c.port, c.dbname
        );
        register_find_and_call(kite::kontrol::storage::open(&url).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_two_kontrols_form_one_registry() {
        let (_server, config) = fresh().await;
        let a = connect(&config).await;
        let b = connect(&config).await;
        two_kontrols_form_one_registry(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_watchers_see_both_kontrols() {
        let (_server, config) = fresh().await;
        let a = connect(&config).await;
        let b = connect(&config).await;
        watchers_see_both_kontrols(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_heartbeating_kite_comes_back() {
        let (_server, config) = fresh().await;
        heartbeating_kite_comes_back(connect(&config).await).await;
    }

    /// The server stops (cleanly) and later crashes: meanwhile Kontrol's calls fail quickly
    /// with a clear error; each time the server is back, Kontrol works again by itself — its
    /// registry, its watchers, and the heartbeating kite that the crash wiped from the
    /// unlogged `kite.kite` table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_outage_fails_clearly_and_kontrol_recovers() {
        let server = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
        let db = server.create_database().await;
        let config = PostgresConfig {
            connect_timeout: Duration::from_millis(500),
            ..server.config(&db)
        };
        let kontrol = start_kontrol(connect(&config).await).await;
        let alice = user();
        let math = registered(&kontrol, "math", &alice).await;
        let caller = kite_for(&kontrol, "caller", &user()).await;
        find_and_call(&caller, &alice, &[&math]).await;
        let mut watcher = Watcher::start(&kontrol, &alice).await;
        let late = kite_for(&kontrol, "late", &alice).await;
        within(late.listen()).await.unwrap();

        for crash in [false, true] {
            let srv = server.clone();
            tokio::task::spawn_blocking(move || if crash { srv.crash() } else { srv.stop() })
                .await
                .unwrap();
            calls_fail_clearly(&caller, &late, &alice, Duration::from_secs(5)).await;

            let srv = server.clone();
            tokio::task::spawn_blocking(move || srv.resume())
                .await
                .unwrap();
            // The kite is found again: kept by a clean stop; written back from its
            // heartbeats after the crash emptied the table.
            assert_eq!(
                found_again(&caller, &alice).await,
                [math.config().id.clone()]
            );
            find_and_call(&caller, &alice, &[&math]).await;
        }

        // Registration and watching work again too. The watch connection comes back on its
        // own; changes made before it is back are not seen, so register probes until one is.
        // (Bounded generously: with this file's other tests running beside it, PostgreSQL's
        // crash recovery and the listener's reconnect once took longer than WAIT in CI.)
        let deadline = Instant::now() + 3 * WAIT;
        let probe = 'probing: loop {
            assert!(Instant::now() < deadline, "watcher did not recover");
            let probe = registered(&kontrol, "probe", &alice).await;
            let seen_by = tokio::time::Instant::now() + Duration::from_millis(500);
            // Other events (the wiped kite written back, earlier probes) are passed over.
            while let Ok(ev) = tokio::time::timeout_at(seen_by, watcher.next()).await {
                if ev["action"] == "REGISTER" && ev["kite"]["id"] == probe.config().id.as_str() {
                    break 'probing probe;
                }
            }
            stop(&probe).await;
        };
        stop(&probe).await;
        loop {
            let ev = watcher.next().await;
            if ev["action"] == "DEREGISTER" && ev["kite"]["id"] == probe.config().id.as_str() {
                break;
            }
        }
    }

    /// A crash empties the unlogged `kite.kite`. With the periodic refresh a minute away,
    /// the heartbeating kite is still written back at its next heartbeat: the pool's new
    /// connections see that the server restarted (`Storage::epoch`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_crash_has_kites_written_back_at_their_next_heartbeat() {
        let server = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
        let db = server.create_database().await;
        let config = KontrolConfig {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_delay: Duration::from_secs(60),
            expire_after: Duration::from_secs(600),
            ..fast()
        };
        let kontrol = start_kontrol_with(connect(&server.config(&db)).await, config).await;
        let alice = user();
        let math = registered(&kontrol, "math", &alice).await;
        let caller = kite_for(&kontrol, "caller", &user()).await;
        let id = math.config().id.clone();
        assert_eq!(
            found_again(&caller, &alice).await,
            std::slice::from_ref(&id)
        );

        // The test server commits asynchronously: make Kontrol's new key pair durable first,
        // so that the crash takes only the unlogged kites.
        server.execute(&db, "CHECKPOINT").await;
        let srv = server.clone();
        tokio::task::spawn_blocking(move || {
            srv.crash();
            srv.resume();
        })
        .await
        .unwrap();
        // Found again within WAIT, long before the periodic refresh.
        assert_eq!(found_again(&caller, &alice).await, [id]);
    }
}

// ---------------------------------------------------------------------------------------
// etcd.

#[cfg(feature = "etcd")]
mod etcd {
    use super::etcd_server::EtcdServer;
    use super::*;
    use kite::kontrol::storage::etcd::{Etcd, EtcdOptions};

    async fn connect(options: EtcdOptions) -> Arc<dyn Storage> {
        Arc::new(Etcd::connect(options).await.unwrap())
    }

    #[tokio::test]
    async fn etcd_register_find_and_call() {
        let server = EtcdServer::start().await;
        register_find_and_call(connect(server.options()).await).await;
    }

    #[tokio::test]
    async fn etcd_two_kontrols_form_one_registry() {
        let server = EtcdServer::start().await;
        let a = connect(server.options()).await;
        let b = connect(server.options()).await;
        two_kontrols_form_one_registry(a, b).await;
    }

    #[tokio::test]
    async fn etcd_watchers_see_both_kontrols() {
        let server = EtcdServer::start().await;
        let a = connect(server.options()).await;
        let b = connect(server.options()).await;
        watchers_see_both_kontrols(a, b).await;
    }

    #[tokio::test]
    async fn etcd_heartbeating_kite_comes_back() {
        let server = EtcdServer::start().await;
        heartbeating_kite_comes_back(connect(server.options()).await).await;
    }

    /// With the lease the `kontrol` binary gives kites (heartbeat interval + delay, here
    /// 1 s + 0.5 s, rounded up to 2 s by etcd), a kite whose heartbeats keep arriving stays
    /// registered across many lease lifetimes (8 refreshes, one a heartbeat).
    #[tokio::test]
    async fn etcd_short_lease_keeps_heartbeating_kites() {
        let server = EtcdServer::start().await;
        let config = fast();
        let storage = connect(EtcdOptions {
            lease_ttl: config.heartbeat_interval + config.heartbeat_delay,
            ..server.options()
        })
        .await;
        heartbeating_kite_stays(storage, config, 8).await;
    }

    /// etcd goes away: calls fail quickly with a clear error; it comes back and Kontrol works
    /// again by itself.
    #[tokio::test]
    async fn etcd_outage_fails_clearly_and_kontrol_recovers() {
        let mut server = EtcdServer::start().await;
        let kontrol = start_kontrol(connect(server.options()).await).await;
        let alice = user();
        let math = registered(&kontrol, "math", &alice).await;
        let caller = kite_for(&kontrol, "caller", &user()).await;
        find_and_call(&caller, &alice, &[&math]).await;
        let late = kite_for(&kontrol, "late", &alice).await;
        within(late.listen()).await.unwrap();

        server.stop();
        // Requests time out after 2 s (the test options).
        calls_fail_clearly(&caller, &late, &alice, Duration::from_secs(9)).await;
        server.restart().await;
        assert_eq!(
            found_again(&caller, &alice).await,
            [math.config().id.clone()]
        );
        find_and_call(&caller, &alice, &[&math]).await;
        let mut w = Watcher::start(&kontrol, &alice).await;
        let again = registered(&kontrol, "math", &alice).await;
        w.expect("REGISTER", &again).await;
    }
}
