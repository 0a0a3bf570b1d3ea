//! Kontrol's own metrics, in its kite's registry (see [`crate::metrics`]): kites it keeps
//! alive, `getKites` watchers, tokens minted, and its storage's latency and errors (by
//! operation, through [`MeteredStorage`]). The latency of `register`, `getKites` and the
//! other methods is the kite's `kite_call_duration_seconds{method=…}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::storage::{Event, KiteRecord, Storage, StorageError, StorageResult};
use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

type Histograms = Family<OpLabel, Histogram, fn() -> Histogram>;

/// Kontrol's gauge of watchers (the storage metrics live in [`MeteredStorage`], the
/// token counter in the token cache).
#[derive(Debug, Clone, Default)]
pub(crate) struct KontrolMetrics {
    /// `getKites` calls with a watch callback still being served.
    pub(crate) watchers: Gauge,
}

/// A watcher, counted open until dropped.
pub(crate) struct Watching(Gauge);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl KontrolMetrics {
    /// Registers them, `tokens` (minted), and `kites` (the kites this Kontrol keeps alive,
    /// counted at scrape time) under the `kontrol_` prefix.
    pub(crate) fn register(&self, registry: &mut Registry, tokens: Counter, kites: KitesAlive) {
        let r = registry.sub_registry_with_prefix("kontrol");
        r.register(
            "watchers",
            "getKites calls with a watch callback being served",
            self.watchers.clone(),
        );
        r.register(
            "tokens_issued",
            "Tokens minted by getToken and getKites (cached ones not counted)",
            tokens,
        );
        r.register_collector(Box::new(kites));
    }

    /// Counts a watcher until the returned guard drops.
    pub(crate) fn watching(&self) -> Watching {
        self.watchers.inc();
        Watching(self.watchers.clone())
    }
}

/// `kontrol_kites_registered`: kites registered through this Kontrol whose heartbeats it
/// watches, counted at scrape time.
pub(crate) struct KitesAlive(pub(crate) Box<dyn Fn() -> Option<usize> + Send + Sync>);

impl std::fmt::Debug for KitesAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KitesAlive")
    }
}

impl Collector for KitesAlive {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Kontrol is gone: nothing to report.
        let Some(count) = (self.0)() else {
            return Ok(());
        };
        let n = i64::try_from(count).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(n);
        let metric = encoder.encode_descriptor(
            "kites_registered",
            "Kites registered through this Kontrol whose heartbeats it watches",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// A [`Storage`] that times every operation and counts its errors, by operation
/// (`kontrol_storage_duration_seconds`, `kontrol_storage_errors_total`).
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    durations: Histograms,
    errors: Family<OpLabel, Counter>,
}

impl MeteredStorage {
    /// Wraps `inner`, registering its metrics in `registry`.
    pub fn new(inner: Arc<dyn Storage>, registry: &mut Registry) -> MeteredStorage {
        let durations: Histograms = Family::new_with_constructor(crate::metrics::latency_histogram);
        let errors = Family::<OpLabel, Counter>::default();
        let r = registry.sub_registry_with_prefix("kontrol_storage");
        r.register_with_unit(
            "duration",
            "Time of Kontrol's storage operations, by operation",
            Unit::Seconds,
            durations.clone(),
        );
        r.register(
            "errors",
            "Failed storage operations (unavailable, invalid data), by operation",
            errors.clone(),
        );
        MeteredStorage {
            inner,
            durations,
            errors,
        }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let started = Instant::now();
        let out = f.await;
        let labels = OpLabel { op };
        self.durations
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        // Not found and deleted are answers; unavailable and invalid are failures.
        if matches!(
            out,
            Err(StorageError::Unavailable(_) | StorageError::Invalid(_))
        ) {
            self.errors.get_or_create(&labels).inc();
        }
        out
    }
}

#[async_trait::async_trait]
impl Storage for MeteredStorage {
    async fn upsert(&self, r: &KiteRecord) -> StorageResult<()> {
        self.timed("upsert", self.inner.upsert(r)).await
    }
    async fn touch(&self, k: &Kite) -> StorageResult<bool> {
        self.timed("touch", self.inner.touch(k)).await
    }
    async fn delete(&self, k: &Kite) -> StorageResult<bool> {
        self.timed("delete", self.inner.delete(k)).await
    }
    async fn get(&self, q: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        self.timed("get", self.inner.get(q)).await
    }
    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        self.timed("get_by_id", self.inner.get_by_id(id)).await
    }
    async fn expire(&self, d: Duration) -> StorageResult<Vec<Kite>> {
        self.timed("expire", self.inner.expire(d)).await
    }
    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
        self.timed("watch", self.inner.watch()).await
    }
    async fn add_key(&self, p: &KeyPair) -> StorageResult<()> {
        self.timed("add_key", self.inner.add_key(p)).await
    }
    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        self.timed("delete_key", self.inner.delete_key(id)).await
    }
    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
        self.timed("key_by_id", self.inner.key_by_id(id)).await
    }
    async fn key_by_public(&self, pem: &str) -> StorageResult<KeyPair> {
        self.timed("key_by_public", self.inner.key_by_public(pem))
            .await
    }
    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
        self.timed("active_keys", self.inner.active_keys()).await
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
}
