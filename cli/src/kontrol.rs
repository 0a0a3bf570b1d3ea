//! `kontrol`: runs Kontrol, the registry and token authority of a kite mesh.
//!
//! Flags and `KONTROL_*` variables are the reference's (`kontrol -port 6000 …`; one or two
//! dashes both work). With none it serves on port 6000 with SQLite under `$KITE_HOME`
//! (default `~/.kite`) and a key pair it generates on first start and keeps there.
//! `kontrol --initial` writes the operator's `kite.key` and exits. Prometheus metrics are
//! served at `/metrics` (`KITE_METRICS=0` turns them off).
//!
//! ```text
//! cargo run --release --bin kontrol -- --initial --username alice
//! cargo run --release --bin kontrol
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, ValueEnum};
use kite::auth::KeyPair;
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::{allow_all_machines, Kontrol, KontrolConfig, Storage, StorageError};
use kite::{Config, Kite};

/// Where Kontrol keeps kites and key pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StorageKind {
    /// An SQLite file, `kontrol.db` in the data directory (the embedded default).
    Sqlite,
    /// This process only: everything, key pairs included, is lost on exit.
    Memory,
    /// PostgreSQL with the reference's schema (`--postgres-*`).
    Postgres,
    /// etcd v3 (`--machines`).
    Etcd,
}

/// Who may get a kite key through `registerMachine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MachineAuth {
    /// Nobody: the method refuses every call; hand out keys with `--initial`.
    Off,
    /// Anybody, for the username they claim. For development only.
    Open,
}

/// Runs Kontrol, the registry and token authority of a kite mesh.
#[derive(Debug, Parser)]
#[command(
    name = "kontrol",
    about = "Runs Kontrol, the registry and token authority of a kite mesh",
    after_help = "Flags also work with one dash, as in the reference (-port=6000). Other kite \
                  settings come from KITE_* variables (KITE_ENVIRONMENT, KITE_REGION, …). \
                  Prometheus metrics are served at /metrics (KITE_METRICS=0 turns them off)."
)]
struct Args {
    /// IP address to listen on.
    #[arg(long, env = "KONTROL_IP", default_value = "0.0.0.0")]
    ip: String,

    /// Port to listen on (0 picks a free one; the URL is printed).
    #[arg(long, env = "KONTROL_PORT", default_value_t = 6000)]
    port: u16,

    /// TLS certificate file (PEM); with --tlskeyfile Kontrol serves HTTPS.
    #[arg(
        long = "tlscertfile",
        visible_alias = "tls-cert-file",
        env = "KONTROL_TLSCERTFILE",
        requires = "tls_key_file"
    )]
    tls_cert_file: Option<PathBuf>,

    /// TLS private key file (PEM).
    #[arg(
        long = "tlskeyfile",
        visible_alias = "tls-key-file",
        env = "KONTROL_TLSKEYFILE",
        requires = "tls_cert_file"
    )]
    tls_key_file: Option<PathBuf>,

    /// URL Kontrol registers itself with in its own registry (none by default).
    #[arg(
        long = "registerurl",
        visible_alias = "register-url",
        env = "KONTROL_REGISTERURL"
    )]
    register_url: Option<String>,

    /// Write kite.key for the operator (to $KITE_HOME/kite.key, for --username) and exit.
    #[arg(long, env = "KONTROL_INITIAL", value_parser = clap::builder::BoolishValueParser::new())]
    initial: bool,

    /// Serve the read-only live view of the registry at /ui (to loopback clients only,
    /// unless --ui-token is set).
    #[arg(long, env = "KONTROL_UI", value_parser = clap::builder::BoolishValueParser::new())]
    ui: bool,

    /// The token the /ui page needs (open it as /ui?token=…); with it the page is served to
    /// any address.
    #[arg(long = "ui-token", env = "KONTROL_UI_TOKEN", hide_env_values = true)]
    ui_token: Option<String>,

    /// Kontrol's username: the issuer of kite keys and tokens, and the owner of --initial's
    /// key. Default: the owner of $KITE_HOME/kite.key (so after `--initial --username alice`
    /// Kontrol runs as alice, as in the reference), else `kontrol`.
    #[arg(long, env = "KONTROL_USERNAME")]
    username: Option<String>,

    /// Kontrol's URL, written into kite keys (default: --registerurl, else this Kontrol's own
    /// URL, http://127.0.0.1:PORT/kite when listening on every interface).
    #[arg(
        long = "kontrolurl",
        visible_alias = "kontrol-url",
        env = "KONTROL_KONTROLURL"
    )]
    kontrol_url: Option<String>,

    /// Public key (PEM) of a key pair to sign with, e.g. from `openssl rsa -pubout`.
    /// Default: a pair generated on first start and kept in storage.
    #[arg(
        long = "publickeyfile",
        visible_alias = "public-key-file",
        env = "KONTROL_PUBLICKEYFILE",
        requires = "private_key_file"
    )]
    public_key_file: Option<PathBuf>,

    /// Private key (PEM, PKCS#1 or PKCS#8) of that pair, e.g. from `openssl genrsa`.
    #[arg(
        long = "privatekeyfile",
        visible_alias = "private-key-file",
        env = "KONTROL_PRIVATEKEYFILE",
        requires = "public_key_file"
    )]
    private_key_file: Option<PathBuf>,

    /// Version Kontrol's kite reports.
    #[arg(long, env = "KONTROL_VERSION", default_value = "0.0.1")]
    version: String,

    /// Storage backend.
    #[arg(long, env = "KONTROL_STORAGE", value_enum, default_value_t = StorageKind::Sqlite)]
    storage: StorageKind,

    /// Directory of the SQLite database (`kontrol.db`). Default: $KITE_HOME, else ~/.kite.
    #[arg(long = "data-dir", visible_alias = "datadir", env = "KONTROL_DATADIR")]
    data_dir: Option<PathBuf>,

    /// Who may get a kite key through registerMachine (`kitectl register`): `off` refuses
    /// everyone; `open` gives anyone a key for the username they claim — development only.
    #[arg(long = "machine-auth", env = "KONTROL_MACHINE_AUTH", value_enum, default_value_t = MachineAuth::Off)]
    machine_auth: MachineAuth,

    #[command(flatten)]
    postgres: PostgresArgs,

    /// etcd endpoints, comma-separated (etcd storage).
    #[arg(
        long = "machines",
        visible_alias = "etcd-endpoints",
        env = "KONTROL_MACHINES",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        help_heading = "etcd"
    )]
    machines: Vec<String>,
}

/// PostgreSQL settings (`--storage postgres`), named as the reference's.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "PostgreSQL")]
struct PostgresArgs {
    /// Server host, or the directory of its Unix socket.
    #[arg(
        id = "postgres_host",
        value_name = "HOST",
        long = "postgres-host",
        env = "KONTROL_POSTGRES_HOST",
        default_value = "localhost"
    )]
    host: String,

    /// Server port.
    #[arg(
        id = "postgres_port",
        value_name = "PORT",
        long = "postgres-port",
        env = "KONTROL_POSTGRES_PORT",
        default_value_t = 5432
    )]
    port: u16,

    /// Role to connect as (required for postgres storage).
    #[arg(
        id = "postgres_username",
        value_name = "USER",
        long = "postgres-username",
        visible_alias = "postgres-user",
        env = "KONTROL_POSTGRES_USERNAME"
    )]
    username: Option<String>,

    /// Its password.
    #[arg(
        id = "postgres_password",
        value_name = "PASSWORD",
        long = "postgres-password",
        env = "KONTROL_POSTGRES_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,

    /// Database name (required for postgres storage).
    #[arg(
        id = "postgres_dbname",
        value_name = "DBNAME",
        long = "postgres-dbname",
        env = "KONTROL_POSTGRES_DBNAME"
    )]
    dbname: Option<String>,

    /// Seconds to wait for a database connection.
    #[arg(
        id = "postgres_connecttimeout",
        value_name = "SECONDS",
        long = "postgres-connecttimeout",
        visible_alias = "postgres-connect-timeout",
        env = "KONTROL_POSTGRES_CONNECTTIMEOUT",
        default_value_t = 20
    )]
    connect_timeout: u64,
}

fn main() {
    common::block_on(main_async());
}

async fn main_async() {
    let telemetry = common::init_logging("info", "kontrol");
    let mut command = Args::command();
    let matches = command
        .clone()
        .get_matches_from(common::go_style_args(&command));
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.format(&mut command).exit(),
    };
    let result = run(args).await;
    common::flush_traces(telemetry).await;
    if let Err(e) = result {
        common::fail("kontrol", e);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let storage = open_storage(&args).await?;
    if let (Some(public), Some(private)) = (&args.public_key_file, &args.private_key_file) {
        adopt_key_files(&*storage, public, private).await?;
    }

    // Kontrol serves Prometheus metrics at /metrics unless KITE_METRICS=0.
    let mut config = Config {
        metrics: true,
        ..Config::default()
    };
    config.read_env()?;
    config.username = username(&args);
    config.ip = args.ip.clone();
    config.port = args.port;
    config.kontrol_url = args.kontrol_url.clone().unwrap_or_default();
    config.tls = args.tls_cert_file.clone().zip(args.tls_key_file.clone());
    let kite = Kite::with_config("kontrol", &args.version, config)?;
    let kontrol_config = KontrolConfig {
        register_url: args.register_url.clone(),
        machine_check: (args.machine_auth == MachineAuth::Open).then(allow_all_machines),
        ui: args.ui,
        ui_token: args.ui_token.clone(),
        ..KontrolConfig::default()
    };
    if args.machine_auth == MachineAuth::Open {
        tracing::warn!(
            "--machine-auth open: anyone can get a kite key for any username (development only)"
        );
    }
    let kontrol = Kontrol::new(kite, storage, kontrol_config).await?;
    let pair = kontrol.current_key().await?;
    tracing::info!(key = %pair.id, "signing with key pair");

    if args.initial {
        return initial(&args, &kontrol).await;
    }

    kontrol.listen().await?;
    let url = kontrol.kite().url().context("kontrol is not listening")?;
    println!("kontrol listening on {url}");
    kite::server::shutdown_signal().await;
    tracing::info!("shutting down");
    kontrol.shutdown().await;
    Ok(())
}

/// `--username`, else the subject of the operator's kite.key, else `kontrol`.
fn username(args: &Args) -> String {
    if let Some(u) = &args.username {
        return u.clone();
    }
    kite::auth::read_kite_key(None)
        .ok()
        .and_then(|key| kite::auth::parse_unverified(&key).ok())
        .map(|claims| claims.sub)
        .filter(|sub| !sub.is_empty())
        .unwrap_or_else(|| "kontrol".into())
}

/// `--initial`: a kite key for the operator, signed with the current pair.
async fn initial(args: &Args, kontrol: &Kontrol) -> anyhow::Result<()> {
    let username = kontrol.kite().identity().username.clone();
    if username.is_empty() {
        bail!("empty username");
    }
    let url = match args
        .kontrol_url
        .clone()
        .or_else(|| args.register_url.clone())
    {
        Some(u) => u,
        None if args.port == 0 => {
            bail!("--initial needs --kontrolurl (or a fixed --port) for the kite key")
        }
        None => {
            let host = if args.ip.is_empty() || args.ip == "0.0.0.0" || args.ip == "::" {
                "127.0.0.1"
            } else {
                &args.ip
            };
            let scheme = if args.tls_cert_file.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}:{}/kite", args.port)
        }
    };
    url::Url::parse(&url).with_context(|| format!("cannot parse kontrol URL {url:?}"))?;
    if args.storage == StorageKind::Memory && args.private_key_file.is_none() {
        tracing::warn!("memory storage without key files: this key pair ends with this process, so no later Kontrol will accept the kite key");
    }
    let key = kontrol.new_kite_key_for(&username, &url).await?;
    let home = kite::auth::kite_home()?;
    let path = kite::auth::write_kite_key(&home, &key)?;
    println!(
        "kite.key is written to {}. You can see it with:\n\tkitectl showkey",
        path.display()
    );
    Ok(())
}

/// The storage `--storage` names; backends not compiled in say which feature to build with.
async fn open_storage(args: &Args) -> anyhow::Result<Arc<dyn Storage>> {
    match args.storage {
        StorageKind::Memory => {
            tracing::info!("storage: memory");
            Ok(Arc::new(Memory::new()))
        }
        StorageKind::Sqlite => {
            let dir = match &args.data_dir {
                Some(d) => d.clone(),
                None => kite::auth::kite_home()?,
            };
            open_sqlite(&dir.join("kontrol.db")).await
        }
        StorageKind::Postgres => open_postgres(&args.postgres).await,
        StorageKind::Etcd => open_etcd(&args.machines).await,
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "etcd")))]
fn not_built(feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this kontrol was built without {feature} storage; rebuild with `--features {feature}`"
    )
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(path: &Path) -> anyhow::Result<Arc<dyn Storage>> {
    let s = kite::kontrol::storage::sqlite::Sqlite::open(path).await?;
    tracing::info!(path = %path.display(), "storage: sqlite");
    Ok(Arc::new(s))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &Path) -> anyhow::Result<Arc<dyn Storage>> {
    Err(not_built("sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(p: &PostgresArgs) -> anyhow::Result<Arc<dyn Storage>> {
    use kite::kontrol::storage::postgres::{Postgres, PostgresConfig};
    let required = |v: &Option<String>, flag: &str| match v {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => Err(anyhow::anyhow!(
            "postgres storage needs --{flag} (KONTROL_{})",
            flag.to_uppercase().replace('-', "_")
        )),
    };
    let config = PostgresConfig {
        host: p.host.clone(),
        port: p.port,
        username: required(&p.username, "postgres-username")?,
        password: p.password.clone().unwrap_or_default(),
        dbname: required(&p.dbname, "postgres-dbname")?,
        connect_timeout: std::time::Duration::from_secs(p.connect_timeout),
        ..PostgresConfig::default()
    };
    tracing::info!(host = %config.host, port = config.port, dbname = %config.dbname, "storage: postgres");
    Ok(Arc::new(Postgres::connect(&config).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &PostgresArgs) -> anyhow::Result<Arc<dyn Storage>> {
    Err(not_built("postgres"))
}

#[cfg(feature = "etcd")]
async fn open_etcd(endpoints: &[String]) -> anyhow::Result<Arc<dyn Storage>> {
    use kite::kontrol::storage::etcd::{Etcd, EtcdOptions};
    let defaults = KontrolConfig::default();
    let options = EtcdOptions {
        endpoints: endpoints.to_vec(),
        // A kite that stops heartbeating is gone after one interval plus the delay.
        lease_ttl: defaults.heartbeat_interval + defaults.heartbeat_delay,
        ..EtcdOptions::default()
    };
    tracing::info!(endpoints = ?options.endpoints, "storage: etcd");
    Ok(Arc::new(Etcd::connect(options).await?))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_: &[String]) -> anyhow::Result<Arc<dyn Storage>> {
    Err(not_built("etcd"))
}

/// Stores the pair from `--publickeyfile`/`--privatekeyfile` unless storage has it already;
/// a newly added pair becomes the one Kontrol signs with.
async fn adopt_key_files(
    storage: &dyn Storage,
    public: &Path,
    private: &Path,
) -> anyhow::Result<()> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read key file {}", p.display()))
    };
    let (public_pem, private_pem) = (read(public)?, read(private)?);
    let derived = KeyPair::from_pem(&private_pem)?;
    let parse = |pem: &str| {
        rsa::PublicKey::from_public_key_pem(pem.trim())
            .ok()
            .or_else(|| rsa::PublicKey::from_pkcs1_pem(pem.trim()).ok())
    };
    let given = parse(&public_pem)
        .with_context(|| format!("{} is not a PEM RSA public key", public.display()))?;
    if Some(given) != parse(&derived.public_pem) {
        bail!(
            "{} is not the public key of {}",
            public.display(),
            private.display()
        );
    }
    // Kite keys carry the public key text; keep the operator's when it is the usual PKIX form.
    let public_pem = if public_pem
        .trim_start()
        .starts_with("-----BEGIN PUBLIC KEY-----")
    {
        public_pem
    } else {
        derived.public_pem.clone()
    };
    match storage.key_by_public(&public_pem).await {
        Ok(stored) => {
            tracing::info!(key = %stored.id, "key pair from the key files is already stored")
        }
        Err(StorageError::KeyDeleted) => bail!(
            "the key pair in {} was deleted from this Kontrol's storage",
            public.display()
        ),
        Err(StorageError::KeyNotFound) => {
            let pair = KeyPair {
                public_pem,
                ..derived
            };
            storage.add_key(&pair).await?;
            tracing::info!(key = %pair.id, "added the key pair from the key files");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
