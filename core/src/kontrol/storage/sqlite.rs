//! SQLite storage, Kontrol's embedded default: one database file (WAL mode) holding the same
//! logical schema as the PostgreSQL backend — a `kite` table keyed by kite id with a liveness
//! time, and a `key` table of key pairs that are soft-deleted with `deleted_at`.
//!
//! SQLite serves one process, so watchers are fed in-process: only changes made through this
//! [`Sqlite`] value are seen by its watchers. For the same reason lookups (`get`,
//! `get_by_id`) are answered from a copy of the `kite` table in memory, loaded when the file
//! is opened and updated by every write after it commits: a lookup then costs a B-tree
//! range scan in this process instead of a round trip to SQLite's worker thread.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::error::ErrorKind;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor as _, Row};
use tokio::sync::{broadcast, Mutex};

mod mirror;

use mirror::Mirror;

use super::{Event, KiteRecord, Storage, StorageError, StorageResult};
use crate::auth::KeyPair;
use crate::protocol::{Kite, KiteQuery};

/// Schema version written to `PRAGMA user_version` once the tables below exist.
const SCHEMA_VERSION: i64 = 1;

/// The tables; every statement is idempotent. Times are microseconds since the Unix epoch.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS key (
    id TEXT NOT NULL PRIMARY KEY,
    public TEXT NOT NULL UNIQUE,
    private TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER,
    CHECK (deleted_at IS NULL OR created_at <= deleted_at)
);
CREATE INDEX IF NOT EXISTS key_deleted_at_public_idx ON key (deleted_at, public);
CREATE TABLE IF NOT EXISTS kite (
    username TEXT NOT NULL,
    environment TEXT NOT NULL,
    kitename TEXT NOT NULL,
    version TEXT NOT NULL,
    region TEXT NOT NULL,
    hostname TEXT NOT NULL,
    id TEXT NOT NULL PRIMARY KEY,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    key_id TEXT NOT NULL REFERENCES key (id)
);
CREATE INDEX IF NOT EXISTS kite_updated_at_idx ON kite (updated_at);
CREATE INDEX IF NOT EXISTS kite_username_kitename_idx ON kite (username, kitename);
"#;

/// Kite columns in [`Kite::values`] order, then the URL and key pair id.
const KITE_COLUMNS: &str =
    "username, environment, kitename, version, region, hostname, id, url, key_id";

/// Whitespace trimmed from stored public keys before comparing them (space, tab, LF, CR).
const TRIM_PUBLIC: &str = "trim(public, char(32, 9, 10, 13))";

/// Storage in a SQLite database file.
pub struct Sqlite {
    pool: SqlitePool,
    /// Serialises writes so that events are sent in commit order and writers never contend
    /// for SQLite's lock.
    write: Mutex<()>,
    events: broadcast::Sender<Event>,
    path: PathBuf,
    /// The `kite` table as committed (see the module docs); changed only under `write`.
    kites: RwLock<Mirror>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}

impl Sqlite {
    /// Opens the database file at `path`, creating it, its parent directories and its tables
    /// when missing.
    pub async fn open(path: impl AsRef<Path>) -> StorageResult<Sqlite> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StorageError::Unavailable(format!(
                    "sqlite: cannot create {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                StorageError::Unavailable(format!("sqlite: cannot open {}: {e}", path.display()))
            })?;
        let storage = Sqlite {
            pool,
            write: Mutex::new(()),
            events: broadcast::channel(1024).0,
            path,
            kites: RwLock::new(Mirror::default()),
        };
        storage.migrate().await?;
        storage.load().await?;
        Ok(storage)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Statements run through `Executor` methods on the transaction (boxed `Send` futures)
    /// rather than `query.execute(&mut *tx)`, whose futures the compiler cannot prove `Send`;
    /// so [`Sqlite::open`] can run in spawned tasks.
    async fn migrate(&self) -> StorageResult<()> {
        let _w = self.write.lock().await;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let version: i64 = tx
            .fetch_one("PRAGMA user_version")
            .await
            .and_then(|row| row.try_get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StorageError::Invalid(format!(
                "sqlite: {} has schema version {version}, newer than this Kontrol's {SCHEMA_VERSION}",
                self.path.display()
            )));
        }
        tx.execute(sqlx::raw_sql(SCHEMA))
            .await
            .map_err(unavailable)?;
        // PRAGMA takes no bind parameters; the value is a constant.
        tx.execute(sqlx::raw_sql(&format!(
            "PRAGMA user_version = {SCHEMA_VERSION}"
        )))
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    /// Reads the `kite` table into memory.
    async fn load(&self) -> StorageResult<()> {
        let _w = self.write.lock().await;
        let rows = sqlx::query(&format!("SELECT {KITE_COLUMNS} FROM kite"))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut mirror = Mirror::default();
        for row in &rows {
            mirror.put(&record(row).map_err(unavailable)?);
        }
        *self.mirror_mut() = mirror;
        Ok(())
    }

    fn mirror(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.kites.read().unwrap_or_else(|e| e.into_inner())
    }

    fn mirror_mut(&self) -> std::sync::RwLockWriteGuard<'_, Mirror> {
        self.kites.write().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, event: Event) {
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

/// Microseconds since the Unix epoch.
fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn unavailable(e: sqlx::Error) -> StorageError {
    StorageError::Unavailable(format!("sqlite: {e}"))
}

/// Maps constraint violations to [`StorageError::Invalid`] with `what` as the message.
fn constraint(e: sqlx::Error, what: impl FnOnce(ErrorKind) -> Option<String>) -> StorageError {
    if let sqlx::Error::Database(d) = &e {
        if let Some(msg) = what(d.kind()) {
            return StorageError::Invalid(msg);
        }
    }
    unavailable(e)
}

fn record(row: &SqliteRow) -> Result<KiteRecord, sqlx::Error> {
    Ok(KiteRecord {
        kite: Kite {
            username: row.try_get("username")?,
            environment: row.try_get("environment")?,
            name: row.try_get("kitename")?,
            version: row.try_get("version")?,
            region: row.try_get("region")?,
            hostname: row.try_get("hostname")?,
            id: row.try_get("id")?,
        },
        url: row.try_get("url")?,
        key_id: row.try_get("key_id")?,
    })
}

fn kite_of(row: &SqliteRow) -> Result<Kite, sqlx::Error> {
    record(row).map(|r| r.kite)
}

fn key_pair(row: &SqliteRow) -> StorageResult<KeyPair> {
    let deleted: Option<i64> = row.try_get("deleted_at").map_err(unavailable)?;
    if deleted.is_some() {
        return Err(StorageError::KeyDeleted);
    }
    Ok(KeyPair {
        id: row.try_get("id").map_err(unavailable)?,
        public_pem: row.try_get("public").map_err(unavailable)?,
        private_pem: row.try_get("private").map_err(unavailable)?,
    })
}

#[async_trait::async_trait]
impl Storage for Sqlite {
    async fn upsert(&self, record: &KiteRecord) -> StorageResult<()> {
        let k = &record.kite;
        let now = now_micros();
        let _w = self.write.lock().await;
        sqlx::query(&format!(
            "INSERT INTO kite ({KITE_COLUMNS}, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET username = excluded.username, \
             environment = excluded.environment, kitename = excluded.kitename, \
             version = excluded.version, region = excluded.region, hostname = excluded.hostname, \
             url = excluded.url, key_id = excluded.key_id, updated_at = excluded.updated_at"
        ))
        .bind(&k.username)
        .bind(&k.environment)
        .bind(&k.name)
        .bind(&k.version)
        .bind(&k.region)
        .bind(&k.hostname)
        .bind(&k.id)
        .bind(&record.url)
        .bind(&record.key_id)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            constraint(e, |kind| match kind {
                ErrorKind::ForeignKeyViolation => {
                    Some(format!("no key pair with id {:?}", record.key_id))
                }
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    Some("kite record is incomplete".into())
                }
                _ => None,
            })
        })?;
        self.mirror_mut().put(record);
        self.send(Event::Register(record.clone()));
        Ok(())
    }

    async fn touch(&self, kite: &Kite) -> StorageResult<bool> {
        let _w = self.write.lock().await;
        let done = sqlx::query("UPDATE kite SET updated_at = ? WHERE id = ?")
            .bind(now_micros())
            .bind(&kite.id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, kite: &Kite) -> StorageResult<bool> {
        let _w = self.write.lock().await;
        let gone = sqlx::query(&format!(
            "DELETE FROM kite WHERE id = ? RETURNING {KITE_COLUMNS}"
        ))
        .bind(&kite.id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        match gone {
            Some(row) => {
                self.mirror_mut().remove(&kite.id);
                self.send(Event::Deregister(kite_of(&row).map_err(unavailable)?));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn get(&self, query: &KiteQuery) -> StorageResult<Vec<KiteRecord>> {
        Ok(self.mirror().get(query))
    }

    async fn get_by_id(&self, id: &str) -> StorageResult<Option<KiteRecord>> {
        Ok(self.mirror().get_by_id(id))
    }

    async fn expire(&self, older_than: Duration) -> StorageResult<Vec<Kite>> {
        let age = i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
        let _w = self.write.lock().await;
        let cutoff = now_micros().saturating_sub(age);
        let rows = sqlx::query(&format!(
            "DELETE FROM kite WHERE updated_at < ? RETURNING {KITE_COLUMNS}"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let kites = rows
            .iter()
            .map(|r| kite_of(r).map_err(unavailable))
            .collect::<StorageResult<Vec<Kite>>>()?;
        {
            let mut mirror = self.mirror_mut();
            for k in &kites {
                mirror.remove(&k.id);
            }
        }
        for k in &kites {
            self.send(Event::Deregister(k.clone()));
        }
        Ok(kites)
    }

    async fn watch(&self) -> StorageResult<BoxStream<'static, Event>> {
        let rx = self.events.subscribe();
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "watcher fell behind; events dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }

    async fn add_key(&self, pair: &KeyPair) -> StorageResult<()> {
        validate_key(pair)?;
        let _w = self.write.lock().await;
        let done = sqlx::query(&format!(
            "INSERT INTO key (id, public, private, created_at) SELECT ?1, ?2, ?3, ?4 \
             WHERE NOT EXISTS (SELECT 1 FROM key WHERE id = ?1 OR {TRIM_PUBLIC} = ?5)"
        ))
        .bind(&pair.id)
        .bind(&pair.public_pem)
        .bind(&pair.private_pem)
        .bind(now_micros())
        .bind(pair.public_pem.trim())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            constraint(e, |kind| {
                matches!(kind, ErrorKind::UniqueViolation)
                    .then(|| "key pair already exists".to_string())
            })
        })?;
        if done.rows_affected() == 0 {
            return Err(StorageError::Invalid("key pair already exists".into()));
        }
        Ok(())
    }

    async fn delete_key(&self, id: &str) -> StorageResult<()> {
        let _w = self.write.lock().await;
        let done = sqlx::query(
            "UPDATE key SET deleted_at = coalesce(deleted_at, max(?, created_at)) WHERE id = ?",
        )
        .bind(now_micros())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::KeyNotFound);
        }
        Ok(())
    }

    async fn key_by_id(&self, id: &str) -> StorageResult<KeyPair> {
        let row = sqlx::query("SELECT id, public, private, deleted_at FROM key WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref()
            .map_or(Err(StorageError::KeyNotFound), key_pair)
    }

    async fn key_by_public(&self, public_pem: &str) -> StorageResult<KeyPair> {
        // An active pair wins over a deleted one with the same trimmed text.
        let row = sqlx::query(&format!(
            "SELECT id, public, private, deleted_at FROM key WHERE {TRIM_PUBLIC} = ? \
             ORDER BY deleted_at IS NOT NULL LIMIT 1"
        ))
        .bind(public_pem.trim())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref()
            .map_or(Err(StorageError::KeyNotFound), key_pair)
    }

    async fn active_keys(&self) -> StorageResult<Vec<KeyPair>> {
        let rows = sqlx::query(
            "SELECT id, public, private, deleted_at FROM key WHERE deleted_at IS NULL \
             ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(key_pair).collect()
    }
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
