//! The plain objects of the API (`#[napi(object)]`: copied between Rust and JavaScript):
//! identities, authentication, call options, Kontrol's answers and queries. They import
//! nothing of the crate.

/// A kite's identity: `/username/environment/name/version/region/hostname/id`.
#[napi(object)]
#[derive(Clone, Default)]
pub struct KiteIdentity {
    /// Owner of the kite.
    pub username: String,
    /// Environment, e.g. `production`.
    pub environment: String,
    /// Kind of kite, e.g. `math`.
    pub name: String,
    /// Three-part semantic version.
    pub version: String,
    /// Region, e.g. `europe`.
    pub region: String,
    /// Host name of its machine.
    pub hostname: String,
    /// Unique id of the kite process.
    pub id: String,
}

impl From<kite::protocol::Kite> for KiteIdentity {
    fn from(k: kite::protocol::Kite) -> Self {
        KiteIdentity {
            username: k.username,
            environment: k.environment,
            name: k.name,
            version: k.version,
            region: k.region,
            hostname: k.hostname,
            id: k.id,
        }
    }
}

impl From<KiteIdentity> for kite::protocol::Kite {
    fn from(k: KiteIdentity) -> Self {
        kite::protocol::Kite {
            username: k.username,
            environment: k.environment,
            name: k.name,
            version: k.version,
            region: k.region,
            hostname: k.hostname,
            id: k.id,
        }
    }
}

/// Authentication sent with calls: `{ type: 'kiteKey' | 'token' | …, key }`.
#[napi(object)]
#[derive(Clone)]
pub struct Auth {
    /// `kiteKey`, `token`, or a custom type with its own authenticator.
    #[napi(js_name = "type")]
    pub kind: String,
    /// The credential (a JWT for the built-in types).
    pub key: String,
}

impl From<kite::protocol::Auth> for Auth {
    fn from(a: kite::protocol::Auth) -> Self {
        Auth {
            kind: a.kind,
            key: a.key,
        }
    }
}

impl From<Auth> for kite::protocol::Auth {
    fn from(a: Auth) -> Self {
        kite::protocol::Auth {
            kind: a.kind,
            key: a.key,
        }
    }
}

/// Options of a call.
#[napi(object)]
#[derive(Clone, Default)]
pub struct TellOptions {
    /// Milliseconds to wait for the response; then the call fails with `timeout`.
    /// Default: the kite's timeout (15 s, `KITE_TIMEOUT`).
    pub timeout: Option<f64>,
}

/// `ms` milliseconds as a duration (negative: zero; capped at about 31 years).
pub(crate) fn duration(ms: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64((ms.max(0.0) / 1000.0).min(1e9))
}

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
