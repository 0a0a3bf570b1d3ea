//! Kontrol from Node: the [`Kontrol`] class (running a registry and token authority on a
//! `Kite`), and the types of the kite-side calls (`register`, `getKites`, `getToken`,
//! `getKey`), which are methods of `Kite`.

use std::sync::Arc;

use kite::kontrol::storage::StorageSpec;
use kite::kontrol::RegisterMode;
use kite::server::TimeUnit;
use napi::bindgen_prelude::PromiseRaw;
use napi::Env;

use crate::client::Client;
use crate::errors;
use crate::kite::Kite;
use crate::types::{duration, KiteQuery, RegisterResult};

/// The storage spec and configuration of `options`, checked by the core
/// (`kite::kontrol::KontrolOptions`, times in milliseconds).
fn kontrol_config(
    options: &KontrolOptions,
) -> Result<(StorageSpec, kite::kontrol::KontrolConfig), kite::Error> {
    let json = serde_json::to_value(options).map_err(|e| kite::Error::Config(e.to_string()))?;
    let o = kite::kontrol::KontrolOptions::from_json(json, TimeUnit::Milliseconds)?;
    Ok((o.storage()?, o.config()?))
}

/// Options of a Kontrol (checked by the core, like Python's keyword arguments of `Kontrol`).
#[napi(object)]
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KontrolOptions {
    /// Where kites and key pairs are kept: `memory`, `sqlite:PATH` (a SQLite file, created
    /// if missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME` (PostgreSQL, on the
    /// reference Kontrol's schema; parameters `sslmode=disable`, `connect_timeout=SECONDS`).
    /// Default: `memory`.
    pub storage: Option<String>,
    /// Milliseconds between the heartbeats kites are asked for. Default: 10000.
    pub heartbeat_interval: Option<f64>,
    /// Extra milliseconds after a missed heartbeat before a kite is dropped. Default: 20000.
    pub heartbeat_delay: Option<f64>,
    /// Milliseconds after which rows not refreshed are removed. Default: 90000.
    pub expire_after: Option<f64>,
    /// The URL Kontrol registers itself with in its own registry. Default: none.
    pub register_url: Option<String>,
    /// Serve the read-only live view of the registry at `/ui`. Default: false.
    pub ui: Option<bool>,
    /// The token the `/ui` page needs (`/ui?token=…`); without one it is served to loopback
    /// clients only. Default: none.
    pub ui_token: Option<String>,
}

/// Kontrol, the registry and token authority of a kite mesh, running on a `Kite` (usually
/// named `kontrol`): kites `register` to it, find each other with `getKites` and call each
/// other with the tokens it signs.
///
/// ```js
/// const k = new Kite({ name: 'kontrol', version: '1.0.0', username: 'kontrol' })
/// const kontrol = await Kontrol.create(k, { storage: 'sqlite:/var/lib/kontrol.db' })
/// await kontrol.listen(4000)
/// const kiteKey = await kontrol.newKiteKey('alice')   // for a kite's `kiteKey` option
/// ```
#[napi]
pub struct Kontrol {
    kontrol: kite::kontrol::Kontrol,
    kite: Arc<crate::state::State>,
}

#[napi]
impl Kontrol {
    /// Runs Kontrol on `kite`: installs its methods (`register`, `getKites`, `getToken`,
    /// `getKey`, …) and HTTP routes, and generates a key pair when the storage has none.
    #[napi(ts_return_type = "Promise<Kontrol>")]
    pub fn create<'e>(
        env: &'e Env,
        kite: &Kite,
        options: Option<KontrolOptions>,
    ) -> napi::Result<PromiseRaw<'e, Kontrol>> {
        let o = options.unwrap_or_default();
        // Checked now, reported as the promise's rejection (like a storage that cannot open).
        let checked = kontrol_config(&o);
        let state = kite.state().clone();
        let core = state.kite.clone();
        errors::promise(
            env,
            async move {
                let (storage, config) = checked?;
                let storage = storage.open().await?;
                kite::kontrol::Kontrol::new(core, storage, config).await
            },
            move |_env, kontrol| {
                Ok(Kontrol {
                    kontrol,
                    kite: state,
                })
            },
        )
    }

    /// Starts serving (like `Kite.listen`) and, with `registerUrl`, registers Kontrol in its
    /// own registry. Resolves with the port.
    #[napi]
    pub fn listen<'e>(
        &self,
        env: &'e Env,
        port: Option<u32>,
        host: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, u32>> {
        let kontrol = self.kontrol.clone();
        crate::state::listen_with(env, &self.kite, port, host, |ip, port| async move {
            kontrol.listen_on(&ip, port).await
        })
    }

    /// The URL kites dial and register to, once listening.
    #[napi(getter)]
    pub fn url(&self) -> Option<String> {
        self.kite.kite.url()
    }

    /// The port, once listening.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.kite.kite.port().map(u32::from)
    }

    /// A kite key for `username`, signed with the current key pair (what a kite passes as its
    /// `kiteKey` option, or keeps in `kite.key`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn new_kite_key<'e>(
        &self,
        env: &'e Env,
        username: String,
    ) -> napi::Result<PromiseRaw<'e, String>> {
        let kontrol = self.kontrol.clone();
        errors::promise(
            env,
            async move { kontrol.new_kite_key(&username).await },
            |_env, key| Ok(key),
        )
    }

    /// The public key (PEM) of the current key pair, which kites trust as `kontrolKey`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn public_key<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, String>> {
        let kontrol = self.kontrol.clone();
        errors::promise(
            env,
            async move { kontrol.current_key().await },
            |_env, pair| Ok(pair.public_pem),
        )
    }

    /// Generates a new key pair, makes it current and retires the previous one (kites
    /// presenting keys signed by it get re-signed keys when they register). Resolves with
    /// the new public key.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn rotate_key<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, String>> {
        let kontrol = self.kontrol.clone();
        errors::promise(
            env,
            async move { kontrol.rotate_key().await },
            |_env, pair| Ok(pair.public_pem),
        )
    }

    /// Stops serving and watching heartbeats; closes the kite.
    #[napi]
    pub fn close(&self, env: &Env) {
        self.kontrol.close();
        crate::state::close_state(env, &self.kite);
    }
}

/// The kite's side of Kontrol.
#[napi]
impl Kite {
    /// Registers this kite to Kontrol (`kontrolUrl`, authenticated with the kite key) as
    /// reachable at `url` (default: this kite's URL; listen first). Kontrol then keeps the
    /// registration while heartbeats arrive; after a reconnection the kite registers again.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        self.register_as(env, url, RegisterMode::ONCE)
    }

    /// Like `register`, retrying every 10 s until Kontrol accepts.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_forever<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        self.register_as(env, url, RegisterMode::FOREVER)
    }

    /// Registers over HTTP (`POST {kontrol}/register`) and keeps sending HTTP heartbeats at
    /// the interval Kontrol asks for.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_http<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        self.register_as(env, url, RegisterMode::HTTP)
    }

    /// Like `registerHttp`, retrying with exponential backoff (30 s growing to 5 min) until
    /// Kontrol accepts; registers again whenever Kontrol asks to.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_http_forever<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        self.register_as(env, url, RegisterMode::HTTP_FOREVER)
    }

    /// Fetches Kontrol's public key every `intervalMs` milliseconds until the kite closes,
    /// so that a rotated Kontrol key is picked up.
    #[napi]
    pub fn key_renewer(&self, env: &Env, interval_ms: f64) -> napi::Result<()> {
        if interval_ms.is_nan() || interval_ms <= 0.0 {
            return Err(errors::throw_config(env, "the interval must be positive"));
        }
        let kite = self.state().kite.clone();
        let interval = duration(interval_ms);
        napi::bindgen_prelude::spawn(async move { kite.key_renewer(interval) });
        Ok(())
    }

    /// The kites matching `query`, from Kontrol, as clients (not dialed yet) that carry
    /// tokens from Kontrol and renew them before they expire. Rejects when none matches.
    #[napi(ts_return_type = "Promise<Client[]>")]
    pub fn get_kites<'e>(
        &self,
        env: &'e Env,
        query: KiteQuery,
    ) -> napi::Result<PromiseRaw<'e, Vec<Client>>> {
        let s = self.state().clone();
        let kite = s.kite.clone();
        let query: kite::protocol::KiteQuery = query.into();
        errors::promise(
            env,
            async move { kite.get_kites(&query).await },
            move |env, clients| {
                clients
                    .into_iter()
                    .map(|c| crate::state::adopt_client(env, &s, c, None))
                    .collect()
            },
        )
    }

    /// A token from Kontrol for calling `kite` (Kontrol caches tokens until they expire;
    /// `force` asks for a new one).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn get_token<'e>(
        &self,
        env: &'e Env,
        kite: KiteQuery,
        force: Option<bool>,
    ) -> napi::Result<PromiseRaw<'e, String>> {
        let local = self.state().kite.clone();
        let target: kite::protocol::Kite = kite.into();
        errors::promise(
            env,
            async move {
                if force.unwrap_or(false) {
                    local.get_token_force(&target).await
                } else {
                    local.get_token(&target).await
                }
            },
            |_env, t| Ok(t),
        )
    }

    /// Kontrol's current public key (PEM); the kite trusts it from now on.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn get_key<'e>(&self, env: &'e Env) -> napi::Result<PromiseRaw<'e, String>> {
        let kite = self.state().kite.clone();
        errors::promise(env, async move { kite.get_key().await }, |_env, k| Ok(k))
    }
}

impl Kite {
    /// One of the four registrations (the core's [`Kite::register_with`](kite::Kite::register_with)).
    fn register_as<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
        mode: RegisterMode,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move { kite.register_with(mode, url).await },
            |_env, r| Ok(r.into()),
        )
    }
}
