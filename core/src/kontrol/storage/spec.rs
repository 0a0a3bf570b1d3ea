//! Kontrol's storage named by one string, for programs and bindings that take the backend as
//! a setting: `memory`, `sqlite:PATH`, `postgres://USER@HOST/DBNAME` or
//! `etcd://HOST:PORT[,HOST:PORT…]`.
//!
//! [`StorageSpec`] parses and checks the string without touching anything (a backend whose
//! cargo feature is not compiled in is refused here, naming the feature); [`open`] (or
//! [`StorageSpec::open`]) connects. Errors are [`Error::Config`] and never contain a
//! password.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::Storage;
use crate::error::Error;

/// What the accepted forms look like, for messages.
const FORMS: &str = "memory, sqlite:PATH, postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME \
                     or etcd://HOST:PORT[,HOST:PORT…]";

/// Opens the storage `spec` names (see [`StorageSpec`] for the forms).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), kite::Error> {
/// use kite::kontrol::storage;
///
/// let registry = storage::open("memory").await?;
/// assert!(registry.active_keys().await.is_ok());
///
/// let dir = std::env::temp_dir().join(format!("kite-doc-{}", std::process::id()));
/// let on_disk = storage::open(&format!("sqlite:{}", dir.join("kontrol.db").display())).await?;
/// # drop(on_disk); let _ = std::fs::remove_dir_all(&dir);
///
/// let err = storage::open("cassandra").await.err().expect("unknown backend");
/// assert!(err.to_string().contains("unknown storage"));
/// # Ok(()) }
/// ```
pub async fn open(spec: &str) -> Result<Arc<dyn Storage>, Error> {
    spec.parse::<StorageSpec>()?.open().await
}

/// A parsed storage string. Accepted forms:
///
/// | form | backend | cargo feature |
/// |---|---|---|
/// | `memory` | [`Memory`](super::memory::Memory): gone with the process | — |
/// | `sqlite:PATH`, `sqlite://PATH` | SQLite file `PATH` (relative to the working directory; `sqlite:///abs` is `/abs`), created with its directories when missing | `sqlite` (default) |
/// | `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAMS]`, `postgresql://…` | PostgreSQL on the reference Kontrol's schema | `postgres` |
/// | `etcd://HOST:PORT[,HOST:PORT…]` | etcd v3 cluster at `http://HOST:PORT`; the port defaults to 2379 | `etcd` |
///
/// PostgreSQL URLs follow libpq's: user name, password and database name are
/// percent-decoded; the port defaults to 5432 and an empty host to `localhost`. Parameters:
/// `sslmode` (`disable`, `allow` or `prefer`: this build connects without TLS, so
/// `require`, `verify-ca` and `verify-full` are refused), `connect_timeout` (whole seconds,
/// default 5), `host` (a host, or the directory of the server's Unix socket, which may also
/// be given percent-encoded as the URL's host) and `user`. Other
/// settings are `PostgresConfig`'s defaults, as are
/// `EtcdOptions`'s for etcd.
///
/// `Display` shows the spec with any password replaced by `***`.
///
/// ```
/// use kite::kontrol::storage::StorageSpec;
///
/// let spec: StorageSpec = "postgres://kontrol:s3cret@db.internal/kontrol?sslmode=disable".parse()?;
/// assert_eq!(spec.to_string(), "postgres://kontrol:***@db.internal:5432/kontrol");
/// assert!("sqlite:kontrol.db".parse::<StorageSpec>().is_ok());
/// assert!("postgres://kontrol@db/kontrol?sslmode=require".parse::<StorageSpec>().is_err());
/// # Ok::<(), kite::Error>(())
/// ```
#[derive(Clone)]
pub struct StorageSpec(Spec);

/// The forms, as parsed whatever the features compiled in.
#[derive(Clone, PartialEq, Eq)]
enum Spec {
    Memory,
    Sqlite(PathBuf),
    Postgres(PgUrl),
    Etcd(Vec<String>),
}

/// The parts of a PostgreSQL URL that `PostgresConfig`
/// takes.
#[derive(Clone, PartialEq, Eq)]
struct PgUrl {
    host: String,
    port: u16,
    username: String,
    password: String,
    dbname: String,
    connect_timeout: Option<Duration>,
}

impl StorageSpec {
    /// Parses `spec`; fails for malformed strings and for backends not compiled in.
    pub fn parse(spec: &str) -> Result<StorageSpec, Error> {
        let parsed = parse(spec.trim()).map_err(Error::Config)?;
        let feature = match parsed {
            Spec::Memory => None,
            Spec::Sqlite(_) => (!cfg!(feature = "sqlite")).then_some("sqlite"),
            Spec::Postgres(_) => (!cfg!(feature = "postgres")).then_some("postgres"),
            Spec::Etcd(_) => (!cfg!(feature = "etcd")).then_some("etcd"),
        };
        match feature {
            Some(feature) => Err(Error::Config(format!(
                "{feature} storage is not compiled in: build kite with the cargo feature \
                 `{feature}`"
            ))),
            None => Ok(StorageSpec(parsed)),
        }
    }

    /// Connects to (or creates) the storage.
    pub async fn open(&self) -> Result<Arc<dyn Storage>, Error> {
        let storage: Arc<dyn Storage> = match &self.0 {
            Spec::Memory => Arc::new(super::memory::Memory::new()),
            #[cfg(feature = "sqlite")]
            Spec::Sqlite(path) => Arc::new(
                super::sqlite::Sqlite::open(path)
                    .await
                    .map_err(|e| self.failed(e))?,
            ),
            #[cfg(feature = "postgres")]
            Spec::Postgres(url) => Arc::new(
                super::postgres::Postgres::connect(&url.config())
                    .await
                    .map_err(|e| self.failed(e))?,
            ),
            #[cfg(feature = "etcd")]
            Spec::Etcd(endpoints) => Arc::new(
                super::etcd::Etcd::connect(super::etcd::EtcdOptions {
                    endpoints: endpoints.clone(),
                    ..super::etcd::EtcdOptions::default()
                })
                .await
                .map_err(|e| self.failed(e))?,
            ),
            // `parse` refuses backends not compiled in.
            #[allow(unreachable_patterns)]
            _ => return Err(Error::Config(format!("storage {self} is not compiled in"))),
        };
        tracing::debug!(storage = %self, "opened Kontrol storage");
        Ok(storage)
    }
}

impl StorageSpec {
    /// An open failure, naming the storage without its password.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "etcd"))]
    fn failed(&self, e: super::StorageError) -> Error {
        Error::Config(format!("storage {self}: {e}"))
    }
}

impl FromStr for StorageSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        StorageSpec::parse(s)
    }
}

impl fmt::Display for StorageSpec {
    /// The spec in its canonical form, the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Spec::Memory => f.write_str("memory"),
            Spec::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Spec::Postgres(u) => {
                let password = if u.password.is_empty() { "" } else { ":***" };
                let host = if u.host.contains(':') {
                    format!("[{}]", u.host)
                } else {
                    // A Unix socket directory, percent-encoded as libpq reads it.
                    u.host.replace('/', "%2F")
                };
                write!(
                    f,
                    "postgres://{}{password}@{host}:{}/{}",
                    u.username, u.port, u.dbname
                )
            }
            Spec::Etcd(endpoints) => {
                let hosts: Vec<&str> = endpoints
                    .iter()
                    .map(|e| e.trim_start_matches("http://"))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

impl fmt::Debug for StorageSpec {
    /// Like `Display`: never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageSpec({self})")
    }
}

#[cfg(feature = "postgres")]
impl PgUrl {
    fn config(&self) -> super::postgres::PostgresConfig {
        let defaults = super::postgres::PostgresConfig::default();
        super::postgres::PostgresConfig {
            host: self.host.clone(),
            port: self.port,
            username: self.username.clone(),
            password: self.password.clone(),
            dbname: self.dbname.clone(),
            connect_timeout: self.connect_timeout.unwrap_or(defaults.connect_timeout),
            ..defaults
        }
    }
}

/// The form `spec` is in; a message saying what is wrong (without secrets) when none.
fn parse(spec: &str) -> Result<Spec, String> {
    if spec == "memory" {
        return Ok(Spec::Memory);
    }
    let (scheme, _) = spec.split_once(':').unwrap_or((spec, ""));
    match scheme {
        "sqlite" => {
            let path = spec
                .strip_prefix("sqlite://")
                .or_else(|| spec.strip_prefix("sqlite:"))
                .unwrap_or_default();
            if path.is_empty() {
                return Err("sqlite storage needs a file: sqlite:PATH".into());
            }
            Ok(Spec::Sqlite(PathBuf::from(path)))
        }
        "postgres" | "postgresql" => parse_postgres(spec).map(Spec::Postgres),
        "etcd" => parse_etcd(spec).map(Spec::Etcd),
        // Only the scheme is repeated: the rest may hold a password.
        _ => Err(format!("unknown storage {scheme:?} (expected {FORMS})")),
    }
}

fn parse_postgres(spec: &str) -> Result<PgUrl, String> {
    let bad = |why: &str| format!("postgres storage URL: {why} (expected {FORMS})");
    let url = url::Url::parse(spec).map_err(|e| bad(&e.to_string()))?;
    if !spec[url.scheme().len()..].starts_with("://") {
        return Err(bad("no //HOST part"));
    }
    let decode = |s: &str, what: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| bad(&format!("{what} is not UTF-8 once percent-decoded")))
    };
    let mut pg = PgUrl {
        host: match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Domain(d)) => decode(d, "host")?,
            None => String::new(),
        },
        port: url.port().unwrap_or(5432),
        username: decode(url.username(), "user name")?,
        password: decode(url.password().unwrap_or_default(), "password")?,
        dbname: decode(url.path().trim_start_matches('/'), "database name")?,
        connect_timeout: None,
    };
    for (key, value) in url.query_pairs() {
        match &*key {
            "sslmode" => match &*value {
                "disable" | "allow" | "prefer" => {}
                "require" | "verify-ca" | "verify-full" => {
                    return Err(format!(
                        "postgres storage URL: sslmode={value} needs TLS, which this build \
                         of kite does not have for PostgreSQL (use sslmode=disable)"
                    ))
                }
                other => return Err(bad(&format!("unknown sslmode {other:?}"))),
            },
            "connect_timeout" => match value.parse::<u64>() {
                Ok(s) if s > 0 => pg.connect_timeout = Some(Duration::from_secs(s)),
                _ => return Err(bad("connect_timeout must be a positive number of seconds")),
            },
            "host" => pg.host = value.into_owned(),
            "user" => pg.username = value.into_owned(),
            other => {
                return Err(bad(&format!(
                    "unsupported parameter {other:?} (supported: sslmode, connect_timeout, \
                     host, user)"
                )))
            }
        }
    }
    if pg.host.is_empty() {
        pg.host = "localhost".into();
    }
    if pg.host.contains(',') {
        return Err(bad("one host only"));
    }
    if pg.username.is_empty() {
        return Err(bad("the user name is missing"));
    }
    if pg.dbname.is_empty() || pg.dbname.contains('/') {
        return Err(bad("the database name is missing"));
    }
    Ok(pg)
}

fn parse_etcd(spec: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("etcd storage: {why} (expected etcd://HOST:PORT[,HOST:PORT…])");
    let hosts = spec
        .strip_prefix("etcd://")
        .ok_or_else(|| bad("no //"))?
        .trim_end_matches('/');
    if hosts.is_empty() {
        return Err(bad("no endpoint"));
    }
    hosts
        .split(',')
        .map(|h| {
            let h = h.trim();
            if h.is_empty() || h.contains(['/', '@', '?', '#']) || h.contains(char::is_whitespace) {
                return Err(bad(&format!("bad endpoint {h:?}")));
            }
            // `[v6]:port`, `host:port`, or either without the port.
            let port = match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => Some(&h[i + 1..]),
                _ => None,
            };
            match port {
                Some(p) if p.parse::<u16>().is_err() => Err(bad(&format!("bad port in {h:?}"))),
                Some(_) => Ok(format!("http://{h}")),
                None => Ok(format!("http://{h}:2379")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(spec: &str) -> PgUrl {
        match parse(spec) {
            Ok(Spec::Postgres(u)) => u,
            other => panic!("{spec}: {:?}", other.map(StorageSpec)),
        }
    }

    fn err(spec: &str) -> String {
        match parse(spec) {
            Err(e) => e,
            Ok(s) => panic!("{spec} parsed as {}", StorageSpec(s)),
        }
    }

    #[test]
    fn memory_and_sqlite() {
        assert!(parse("memory") == Ok(Spec::Memory));
        assert!(parse("sqlite:kontrol.db") == Ok(Spec::Sqlite("kontrol.db".into())));
        assert!(parse("sqlite:/var/lib/k.db") == Ok(Spec::Sqlite("/var/lib/k.db".into())));
        assert!(parse("sqlite://data/k.db") == Ok(Spec::Sqlite("data/k.db".into())));
        assert!(parse("sqlite:///abs/k.db") == Ok(Spec::Sqlite("/abs/k.db".into())));
        assert!(err("sqlite:").contains("sqlite:PATH"));
        assert!(err("sqlite://").contains("sqlite:PATH"));
        assert_eq!(
            StorageSpec::parse("  sqlite:k.db\n")
                .map(|s| s.to_string())
                .ok(),
            Some("sqlite:k.db".into())
        );
    }

    #[test]
    fn postgres_urls() {
        let u = pg("postgres://kontrol:s%40cret@db.example:6543/kite%2Dreg?sslmode=disable");
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, 6543);
        assert_eq!(u.username, "kontrol");
        assert_eq!(u.password, "s@cret");
        assert_eq!(u.dbname, "kite-reg");
        assert_eq!(u.connect_timeout, None);

        let u = pg("postgresql://alice@127.0.0.1/reg?connect_timeout=2&sslmode=prefer");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 5432));
        assert_eq!(u.password, "");
        assert_eq!(u.connect_timeout, Some(Duration::from_secs(2)));

        let u = pg("postgres://alice@[::1]:5433/reg");
        assert_eq!((u.host.as_str(), u.port), ("::1", 5433));
        assert_eq!(
            StorageSpec(Spec::Postgres(u)).to_string(),
            "postgres://alice@[::1]:5433/reg"
        );

        // A Unix socket directory: percent-encoded as the host, or the `host` parameter.
        let u = pg("postgres://alice@%2Frun%2Fpostgresql/reg");
        assert_eq!(
            (u.host.as_str(), u.username.as_str()),
            ("/run/postgresql", "alice")
        );
        assert_eq!(
            StorageSpec(Spec::Postgres(u)).to_string(),
            "postgres://alice@%2Frun%2Fpostgresql:5432/reg"
        );
        let u = pg("postgres:///reg?host=/run/postgresql&user=alice");
        assert_eq!(
            (u.host.as_str(), u.username.as_str()),
            ("/run/postgresql", "alice")
        );
        assert_eq!(pg("postgres:///reg?user=alice").host, "localhost");
    }

    #[test]
    fn postgres_url_errors_say_what_and_hide_the_password() {
        for (spec, says) in [
            ("postgres://db.example/reg", "user name"),
            ("postgres://alice@db.example", "database name"),
            ("postgres://alice@db.example/", "database name"),
            ("postgres://alice:pw@db/reg?sslmode=require", "TLS"),
            ("postgres://alice:pw@db/reg?sslmode=verify-full", "TLS"),
            ("postgres://alice:pw@db/reg?sslmode=maybe", "sslmode"),
            (
                "postgres://alice:pw@db/reg?connect_timeout=0",
                "connect_timeout",
            ),
            (
                "postgres://alice:pw@db/reg?connect_timeout=soon",
                "connect_timeout",
            ),
            (
                "postgres://alice:pw@db/reg?application_name=x",
                "unsupported parameter",
            ),
            ("postgres://alice:pw@db:99999/reg", "postgres storage URL"),
            ("postgres:alice:pw@db/reg", "//HOST"),
        ] {
            let e = err(spec);
            assert!(e.contains(says), "{spec}: {e}");
            assert!(
                !e.contains("pw"),
                "{spec}: the message shows the password: {e}"
            );
        }
        let e = err("mysql://root:hunter2@db/reg");
        assert!(e.contains("unknown storage \"mysql\""), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn display_hides_the_password() {
        let s = StorageSpec(parse("postgres://alice:hunter2@db/reg").expect("parse"));
        assert_eq!(s.to_string(), "postgres://alice:***@db:5432/reg");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn etcd_endpoints() {
        assert!(
            parse("etcd://127.0.0.1:2379") == Ok(Spec::Etcd(vec!["http://127.0.0.1:2379".into()]))
        );
        assert!(
            parse("etcd://a:1,b:2/")
                == Ok(Spec::Etcd(vec!["http://a:1".into(), "http://b:2".into()]))
        );
        assert!(
            parse("etcd://a,[::1]:3,[::1]")
                == Ok(Spec::Etcd(vec![
                    "http://a:2379".into(),
                    "http://[::1]:3".into(),
                    "http://[::1]:2379".into(),
                ]))
        );
        assert_eq!(
            StorageSpec(parse("etcd://a:1,b:2").expect("parse")).to_string(),
            "etcd://a:1,b:2"
        );
        for spec in [
            "etcd://",
            "etcd:a:1",
            "etcd://a:1,",
            "etcd://a:x",
            "etcd://u@a:1",
        ] {
            assert!(err(spec).contains("etcd"), "{spec}");
        }
    }

    #[test]
    fn unknown_forms() {
        for spec in ["", "Memory", "cassandra", "redis://x"] {
            assert!(err(spec).contains("unknown storage"), "{spec}");
        }
    }

    #[test]
    fn backends_not_compiled_in_name_their_feature() {
        let etcd = StorageSpec::parse("etcd://127.0.0.1:2379");
        if cfg!(feature = "etcd") {
            assert!(etcd.is_ok());
        } else {
            let e = etcd.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("cargo feature `etcd`"), "{e}");
        }
        let pg = StorageSpec::parse("postgres://a@b/c");
        assert_eq!(pg.is_ok(), cfg!(feature = "postgres"));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_config_from_the_url() {
        let c = pg("postgres://kontrol:pw@db:6000/reg?connect_timeout=7").config();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.username.as_str(),
                c.dbname.as_str()
            ),
            ("db", 6000, "kontrol", "reg")
        );
        assert_eq!(c.password, "pw");
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        let d = super::super::postgres::PostgresConfig::default();
        assert_eq!(c.max_connections, d.max_connections);
        let c = pg("postgres://kontrol@db/reg").config();
        assert_eq!(c.connect_timeout, d.connect_timeout);
    }

    #[tokio::test]
    async fn open_is_send_and_opens_memory() {
        fn send<T: Send>(t: T) -> T {
            t
        }
        let storage = send(open("memory")).await.expect("memory");
        assert!(storage.active_keys().await.expect("keys").is_empty());
        let e = send(open("sqlite:")).await.err().expect("no path");
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }
}
