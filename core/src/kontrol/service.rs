//! The Kontrol service: a kite serving `register`, `registerMachine`, `getKites`,
//! `getToken` and `getKey`, plus HTTP `POST /register` and `GET /heartbeat`, on any
//! [`Storage`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::keys::{self, TokenCache, VerifierCache};
use super::query::{self, Prepared};
use super::storage::{Event, KiteRecord, Storage, StorageError};
use crate::auth::AuthError;
use crate::auth::{mint_kite_key, KeyPair};
use crate::dnode::{BoxFuture, Callback, Payload, Segment};
use crate::protocol::{Auth, Kite as KiteIdentity, KiteError, KiteQuery};
use crate::server::{AuthCheck, Kite, Request};
use crate::Error;

/// Name of the register method.
pub const METHOD_REGISTER: &str = "register";
/// Name of the register-machine method.
pub const METHOD_REGISTER_MACHINE: &str = "registerMachine";
/// Name of the get-kites method.
pub const METHOD_GET_KITES: &str = "getKites";
/// Name of the get-token method.
pub const METHOD_GET_TOKEN: &str = "getToken";
/// Name of the get-key method.
pub const METHOD_GET_KEY: &str = "getKey";
/// Name of the unregister method (beyond the reference: a kite that closes cleanly leaves
/// at once instead of waiting for its heartbeats to time out).
pub const METHOD_UNREGISTER: &str = "unregister";

/// Decides whether a `registerMachine` call may get a kite key: `(authType, request)` →
/// `Ok` or the reason.
pub type MachineCheck =
    Arc<dyn Fn(String, Request) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Kontrol's options. Defaults match the reference.
#[derive(Clone)]
pub struct KontrolConfig {
    /// Interval kites are asked to send heartbeats at (in whole seconds, at least one).
    /// Default: 10 s.
    pub heartbeat_interval: Duration,
    /// Extra time after a missed heartbeat before a kite is removed. Default: 20 s.
    pub heartbeat_delay: Duration,
    /// Rows not refreshed for this long are removed by the cleaner (a Kontrol that died
    /// cannot remove its kites). Default: 90 s.
    pub expire_after: Duration,
    /// The URL Kontrol registers itself with in its own registry. Default: none.
    pub register_url: Option<String>,
    /// The check for `registerMachine`. Default: none — the method refuses every call.
    pub machine_check: Option<MachineCheck>,
}

impl Default for KontrolConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_delay: Duration::from_secs(20),
            expire_after: Duration::from_secs(90),
            register_url: None,
            machine_check: None,
        }
    }
}

impl std::fmt::Debug for KontrolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KontrolConfig")
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_delay", &self.heartbeat_delay)
            .field("expire_after", &self.expire_after)
            .field("register_url", &self.register_url)
            .field("machine_check", &self.machine_check.is_some())
            .finish()
    }
}

/// A machine check that accepts every call (development only: anyone gets a kite key for
/// the username they claim, as with the reference's default).
pub fn allow_all_machines() -> MachineCheck {
    Arc::new(|_, _| Box::pin(async { Ok(()) }))
}

/// What `register` and `POST /register` return.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegisterResult {
    /// The registered URL.
    pub url: String,
    /// Seconds between heartbeats (HTTP registrations); 0 over dnode.
    #[serde(rename = "heartbeatInterval", default)]
    pub heartbeat_interval: i64,
    /// Error text (HTTP only).
    #[serde(rename = "err", default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Kontrol's current public key, when the kite's key was signed by another one.
    #[serde(
        rename = "publicKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub public_key: String,
    /// A re-signed kite key, when the kite's key pair was deleted.
    #[serde(rename = "kiteKey", default, skip_serializing_if = "String::is_empty")]
    pub kite_key: String,
}

/// One result of `getKites`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KiteWithToken {
    /// The kite.
    pub kite: KiteIdentity,
    /// Its URL.
    pub url: String,
    /// Id of its key pair.
    #[serde(rename = "keyId", default, skip_serializing_if = "String::is_empty")]
    pub key_id: String,
    /// A token for calling it.
    pub token: String,
}

/// What `getKites` answers: `{"kites": [...]}`.
#[derive(Serialize)]
struct GetKitesResult {
    kites: Vec<KiteWithToken>,
}

struct Registration {
    generation: u64,
    alive: Arc<Notify>,
    /// The registered record.
    record: KiteRecord,
    /// The kite key it registered with: only that key may unregister it.
    key: String,
}

pub(crate) struct Inner {
    pub(crate) kite: Kite,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: KontrolConfig,
    pub(crate) tokens: TokenCache,
    pub(crate) verifiers: VerifierCache,
    registrations: Mutex<HashMap<String, Registration>>,
    generation: AtomicU64,
    closed: CancellationToken,
}

/// Kontrol: the registry and token authority. Cheap to clone.
#[derive(Clone)]
pub struct Kontrol {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Kontrol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kontrol")
            .field("kite", &self.inner.kite)
            .field("config", &self.inner.config)
            .finish()
    }
}

fn storage_err(e: StorageError) -> anyhow::Error {
    tracing::error!(error = %e, "kontrol storage");
    KiteError::generic(format!("kontrol storage: {e}")).into()
}

impl Kontrol {
    /// Kontrol on `kite` (usually named `kontrol`) and `storage`. Generates a key pair when
    /// storage has none, and registers Kontrol's methods and HTTP routes on the kite.
    pub async fn new(
        kite: Kite,
        storage: Arc<dyn Storage>,
        config: KontrolConfig,
    ) -> Result<Kontrol, Error> {
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
            }),
        };
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

    /// The key pair new kite keys and tokens are signed with (the newest active one). Its
    /// public PEM is trimmed: that text is what kite keys carry as `kontrolKey` and what
    /// `getKey` answers (the reference trims key pairs when they are added, and Go kites
    /// compare Kontrol keys as text).
    pub async fn current_key(&self) -> Result<KeyPair, Error> {
        let mut pair = keys::current(&*self.inner.storage)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        pair.public_pem = pair.public_pem.trim().to_string();
        Ok(pair)
    }

    /// Adds a key pair; it becomes the current one.
    pub async fn add_key_pair(&self, pair: &KeyPair) -> Result<(), Error> {
        self.inner
            .storage
            .add_key(pair)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        self.inner.verifiers.forget_pairs();
        self.inner
            .kite
            .update_keys(|k| k.kontrol_key = pair.public_pem.clone());
        Ok(())
    }

    /// Deletes a key pair (softly: kites presenting it are re-signed when they register).
    pub async fn delete_key_pair(&self, id: &str) -> Result<(), Error> {
        self.inner
            .storage
            .delete_key(id)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        self.inner.verifiers.forget_pairs();
        let current = self.current_key().await?;
        self.inner
            .kite
            .update_keys(|k| k.kontrol_key = current.public_pem.clone());
        Ok(())
    }

    /// Generates a new pair, makes it current and deletes the previous current one.
    pub async fn rotate_key(&self) -> Result<KeyPair, Error> {
        let old = self.current_key().await?;
        let new = KeyPair::generate().map_err(|e| Error::Auth(e.to_string()))?;
        self.add_key_pair(&new).await?;
        self.delete_key_pair(&old.id).await?;
        Ok(new)
    }

    /// A kite key for `username`, signed with the current pair (what `--initial` and
    /// `registerMachine` hand out).
    pub async fn new_kite_key(&self, username: &str) -> Result<String, Error> {
        self.new_kite_key_for(username, &self.kontrol_url()).await
    }

    /// A kite key for `username` whose `kontrolURL` is `url` (Kontrol's public URL, when
    /// it differs from what this Kontrol knows of itself).
    pub async fn new_kite_key_for(&self, username: &str, url: &str) -> Result<String, Error> {
        let pair = self.current_key().await?;
        let issuer = self.inner.kite.identity().username.clone();
        mint_kite_key(&pair, &issuer, username, url).map_err(|e| Error::Auth(e.to_string()))
    }

    fn kontrol_url(&self) -> String {
        let c = self.inner.kite.config();
        if !c.kontrol_url.is_empty() {
            return c.kontrol_url.clone();
        }
        self.inner
            .config
            .register_url
            .clone()
            .or_else(|| self.inner.kite.url())
            .unwrap_or_default()
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

    /// Keeps Kontrol's own record fresh (like any heartbeating kite's) for as long as it
    /// runs, so that no cleaner — its own or another Kontrol's on shared storage — drops it.
    fn spawn_self_refresh(&self, record: KiteRecord) {
        let weak = Arc::downgrade(&self.inner);
        let period = Duration::from_secs(heartbeat_secs(&self.inner.config))
            .min(self.inner.config.expire_after / 2)
            .max(Duration::from_millis(10));
        let closed = self.inner.closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = closed.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.storage.upsert(&record).await {
                    tracing::warn!(error = %e, "cannot refresh Kontrol's own record");
                }
            }
        });
    }

    fn spawn_cleaner(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.heartbeat_interval;
        let closed = self.inner.closed.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = closed.cancelled() => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let age = inner.config.expire_after;
                match inner.storage.expire(age).await {
                    Ok(gone) if !gone.is_empty() => {
                        tracing::info!(count = gone.len(), "expired kites removed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cleaner could not reach storage"),
                }
            }
        });
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
        Ok(())
    }

    /// Checks a kite key and works out the pair to record and what to hand back.
    pub(crate) async fn key_outcome(
        &self,
        jwt: &str,
    ) -> Result<(KeyPair, RegisterResult, String), String> {
        let checked = self
            .inner
            .verifiers
            .check_kite_key(&*self.inner.storage, jwt)
            .await?;
        let original = checked.claims.kontrol_key.trim().to_string();
        let mut result = RegisterResult::default();
        let pair = match checked.pair {
            Some(p) => p,
            None => {
                let current = self.current_key().await.map_err(|e| e.to_string())?;
                result.kite_key =
                    keys::resign(&checked.claims, &current).map_err(|e| e.to_string())?;
                current
            }
        };
        if original != pair.public_pem.trim() {
            result.public_key = pair.public_pem.trim().to_string();
        }
        Ok((pair, result, checked.claims.sub))
    }

    async fn register(&self, req: Request) -> anyhow::Result<RegisterResult> {
        let auth = req.auth().cloned().unwrap_or(Auth {
            kind: String::new(),
            key: String::new(),
        });
        if auth.kind != Auth::KITE_KEY {
            return Err(anyhow::anyhow!(
                "Unexpected authentication type: {}",
                auth.kind
            ));
        }
        #[derive(Deserialize)]
        struct Args {
            #[serde(default)]
            url: String,
        }
        let args: Args = req.args().one()?;
        check_url(&args.url)?;
        let (pair, mut result, username) = self
            .key_outcome(&auth.key)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let mut kite = req.caller().clone();
        kite.username = username;
        kite.validate().map_err(|e| anyhow::anyhow!(e))?;
        let record = KiteRecord {
            kite: kite.clone(),
            url: args.url.clone(),
            key_id: pair.id.clone(),
        };
        self.inner
            .storage
            .upsert(&record)
            .await
            .map_err(storage_err)?;
        let alive = self.watch_heartbeats(&record, &auth.key);
        let beat = Callback::new(move |_| alive.notify_one());
        let interval = heartbeat_secs(&self.inner.config);
        let client = req.client().clone();
        let name = kite.to_string();
        tokio::spawn(async move {
            if let Err(e) = client
                .call(
                    crate::protocol::METHOD_HEARTBEAT,
                    Payload::list().arg(interval).callback(beat),
                    Some(Duration::from_secs(4)),
                )
                .await
            {
                tracing::warn!(kite = %name, error = %e, "could not start heartbeats");
            }
        });
        tracing::info!(kite = %kite, url = %args.url, "kite registered");
        result.url = args.url;
        Ok(result)
    }

    /// Starts (or restarts) the liveness watch of a registered kite; returns what heartbeats
    /// notify.
    pub(crate) fn watch_heartbeats(&self, record: &KiteRecord, key: &str) -> Arc<Notify> {
        let kite = &record.kite;
        let alive = Arc::new(Notify::new());
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        self.inner
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                kite.id.clone(),
                Registration {
                    generation,
                    alive: alive.clone(),
                    record: record.clone(),
                    key: key.to_string(),
                },
            );
        let weak = Arc::downgrade(&self.inner);
        let record = record.clone();
        let kite = kite.clone();
        let notify = alive.clone();
        tokio::spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            // Heartbeats come every `beat` (what kites are asked for, whole seconds).
            let beat = Duration::from_secs(heartbeat_secs(&inner.config));
            let grace = inner.config.heartbeat_interval.max(beat) + inner.config.heartbeat_delay;
            // Storage must see the kite alive within `window`: an etcd lease lasts at least
            // interval + delay, and the cleaner removes kites older than `expire_after` (half
            // of it leaves room for the clocks of Kontrols sharing storage). A heartbeat
            // refreshes storage unless the next one is due half a beat before the window
            // closes, so refreshes are at most `window - beat/2` apart.
            let window = grace.min(inner.config.expire_after / 2);
            let fresh_for = window.saturating_sub(beat + beat / 2);
            let closed = inner.closed.clone();
            drop(inner);
            let mut last_refresh = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = notify.notified() => {
                        let Some(inner) = weak.upgrade() else { return };
                        // Unregistered (or registered again): its old heartbeats must not
                        // write it back.
                        if !is_current(&inner, &kite.id, generation) {
                            return;
                        }
                        if last_refresh.elapsed() > fresh_for {
                            last_refresh = tokio::time::Instant::now();
                            match inner.storage.touch(&kite).await {
                                Ok(true) => {}
                                // Removed behind our back while its heartbeats arrive (another
                                // Kontrol's cleaner, a lost etcd lease, a database restored
                                // without it): write it back.
                                Ok(false) => {
                                    tracing::info!(kite = %kite, "heartbeating kite missing from storage; registering it again");
                                    if let Err(e) = inner.storage.upsert(&record).await {
                                        tracing::warn!(kite = %kite, error = %e, "could not register kite again");
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(kite = %kite, error = %e, "could not refresh kite");
                                }
                            }
                        }
                    }
                    _ = tokio::time::sleep(grace) => break,
                    _ = closed.cancelled() => return,
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            let current = {
                let mut regs = inner
                    .registrations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let current = regs
                    .get(&kite.id)
                    .is_some_and(|r| r.generation == generation);
                if current {
                    regs.remove(&kite.id);
                }
                current
            };
            if current {
                tracing::info!(kite = %kite, "no heartbeat; kite removed");
                if let Err(e) = inner.storage.delete(&kite).await {
                    tracing::warn!(kite = %kite, error = %e, "could not remove kite");
                }
            }
        });
        alive
    }

    /// A heartbeat for an HTTP-registered kite; false when Kontrol does not know it.
    pub(crate) fn http_heartbeat(&self, id: &str) -> bool {
        let regs = self
            .inner
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match regs.get(id) {
            Some(r) => {
                r.alive.notify_one();
                true
            }
            None => false,
        }
    }

    /// `unregister`: removes the caller's record at once (watchers see `DEREGISTER`). Only
    /// the kite that registered it may: the same kite id, registered on this Kontrol with
    /// the same kite key.
    async fn unregister(&self, req: Request) -> anyhow::Result<serde_json::Value> {
        let key = match req.auth() {
            Some(a) if a.kind == Auth::KITE_KEY => a.key.clone(),
            other => {
                return Err(KiteError::authentication(format!(
                    "Unexpected authentication type: {}",
                    other.map(|a| a.kind.as_str()).unwrap_or_default()
                ))
                .into())
            }
        };
        let id = req.caller().id.clone();
        let record = {
            let mut regs = self
                .inner
                .registrations
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match regs.get(&id) {
                Some(r) if r.key == key => regs.remove(&id).map(|r| r.record),
                Some(_) => {
                    return Err(KiteError::authentication(
                        "only the kite that registered a record may unregister it",
                    )
                    .into())
                }
                None => None,
            }
        };
        let Some(record) = record else {
            return Err(KiteError::generic(format!("kite {id:?} is not registered here")).into());
        };
        self.inner
            .storage
            .delete(&record.kite)
            .await
            .map_err(storage_err)?;
        tracing::info!(kite = %record.kite, "kite unregistered");
        Ok(json!({ "url": record.url }))
    }

    async fn register_machine(&self, req: Request) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(rename = "authType", alias = "AuthType", default)]
            auth_type: String,
        }
        let args: Args = req.args().one().unwrap_or(Args {
            auth_type: String::new(),
        });
        let Some(check) = self.inner.config.machine_check.clone() else {
            return Err(anyhow::anyhow!(
                "cannot authenticate user: registerMachine is disabled on this Kontrol"
            ));
        };
        check(args.auth_type, req.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot authenticate user: {e}"))?;
        let username = req.caller().username.clone();
        if username.is_empty() {
            return Err(anyhow::anyhow!("cannot authenticate user: no username"));
        }
        tracing::info!(%username, "registered machine");
        Ok(self.new_kite_key(&username).await?)
    }

    async fn token_for(
        &self,
        record: &KiteRecord,
        audience: &str,
        username: &str,
        force: bool,
    ) -> anyhow::Result<String> {
        let pair = match self
            .inner
            .verifiers
            .pair_by_id(&*self.inner.storage, &record.key_id)
            .await
        {
            Ok(Some(p)) => p,
            // Deleted or unknown: sign with the current pair.
            Ok(None) => self.current_key().await?,
            Err(e) => return Err(storage_err(e)),
        };
        let issuer = self.inner.kite.identity().username.clone();
        Ok(self
            .inner
            .tokens
            .get_or_mint(&pair, &issuer, username, audience, force)?)
    }

    async fn find(&self, prepared: &Prepared) -> anyhow::Result<Vec<KiteRecord>> {
        let mut kites = self
            .inner
            .storage
            .get(&prepared.exact)
            .await
            .map_err(storage_err)?;
        if prepared.constraint.is_some() {
            kites.retain(|r| prepared.matches(&r.kite));
        }
        Ok(kites)
    }

    async fn get_kites(&self, req: Request) -> anyhow::Result<GetKitesResult> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(default)]
            query: Option<KiteQuery>,
        }
        let args: Args = req.args().one()?;
        let watch = req
            .args()
            .function_at([Segment::from(0), Segment::from("watchCallback")]);
        let q = args
            .query
            .ok_or_else(|| KiteError::argument("missing query"))?;
        let prepared = query::prepare(&q).map_err(KiteError::argument)?;
        let audience = query::audience(&q);
        // Subscribe before reading so that no change between the two is missed.
        let events = match &watch {
            Some(_) => Some(self.inner.storage.watch().await.map_err(storage_err)?),
            None => None,
        };
        let mut kites = self.find(&prepared).await?;
        kites.shuffle(&mut rand::rng());
        let mut out = Vec::with_capacity(kites.len());
        // Same audience and caller for every result: a token depends only on the kite's key
        // pair, which is looked up once per pair, not once per kite.
        let mut tokens: HashMap<String, String> = HashMap::new();
        for r in kites {
            let token = match tokens.get(&r.key_id) {
                Some(t) => t.clone(),
                None => {
                    let t = self.token_for(&r, &audience, req.username(), false).await?;
                    tokens.insert(r.key_id.clone(), t.clone());
                    t
                }
            };
            out.push(KiteWithToken {
                kite: r.kite,
                url: r.url,
                key_id: r.key_id,
                token,
            });
        }
        if let (Some(cb), Some(mut events)) = (watch, events) {
            let k = self.clone();
            let username = req.username().to_string();
            let req2 = req.clone();
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        e = events.next() => match e { Some(e) => e, None => return },
                        _ = req2.cancelled() => return,
                    };
                    let payload = match event {
                        Event::Register(r) if prepared.matches(&r.kite) => {
                            let token = k
                                .token_for(&r, &audience, &username, false)
                                .await
                                .unwrap_or_default();
                            json!({"action": "REGISTER", "kite": r.kite, "url": r.url, "token": token})
                        }
                        Event::Deregister(kite) if prepared.matches(&kite) => {
                            json!({"action": "DEREGISTER", "kite": kite})
                        }
                        _ => continue,
                    };
                    if cb.call([payload]).await.is_err() {
                        return;
                    }
                }
            });
        }
        // Typed, so that the answer becomes JSON once (not a `Value` copied into another).
        Ok(GetKitesResult { kites: out })
    }

    async fn get_token(&self, req: Request) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Args {
            #[serde(flatten)]
            query: KiteQuery,
            #[serde(default)]
            force: bool,
        }
        let args: Args = req
            .args()
            .one()
            .map_err(|e| KiteError::argument(format!("invalid query: {}", e.message)))?;
        let prepared = query::prepare(&args.query).map_err(KiteError::argument)?;
        let kites = self.find(&prepared).await?;
        let record = match kites.as_slice() {
            [] => return Err(anyhow::anyhow!("no kites found")),
            [one] => one,
            _ => return Err(anyhow::anyhow!("query matches more than one kite")),
        };
        self.token_for(
            record,
            &query::audience(&args.query),
            req.username(),
            args.force,
        )
        .await
    }

    async fn get_key(&self, req: Request) -> anyhow::Result<String> {
        let auth = req.auth().cloned().unwrap_or(Auth {
            kind: String::new(),
            key: String::new(),
        });
        if auth.kind != Auth::KITE_KEY {
            return Err(anyhow::anyhow!(
                "Unexpected authentication type: {}",
                auth.kind
            ));
        }
        let checked = self
            .inner
            .verifiers
            .check_kite_key(&*self.inner.storage, &auth.key)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        // Trimmed, as kite keys carry it: a Go kite adopts the answer as its Kontrol key and
        // compares it as text with the `kontrolKey` of the kite keys it is shown.
        match checked.pair {
            Some(p) => Ok(p.public_pem.trim().to_string()),
            None => Ok(self.current_key().await?.public_pem),
        }
    }
}

fn is_current(inner: &Inner, id: &str, generation: u64) -> bool {
    inner
        .registrations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .is_some_and(|r| r.generation == generation)
}

/// Seconds between the heartbeats kites are asked for: the configured interval in whole
/// seconds (the protocol's unit, never longer than configured), at least one.
pub(crate) fn heartbeat_secs(config: &KontrolConfig) -> u64 {
    config.heartbeat_interval.as_secs().max(1)
}

fn check_url(u: &str) -> Result<(), KiteError> {
    super::register_url::check_register_url(u).map_err(KiteError::generic)
}
