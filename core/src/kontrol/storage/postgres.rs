//! PostgreSQL storage on the reference Kontrol's schema — `kite.kite` (one row per kite,
//! `updated_at` for liveness, `key_id` referencing the key pair) and `kite.key` (key pairs,
//! soft-deleted with `deleted_at`) — so that a kite-rs Kontrol can take over, or share, a Go
//! Kontrol's database. Several Kontrols on one database form one registry.
//!
//! The schema is created when missing and brought up to date with the reference's
//! migrations, idempotently, under an advisory lock; a database already in shape is not
//! touched, so a role with only the reference's grants is enough. Changes are announced with
//! `NOTIFY` on the [`CHANNEL`] channel in the same statement that makes them, and every
//! Kontrol's watchers receive them through one `LISTEN` connection per [`Postgres`] value.
//!
//! Times are written as the reference writes them, `now() at time zone 'utc'`, so that
//! liveness compares the same way for Go and kite-rs Kontrols whatever the server's time zone.
//! Kite and key pair ids are `uuid` columns: ids that are not UUIDs are rejected on write and
//! match nothing on read, and ids come back in the canonical lower-case hyphenated form.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::Mutex;

use super::{Event, KiteRecord, Storage, StorageError, StorageResult};
use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

mod config;
mod schema;
mod watch;

pub use config::PostgresConfig;
use config::Target;
pub use watch::CHANNEL;
use watch::{register_payload, Watcher};

/// PostgreSQL refuses `NOTIFY` payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;

/// The reference's notion of "now" (see the module docs).
const NOW: &str = "(now() at time zone 'utc')";

/// Kite columns as selected, in [`Kite::values`] order, then the URL and key pair id.
const KITE_COLUMNS: &str = "username, environment, kitename, version, region, hostname, \
                            id::text AS id, url, key_id::text AS key_id";

/// Columns a query field compares, in [`KiteQuery::values`] order.
const QUERY_COLUMNS: [&str; 7] = [
    "username",
    "environment",
    "kitename",
    "version",
    "region",
    "hostname",
    "id",
];

/// Key pair columns as selected.
const KEY_COLUMNS: &str = "id::text AS id, public, private, deleted_at IS NOT NULL AS deleted";

/// Whitespace trimmed from stored public keys before comparing them.
const TRIM_PUBLIC: &str = r"btrim(public, E' \t\r\n')";

/// JSON of a `DEREGISTER` notification for a row of `kite.kite`.
const DEREGISTER_JSON: &str =
    "json_build_object('action', 'DEREGISTER', 'kite', json_build_object(\
     'username', username, 'environment', environment, 'name', kitename, 'version', version, \
     'region', region, 'hostname', hostname, 'id', id))::text";

/// SQLSTATE of a database error, if `e` is one.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The canonical form of a UUID, or `None` when `s` is not one.
fn uuid(s: &str) -> Option<String> {
    uuid::Uuid::parse_str(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// Storage in a PostgreSQL database, on the reference Kontrol's schema.
pub struct Postgres {
    pool: PgPool,
    options: PgConnectOptions,
    target: Arc<Target>,
    watcher: Mutex<Option<Watcher>>,
    /// The server's restarts seen (see [`Storage::epoch`]).
    restarts: Arc<Restarts>,
}

/// The server's start time as its connections report it, and how many times it changed:
/// after a restart — a crash above all, which empties the unlogged `kite.kite` — the pool's
/// new connections see a new start time.
#[derive(Default)]
struct Restarts {
    started: std::sync::Mutex<Option<String>>,
    count: AtomicU64,
}

impl Restarts {
    /// Notes the start time a new connection reports.
    fn saw(&self, started: String) {
        let mut known = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if known.as_ref().is_some_and(|k| *k != started) {
            self.count.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%started, "PostgreSQL restarted; heartbeating kites are written back");
        }
        *known = Some(started);
    }
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("target", &self.target.name)
            .finish()
    }
}

impl Postgres {
    /// Connects, then creates or migrates the `kite` schema when it is missing or behind.
    pub async fn connect(config: &PostgresConfig) -> StorageResult<Postgres> {
        for (what, value) in [("username", &config.username), ("dbname", &config.dbname)] {
            if value.is_empty() {
                return Err(StorageError::Invalid(format!(
                    "postgres: {what} is required"
                )));
            }
        }
        let target = Arc::new(Target {
            name: config.target(),
            timeout: config.connect_timeout,
        });
        let options = config.connect_options();
        let restarts = Arc::new(Restarts::default());
        let seen = restarts.clone();
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.connect_timeout)
            .after_connect(move |conn, _| {
                let seen = seen.clone();
                Box::pin(async move {
                    // Only noted: a server that cannot say is not a reason to fail.
                    let started =
                        sqlx::query_scalar::<_, String>("SELECT pg_postmaster_start_time()::text")
                            .fetch_one(conn)
                            .await;
                    if let Ok(started) = started {
                        seen.saw(started);
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| target.err(e))?;
        let storage = Postgres {
            pool,
            options,
            target,
            watcher: Mutex::new(None),
            restarts,
        };
        schema::migrate(&storage.pool, &storage.target).await?;
        Ok(storage)
    }

    fn err(&self, e: sqlx::Error) -> StorageError {
        self.target.err(e)
    }

    fn key_pair(&self, row: &PgRow) -> StorageResult<KeyPair> {
        let deleted: bool = row.try_get("deleted").map_err(|e| self.err(e))?;
        if deleted {
            return Err(StorageError::KeyDeleted);
        }
        Ok(KeyPair {
            id: row.try_get("id").map_err(|e| self.err(e))?,
            public_pem: row.try_get("public").map_err(|e| self.err(e))?,
            private_pem: row.try_get("private").map_err(|e| self.err(e))?,
        })
    }
}

fn record(row: &PgRow) -> Result<KiteRecord, sqlx::Error> {
    Ok(KiteRecord {
        kite: kite_of(row)?,
        url: row.try_get("url")?,
        key_id: row.try_get("key_id")?,
    })
}

fn kite_of(row: &PgRow) -> Result<Kite, sqlx::Error> {
    Ok(Kite {
        username: row.try_get("username")?,
        environment: row.try_get("environment")?,
        name: row.try_get("kitename")?,
        version: row.try_get("version")?,
        region: row.try_get("region")?,
        hostname: row.try_get("hostname")?,
        id: row.try_get("id")?,
    })
}

/// Rejects pairs with an empty field (the reference's `KeyPair.Validate`).
fn validate_key(pair: &KeyPair) -> StorageResult<()> {
    for (field, value) in [
        ("id", &pair.id),
        ("public key", &pair.public_pem),
        ("private key", &pair.private_pem),
    ] {
        if value.trim().is_empty() {
            return Err(StorageError::Invalid(format!("key pair {field} is empty")));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Storage for Postgres {
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
        let id = uuid(&record.kite.id).ok_or_else(|| {
            StorageError::Invalid(format!("kite id {:?} is not a UUID", record.kite.id))
        })?;
        let key_id = uuid(&record.key_id).ok_or_else(|| {
            StorageError::Invalid(format!("key pair id {:?} is not a UUID", record.key_id))
        })?;
        let stored = KiteRecord {
            kite: Kite {
                id,
                ..record.kite.clone()
            },
            url: record.url.clone(),
            key_id,
        };
        let payload = register_payload(&stored);
        if payload.len() > MAX_PAYLOAD {
            return Err(StorageError::Invalid("kite record is too large".into()));
        }
        let k = &stored.kite;
        sqlx::query(&format!(
            "WITH up AS (
                INSERT INTO kite.kite (username, environment, kitename, version, region, hostname, \
                                       id, url, key_id, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7::uuid, $8, $9::uuid, {NOW})
                ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, \
                    environment = EXCLUDED.environment, kitename = EXCLUDED.kitename, \
                    version = EXCLUDED.version, region = EXCLUDED.region, \
                    hostname = EXCLUDED.hostname, url = EXCLUDED.url, key_id = EXCLUDED.key_id, \
                    updated_at = EXCLUDED.updated_at
                RETURNING 1
            )
            SELECT pg_notify('{CHANNEL}', $10) FROM up"
        ))
        .bind(&k.username)
        .bind(&k.environment)
        .bind(&k.name)
        .bind(&k.version)
        .bind(&k.region)
        .bind(&k.hostname)
        .bind(&k.id)
        .bind(&stored.url)
        .bind(&stored.key_id)
        .bind(&payload)
        .execute(&self.pool)
        .await
        .map_err(|e| match sqlstate(&e).as_deref() {
            Some("23503") => {
                StorageError::Invalid(format!("no key pair with id {:?}", stored.key_id))
            }
            _ => self.err(e),
        })?;
        Ok(())
    }

    async fn touch(&self, kite: &Kite) -> StorageResult<bool> {
        let Some(id) = uuid(&kite.id) else {
            return Ok(false);
        };
        let done = sqlx::query(&format!(
            "UPDATE kite.kite SET updated_at = {NOW} WHERE id = $1::uuid"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, kite: &Kite) -> StorageResult<bool> {
        let Some(id) = uuid(&kite.id) else {
            return Ok(false);
        };
        let gone = sqlx::query(&format!(
            "WITH gone AS (DELETE FROM kite.kite WHERE id = $1::uuid RETURNING *)
             SELECT id::text AS id, pg_notify('{CHANNEL}', {DEREGISTER_JSON}) FROM gone"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(gone.is_some())
    }

    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        let mut sql = format!("SELECT {KITE_COLUMNS} FROM kite.kite");
        let mut values: Vec<String> = Vec::new();
        for (column, value) in QUERY_COLUMNS.iter().zip(query.values()) {
            if value.is_empty() {
                continue;
            }
            let value = if *column == "id" {
                match uuid(value) {
                    Some(id) => id,
                    None => return Ok(Vec::new()),
                }
            } else {
                value.to_string()
            };
            values.push(value);
            let cast = if *column == "id" { "::uuid" } else { "" };
            sql.push_str(if values.len() == 1 {
                " WHERE "
            } else {
                " AND "
            });
            sql.push_str(&format!("{column} = ${}{cast}", values.len()));
        }
        let mut q = sqlx::query(&sql);
        for v in &values {
            q = q.bind(v);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| record(r).map_err(|e| self.err(e)))
            .collect()
    }

    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        let Some(id) = uuid(id) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {KITE_COLUMNS} FROM kite.kite WHERE id = $1::uuid"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.as_ref()
            .map(record)
            .transpose()
            .map_err(|e| self.err(e))
    }

    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>> {
        // Capped at ~100 years: PostgreSQL intervals have a range.
        let secs = older_than.as_secs_f64().min(3.2e9);
        let rows = sqlx::query(&format!(
            "WITH gone AS (DELETE FROM kite.kite WHERE updated_at < {NOW} - make_interval(secs => $1) \
                           RETURNING *)
             SELECT username, environment, kitename, version, region, hostname, id::text AS id, \
                    pg_notify('{CHANNEL}', {DEREGISTER_JSON}) FROM gone"
        ))
        .bind(secs)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| kite_of(r).map_err(|e| self.err(e)))
            .collect()
    }

    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
        let mut watcher = self.watcher.lock().await;
        if watcher.is_none() {
            *watcher = Some(Watcher::start(self.options.clone(), self.target.clone()).await?);
        }
        Ok(watcher
            .as_ref()
            .map_or_else(|| futures_util::stream::empty().boxed(), Watcher::subscribe))
    }

    async fn add_key(&self, pair: &KeyPair) -> StorageResult<()> {
        validate_key(pair)?;
        let id = uuid(&pair.id).ok_or_else(|| {
            StorageError::Invalid(format!("key pair id {:?} is not a UUID", pair.id))
        })?;
        let done = sqlx::query(&format!(
            "INSERT INTO kite.key (id, public, private) SELECT $1::uuid, $2, $3 \
             WHERE NOT EXISTS (SELECT 1 FROM kite.key WHERE id = $1::uuid OR {TRIM_PUBLIC} = $4)"
        ))
        .bind(&id)
        .bind(&pair.public_pem)
        .bind(&pair.private_pem)
        .bind(pair.public_pem.trim())
        .execute(&self.pool)
        .await
        .map_err(|e| match sqlstate(&e).as_deref() {
            Some("23505") => StorageError::Invalid("key pair already exists".into()),
            _ => self.err(e),
        })?;
        if done.rows_affected() == 0 {
            return Err(StorageError::Invalid("key pair already exists".into()));
        }
        Ok(())
    }

    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        let Some(id) = uuid(id) else {
            return Err(StorageError::KeyNotFound);
        };
        let done = sqlx::query(&format!(
            "UPDATE kite.key SET deleted_at = coalesce(deleted_at, greatest(created_at, {NOW})) \
             WHERE id = $1::uuid"
        ))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        if done.rows_affected() == 0 {
            return Err(StorageError::KeyNotFound);
        }
        Ok(())
    }

    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
        let Some(id) = uuid(id) else {
            return Err(StorageError::KeyNotFound);
        };
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM kite.key WHERE id = $1::uuid"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        match row {
            Some(row) => self.key_pair(&row),
            None => Err(StorageError::KeyNotFound),
        }
    }

    async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair> {
        // An active pair wins over a deleted one with the same trimmed text.
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM kite.key WHERE {TRIM_PUBLIC} = $1 \
             ORDER BY deleted_at IS NOT NULL LIMIT 1"
        ))
        .bind(public_pem.trim())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        match row {
            Some(row) => self.key_pair(&row),
            None => Err(StorageError::KeyNotFound),
        }
    }

    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM kite.key WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(|r| self.key_pair(r)).collect()
    }

    fn epoch(&self) -> u64 {
        self.restarts.count.load(Ordering::Relaxed)
    }
}
