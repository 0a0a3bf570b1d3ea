//! etcd v3 storage: several Kontrols sharing one etcd cluster form one registry.
//!
//! Layout (every value is JSON):
//!
//! | key | value | lease |
//! |---|---|---|
//! | `/kites/<username>/<environment>/<name>/<version>/<region>/<hostname>/<id>` | `{"url","key_id"}` (the reference's) | the kite's |
//! | `/kontrol/kite-ids/<id>` | `{"key","url","key_id","alive_at"}` | the kite's |
//! | `/kontrol/keys/<id>` | `{"id","public","private","deleted_at"}` | none |
//!
//! Each kite gets its own lease of [`EtcdOptions::lease_ttl`]; [`Storage::touch`] keeps it
//! alive, so when every Kontrol is gone etcd itself removes the kite. The id entry carries
//! `alive_at` (Unix microseconds of the last upsert or touch) so that [`Storage::expire`]
//! can honour any `older_than`, shorter than the lease too. `alive_at` is the Kontrol's wall
//! clock, so Kontrols sharing etcd need clocks in step to well within `older_than`; leases
//! run on etcd's clock. Both keys of a kite are always written and removed in one
//! transaction. Watchers follow the `/kites/` prefix with the etcd watch API; a kite moved
//! to a new key under the same id shows as one `Register`, like in the other backends.

mod layout;
mod watch;

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{matches, Event, KiteRecord, Storage, StorageError, StorageResult};
use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

use layout::{
    id_key, json, kite_from_key, kite_key, now_micros, parse, prefix_end, record_from, IdEntry,
    KiteValue, StoredKey,
};
pub use layout::{KEYS_PREFIX, KITES_PREFIX, KITE_IDS_PREFIX};

/// Optimistic transactions retried this often before giving up.
const ATTEMPTS: usize = 16;
/// Keys read per range request.
const PAGE: i64 = 1000;

/// How to reach etcd and how long kites live there.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the cluster, e.g. `http://127.0.0.1:2379`.
    /// Default: `["http://127.0.0.1:2379"]` (the reference's).
    pub endpoints: Vec<String>,
    /// How long a kite stays without [`Storage::touch`] before etcd removes it on its own
    /// (rounded up to whole seconds); at least Kontrol's heartbeat interval + delay, which
    /// Kontrol refreshes within. Default: 30 s (heartbeat interval 10 s + delay 20 s).
    pub lease_ttl: Duration,
    /// Bound on each request and on connecting. Default: 5 s.
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            lease_ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Storage in an etcd v3 cluster.
pub struct Etcd {
    client: Client,
    lease_ttl: i64,
}

fn unavailable(e: etcd_client::Error) -> StorageError {
    StorageError::Unavailable(format!("etcd: {e}"))
}

impl Etcd {
    /// Connects to the cluster and checks that it answers.
    pub async fn connect(options: EtcdOptions) -> StorageResult<Self> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.request_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(Duration::from_secs(10), options.request_timeout)
            .with_require_leader(true);
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(unavailable)?;
        let lease_ttl = i64::try_from(options.lease_ttl.as_millis().div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let etcd = Self { client, lease_ttl };
        etcd.client
            .clone()
            .get(KITES_PREFIX, Some(GetOptions::new().with_count_only()))
            .await
            .map_err(unavailable)?;
        Ok(etcd)
    }

    /// Every key-value under `prefix`, read page by page at one revision; and that revision.
    async fn range(&self, prefix: &str) -> StorageResult<(Vec<KeyValue>, i64)> {
        let mut kv = self.client.kv_client();
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut all = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut resp = kv.get(from, Some(options)).await.map_err(unavailable)?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            let Some(last) = kvs.last() else { break };
            from = last.key().to_vec();
            from.push(0);
            all.extend(kvs);
            if !more {
                break;
            }
        }
        Ok((all, revision))
    }

    /// One key-value, if present.
    async fn read(&self, key: &str) -> StorageResult<Option<KeyValue>> {
        let mut resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(unavailable)?;
        Ok(resp.take_kvs().into_iter().next())
    }

    /// Runs `txn`; whether its conditions held.
    async fn commit(&self, txn: Txn) -> StorageResult<bool> {
        let resp = self
            .client
            .kv_client()
            .txn(txn)
            .await
            .map_err(unavailable)?;
        Ok(resp.succeeded())
    }

    /// Releases a kite's lease once its keys are gone; failures only leave it to expire.
    async fn revoke(&self, lease: i64) {
        if lease != 0 {
            if let Err(e) = self.client.lease_client().revoke(lease).await {
                tracing::debug!(lease, error = %e, "lease left to expire");
            }
        }
    }

    /// Removes the kite whose id entry is `entry`, unless it changed since it was read.
    async fn remove(&self, entry: &KeyValue, kite_key: &str) -> StorageResult<bool> {
        let removed = self
            .commit(
                Txn::new()
                    .when([Compare::mod_revision(
                        entry.key(),
                        CompareOp::Equal,
                        entry.mod_revision(),
                    )])
                    .and_then([
                        TxnOp::delete(kite_key, None),
                        TxnOp::delete(entry.key(), None),
                    ]),
            )
            .await?;
        if removed {
            self.revoke(entry.lease()).await;
        }
        Ok(removed)
    }

    /// Every stored key pair, oldest first.
    async fn keys(&self) -> StorageResult<(Vec<StoredKey>, i64)> {
        let (mut kvs, revision) = self.range(KEYS_PREFIX).await?;
        kvs.sort_by_key(KeyValue::create_revision);
        let keys = kvs.iter().map(parse).collect::<StorageResult<_>>()?;
        Ok((keys, revision))
    }
}

#[async_trait::async_trait]
impl Storage for Etcd {
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
        record.kite.validate().map_err(StorageError::Invalid)?;
        let key = kite_key(&record.kite);
        let ids = id_key(&record.kite.id);
        let value = json(&KiteValue {
            url: record.url.clone(),
            key_id: record.key_id.clone(),
        })?;
        let lease = self
            .client
            .lease_client()
            .grant(self.lease_ttl, None)
            .await
            .map_err(unavailable)?
            .id();
        for _ in 0..ATTEMPTS {
            let old = self.read(&ids).await?;
            let mut ops = Vec::with_capacity(3);
            let mut check = Compare::create_revision(ids.as_str(), CompareOp::Equal, 0);
            if let Some(old) = &old {
                check = Compare::mod_revision(ids.as_str(), CompareOp::Equal, old.mod_revision());
                match parse::<IdEntry>(old) {
                    Ok(e) if e.key != key => ops.push(TxnOp::delete(e.key, None)),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "replacing an invalid kite-id entry"),
                }
            }
            let entry = json(&IdEntry {
                key: key.clone(),
                url: record.url.clone(),
                key_id: record.key_id.clone(),
                alive_at: now_micros(),
            })?;
            let on_lease = || Some(PutOptions::new().with_lease(lease));
            ops.push(TxnOp::put(key.as_str(), value.as_str(), on_lease()));
            ops.push(TxnOp::put(ids.as_str(), entry, on_lease()));
            if self.commit(Txn::new().when([check]).and_then(ops)).await? {
                if let Some(old) = old.filter(|o| o.lease() != lease) {
                    self.revoke(old.lease()).await;
                }
                return Ok(());
            }
        }
        self.revoke(lease).await;
        Err(StorageError::Unavailable(format!(
            "kite {} is being changed concurrently; try again",
            record.kite.id
        )))
    }

    async fn touch(&self, kite: &Kite) -> StorageResult<bool> {
        let ids = id_key(&kite.id);
        for _ in 0..ATTEMPTS {
            let Some(old) = self.read(&ids).await? else {
                return Ok(false);
            };
            let entry = IdEntry {
                alive_at: now_micros(),
                ..parse(&old)?
            };
            let lease = old.lease();
            let put = TxnOp::put(
                ids.as_str(),
                json(&entry)?,
                Some(PutOptions::new().with_lease(lease)),
            );
            let same = Compare::mod_revision(ids.as_str(), CompareOp::Equal, old.mod_revision());
            if !self.commit(Txn::new().when([same]).and_then([put])).await? {
                continue;
            }
            if lease == 0 {
                return Ok(true);
            }
            return match self.client.lease_client().keep_alive(lease).await {
                Ok(_) => Ok(true),
                // The lease ran out between the read and the keep-alive: the kite is gone.
                Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                Err(e) => Err(unavailable(e)),
            };
        }
        // Changed under us every time: someone else is registering or touching it.
        Ok(self.read(&ids).await?.is_some())
    }

    async fn delete(&self, kite: &Kite) -> StorageResult<bool> {
        let ids = id_key(&kite.id);
        for _ in 0..ATTEMPTS {
            let Some(old) = self.read(&ids).await? else {
                return Ok(false);
            };
            let key = parse::<IdEntry>(&old).map_or_else(|_| kite_key(kite), |e| e.key);
            if self.remove(&old, &key).await? {
                return Ok(true);
            }
        }
        Err(StorageError::Unavailable(format!(
            "kite {} is being changed concurrently; try again",
            kite.id
        )))
    }

    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        if !query.id.is_empty() {
            let found = self.get_by_id(&query.id).await?;
            return Ok(found
                .into_iter()
                .filter(|r| matches(&r.kite, query))
                .collect());
        }
        let mut prefix = String::from(KITES_PREFIX);
        for v in query.values().into_iter().take_while(|v| !v.is_empty()) {
            prefix.push_str(v);
            prefix.push('/');
        }
        let (kvs, _) = self.range(&prefix).await?;
        Ok(kvs
            .iter()
            .filter_map(record_from)
            .filter(|r| matches(&r.kite, query))
            .collect())
    }

    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        let Some(kv) = self.read(&id_key(id)).await? else {
            return Ok(None);
        };
        let entry: IdEntry = parse(&kv)?;
        match kite_from_key(entry.key.as_bytes()) {
            Some(kite) if kite.id == id => Ok(Some(KiteRecord {
                kite,
                url: entry.url,
                key_id: entry.key_id,
            })),
            _ => Err(StorageError::Invalid(format!(
                "kite-id entry {id} names {}",
                entry.key
            ))),
        }
    }

    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>> {
        let limit = u64::try_from(older_than.as_micros()).unwrap_or(u64::MAX);
        let now = now_micros();
        let (kvs, _) = self.range(KITE_IDS_PREFIX).await?;
        let mut removed = Vec::new();
        for kv in &kvs {
            let Ok(entry) = parse::<IdEntry>(kv) else {
                tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "invalid kite-id entry");
                continue;
            };
            if now.saturating_sub(entry.alive_at) <= limit {
                continue;
            }
            let Some(kite) = kite_from_key(entry.key.as_bytes()) else {
                tracing::warn!(key = %entry.key, "kite-id entry names no kite");
                continue;
            };
            // Unchanged since read; a concurrent touch or another Kontrol's expire wins.
            if self.remove(kv, &entry.key).await? {
                removed.push(kite);
            }
        }
        Ok(removed)
    }

    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
        let mut client = self.client.clone();
        let (stream, next) = watch::open_watch(&mut client, None)
            .await
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(watch::forward(client, stream, next, tx));
        Ok(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        )
        .boxed())
    }

    async fn add_key(&self, pair: &KeyPair) -> StorageResult<()> {
        if pair.id.is_empty() || pair.public_pem.trim().is_empty() {
            return Err(StorageError::Invalid(
                "key pair without id or public key".into(),
            ));
        }
        let value = json(&StoredKey {
            id: pair.id.clone(),
            public: pair.public_pem.clone(),
            private: pair.private_pem.clone(),
            deleted_at: None,
        })?;
        for _ in 0..ATTEMPTS {
            let (keys, revision) = self.keys().await?;
            let public = pair.public_pem.trim();
            if keys
                .iter()
                .any(|k| k.id == pair.id || k.public.trim() == public)
            {
                return Err(StorageError::Invalid("key pair already exists".into()));
            }
            // No key pair was added or changed since the read.
            let unchanged =
                Compare::mod_revision(KEYS_PREFIX, CompareOp::Less, revision + 1).with_prefix();
            let put = TxnOp::put(format!("{KEYS_PREFIX}{}", pair.id), value.as_str(), None);
            if self
                .commit(Txn::new().when([unchanged]).and_then([put]))
                .await?
            {
                return Ok(());
            }
        }
        Err(StorageError::Unavailable(
            "key pairs are being changed concurrently; try again".into(),
        ))
    }

    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        let key = format!("{KEYS_PREFIX}{id}");
        for _ in 0..ATTEMPTS {
            let Some(kv) = self.read(&key).await? else {
                return Err(StorageError::KeyNotFound);
            };
            let mut stored: StoredKey = parse(&kv)?;
            if stored.deleted_at.is_some() {
                return Ok(());
            }
            stored.deleted_at = Some(now_micros() / 1000);
            let same = Compare::mod_revision(key.as_str(), CompareOp::Equal, kv.mod_revision());
            let put = TxnOp::put(key.as_str(), json(&stored)?, None);
            if self.commit(Txn::new().when([same]).and_then([put])).await? {
                return Ok(());
            }
        }
        Err(StorageError::Unavailable(
            "key pairs are being changed concurrently; try again".into(),
        ))
    }

    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
        match self.read(&format!("{KEYS_PREFIX}{id}")).await? {
            None => Err(StorageError::KeyNotFound),
            Some(kv) => parse::<StoredKey>(&kv)?.result(),
        }
    }

    async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair> {
        let public_pem = public_pem.trim();
        let (keys, _) = self.keys().await?;
        match keys.into_iter().find(|k| k.public.trim() == public_pem) {
            None => Err(StorageError::KeyNotFound),
            Some(k) => k.result(),
        }
    }

    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
        let (keys, _) = self.keys().await?;
        Ok(keys
            .into_iter()
            .filter(|k| k.deleted_at.is_none())
            .filter_map(|k| k.result().ok())
            .collect())
    }
}
