//! The Kontrol service: a kite serving `register`, `registerMachine`, `getKites`,
//! `getToken`, `getKey` and `unregister`, plus HTTP `POST /register` and `GET /heartbeat`,
//! on any [`Storage`]. The top of `kontrol/`: it builds the state and installs the handlers
//! (`register`, `lookup`) and the HTTP routes (`http`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::config::{
    KontrolConfig, METHOD_GET_KEY, METHOD_GET_KITES, METHOD_GET_TOKEN, METHOD_REGISTER,
    METHOD_REGISTER_MACHINE, METHOD_UNREGISTER,
};
use super::keys::{self, TokenCache, VerifierCache};
use super::metrics::{KitesAlive, KontrolMetrics, MeteredStorage};
use super::state::{Inner, Kontrol};
use super::storage::{KiteRecord, Storage, StorageError};
use crate::auth::AuthError;
use crate::auth::KeyPair;
use crate::protocol::{Auth, KiteError};
use crate::server::{AuthCheck, Kite, Request};
use crate::Error;

impl Kontrol {
    /// Kontrol on `kite` (usually named `kontrol`) and `storage`. Generates a key pair when
    /// storage has none, and registers Kontrol's methods and HTTP routes on the kite.
    pub async fn new(
        kite: Kite,
        storage: Arc<dyn Storage>,
        config: KontrolConfig,
    ) -> Result<Kontrol, Error> {
        // Storage timed and its errors counted, when the kite has metrics.
        let storage: Arc<dyn Storage> = match kite.metrics() {
            Some(m) => Arc::new(MeteredStorage::new(storage, &mut m.registry())),
            None => storage,
        };
        let store = storage.clone();
        let current = match keys::current(&*store).await {
            Ok(p) => p,
            Err(StorageError::KeyNotFound) => {
                let pair = KeyPair::generate().map_err(|e| Error::Auth(e.to_string()))?;
                store
                    .add_key(&pair)
                    .await
                    .map_err(|e| Error::Config(e.to_string()))?;
                tracing::info!(key = %pair.id, "generated Kontrol's first key pair");
                pair
            }
            Err(e) => return Err(Error::Config(e.to_string())),
        };
        let username = kite.identity().username.clone();
        kite.update_keys(|k| {
            k.kontrol_key = current.public_pem.clone();
            k.kontrol_user = username.clone();
        });
        let k = Kontrol {
            inner: Arc::new(Inner {
                kite: kite.clone(),
                storage,
                config,
                tokens: TokenCache::default(),
                verifiers: VerifierCache::default(),
                registrations: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
                closed: CancellationToken::new(),
                metrics: kite.metrics().map(|_| KontrolMetrics::default()),
                storage_faults: AtomicU64::new(0),
            }),
        };
        if let (Some(m), Some(registry)) = (&k.inner.metrics, kite.metrics()) {
            let weak = Arc::downgrade(&k.inner);
            let kites = KitesAlive(Box::new(move || {
                let inner = weak.upgrade()?;
                let n = inner
                    .registrations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len();
                Some(n)
            }));
            m.register(
                &mut registry.registry(),
                k.inner.tokens.minted.clone(),
                kites,
            );
        }
        k.install()?;
        k.spawn_cleaner();
        Ok(k)
    }

    /// The Kontrol kite (listen, close, configure through it).
    pub fn kite(&self) -> &Kite {
        &self.inner.kite
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Listens (see [`Kite::listen`]) and registers Kontrol in its own registry when a
    /// register URL is configured.
    pub async fn listen(&self) -> Result<std::net::SocketAddr, Error> {
        let c = self.inner.kite.config();
        self.listen_on(&c.ip, c.port).await
    }

    /// [`Kontrol::listen`] on `ip` and `port` instead of the configured ones.
    pub async fn listen_on(&self, ip: &str, port: u16) -> Result<std::net::SocketAddr, Error> {
        let addr = self.inner.kite.listen_on(ip, port).await?;
        if let Some(url) = self.inner.config.register_url.clone() {
            let pair = self.current_key().await?;
            let record = KiteRecord {
                kite: self.inner.kite.identity().clone(),
                url,
                key_id: pair.id,
            };
            self.inner
                .storage
                .upsert(&record)
                .await
                .map_err(|e| Error::Config(e.to_string()))?;
            self.spawn_self_refresh(record);
        }
        Ok(addr)
    }

    /// Stops serving and stops watching heartbeats (the kite closes as [`Kite::close`]
    /// says: calls in flight may finish first).
    pub fn close(&self) {
        self.inner.closed.cancel();
        self.inner.kite.close();
    }

    /// [`Kontrol::close`], then waits until the kite is closed.
    pub async fn shutdown(&self) {
        self.close();
        self.inner.kite.closed().await;
    }

    fn handle<F, Fut, R>(&self, name: &str, auth: bool, f: F) -> Result<(), Error>
    where
        F: Fn(Kontrol, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
        R: Serialize + 'static,
    {
        let weak = Arc::downgrade(&self.inner);
        let f = Arc::new(f);
        let method = crate::server::Method::new(name, move |req: Request| {
            let f = f.clone();
            let inner = weak.upgrade();
            async move {
                let inner = inner.ok_or_else(|| KiteError::generic("kontrol is closed"))?;
                f(Kontrol { inner }, req).await.map_err(KiteError::from)
            }
        })
        .authenticate(auth);
        self.inner.kite.add_method(method)
    }

    fn install(&self) -> Result<(), Error> {
        // Kite keys are checked against every key pair in storage, deleted ones included.
        let weak = Arc::downgrade(&self.inner);
        self.inner
            .kite
            .add_authenticator(Auth::KITE_KEY, move |c: AuthCheck| {
                let inner = weak.upgrade();
                async move {
                    let inner =
                        inner.ok_or_else(|| AuthError::Rejected("kontrol is closed".into()))?;
                    let checked = inner
                        .verifiers
                        .check_kite_key(&*inner.storage, &c.auth.key)
                        .await
                        .map_err(AuthError::Rejected)?;
                    Ok(checked.claims.sub)
                }
            });
        self.handle(METHOD_REGISTER, true, |k, req| async move {
            k.register(req).await
        })?;
        self.handle(METHOD_REGISTER_MACHINE, false, |k, req| async move {
            k.register_machine(req).await
        })?;
        self.handle(METHOD_GET_KITES, true, |k, req| async move {
            k.get_kites(req).await
        })?;
        self.handle(METHOD_GET_TOKEN, true, |k, req| async move {
            k.get_token(req).await
        })?;
        self.handle(METHOD_GET_KEY, true, |k, req| async move {
            k.get_key(req).await
        })?;
        self.handle(METHOD_UNREGISTER, true, |k, req| async move {
            k.unregister(req).await
        })?;
        self.inner
            .kite
            .merge_routes(super::http::routes(Arc::downgrade(&self.inner)));
        if self.inner.config.ui {
            let token = self.inner.config.ui_token.clone();
            self.inner
                .kite
                .merge_routes(super::ui::routes(Arc::downgrade(&self.inner), token));
        }
        Ok(())
    }
}
