//! The etcd storage backend against a real etcd server (Debian's `etcd-server`, started per
//! test on free loopback ports by `common/etcd.rs`). The behavioural suite runs against the
//! in-memory backend too, so both are held to the same assertions.
//!
//! Run with `cargo test -p kite-rs --features etcd --test storage_etcd`.
#![cfg(feature = "etcd")]
#![allow(missing_docs, clippy::unwrap_used)]

mod common;
#[path = "common/etcd.rs"]
mod etcd_server;

use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use kite::auth::KeyPair;
use kite::kontrol::storage::etcd::{Etcd, EtcdOptions, KITES_PREFIX, KITE_IDS_PREFIX};
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{Event, KiteRecord, Storage, StorageError};
use kite::protocol::{Kite, KiteQuery};

use common::{within, WAIT};
use etcd_server::{free_port, EtcdServer};

// ---------------------------------------------------------------------------------------
// Helpers.

fn kite(username: &str, environment: &str, name: &str, version: &str, id: &str) -> Kite {
    Kite {
        username: username.into(),
        environment: environment.into(),
        name: name.into(),
        version: version.into(),
        region: "europe".into(),
        hostname: "host1".into(),
        id: id.into(),
    }
}

fn record(kite: &Kite, url: &str) -> KiteRecord {
    KiteRecord {
        kite: kite.clone(),
        url: url.into(),
        key_id: "key-1".into(),
    }
}

fn query(fields: [&str; 7]) -> KiteQuery {
    let [username, environment, name, version, region, hostname, id] = fields.map(String::from);
    KiteQuery {
        username,
        environment,
        name,
        version,
        region,
        hostname,
        id,
    }
}

/// Ids of the kites matching `q`, sorted.
async fn ids(s: &dyn Storage, q: [&str; 7]) -> Vec<String> {
    let mut ids: Vec<String> = s
        .get(&query(q))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kite.id)
        .collect();
    ids.sort();
    ids
}

async fn next(events: &mut BoxStream<'static, Event>) -> Event {
    within(events.next()).await.expect("watch stream ended")
}

fn pair(n: u32) -> KeyPair {
    // Storage does not parse PEMs; distinct texts are enough.
    KeyPair {
        id: format!("key-{n}"),
        public_pem: format!("-----BEGIN PUBLIC KEY-----\npublic-{n}\n-----END PUBLIC KEY-----\n"),
        private_pem: format!(
            "-----BEGIN RSA PRIVATE KEY-----\nprivate-{n}\n-----END RSA PRIVATE KEY-----\n"
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The behavioural suite: every backend must pass it.

async fn upsert_replaces_by_id(s: &dyn Storage) {
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    s.upsert(&record(&a, "http://one/kite")).await.unwrap();
    assert_eq!(
        s.get_by_id("id-a").await.unwrap(),
        Some(record(&a, "http://one/kite"))
    );

    // Same identity, new URL: replaced.
    s.upsert(&record(&a, "http://two/kite")).await.unwrap();
    let all = s
        .get(&query(["alice", "", "", "", "", "", ""]))
        .await
        .unwrap();
    assert_eq!(all, vec![record(&a, "http://two/kite")]);

    // Same id, other fields: the old entry is gone, not duplicated.
    let moved = kite("alice", "prod", "math", "1.1.0", "id-a");
    s.upsert(&record(&moved, "http://three/kite"))
        .await
        .unwrap();
    let all = s
        .get(&query(["alice", "", "", "", "", "", ""]))
        .await
        .unwrap();
    assert_eq!(all, vec![record(&moved, "http://three/kite")]);
    assert_eq!(
        s.get(&query(["alice", "prod", "math", "1.0.0", "", "", ""]))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        s.get_by_id("id-a").await.unwrap(),
        Some(record(&moved, "http://three/kite"))
    );
}

async fn touch_reports_registration(s: &dyn Storage) {
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    assert!(!s.touch(&a).await.unwrap());
    s.upsert(&record(&a, "http://one/kite")).await.unwrap();
    assert!(s.touch(&a).await.unwrap());
    assert!(s.touch(&a).await.unwrap());
    // Touching does not change what is stored.
    assert_eq!(
        s.get_by_id("id-a").await.unwrap(),
        Some(record(&a, "http://one/kite"))
    );
}

async fn delete_removes(s: &dyn Storage) {
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    let b = kite("alice", "prod", "math", "1.0.0", "id-b");
    assert!(!s.delete(&a).await.unwrap());
    s.upsert(&record(&a, "http://a")).await.unwrap();
    s.upsert(&record(&b, "http://b")).await.unwrap();
    assert!(s.delete(&a).await.unwrap());
    assert!(!s.delete(&a).await.unwrap());
    assert_eq!(s.get_by_id("id-a").await.unwrap(), None);
    assert!(!s.touch(&a).await.unwrap());
    assert_eq!(ids(s, ["alice", "", "", "", "", "", ""]).await, ["id-b"]);
}

async fn get_matches_wildcards_and_exact_fields(s: &dyn Storage) {
    let kites = [
        kite("alice", "prod", "math", "1.0.0", "id-1"),
        kite("alice", "prod", "math", "1.2.0", "id-2"),
        kite("alice", "prod", "mathx", "1.0.0", "id-3"),
        kite("alice", "dev", "math", "1.0.0", "id-4"),
        kite("alicex", "prod", "math", "1.0.0", "id-5"),
        kite("bob", "prod", "math", "1.0.0", "id-11"),
    ];
    for k in &kites {
        s.upsert(&record(k, &format!("http://{}", k.id)))
            .await
            .unwrap();
    }
    let all_alice = ["id-1", "id-2", "id-3", "id-4"];
    assert_eq!(ids(s, ["alice", "", "", "", "", "", ""]).await, all_alice);
    assert_eq!(
        ids(s, ["alice", "prod", "", "", "", "", ""]).await,
        ["id-1", "id-2", "id-3"]
    );
    // "math" is not a prefix match for "mathx".
    assert_eq!(
        ids(s, ["alice", "prod", "math", "", "", "", ""]).await,
        ["id-1", "id-2"]
    );
    assert_eq!(
        ids(s, ["alice", "prod", "math", "1.2.0", "", "", ""]).await,
        ["id-2"]
    );
    assert_eq!(
        ids(s, ["alice", "prod", "math", "1.0.0", "europe", "host1", ""]).await,
        ["id-1"]
    );
    assert_eq!(
        ids(
            s,
            ["alice", "prod", "math", "1.0.0", "europe", "host1", "id-1"]
        )
        .await,
        ["id-1"]
    );
    // Every non-empty field must match, wherever the gaps are.
    assert_eq!(
        ids(s, ["alice", "", "math", "", "", "", ""]).await,
        ["id-1", "id-2", "id-4"]
    );
    assert_eq!(
        ids(s, ["alice", "", "", "1.0.0", "", "", ""]).await,
        ["id-1", "id-3", "id-4"]
    );
    assert_eq!(
        ids(s, ["alice", "", "", "", "", "", "id-4"]).await,
        ["id-4"]
    );
    // An id is not a prefix ("id-1" vs "id-11"), and belongs to its user only.
    assert_eq!(
        ids(s, ["bob", "", "", "", "", "", "id-1"]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(s, ["bob", "", "", "", "", "", "id-11"]).await,
        ["id-11"]
    );
    assert_eq!(
        ids(s, ["alice", "dev", "", "", "", "", "id-1"]).await,
        Vec::<String>::new()
    );
    // Mismatches and unknown users.
    assert_eq!(
        ids(s, ["alice", "prod", "math", "1.0.0", "asia", "", ""]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(s, ["carol", "", "", "", "", "", ""]).await,
        Vec::<String>::new()
    );
    assert_eq!(ids(s, ["alicex", "", "", "", "", "", ""]).await, ["id-5"]);
    // Records come back whole.
    let got = s
        .get(&query(["alice", "dev", "", "", "", "", ""]))
        .await
        .unwrap();
    assert_eq!(got, vec![record(&kites[3], "http://id-4")]);
}

async fn get_by_id_finds_exact_ids(s: &dyn Storage) {
    let a = kite("alice", "prod", "math", "1.0.0", "id-1");
    s.upsert(&record(&a, "http://a")).await.unwrap();
    assert_eq!(
        s.get_by_id("id-1").await.unwrap(),
        Some(record(&a, "http://a"))
    );
    assert_eq!(s.get_by_id("id").await.unwrap(), None);
    assert_eq!(s.get_by_id("id-10").await.unwrap(), None);
    assert_eq!(s.get_by_id("").await.unwrap(), None);
}

async fn expire_removes_only_stale_kites(s: &dyn Storage) {
    let stale = kite("alice", "prod", "math", "1.0.0", "id-stale");
    let touched = kite("alice", "prod", "math", "1.0.0", "id-touched");
    let fresh = kite("alice", "prod", "math", "1.0.0", "id-fresh");
    s.upsert(&record(&stale, "http://s")).await.unwrap();
    s.upsert(&record(&touched, "http://t")).await.unwrap();
    // Time passing is what is under test here.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.touch(&touched).await.unwrap());
    s.upsert(&record(&fresh, "http://f")).await.unwrap();

    assert_eq!(s.expire(Duration::from_secs(60)).await.unwrap(), vec![]);
    assert_eq!(
        s.expire(Duration::from_millis(300)).await.unwrap(),
        vec![stale]
    );
    assert_eq!(s.get_by_id("id-stale").await.unwrap(), None);
    assert_eq!(
        ids(s, ["alice", "", "", "", "", "", ""]).await,
        ["id-fresh", "id-touched"]
    );
    // Nothing left that old: a second pass removes nothing.
    assert_eq!(s.expire(Duration::from_millis(300)).await.unwrap(), vec![]);
}

async fn watch_reports_changes(s: &dyn Storage) {
    let mut events = s.watch().await.unwrap();
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    let b = kite("alice", "prod", "math", "1.0.0", "id-b");

    s.upsert(&record(&a, "http://one")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&a, "http://one"))
    );
    s.upsert(&record(&a, "http://two")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&a, "http://two"))
    );

    // Moved to other fields under the same id: one Register, no Deregister.
    let moved = kite("alice", "prod", "math", "2.0.0", "id-a");
    s.upsert(&record(&moved, "http://three")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&moved, "http://three"))
    );

    // Touching is not a change.
    assert!(s.touch(&moved).await.unwrap());
    assert!(s.delete(&moved).await.unwrap());
    assert_eq!(next(&mut events).await, Event::Deregister(moved));
    assert!(!s.delete(&a).await.unwrap());

    s.upsert(&record(&b, "http://b")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&b, "http://b"))
    );
    assert_eq!(s.expire(Duration::ZERO).await.unwrap(), vec![b.clone()]);
    assert_eq!(next(&mut events).await, Event::Deregister(b));
}

async fn key_pairs(s: &dyn Storage) {
    assert_eq!(s.active_keys().await.unwrap(), vec![]);
    let (k1, k2, k3) = (pair(1), pair(2), pair(3));
    s.add_key(&k1).await.unwrap();
    s.add_key(&k2).await.unwrap();
    s.add_key(&k3).await.unwrap();

    // Duplicate ids or public keys are refused.
    let same_id = KeyPair {
        public_pem: "other".into(),
        ..k1.clone()
    };
    assert!(matches!(
        s.add_key(&same_id).await,
        Err(StorageError::Invalid(_))
    ));
    let same_public = KeyPair {
        id: "key-other".into(),
        public_pem: format!("\n  {}  \n", k2.public_pem.trim()),
        ..k2.clone()
    };
    assert!(matches!(
        s.add_key(&same_public).await,
        Err(StorageError::Invalid(_))
    ));

    assert_eq!(s.key_by_id("key-2").await.unwrap(), k2);
    assert_eq!(s.key_by_public(&k2.public_pem).await.unwrap(), k2);
    assert_eq!(
        s.key_by_public(&format!("  {}\n\n", k2.public_pem.trim()))
            .await
            .unwrap(),
        k2
    );
    assert_eq!(
        s.active_keys().await.unwrap(),
        vec![k1.clone(), k2.clone(), k3.clone()]
    );

    // Soft delete: still found, as deleted.
    s.delete_key("key-2").await.unwrap();
    assert_eq!(s.key_by_id("key-2").await, Err(StorageError::KeyDeleted));
    assert_eq!(
        s.key_by_public(&k2.public_pem).await,
        Err(StorageError::KeyDeleted)
    );
    assert_eq!(s.active_keys().await.unwrap(), vec![k1.clone(), k3.clone()]);
    // Deleting twice is fine; the id stays taken.
    s.delete_key("key-2").await.unwrap();
    assert!(matches!(
        s.add_key(&k2).await,
        Err(StorageError::Invalid(_))
    ));

    assert_eq!(s.key_by_id("key-9").await, Err(StorageError::KeyNotFound));
    assert_eq!(
        s.key_by_public("no such key").await,
        Err(StorageError::KeyNotFound)
    );
    assert_eq!(s.delete_key("key-9").await, Err(StorageError::KeyNotFound));
    assert_eq!(s.key_by_id("key-1").await.unwrap(), k1);
}

/// Declares each scenario as a test against etcd and against the in-memory backend.
macro_rules! suite {
    ($($scenario:ident),* $(,)?) => {
        mod on_etcd {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let server = super::EtcdServer::start().await;
                    super::$scenario(&server.storage().await).await;
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(&super::Memory::new()).await;
                }
            )*
        }
    };
}

suite!(
    upsert_replaces_by_id,
    touch_reports_registration,
    delete_removes,
    get_matches_wildcards_and_exact_fields,
    get_by_id_finds_exact_ids,
    expire_removes_only_stale_kites,
    watch_reports_changes,
    key_pairs,
);

// ---------------------------------------------------------------------------------------
// etcd only: several Kontrols, leases, the layout, outages.

/// `etcd://HOST:PORT` (`kite::kontrol::storage::open`) reaches the same cluster as its
/// `EtcdOptions`: a kite written through one is read through the other.
#[tokio::test]
async fn opened_from_a_spec() {
    let server = EtcdServer::start().await;
    let spec = server.endpoint().replace("http://", "etcd://");
    let s = within(kite::kontrol::storage::open(&spec)).await.unwrap();
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    s.upsert(&record(&a, "http://a")).await.unwrap();
    let direct = server.storage().await;
    assert_eq!(
        direct.get_by_id("id-a").await.unwrap(),
        Some(record(&a, "http://a"))
    );
}

#[tokio::test]
async fn two_storages_on_one_etcd_form_one_registry() {
    let server = EtcdServer::start().await;
    let (one, two) = (server.storage().await, server.storage().await);
    let mut seen_by_two = two.watch().await.unwrap();
    let mut seen_by_one = one.watch().await.unwrap();

    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    one.upsert(&record(&a, "http://a")).await.unwrap();
    assert_eq!(
        next(&mut seen_by_two).await,
        Event::Register(record(&a, "http://a"))
    );
    assert_eq!(
        next(&mut seen_by_one).await,
        Event::Register(record(&a, "http://a"))
    );
    assert_eq!(
        two.get_by_id("id-a").await.unwrap(),
        Some(record(&a, "http://a"))
    );
    assert_eq!(
        ids(&two, ["alice", "prod", "", "", "", "", ""]).await,
        ["id-a"]
    );
    // A heartbeat may arrive at either Kontrol.
    assert!(two.touch(&a).await.unwrap());

    let b = kite("alice", "prod", "math", "1.0.0", "id-b");
    two.upsert(&record(&b, "http://b")).await.unwrap();
    assert_eq!(
        next(&mut seen_by_one).await,
        Event::Register(record(&b, "http://b"))
    );
    assert!(one.delete(&b).await.unwrap());
    assert_eq!(
        next(&mut seen_by_two).await,
        Event::Register(record(&b, "http://b"))
    );
    assert_eq!(next(&mut seen_by_two).await, Event::Deregister(b.clone()));
    assert_eq!(next(&mut seen_by_one).await, Event::Deregister(b));

    // A Kontrol removes what another one registered, once it is stale.
    assert_eq!(two.expire(Duration::ZERO).await.unwrap(), vec![a.clone()]);
    assert_eq!(next(&mut seen_by_one).await, Event::Deregister(a.clone()));
    assert_eq!(one.get_by_id("id-a").await.unwrap(), None);
    assert_eq!(one.expire(Duration::ZERO).await.unwrap(), vec![]);

    // Key pairs are shared too.
    one.add_key(&pair(1)).await.unwrap();
    assert_eq!(two.key_by_id("key-1").await.unwrap(), pair(1));
    assert!(matches!(
        two.add_key(&pair(1)).await,
        Err(StorageError::Invalid(_))
    ));
    two.delete_key("key-1").await.unwrap();
    assert_eq!(one.key_by_id("key-1").await, Err(StorageError::KeyDeleted));
}

#[tokio::test]
async fn concurrent_upserts_of_one_kite_leave_one_entry() {
    let server = EtcdServer::start().await;
    let (one, two) = (server.storage().await, server.storage().await);
    let versions: Vec<Kite> = (0..8)
        .map(|n| kite("alice", "prod", "math", &format!("1.0.{n}"), "id-a"))
        .collect();
    let records: Vec<KiteRecord> = versions.iter().map(|k| record(k, "http://a")).collect();
    let writes = records.iter().enumerate().map(|(n, r)| {
        let s = if n % 2 == 0 { &one } else { &two };
        s.upsert(r)
    });
    for r in futures_util::future::join_all(writes).await {
        r.unwrap();
    }
    let all = one
        .get(&query(["alice", "", "", "", "", "", ""]))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(one.get_by_id("id-a").await.unwrap(), Some(all[0].clone()));
}

#[tokio::test]
async fn lease_removes_kites_without_heartbeats() {
    let server = EtcdServer::start().await;
    let s = Etcd::connect(EtcdOptions {
        lease_ttl: Duration::from_secs(1),
        ..server.options()
    })
    .await
    .unwrap();
    let mut events = s.watch().await.unwrap();
    let beating = kite("alice", "prod", "math", "1.0.0", "id-beating");
    let silent = kite("alice", "prod", "math", "1.0.0", "id-silent");
    s.upsert(&record(&beating, "http://b")).await.unwrap();
    s.upsert(&record(&silent, "http://s")).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Register(_)));
    assert!(matches!(next(&mut events).await, Event::Register(_)));

    // etcd itself removes the silent kite once its lease runs out (no expire call), while
    // touches keep the other one.
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let gone = within(async {
        loop {
            tokio::select! {
                event = events.next() => break event,
                _ = ticker.tick() => assert!(s.touch(&beating).await.unwrap()),
            }
        }
    })
    .await;
    assert_eq!(gone, Some(Event::Deregister(silent)));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.get_by_id("id-silent").await.unwrap(), None);
    assert!(!s
        .touch(&kite("alice", "prod", "math", "1.0.0", "id-silent"))
        .await
        .unwrap());
    // Still there after more than one lease time.
    for _ in 0..6 {
        ticker.tick().await;
        assert!(s.touch(&beating).await.unwrap());
    }
    assert_eq!(
        ids(&s, ["alice", "", "", "", "", "", ""]).await,
        ["id-beating"]
    );
}

#[tokio::test]
async fn keys_follow_the_reference_layout() {
    let server = EtcdServer::start().await;
    let s = server.storage().await;
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    s.upsert(&record(&a, "http://a/kite")).await.unwrap();

    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let got = raw
        .get("/kites/alice/prod/math/1.0.0/europe/host1/id-a", None)
        .await
        .unwrap();
    let kv = &got.kvs()[0];
    let value: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"url": "http://a/kite", "key_id": "key-1"})
    );
    assert_ne!(kv.lease(), 0, "kite keys carry a lease");
    let ttl = raw.lease_time_to_live(kv.lease(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 30);
    let index = raw
        .get(format!("{KITE_IDS_PREFIX}id-a"), None)
        .await
        .unwrap();
    assert_eq!(index.kvs()[0].lease(), kv.lease());

    // Only kites live under /kites/.
    let all = raw
        .get(
            KITES_PREFIX,
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert_eq!(all.kvs().len(), 1);

    // Foreign entries under /kites/ are skipped, not fatal.
    raw.put("/kites/alice/prod/broken", "not json", None)
        .await
        .unwrap();
    raw.put(
        "/kites/alice/prod/math/1.0.0/europe/host1/id-x",
        "not json",
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&s, ["alice", "", "", "", "", "", ""]).await, ["id-a"]);

    // Kite fields that would break the layout are refused.
    let bad = kite("alice", "prod", "ma/th", "1.0.0", "id-b");
    assert!(matches!(
        s.upsert(&record(&bad, "http://b")).await,
        Err(StorageError::Invalid(_))
    ));
}

#[tokio::test]
async fn get_reads_past_one_page() {
    let server = EtcdServer::start().await;
    let s = server.storage().await;
    // More kites than one range request returns, written directly in the reference layout.
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let value = r#"{"url":"http://k","key_id":"key-1"}"#;
    for batch in 0..11 {
        let puts: Vec<etcd_client::TxnOp> = (0..100)
            .map(|n| {
                let k = kite("many", "prod", "math", "1.0.0", &format!("id-{batch}-{n}"));
                etcd_client::TxnOp::put(format!("/kites/{}", k.values().join("/")), value, None)
            })
            .collect();
        raw.txn(etcd_client::Txn::new().and_then(puts))
            .await
            .unwrap();
    }
    let all = s
        .get(&query(["many", "", "", "", "", "", ""]))
        .await
        .unwrap();
    assert_eq!(all.len(), 1100);
    let distinct: std::collections::HashSet<_> = all.iter().map(|r| &r.kite.id).collect();
    assert_eq!(distinct.len(), 1100);
    assert!(all
        .iter()
        .all(|r| r.url == "http://k" && r.key_id == "key-1"));
}

#[tokio::test]
async fn outage_gives_clear_errors_and_recovers() {
    let mut server = EtcdServer::start().await;
    let s = server.storage().await;
    let mut events = s.watch().await.unwrap();
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    s.upsert(&record(&a, "http://a")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&a, "http://a"))
    );

    server.stop();
    let started = Instant::now();
    let err = s.get_by_id("id-a").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("storage unavailable: etcd"),
        "{err}"
    );
    assert!(started.elapsed() < WAIT);

    server.restart().await;
    // The client reconnects by itself; the data survived.
    let found = within(async {
        loop {
            match s.get_by_id("id-a").await {
                Ok(found) => break found,
                Err(StorageError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(found, Some(record(&a, "http://a")));
    // The watch resumed where it stopped.
    let b = kite("alice", "prod", "math", "1.0.0", "id-b");
    s.upsert(&record(&b, "http://b")).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Register(record(&b, "http://b"))
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails_clearly() {
    let port = free_port();
    let started = Instant::now();
    let result = Etcd::connect(EtcdOptions {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        request_timeout: Duration::from_secs(1),
        ..EtcdOptions::default()
    })
    .await;
    assert!(matches!(result, Err(StorageError::Unavailable(_))));
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn dropping_a_watch_stream_cancels_the_etcd_watch() {
    let server = EtcdServer::start().await;
    let s = server.storage().await;
    let first = s.watch().await.unwrap();
    let mut second = s.watch().await.unwrap();
    assert_eq!(server.watchers().await, 2);
    drop(first);
    server.wait_for_watchers(1).await;

    // The other watcher is unaffected.
    let a = kite("alice", "prod", "math", "1.0.0", "id-a");
    s.upsert(&record(&a, "http://a")).await.unwrap();
    assert_eq!(
        next(&mut second).await,
        Event::Register(record(&a, "http://a"))
    );
    drop(second);
    server.wait_for_watchers(0).await;
}
