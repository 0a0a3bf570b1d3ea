//! Kontrol end to end on in-memory storage: register, find, tokens, keys, heartbeats,
//! watching, HTTP registration and bad input. (The storage backends have their own suite.)
// Test helpers outside #[test] functions unwrap too (clippy's allow-unwrap-in-tests covers
// only the test functions themselves).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig, Storage};
use kite::protocol::{Auth, KiteQuery};
use kite::{Callback, Config, ErrorKind, Kite, Request};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::IntoFuture>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f.into_future())
        .await
        .expect("timed out")
}

fn fast() -> KontrolConfig {
    KontrolConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_delay: Duration::from_millis(500),
        machine_check: Some(allow_all_machines()),
        ..KontrolConfig::default()
    }
}

async fn start_kontrol(storage: Arc<dyn Storage>, config: KontrolConfig) -> (Kontrol, String) {
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
    let url = k.kite().url().unwrap();
    (k, url)
}

/// A kite of `name` for `username` with a kite key from `kontrol`.
async fn kite_for(kontrol: &Kontrol, url: &str, name: &str, version: &str, username: &str) -> Kite {
    kite_with(kontrol, url, name, version, username, |_| {}).await
}

/// [`kite_for`], its configuration changed by `tweak` first.
async fn kite_with(
    kontrol: &Kontrol,
    url: &str,
    name: &str,
    version: &str,
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
    config.kontrol_url = url.to_string();
    tweak(&mut config);
    let k = Kite::with_config(name, version, config).unwrap();
    k.handle("square", |r: Request| async move {
        let n: f64 = r.args().one()?;
        Ok::<_, kite::KiteError>(n * n)
    })
    .unwrap();
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

#[tokio::test]
async fn register_find_and_call_with_token() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    let result = within(math.register(&math.url().unwrap())).await.unwrap();
    assert_eq!(result.url, math.url().unwrap());

    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    let clients = within(caller.get_kites(&query("alice", "math")))
        .await
        .unwrap();
    assert_eq!(clients.len(), 1);
    let c = &clients[0];
    assert_eq!(c.remote_kite().name, "math");
    assert_eq!(c.auth().unwrap().kind, "token");
    within(c.dial()).await.unwrap();
    // `square` requires authentication: the token from Kontrol is accepted by `math`.
    assert_eq!(within(c.call("square", [5])).await.unwrap(), json!(25.0));

    // Version constraints.
    let mut q = query("alice", "math");
    q.version = ">= 1.0, < 1.4".into();
    assert_eq!(within(caller.get_kites(&q)).await.unwrap().len(), 1);
    q.version = ">= 2.0".into();
    assert!(within(caller.get_kites(&q)).await.is_err());

    // getToken: cached unless forced.
    let t1 = within(caller.get_token(&c.remote_kite())).await.unwrap();
    let t2 = within(caller.get_token(&c.remote_kite())).await.unwrap();
    let t3 = within(caller.get_token_force(&c.remote_kite()))
        .await
        .unwrap();
    assert_eq!(t1, t2);
    assert_ne!(t1, t3);
    // getKey: Kontrol's current key.
    assert_eq!(
        within(caller.get_key()).await.unwrap(),
        kontrol.current_key().await.unwrap().public_pem
    );
}

#[tokio::test]
async fn bad_queries_get_clear_errors() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    let c = within(caller.kontrol()).await.unwrap();
    for (q, want) in [
        (json!({"name": "math"}), "Empty username field"),
        (
            json!({"username": "a", "name": "math"}),
            "Invalid query. Query option is not set: environment",
        ),
        (
            json!({"username": "a", "environment": "e", "name": "m", "version": "~>banana"}),
            "invalid version constraint",
        ),
    ] {
        let e = within(c.call("getKites", &[json!({"query": q})]))
            .await
            .unwrap_err()
            .to_kite_error();
        assert!(e.message.contains(want), "{q}: {}", e.message);
        // The caller's mistake, not Kontrol's: a retry loop can tell it from an empty registry.
        assert_eq!(e.kind, kite::ErrorKind::ArgumentError, "{q}: {e:?}");
    }
    // The same through getToken and through the Rust client.
    let e = within(c.call("getToken", &[json!({"username": "a", "name": "m"})]))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.kind, kite::ErrorKind::ArgumentError, "{e:?}");
    let q = kite::protocol::KiteQuery {
        username: "bob".into(),
        name: "math".into(),
        ..Default::default()
    };
    let e = within(caller.get_kites(&q)).await.unwrap_err();
    assert_eq!(e.code(), "argumentError", "{e}");
    assert!(e.to_string().contains("not set: environment"), "{e}");
    // A valid query matching nothing stays its own condition.
    let q = kite::protocol::KiteQuery {
        username: "bob".into(),
        environment: "nowhere".into(),
        ..Default::default()
    };
    let e = within(caller.get_kites(&q)).await.unwrap_err();
    assert_eq!(e.code(), "genericError", "{e}");
    assert_eq!(e.to_kite_error().message, "no kites available");
    let e = within(c.call("getToken", &[json!({"username": "nobody"})]))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.message, "no kites found");
    assert_eq!(e.kind, kite::ErrorKind::GenericError);
    // Registering with a bad identity or URL.
    let bad = kite_with(&kontrol, &url, "math", "1.0.0", "alice", |c| {
        c.region = "a/b".into()
    })
    .await;
    let e = within(bad.register("http://127.0.0.1:1/kite"))
        .await
        .unwrap_err()
        .to_kite_error();
    assert!(e.message.contains("cannot contain"), "{}", e.message);
    let ok = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    let e = within(ok.register("")).await.unwrap_err().to_kite_error();
    assert_eq!(e.message, "empty url");
}

#[tokio::test]
async fn forged_and_foreign_kite_keys_are_rejected() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let foreign = kite::auth::KeyPair::generate().unwrap();
    let forged = kite::auth::mint_kite_key(&foreign, "kontrol", "mallory", &url).unwrap();
    let k = Kite::with_config(
        "evil",
        "1.0.0",
        Config {
            kontrol_url: url.clone(),
            kite_key: forged.clone(),
            ..Config::default()
        },
    )
    .unwrap();
    let e = within(k.register("http://127.0.0.1:1/kite"))
        .await
        .unwrap_err()
        .to_kite_error();
    assert_eq!(e.kind, ErrorKind::AuthenticationError);
    assert!(e.message.contains("not trusted"), "{}", e.message);
    // A genuine key with a tampered payload.
    let good = kontrol.new_kite_key("alice").await.unwrap();
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    let k = Kite::with_config(
        "evil",
        "1.0.0",
        Config {
            kontrol_url: url.clone(),
            kite_key: parts.join("."),
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(
        within(k.register("http://127.0.0.1:1/kite"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::AuthenticationError
    );
}

#[tokio::test]
async fn kites_without_heartbeats_disappear_and_watchers_see_it() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    let c = within(caller.kontrol()).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watch = Callback::new(move |a| {
        let _ = tx.send(a.values()[0].clone());
    });
    let r = within(
        c.call(
            "getKites",
            kite::Payload::list()
                .arg(json!({"query": {"username": "alice", "environment": "test"}}))
                .with_callback(
                    [kite::dnode::Segment::from(0), "watchCallback".into()],
                    watch.clone(),
                ),
        ),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");

    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    within(math.register(&math.url().unwrap())).await.unwrap();
    let ev = within(rx.recv()).await.unwrap();
    assert_eq!(ev["action"], "REGISTER");
    assert_eq!(ev["kite"]["name"], "math");
    assert!(ev["token"].as_str().is_some_and(|t| !t.is_empty()));

    // The kite loses its connection to Kontrol (it does not close: no `unregister`), so its
    // heartbeats stop: it stays listed for the reference's heartbeat timing (interval +
    // delay, 1.5 s here), then goes.
    let lost = std::time::Instant::now();
    within(math.kontrol()).await.unwrap().close();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        within(caller.get_kites(&query("alice", "math")))
            .await
            .unwrap()
            .len(),
        1,
        "a kite that merely lost its connection is kept until its heartbeats time out"
    );
    let ev = within(rx.recv()).await.unwrap();
    assert_eq!(ev["action"], "DEREGISTER");
    assert!(
        lost.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        lost.elapsed()
    );
    assert!(within(caller.get_kites(&query("alice", "math")))
        .await
        .is_err());
    math.close();
}

/// A watcher of `getKites` for alice's kites in `test`, on `caller`'s Kontrol connection.
async fn watch_alice(caller: &Kite) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let c = within(caller.kontrol()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watch = Callback::new(move |a| {
        let _ = tx.send(a.values()[0].clone());
    });
    within(
        c.call(
            "getKites",
            kite::Payload::list()
                .arg(json!({"query": {"username": "alice", "environment": "test"}}))
                .with_callback(
                    [kite::dnode::Segment::from(0), "watchCallback".into()],
                    watch.clone(),
                ),
        ),
    )
    .await
    .unwrap();
    rx
}

#[tokio::test]
async fn a_kite_that_closes_leaves_at_once() {
    // Heartbeats as slow as the reference's: only `unregister` can make it this fast.
    let config = KontrolConfig {
        machine_check: Some(allow_all_machines()),
        ..KontrolConfig::default()
    };
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), config).await;
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    let mut events = watch_alice(&caller).await;
    for over_http in [false, true] {
        let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
        within(math.listen()).await.unwrap();
        let math_url = math.url().unwrap();
        if over_http {
            within(math.register_http(&math_url)).await.unwrap();
        } else {
            within(math.register(&math_url)).await.unwrap();
        }
        let ev = within(events.recv()).await.unwrap();
        assert_eq!(ev["action"], "REGISTER", "{ev}");
        let closing = std::time::Instant::now();
        math.close();
        let ev = within(events.recv()).await.unwrap();
        assert_eq!(ev["action"], "DEREGISTER", "{ev}");
        assert_eq!(ev["kite"]["id"], math.config().id);
        assert!(
            closing.elapsed() < Duration::from_secs(1),
            "DEREGISTER {:?} after close (http: {over_http})",
            closing.elapsed()
        );
        within(math.closed()).await;
        assert!(within(caller.get_kites(&query("alice", "math")))
            .await
            .is_err());
    }
}

#[tokio::test]
async fn only_the_registering_kite_may_unregister() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    within(math.register(&math.url().unwrap())).await.unwrap();
    let id = math.config().id.clone();
    // Another kite of the same user, with its own kite key, claiming math's id; and one of
    // another user.
    for user in ["alice", "mallory"] {
        let other = kite_with(&kontrol, &url, "math", "1.0.0", user, |c| c.id = id.clone()).await;
        let e = within(other.unregister()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationError, "{user}: {e}");
        other.close();
    }
    // A kite that registered nothing here.
    let stranger = kite_for(&kontrol, &url, "stranger", "1.0.0", "alice").await;
    let e = within(stranger.unregister()).await.unwrap_err();
    assert!(e.to_string().contains("not registered"), "{e}");
    stranger.close();
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    assert_eq!(
        within(caller.get_kites(&query("alice", "math")))
            .await
            .unwrap()
            .len(),
        1,
        "the record survives"
    );
    // Its own kite may.
    within(math.unregister()).await.unwrap();
    assert!(within(caller.get_kites(&query("alice", "math")))
        .await
        .is_err());
    // Its old heartbeats do not write it back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(within(caller.get_kites(&query("alice", "math")))
        .await
        .is_err());
    math.close();
}

#[tokio::test]
async fn register_machine_and_key_rotation() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    // registerMachine hands out a kite key for the claimed username.
    let newcomer = Kite::with_config(
        "laptop",
        "1.0.0",
        Config {
            username: "carol".into(),
            kontrol_url: url.clone(),
            ..Config::default()
        },
    )
    .unwrap();
    let plain = newcomer.client(&url);
    within(plain.dial()).await.unwrap();
    let key = within(plain.call("registerMachine", &[json!({"authType": "password"})]))
        .await
        .unwrap();
    let claims = kite::auth::parse_unverified(key.as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, "carol");

    // A kite whose key pair is rotated away gets a re-signed kite key when it registers.
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    let old_key = math.kite_key();
    kontrol.rotate_key().await.unwrap();
    let result = within(math.register(&math.url().unwrap())).await.unwrap();
    assert!(!result.kite_key.is_empty());
    assert_eq!(
        result.public_key,
        kontrol.current_key().await.unwrap().public_pem
    );
    // The configuration stays as built; the keys in use are the new ones.
    assert_eq!(math.config().kite_key, old_key);
    assert_ne!(math.kite_key(), old_key);
    assert_eq!(math.keys().kontrol_key, result.public_key);

    // Without a machine check, registerMachine is refused.
    let (_k2, url2) = start_kontrol(Arc::new(Memory::new()), KontrolConfig::default()).await;
    let c2 = newcomer.client(&url2);
    within(c2.dial()).await.unwrap();
    let e = within(c2.call("registerMachine", &[json!({"authType": "x"})]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("disabled"), "{e}");
}

#[tokio::test]
async fn http_registration_and_heartbeats() {
    let (kontrol, url) = start_kontrol(Arc::new(Memory::new()), fast()).await;
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    let r = within(math.register_http(&math.url().unwrap()))
        .await
        .unwrap();
    assert_eq!(r.heartbeat_interval, 1);
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "bob").await;
    assert_eq!(
        within(caller.get_kites(&query("alice", "math")))
            .await
            .unwrap()
            .len(),
        1
    );
    let base = url.trim_end_matches("/kite");
    let http = reqwest::Client::new();
    let pong = within(
        http.get(format!("{base}/heartbeat?id={}", math.config().id))
            .send(),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(pong, "pong");
    let again = within(http.get(format!("{base}/heartbeat?id=unknown")).send())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(again, "registeragain");
    let bad = within(http.post(format!("{base}/register")).body("{nope").send())
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["err"]
        .as_str()
        .unwrap()
        .starts_with("wrong register input"));
    let _ = Auth::kite_key("unused");
}

#[tokio::test]
async fn kites_come_back_after_kontrol_restarts() {
    let first = Arc::new(Memory::new());
    let (kontrol, url) = start_kontrol(first.clone(), fast()).await;
    let port = kontrol.kite().port().unwrap();
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    math.on_register(move |_| count_tx.send_modify(|n| *n += 1));
    within(math.register_forever(&math.url().unwrap())).await;
    let before = *count.borrow_and_update();
    assert!(before >= 1);

    // Kontrol goes down and comes back on the same port with an empty registry (same keys).
    let key = kontrol.current_key().await.unwrap();
    kontrol.close();
    let second = Arc::new(Memory::new());
    second.add_key(&key).await.unwrap();
    let kite = Kite::with_config(
        "kontrol",
        "0.0.4",
        Config {
            ip: "127.0.0.1".into(),
            port,
            username: "kontrol".into(),
            ..Config::default()
        },
    )
    .unwrap();
    // The old listener may take a moment to release the port; bind retries are bounded.
    let restarted = Kontrol::new(kite, second.clone(), fast()).await.unwrap();
    within(async {
        while restarted.listen().await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The kite's Kontrol connection redials (backoff from 500 ms) and re-registers.
    within(count.wait_for(|n| *n > before)).await.unwrap();
    let q = KiteQuery {
        username: "alice".into(),
        ..KiteQuery::default()
    };
    assert_eq!(second.get(&q).await.unwrap().len(), 1);
}

/// Memory storage whose `get` fails while `down` is set: a database outage as Kontrol sees it.
#[derive(Default)]
struct Flaky {
    memory: Memory,
    down: std::sync::atomic::AtomicBool,
}

mod flaky {
    use super::Flaky;
    use futures_util::stream::BoxStream;
    use kite::auth::KeyPair;
    use kite::kontrol::storage::{KiteRecord, Storage, StorageError, StorageResult};
    use kite::kontrol::Event;
    use kite::protocol::{Kite, KiteQuery};
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[async_trait::async_trait]
    impl Storage for Flaky {
        async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
            self.memory.upsert(record).await
        }
        async fn touch(&self, kite: &Kite) -> StorageResult<bool> {
            self.memory.touch(kite).await
        }
        async fn delete(&self, kite: &Kite) -> StorageResult<bool> {
            self.memory.delete(kite).await
        }
        async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StorageError::Unavailable("the database is down".into()));
            }
            self.memory.get(query).await
        }
        async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
            self.memory.get_by_id(id).await
        }
        async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>> {
            self.memory.expire(older_than).await
        }
        async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
            self.memory.watch().await
        }
        async fn add_key(&self, pair: &KeyPair) -> StorageResult<()> {
            self.memory.add_key(pair).await
        }
        async fn delete_key(&self, id: &str) -> StorageResult<()> {
            self.memory.delete_key(id).await
        }
        async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
            self.memory.key_by_id(id).await
        }
        async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair> {
            self.memory.key_by_public(public_pem).await
        }
        async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
            self.memory.active_keys().await
        }
    }
}

/// After a storage failure every heartbeating kite is written back at its next heartbeat,
/// not at its periodic refresh (here a minute away): the database may have come back
/// without it, as PostgreSQL does after a crash (its kite table is unlogged).
#[tokio::test]
async fn a_storage_failure_has_kites_written_back_at_their_next_heartbeat() {
    let storage = Arc::new(Flaky::default());
    let config = KontrolConfig {
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_delay: Duration::from_secs(60),
        expire_after: Duration::from_secs(600),
        ..fast()
    };
    let (kontrol, url) = start_kontrol(storage.clone(), config).await;
    let math = kite_for(&kontrol, &url, "math", "1.0.0", "alice").await;
    within(math.listen()).await.unwrap();
    within(math.register(&math.url().unwrap())).await.unwrap();
    let caller = kite_for(&kontrol, &url, "caller", "1.0.0", "alice").await;
    within(caller.get_kites(&query("alice", "math")))
        .await
        .unwrap();

    // The database loses the kite, and Kontrol sees it fail.
    assert!(storage.memory.delete(math.identity()).await.unwrap());
    storage
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = within(caller.get_kites(&query("alice", "math")))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("the database is down"), "{e}");
    storage
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);

    // Found again after the kite's next heartbeat (a second), long before WAIT.
    within(async {
        while caller.get_kites(&query("alice", "math")).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}
