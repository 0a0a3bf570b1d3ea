//! Kontrol from Node: the [`Kontrol`] class (running a registry and token authority on a
//! `Kite`), and the types of the kite-side calls (`register`, `getKites`, `getToken`,
//! `getKey`), which are methods of `Kite`.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;

use crate::client::Client;
use crate::errors;
use crate::kite::Kite;
use crate::request::duration;

/// What Kontrol answers to `register`.
#[napi(object)]
pub struct RegisterResult {
    /// The registered URL.
    pub url: String,
    /// Seconds between HTTP heartbeats (HTTP registrations); 0 over dnode.
    pub heartbeat_interval: i64,
    /// Kontrol's current public key, when this kite's key was signed by another one.
    pub public_key: Option<String>,
    /// A re-signed kite key, when this kite's key pair was deleted (adopted already).
    pub kite_key: Option<String>,
}

impl From<kite::kontrol::RegisterResult> for RegisterResult {
    fn from(r: kite::kontrol::RegisterResult) -> Self {
        let some = |s: String| (!s.is_empty()).then_some(s);
        RegisterResult {
            url: r.url,
            heartbeat_interval: r.heartbeat_interval,
            public_key: some(r.public_key),
            kite_key: some(r.kite_key),
        }
    }
}

/// A Kontrol query: fields from general to specific (username, environment, name, version,
/// region, hostname, id). `username` is required, and so is every field before the last one
/// set: a query that skips one is refused with `argumentError` "Invalid query. Query option is
/// not set: <field>". `version` may be a constraint such as `>= 1.0, < 1.4`. A valid query
/// that matches nothing is `genericError` "no kites available".
#[napi(object)]
#[derive(Default)]
pub struct KiteQuery {
    /// Owner (required).
    pub username: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Version or version constraint.
    pub version: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Kite id.
    pub id: Option<String>,
}

impl From<KiteQuery> for kite::protocol::KiteQuery {
    fn from(q: KiteQuery) -> Self {
        kite::protocol::KiteQuery {
            username: q.username.unwrap_or_default(),
            environment: q.environment.unwrap_or_default(),
            name: q.name.unwrap_or_default(),
            version: q.version.unwrap_or_default(),
            region: q.region.unwrap_or_default(),
            hostname: q.hostname.unwrap_or_default(),
            id: q.id.unwrap_or_default(),
        }
    }
}

impl From<KiteQuery> for kite::protocol::Kite {
    fn from(q: KiteQuery) -> Self {
        let q: kite::protocol::KiteQuery = q.into();
        kite::protocol::Kite {
            username: q.username,
            environment: q.environment,
            name: q.name,
            version: q.version,
            region: q.region,
            hostname: q.hostname,
            id: q.id,
        }
    }
}

/// Options of a Kontrol.
#[napi(object)]
#[derive(Default)]
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
    kite: Arc<crate::kite::State>,
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
        let defaults = kite::kontrol::KontrolConfig::default();
        let ms = |v: Option<f64>, d: Duration| v.map(duration).unwrap_or(d);
        let config = kite::kontrol::KontrolConfig {
            heartbeat_interval: ms(o.heartbeat_interval, defaults.heartbeat_interval),
            heartbeat_delay: ms(o.heartbeat_delay, defaults.heartbeat_delay),
            expire_after: ms(o.expire_after, defaults.expire_after),
            register_url: o.register_url,
            machine_check: None,
            ..defaults
        };
        let storage = o.storage.unwrap_or_else(|| "memory".into());
        let state = kite.state().clone();
        let core = state.kite.clone();
        errors::promise(
            env,
            async move {
                let storage = kite::kontrol::storage::open(&storage).await?;
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
        crate::kite::listen_with(env, &self.kite, port, host, |ip, port| async move {
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
        crate::kite::close_state(env, &self.kite);
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
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move {
                let url = own_url(&kite, url)?;
                kite.register(&url).await
            },
            |_env, r| Ok(r.into()),
        )
    }

    /// Like `register`, retrying every 10 s until Kontrol accepts.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_forever<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move {
                let url = own_url(&kite, url)?;
                Ok(kite.register_forever(&url).await)
            },
            |_env, r| Ok(r.into()),
        )
    }

    /// Registers over HTTP (`POST {kontrol}/register`) and keeps sending HTTP heartbeats at
    /// the interval Kontrol asks for.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_http<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move {
                let url = own_url(&kite, url)?;
                kite.register_http(&url).await
            },
            |_env, r| Ok(r.into()),
        )
    }

    /// Like `registerHttp`, retrying with exponential backoff (30 s growing to 5 min) until
    /// Kontrol accepts; registers again whenever Kontrol asks to.
    #[napi(ts_return_type = "Promise<RegisterResult>")]
    pub fn register_http_forever<'e>(
        &self,
        env: &'e Env,
        url: Option<String>,
    ) -> napi::Result<PromiseRaw<'e, RegisterResult>> {
        let kite = self.state().kite.clone();
        errors::promise(
            env,
            async move {
                let url = own_url(&kite, url)?;
                Ok(kite.register_http_forever(&url).await)
            },
            |_env, r| Ok(r.into()),
        )
    }

    /// Fetches Kontrol's public key every `intervalMs` milliseconds until the kite closes,
    /// so that a rotated Kontrol key is picked up.
    #[napi]
    pub fn key_renewer(&self, env: &Env, interval_ms: f64) -> napi::Result<()> {
        if !(interval_ms > 0.0) {
            return Err(errors::throw(
                env,
                "configError",
                "the interval must be positive",
            ));
        }
        let kite = self.state().kite.clone();
        let interval = crate::request::duration(interval_ms);
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
                    .map(|c| crate::kite::adopt_client(env, &s, c, None))
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

/// The URL to register: `url`, else the kite's own.
fn own_url(kite: &kite::Kite, url: Option<String>) -> Result<String, kite::Error> {
    url.or_else(|| kite.register_url()).ok_or_else(|| {
        kite::Error::Config("the kite is not listening: give the URL to register".into())
    })
}
