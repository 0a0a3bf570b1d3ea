//! The behavioural suite every Kontrol storage backend must pass, with the same assertions
//! for all: [`suite`] plus the helpers that build kites, key pairs and queries. Waits are
//! bounded by [`WAIT`] and wait on results or events; the only sleeps let the clock advance so
//! that one kite is older than another.
//!
//! Include it with `#[path = "common/storage_suite.rs"] mod storage_suite;`.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use kite::auth::KeyPair;
use kite::kontrol::storage::{Event, KiteRecord, Storage, StorageError};
use kite::protocol::{Kite, KiteQuery};

/// Upper bound for any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A key pair with unique (not real) PEM texts: storage does not parse them.
pub fn key_pair() -> KeyPair {
    let n = uuid::Uuid::new_v4().simple();
    KeyPair {
        id: uuid(),
        public_pem: format!("-----BEGIN PUBLIC KEY-----\nPUB{n}\n-----END PUBLIC KEY-----\n"),
        private_pem: format!(
            "-----BEGIN RSA PRIVATE KEY-----\nPRIV{n}\n-----END RSA PRIVATE KEY-----\n"
        ),
    }
}

pub fn kite(fields: [&str; 6]) -> Kite {
    let [username, environment, name, version, region, hostname] = fields;
    Kite {
        username: username.into(),
        environment: environment.into(),
        name: name.into(),
        version: version.into(),
        region: region.into(),
        hostname: hostname.into(),
        id: uuid(),
    }
}

pub fn record(kite: Kite, url: &str, key: &KeyPair) -> KiteRecord {
    KiteRecord {
        kite,
        url: url.into(),
        key_id: key.id.clone(),
    }
}

pub fn query(fields: [&str; 7]) -> KiteQuery {
    let [username, environment, name, version, region, hostname, id] = fields;
    KiteQuery {
        username: username.into(),
        environment: environment.into(),
        name: name.into(),
        version: version.into(),
        region: region.into(),
        hostname: hostname.into(),
        id: id.into(),
    }
}

pub fn user() -> String {
    format!("user-{}", uuid::Uuid::new_v4().simple())
}

/// The ids of `records`, for order-free comparison.
pub fn ids(records: &[KiteRecord]) -> BTreeSet<String> {
    records.iter().map(|r| r.kite.id.clone()).collect()
}

pub fn ids_of<'a>(records: impl IntoIterator<Item = &'a KiteRecord>) -> BTreeSet<String> {
    records.into_iter().map(|r| r.kite.id.clone()).collect()
}

pub async fn next(events: &mut BoxStream<'static, Event>) -> Event {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("timed out waiting for an event")
        .expect("event stream ended")
}

/// Lets the clock move on by `d`, so that kites touched before are older than `d`.
pub async fn age(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The behaviour every backend shares. `s` must be empty of kites (key pairs may exist).
pub async fn suite(s: &dyn Storage) {
    upsert_touch_delete(s).await;
    queries(s).await;
    expiry(s).await;
    watching(s).await;
    key_pairs(s).await;
}

/// Upsert inserts and replaces by id; touch and delete report whether the kite existed.
pub async fn upsert_touch_delete(s: &dyn Storage) {
    let key = key_pair();
    s.add_key(&key).await.expect("add key");
    let u = user();
    let a = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://a:1/kite",
        &key,
    );
    assert_eq!(s.get_by_id(&a.kite.id).await.expect("get_by_id"), None);

    s.upsert(&a).await.expect("upsert");
    assert_eq!(
        s.get_by_id(&a.kite.id).await.expect("get_by_id"),
        Some(a.clone())
    );

    // Same id, new URL and identity fields: replaced, not added.
    let mut a2 = a.clone();
    a2.url = "http://a:2/kite".into();
    a2.kite.hostname = "h2".into();
    a2.kite.version = "1.0.1".into();
    s.upsert(&a2).await.expect("upsert again");
    assert_eq!(
        s.get_by_id(&a.kite.id).await.expect("get_by_id"),
        Some(a2.clone())
    );
    let all = s
        .get(&query([&u, "", "", "", "", "", ""]))
        .await
        .expect("get");
    assert_eq!(all, vec![a2.clone()]);

    assert!(s.touch(&a.kite).await.expect("touch"));
    let stranger = kite([&u, "prod", "math", "1.0.0", "eu", "h1"]);
    assert!(!s.touch(&stranger).await.expect("touch unknown"));

    assert!(s.delete(&a.kite).await.expect("delete"));
    assert_eq!(s.get_by_id(&a.kite.id).await.expect("get_by_id"), None);
    assert!(!s.delete(&a.kite).await.expect("delete again"));
    assert!(!s.touch(&a.kite).await.expect("touch deleted"));
    assert!(s
        .get(&query([&u, "", "", "", "", "", ""]))
        .await
        .expect("get")
        .is_empty());

    // An id that is not a UUID matches nothing (PostgreSQL stores ids as UUIDs).
    assert_eq!(s.get_by_id("not-a-uuid").await.expect("get_by_id"), None);
}

/// `get`: every non-empty field must match exactly; empty fields are wildcards.
pub async fn queries(s: &dyn Storage) {
    let key = key_pair();
    s.add_key(&key).await.expect("add key");
    let (u, v, nobody) = (user(), user(), user());
    let k1 = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://k1/kite",
        &key,
    );
    let k2 = record(
        kite([&u, "prod", "math", "1.1.0", "us", "h2"]),
        "http://k2/kite",
        &key,
    );
    let k3 = record(
        kite([&u, "dev", "math", "1.0.0", "eu", "h1"]),
        "http://k3/kite",
        &key,
    );
    let k4 = record(
        kite([&u, "prod", "fs", "1.0.0", "eu", "h3"]),
        "http://k4/kite",
        &key,
    );
    let k5 = record(
        kite([&v, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://k5/kite",
        &key,
    );
    let all = [&k1, &k2, &k3, &k4, &k5];
    for r in all {
        s.upsert(r).await.expect("upsert");
    }
    let cases: Vec<([&str; 7], Vec<&KiteRecord>)> = vec![
        ([&u, "", "", "", "", "", ""], vec![&k1, &k2, &k3, &k4]),
        ([&u, "prod", "", "", "", "", ""], vec![&k1, &k2, &k4]),
        ([&u, "prod", "math", "", "", "", ""], vec![&k1, &k2]),
        ([&u, "prod", "math", "1.0.0", "", "", ""], vec![&k1]),
        (
            [&u, "prod", "math", "1.0.0", "eu", "h1", &k1.kite.id],
            vec![&k1],
        ),
        // Empty fields in between are wildcards too (the Kontrol layer applies the
        // reference's "ignore after the first empty field" rule before calling storage).
        ([&u, "", "math", "", "", "", ""], vec![&k1, &k2, &k3]),
        ([&u, "", "", "1.0.0", "eu", "", ""], vec![&k1, &k3, &k4]),
        ([&u, "", "", "", "", "h1", ""], vec![&k1, &k3]),
        ([&u, "", "", "", "", "", &k2.kite.id], vec![&k2]),
        ([&v, "", "", "", "", "", &k2.kite.id], vec![]),
        ([&v, "", "", "", "", "", ""], vec![&k5]),
        ([&u, "prod", "math", "2.0.0", "", "", ""], vec![]),
        ([&u, "", "", "", "", "", "not-a-uuid"], vec![]),
        ([&nobody, "", "", "", "", "", ""], vec![]),
    ];
    for (fields, want) in cases {
        let got = s.get(&query(fields)).await.expect("get");
        assert_eq!(ids(&got), ids_of(want.iter().copied()), "query {fields:?}");
        // Records come back whole.
        for r in &got {
            assert!(all.contains(&r), "unexpected record {r:?}");
        }
    }
    for r in all {
        assert!(s.delete(&r.kite).await.expect("delete"));
    }
}

/// `expire` removes exactly the kites not touched within the given age and returns them.
pub async fn expiry(s: &dyn Storage) {
    let key = key_pair();
    s.add_key(&key).await.expect("add key");
    let u = user();
    let a = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://a/kite",
        &key,
    );
    let b = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h2"]),
        "http://b/kite",
        &key,
    );
    s.upsert(&a).await.expect("upsert a");
    s.upsert(&b).await.expect("upsert b");
    assert!(s
        .expire(Duration::from_secs(3600))
        .await
        .expect("expire")
        .is_empty());

    age(Duration::from_millis(600)).await;
    assert!(s.touch(&a.kite).await.expect("touch a"));
    // b is ≥ 600 ms old, a only just touched.
    let gone = s.expire(Duration::from_millis(300)).await.expect("expire");
    assert_eq!(gone, vec![b.kite.clone()]);
    assert_eq!(
        s.get(&query([&u, "", "", "", "", "", ""]))
            .await
            .expect("get"),
        vec![a.clone()]
    );
    assert_eq!(s.get_by_id(&b.kite.id).await.expect("get_by_id"), None);

    let gone = s.expire(Duration::ZERO).await.expect("expire all");
    assert_eq!(gone, vec![a.kite.clone()]);
    assert!(s
        .get(&query([&u, "", "", "", "", "", ""]))
        .await
        .expect("get")
        .is_empty());
}

/// Watchers see every upsert and every removal (delete or expire), in order; touching a kite
/// or deleting an unknown one is not an event.
pub async fn watching(s: &dyn Storage) {
    let key = key_pair();
    s.add_key(&key).await.expect("add key");
    let u = user();
    let mut w1 = s.watch().await.expect("watch");
    let mut w2 = s.watch().await.expect("watch");

    let a = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://a/kite",
        &key,
    );
    s.upsert(&a).await.expect("upsert");
    let mut a2 = a.clone();
    a2.url = "http://a:2/kite".into();
    s.upsert(&a2).await.expect("upsert again");
    assert!(s.touch(&a.kite).await.expect("touch"));
    assert!(!s
        .delete(&kite([&u, "x", "x", "1.0.0", "x", "x"]))
        .await
        .expect("delete unknown"));
    assert!(s.delete(&a.kite).await.expect("delete"));

    let b = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h2"]),
        "http://b/kite",
        &key,
    );
    s.upsert(&b).await.expect("upsert b");
    let gone = s.expire(Duration::ZERO).await.expect("expire");
    assert_eq!(gone, vec![b.kite.clone()]);

    let want = [
        Event::Register(a.clone()),
        Event::Register(a2.clone()),
        Event::Deregister(a.kite.clone()),
        Event::Register(b.clone()),
        Event::Deregister(b.kite.clone()),
    ];
    for w in [&mut w1, &mut w2] {
        for e in &want {
            assert_eq!(&next(w).await, e);
        }
    }

    // A watcher that goes away does not disturb the others.
    drop(w2);
    let c = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h3"]),
        "http://c/kite",
        &key,
    );
    s.upsert(&c).await.expect("upsert c");
    assert!(s.delete(&c.kite).await.expect("delete c"));
    assert_eq!(next(&mut w1).await, Event::Register(c.clone()));
    assert_eq!(next(&mut w1).await, Event::Deregister(c.kite.clone()));
}

/// Key pairs: added once, found by id and by public key, soft-deleted, listed oldest first.
pub async fn key_pairs(s: &dyn Storage) {
    let before = s.active_keys().await.expect("active keys");
    let (k1, k2) = (key_pair(), key_pair());
    s.add_key(&k1).await.expect("add k1");
    s.add_key(&k2).await.expect("add k2");

    // Duplicates: same id, or the same public key (ignoring surrounding whitespace).
    let mut same_id = key_pair();
    same_id.id = k1.id.clone();
    assert!(matches!(
        s.add_key(&same_id).await,
        Err(StorageError::Invalid(_))
    ));
    let mut same_public = key_pair();
    same_public.public_pem = format!("\n{}\n\n", k1.public_pem.trim());
    assert!(matches!(
        s.add_key(&same_public).await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        s.add_key(&k1).await,
        Err(StorageError::Invalid(_))
    ));

    assert_eq!(s.key_by_id(&k1.id).await.expect("by id"), k1);
    assert_eq!(
        s.key_by_public(&k1.public_pem).await.expect("by public"),
        k1
    );
    let reformatted = format!("  {}", k1.public_pem.trim());
    assert_eq!(
        s.key_by_public(&reformatted)
            .await
            .expect("by trimmed public"),
        k1
    );
    assert_eq!(s.key_by_id(&uuid()).await, Err(StorageError::KeyNotFound));
    assert_eq!(
        s.key_by_public(&key_pair().public_pem).await,
        Err(StorageError::KeyNotFound)
    );

    let added = |all: Vec<KeyPair>| -> Vec<KeyPair> {
        all.into_iter().filter(|k| !before.contains(k)).collect()
    };
    assert_eq!(
        added(s.active_keys().await.expect("active")),
        vec![k1.clone(), k2.clone()]
    );

    // Soft delete: still known, as deleted.
    s.delete_key(&k1.id).await.expect("delete k1");
    assert_eq!(s.key_by_id(&k1.id).await, Err(StorageError::KeyDeleted));
    assert_eq!(
        s.key_by_public(&k1.public_pem).await,
        Err(StorageError::KeyDeleted)
    );
    assert_eq!(
        added(s.active_keys().await.expect("active")),
        vec![k2.clone()]
    );
    s.delete_key(&k1.id).await.expect("deleting twice is fine");
    assert_eq!(s.delete_key(&uuid()).await, Err(StorageError::KeyNotFound));
    // A deleted pair still holds its id and public key.
    assert!(matches!(
        s.add_key(&k1).await,
        Err(StorageError::Invalid(_))
    ));

    // Kites signed with a deleted pair stay registered (they are re-signed, not dropped).
    let u = user();
    let r = record(
        kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
        "http://r/kite",
        &k1,
    );
    s.upsert(&r).await.expect("upsert with a deleted key");
    assert_eq!(s.get_by_id(&r.kite.id).await.expect("get"), Some(r.clone()));
    assert!(s.delete(&r.kite).await.expect("delete"));

    let k3 = key_pair();
    s.add_key(&k3).await.expect("add k3");
    assert_eq!(added(s.active_keys().await.expect("active")), vec![k2, k3]);
}
