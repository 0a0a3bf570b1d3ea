//! The etcd key layout (see the `etcd` module docs): key prefixes, the JSON values stored
//! under them, and the conversions between keys, values and kites. The bottom of `etcd`,
//! below its watch and its storage code.

use std::time::{SystemTime, UNIX_EPOCH};

use etcd_client::KeyValue;
use serde::{Deserialize, Serialize};

use crate::auth::KeyPair;
use crate::kontrol::storage::{KiteRecord, StorageError, StorageResult};
use crate::protocol::Kite;

/// Prefix of the kite keys (the reference's `KitesPrefix`).
pub const KITES_PREFIX: &str = "/kites/";
/// Prefix of the kite-id entries (lookup by id, liveness).
pub const KITE_IDS_PREFIX: &str = "/kontrol/kite-ids/";
/// Prefix of the key pairs.
pub const KEYS_PREFIX: &str = "/kontrol/keys/";

/// The reference's `RegisterValue`, stored under the kite key.
#[derive(Serialize, Deserialize)]
pub(super) struct KiteValue {
    pub(super) url: String,
    #[serde(default)]
    pub(super) key_id: String,
}

/// Stored under the kite-id key.
#[derive(Serialize, Deserialize, Clone)]
pub(super) struct IdEntry {
    /// The kite key.
    pub(super) key: String,
    pub(super) url: String,
    pub(super) key_id: String,
    /// Unix time of the last upsert or touch, in microseconds.
    pub(super) alive_at: u64,
}

/// Stored under the key-pair key.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredKey {
    pub(super) id: String,
    pub(super) public: String,
    pub(super) private: String,
    /// Unix time of the soft delete, in milliseconds.
    #[serde(default)]
    pub(super) deleted_at: Option<u64>,
}

impl StoredKey {
    pub(super) fn result(self) -> StorageResult<KeyPair> {
        match self.deleted_at {
            Some(_) => Err(StorageError::KeyDeleted),
            None => Ok(KeyPair {
                id: self.id,
                public_pem: self.public,
                private_pem: self.private,
            }),
        }
    }
}

pub(super) fn json<T: Serialize>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value).map_err(|e| StorageError::Invalid(e.to_string()))
}

pub(super) fn parse<'a, T: Deserialize<'a>>(kv: &'a KeyValue) -> StorageResult<T> {
    serde_json::from_slice(kv.value())
        .map_err(|e| StorageError::Invalid(format!("{}: {e}", String::from_utf8_lossy(kv.key()))))
}

pub(super) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub(super) fn kite_key(kite: &Kite) -> String {
    format!("{KITES_PREFIX}{}", kite.values().join("/"))
}

pub(super) fn id_key(id: &str) -> String {
    format!("{KITE_IDS_PREFIX}{id}")
}

/// The kite named by a kite key, if it is one.
pub(super) fn kite_from_key(key: &[u8]) -> Option<Kite> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(KITES_PREFIX)?;
    let f: Vec<&str> = rest.split('/').collect();
    match f.as_slice() {
        [username, environment, name, version, region, hostname, id]
            if f.iter().all(|v| !v.is_empty()) =>
        {
            Some(Kite {
                username: (*username).into(),
                environment: (*environment).into(),
                name: (*name).into(),
                version: (*version).into(),
                region: (*region).into(),
                hostname: (*hostname).into(),
                id: (*id).into(),
            })
        }
        _ => None,
    }
}

/// A registered kite from its kite key and value; `None` (logged) for foreign data.
pub(super) fn record_from(kv: &KeyValue) -> Option<KiteRecord> {
    let kite = kite_from_key(kv.key());
    let value = parse::<KiteValue>(kv);
    match (kite, value) {
        (Some(kite), Ok(v)) => Some(KiteRecord {
            kite,
            url: v.url,
            key_id: v.key_id,
        }),
        _ => {
            let key = String::from_utf8_lossy(kv.key());
            tracing::warn!(%key, "ignoring an etcd entry that is not a kite");
            None
        }
    }
}

/// The end of the key range that starts with `prefix`.
pub(super) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
