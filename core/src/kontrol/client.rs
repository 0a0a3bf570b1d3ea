//! The kite's side of Kontrol: register over dnode (once or forever; HTTP registration is
//! in `client_http`), find other kites (as clients carrying renewing tokens), get tokens
//! and Kontrol's key. Needs only `config` from the service side.
#![deny(clippy::arithmetic_side_effects)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use super::config::{
    KiteWithToken, RegisterResult, METHOD_GET_KEY, METHOD_GET_KITES, METHOD_GET_TOKEN,
    METHOD_REGISTER, METHOD_UNREGISTER,
};
use crate::protocol::{Auth, Kite as KiteIdentity, KiteQuery};
use crate::server::Kite;
use crate::{Client, Error};

/// Renew a token this long before it expires (like the reference).
pub const RENEW_BEFORE: Duration = Duration::from_secs(30);
/// Retry interval of failed registrations and renewals.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);

type RegisterHook = Arc<dyn Fn(&RegisterResult) + Send + Sync>;

/// Per-kite Kontrol state, kept in the kite.
#[derive(Default)]
pub(crate) struct State {
    client: Mutex<Option<Client>>,
    last_url: Mutex<Option<String>>,
    hooks: RwLock<Vec<RegisterHook>>,
    registered: Notify,
    /// The close hook that unregisters is installed.
    leaves_on_close: AtomicBool,
}

/// Longest a closing kite waits for Kontrol to answer `unregister`.
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

fn state(kite: &Kite) -> Arc<State> {
    kite.extension::<State>()
}

/// Logs a failure of a retry loop as a warning when it differs from the previous one, and
/// at debug level when it repeats.
pub(super) fn log_once(last: &mut Option<String>, e: &Error, what: &str) {
    let text = e.to_string();
    if last.as_deref() == Some(text.as_str()) {
        tracing::debug!(error = %e, "{what} (same failure)");
    } else {
        tracing::warn!(error = %e, code = e.code(), "{what}");
        *last = Some(text);
    }
}

impl Kite {
    /// Sends a WebRTC signalling message through Kontrol (which must run with
    /// [`Config::use_webrtc`](crate::Config::use_webrtc)) to kite `msg.dst`, like the
    /// reference's `Kite.SendWebRTCRequest`: it arrives at that kite's own
    /// `kite.handleWebRTC` ([`Kite::handle_webrtc`]) with `src` set to this kite's id.
    pub async fn send_webrtc(&self, msg: &crate::protocol::SignalMessage) -> Result<(), Error> {
        self.kontrol().await?.send_webrtc(msg).await
    }

    /// The connection to Kontrol (`Config::kontrol_url`, kiteKey authentication). When not
    /// connected it dials now (or, while a reconnection loop runs, waits for its next
    /// attempt), up to the kite's timeout, and fails with the cause at once — a
    /// [`DialError`](crate::DialError) naming the URL and where it came from — so that
    /// one-shot operations (`register`, `get_kites`, …) report a refused or unresolvable
    /// Kontrol immediately. Once connected, a dropped connection is redialed in the
    /// background with backoff (and the kite registers again).
    pub async fn kontrol(&self) -> Result<Client, Error> {
        let client = self.kontrol_client()?;
        if client.is_connected() {
            return Ok(client);
        }
        let timeout = self.config().timeout;
        client
            .connected_or_cause("connect to kontrol", timeout)
            .await?;
        Ok(client)
    }

    fn kontrol_client(&self) -> Result<Client, Error> {
        let st = state(self);
        if let Some(c) = st.client.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(c);
        }
        let config = self.config();
        if config.kontrol_url.is_empty() {
            return Err(Error::Config("no kontrol URL given in config".into()));
        }
        let c = self.client(&config.kontrol_url);
        c.set_url_origin(config.kontrol_url_source());
        c.set_remote_kite(KiteIdentity {
            name: "kontrol".into(),
            ..KiteIdentity::default()
        });
        let kite_key = self.kite_key();
        c.set_auth((!kite_key.is_empty()).then(|| Auth::kite_key(kite_key)));
        // A restarted Kontrol gets its kites back within one heartbeat interval: redials at
        // most KONTROL_REDIAL_MAX apart, and a register after every reconnect.
        c.set_redial_max(KONTROL_REDIAL_MAX);
        let kite = self.downgrade();
        c.on_connect(move || {
            let Some(kite) = kite.upgrade() else { return };
            let url = state(&kite)
                .last_url
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(url) = url {
                let fut: crate::dnode::BoxFuture<'static, ()> =
                    Box::pin(async move { register_again(kite, url).await });
                tokio::spawn(fut);
            }
        });
        let c = {
            let mut slot = st.client.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = slot.as_ref() {
                return Ok(existing.clone());
            }
            slot.insert(c).clone()
        };
        // Dialed on demand by `kontrol()` (a failure goes to the caller at once); once
        // connected, every drop is redialed in the background.
        c.keep_connected();
        Ok(c)
    }

    /// Runs `f` after every successful registration.
    pub fn on_register(&self, f: impl Fn(&RegisterResult) + Send + Sync + 'static) {
        state(self)
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(f));
    }

    pub(super) fn registered(&self, result: &RegisterResult) {
        // Kontrol re-signed our key (its pair was rotated): adopt the new key and Kontrol key.
        if !result.kite_key.is_empty() {
            let key = result.kite_key.clone();
            let adopted = crate::auth::parse_unverified(&key).map(|claims| {
                self.update_keys(|k| {
                    k.kite_key = key.trim().to_string();
                    if !claims.iss.is_empty() {
                        k.kontrol_user = claims.iss;
                    }
                    if !claims.kontrol_key.is_empty() {
                        k.kontrol_key = claims.kontrol_key;
                    }
                })
            });
            if adopted.is_ok() {
                tracing::info!("adopted the kite key re-signed by Kontrol");
                if let Some(c) = state(self)
                    .client
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                {
                    c.set_auth(Some(Auth::kite_key(key)));
                }
            }
        }
        if !result.public_key.is_empty() {
            let pk = result.public_key.clone();
            self.update_keys(|k| k.kontrol_key = pk);
        }
        let st = state(self);
        let hooks = st.hooks.read().unwrap_or_else(|e| e.into_inner()).clone();
        hooks.iter().for_each(|h| h(result));
        st.registered.notify_waiters();
    }

    /// Registers this kite to Kontrol with `url` (the URL other kites should dial).
    pub async fn register(&self, url: &str) -> Result<RegisterResult, Error> {
        let c = self.kontrol().await?;
        let v = c.call(METHOD_REGISTER, &[json!({ "url": url })]).await?;
        let result: RegisterResult =
            serde_json::from_value(v).map_err(|e| Error::InvalidResponse(e.to_string()))?;
        *state(self)
            .last_url
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(url.to_string());
        tracing::info!(url = %result.url, kite = %self.identity(), "registered to kontrol");
        self.registered(&result);
        self.leave_on_close();
        Ok(result)
    }

    /// Makes [`Kite::close`] unregister this kite from Kontrol (once per kite).
    pub(super) fn leave_on_close(&self) {
        if state(self).leaves_on_close.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = self.downgrade();
        self.on_close(Box::new(move || {
            Box::pin(async move {
                let Some(kite) = weak.upgrade() else { return };
                let leave = kite.unregister();
                match tokio::time::timeout(UNREGISTER_TIMEOUT, leave).await {
                    Ok(Ok(())) => tracing::info!("unregistered from kontrol"),
                    // A Kontrol without `unregister` (the Go reference) notices the missing
                    // heartbeats instead.
                    Ok(Err(Error::Remote(e))) if e.kind == crate::ErrorKind::MethodNotFound => {
                        tracing::debug!(
                            "kontrol has no unregister method; leaving it to the heartbeats"
                        )
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not unregister from kontrol"),
                    Err(_) => tracing::warn!(
                        timeout = ?UNREGISTER_TIMEOUT,
                        "kontrol did not answer unregister in time"
                    ),
                }
            })
        }));
    }

    /// Removes this kite's registration from Kontrol at once (Kontrol's `unregister`, beyond
    /// the reference); [`Kite::close`] does it for a registered kite.
    pub async fn unregister(&self) -> Result<(), Error> {
        let c = self.kontrol().await?;
        c.call(METHOD_UNREGISTER, &[json!({})]).await?;
        Ok(())
    }

    /// Registers now (retrying every 10 s until it succeeds) and again after every
    /// reconnection to Kontrol. Resolves after the first successful registration.
    pub async fn register_forever(&self, url: &str) -> RegisterResult {
        // `register` remembers the URL once it succeeds, and from then on every reconnection
        // registers again (like the reference, which sets its last registered URL only after
        // a success). Remembering it before the first attempt made the first connection
        // register twice: once from this loop and once from the on-connect hook.
        let mut last = None;
        loop {
            match self.register(url).await {
                Ok(r) => return r,
                Err(e) => {
                    log_once(&mut last, &e, "cannot register to kontrol; retrying");
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
            }
        }
    }

    /// Kites matching `query`, as clients (not yet dialed) carrying tokens from Kontrol
    /// that renew themselves 30 s before they expire and when a call reports "token is
    /// expired". Errors when nothing matches.
    pub async fn get_kites(&self, query: &KiteQuery) -> Result<Vec<Client>, Error> {
        let c = self.kontrol().await?;
        let v = c
            .call(METHOD_GET_KITES, &[json!({ "query": query })])
            .await?;
        #[derive(serde::Deserialize)]
        struct Result {
            #[serde(default)]
            kites: Vec<KiteWithToken>,
        }
        let r: Result =
            serde_json::from_value(v).map_err(|e| Error::InvalidResponse(e.to_string()))?;
        if r.kites.is_empty() {
            return Err(Error::Remote(crate::KiteError::generic(
                "no kites available",
            )));
        }
        Ok(r.kites
            .into_iter()
            .map(|k| self.client_with_token(k))
            .collect())
    }

    fn client_with_token(&self, k: KiteWithToken) -> Client {
        let client = self.client(&k.url);
        client.set_remote_kite(k.kite.clone());
        client.set_auth(Some(Auth::token(k.token.clone())));
        let renew = Arc::new(Notify::new());
        let r2 = renew.clone();
        client.on_token_expire(move || r2.notify_one());
        let kite = self.clone();
        let weak = client.downgrade();
        let token = k.token;
        tokio::spawn(async move {
            let mut token = token;
            loop {
                let wait = crate::auth::parse_unverified(&token)
                    .ok()
                    .and_then(|c| u64::try_from(c.exp).ok())
                    .map(|exp| {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs();
                        Duration::from_secs(exp.saturating_sub(now)).saturating_sub(RENEW_BEFORE)
                    })
                    .unwrap_or(RETRY_INTERVAL);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = renew.notified() => {}
                }
                let Some(client) = weak.upgrade() else { return };
                if client.is_closed() {
                    return;
                }
                match kite.get_token(&client.remote_kite()).await {
                    Ok(t) => {
                        token = t.clone();
                        client.renew_token(t);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "token renewal failed; retrying in {RETRY_INTERVAL:?}");
                        tokio::time::sleep(RETRY_INTERVAL).await;
                    }
                }
            }
        });
        client
    }

    /// A token for calling `kite`, from Kontrol's cache.
    pub async fn get_token(&self, kite: &KiteIdentity) -> Result<String, Error> {
        self.token(kite, false).await
    }

    /// A freshly minted token for calling `kite`.
    pub async fn get_token_force(&self, kite: &KiteIdentity) -> Result<String, Error> {
        self.token(kite, true).await
    }

    async fn token(&self, kite: &KiteIdentity, force: bool) -> Result<String, Error> {
        let c = self.kontrol().await?;
        let mut args = serde_json::to_value(kite.query()).unwrap_or_default();
        if force {
            args["force"] = json!(true);
        }
        let v = c.call(METHOD_GET_TOKEN, &[args]).await?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidResponse(format!("token is not a string: {v}")))
    }

    /// Kontrol's current public key; also adopted as this kite's trusted Kontrol key.
    pub async fn get_key(&self) -> Result<String, Error> {
        let c = self.kontrol().await?;
        let v = c.call(METHOD_GET_KEY, ()).await?;
        let key = v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidResponse(format!("key is not a string: {v}")))?;
        let k2 = key.clone();
        self.update_keys(|k| k.kontrol_key = k2);
        Ok(key)
    }

    /// Fetches Kontrol's key every `interval` (so rotated keys are picked up) until the
    /// kite closes.
    pub fn key_renewer(&self, interval: Duration) {
        let kite = self.clone();
        tokio::spawn(async move {
            let closed = kite.inner.closed.clone();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = closed.cancelled() => return,
                }
                if let Err(e) = kite.get_key().await {
                    tracing::warn!(error = %e, "key renew failed");
                }
            }
        });
    }
}

/// Longest wait between redials of Kontrol, and between attempts to register again after a
/// reconnect: half of Kontrol's default heartbeat interval (10 s), so that the kites of a
/// Kontrol that restarted are back within one interval. Other clients keep the reference's
/// one-minute cap.
pub const KONTROL_REDIAL_MAX: Duration = Duration::from_secs(5);

/// Registers `url` again after a reconnect to Kontrol, retrying while the connection stays up
/// (Kontrol may be up before its storage is); a drop ends it, since the next reconnect
/// registers again.
async fn register_again(kite: Kite, url: String) {
    let mut delay = Duration::from_secs(1);
    loop {
        match kite.register(&url).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "re-register after reconnect failed")
            }
        }
        let connected = kite.kontrol_client().is_ok_and(|c| c.is_connected());
        if kite.is_closing() || !connected {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(KONTROL_REDIAL_MAX);
    }
}
