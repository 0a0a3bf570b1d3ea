//! The `kite` schema of the reference Kontrol, created when missing and migrated when behind.

// Statements run through `Executor` methods on the transaction (boxed `Send` futures) rather
// than `query.execute(&mut *tx)`: the compiler cannot prove the latter's futures `Send`
// ("implementation of `Executor` is not general enough"), which would keep
// `Postgres::connect` out of spawned tasks.
use sqlx::{Connection, Executor as _, PgPool, Postgres, Row, Transaction};

use super::config::Target;
use crate::kontrol::storage::{StorageError, StorageResult};

/// Advisory lock held while the schema is checked and migrated, so that Kontrols starting
/// together do not race ("kitekont").
const SCHEMA_LOCK: i64 = 0x6b69_7465_6b6f_6e74;

/// Brings the schema to the reference's latest (`002-table.sql` plus the `003-migration-*`
/// files), doing only what is missing.
pub(super) async fn migrate(pool: &PgPool, target: &Target) -> StorageResult<()> {
    let schema_err = |e: sqlx::Error| match target.err(e) {
        StorageError::Unavailable(m) | StorageError::Invalid(m) => {
            StorageError::Unavailable(format!(
                "{m} (while preparing schema \"kite\"; connect once as a role that may create it)"
            ))
        }
        other => other,
    };
    let mut tx = pool.begin().await.map_err(|e| target.err(e))?;
    tx.execute(sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SCHEMA_LOCK))
        .await
        .map_err(|e| target.err(e))?;
    let found = inspect(&mut tx, target).await?;
    let steps = missing_steps(&found);
    for step in &steps {
        tx.execute(sqlx::raw_sql(step)).await.map_err(schema_err)?;
    }
    create_indexes(&mut tx, target).await?;
    tx.commit().await.map_err(|e| target.err(e))?;
    if !steps.is_empty() {
        tracing::info!(db = %target.name, steps = steps.len(), "postgres: schema \"kite\" prepared");
    }
    Ok(())
}

/// What of the reference's schema already exists.
struct Found {
    has_key: bool,
    has_kite: bool,
    has_key_id: bool,
    has_fk: bool,
}

/// Looks up which tables, column and constraint of the schema exist.
async fn inspect(tx: &mut Transaction<'_, Postgres>, target: &Target) -> StorageResult<Found> {
    let state = tx
        .fetch_one(sqlx::query(
            "SELECT to_regclass('kite.key') IS NOT NULL AS has_key, \
                to_regclass('kite.kite') IS NOT NULL AS has_kite, \
                EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('kite.kite') \
                        AND attname = 'key_id' AND NOT attisdropped) AS has_key_id, \
                EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('kite.kite') \
                        AND conname = 'kite_key_id_fkey') AS has_fk",
        ))
        .await
        .map_err(|e| target.err(e))?;
    let flag = |name: &str| state.try_get::<bool, _>(name).unwrap_or(false);
    Ok(Found {
        has_key: flag("has_key"),
        has_kite: flag("has_kite"),
        has_key_id: flag("has_key_id"),
        has_fk: flag("has_fk"),
    })
}

/// The statements that create what is missing, in order.
fn missing_steps(found: &Found) -> Vec<&'static str> {
    let Found {
        has_key,
        has_kite,
        has_key_id,
        has_fk,
    } = *found;
    let mut steps: Vec<&'static str> = Vec::new();
    if !has_key || !has_kite {
        steps.push("CREATE SCHEMA IF NOT EXISTS kite");
    }
    if !has_key {
        // As the reference's, with a built-in UUID default instead of uuid-ossp's.
        steps.push(
            "CREATE TABLE IF NOT EXISTS kite.key (
                id uuid NOT NULL DEFAULT gen_random_uuid(),
                public text NOT NULL,
                private text NOT NULL,
                created_at timestamp(6) with time zone NOT NULL DEFAULT (now() at time zone 'utc'),
                deleted_at timestamp(6) with time zone,
                PRIMARY KEY (id),
                CONSTRAINT key_public_unique UNIQUE (public),
                CONSTRAINT key_private_unique UNIQUE (private),
                CONSTRAINT key_created_at_lte_deleted_at_check CHECK (created_at <= deleted_at)
            )",
        );
    }
    if !has_kite {
        // Column order matters: the reference reads rows with `SELECT *`.
        steps.push(
            "CREATE UNLOGGED TABLE IF NOT EXISTS kite.kite (
                username text NOT NULL,
                environment text NOT NULL,
                kitename text NOT NULL,
                version text NOT NULL,
                region text NOT NULL,
                hostname text NOT NULL,
                id uuid PRIMARY KEY,
                url text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT (now() at time zone 'utc'),
                updated_at timestamptz NOT NULL DEFAULT (now() at time zone 'utc'),
                key_id uuid NOT NULL,
                CONSTRAINT kite_key_id_fkey FOREIGN KEY (key_id) REFERENCES kite.key (id)
            )",
        );
    } else {
        if !has_key_id {
            // 003-migration-001: registrations older than key pairs.
            steps.push("ALTER TABLE kite.kite ADD COLUMN IF NOT EXISTS key_id uuid NOT NULL");
        }
        if !has_fk {
            steps.push(
                "ALTER TABLE kite.kite ADD CONSTRAINT kite_key_id_fkey \
                 FOREIGN KEY (key_id) REFERENCES kite.key (id)",
            );
        }
    }
    steps
}

/// Creates the indexes that are missing; one the role may not create is only a warning.
async fn create_indexes(tx: &mut Transaction<'_, Postgres>, target: &Target) -> StorageResult<()> {
    // Indexes speed things up but are not required: one we may not create is a warning.
    for (index, ddl) in [
        (
            "kite.kite_updated_at_btree_idx",
            "CREATE INDEX IF NOT EXISTS kite_updated_at_btree_idx ON kite.kite USING btree (updated_at DESC)",
        ),
        (
            // Not in the reference, which scans the table on every lookup: queries set a
            // prefix of these fields (a field only when every one before it is set), so one
            // index serves every getKites query. A Go Kontrol sharing the database ignores it.
            "kite.kite_kite_query_idx",
            "CREATE INDEX IF NOT EXISTS kite_kite_query_idx ON kite.kite USING btree \
             (username, environment, kitename, version, region, hostname)",
        ),
        (
            "kite.kite_key_public_idx",
            "CREATE INDEX IF NOT EXISTS kite_key_public_idx ON kite.key USING btree (public)",
        ),
        (
            "kite.kite_key_deleted_at_public_idx",
            "CREATE INDEX IF NOT EXISTS kite_key_deleted_at_public_idx \
             ON kite.key USING btree (deleted_at DESC NULLS FIRST, public)",
        ),
    ] {
        let exists: bool = tx
            .fetch_one(sqlx::query("SELECT to_regclass($1) IS NOT NULL").bind(index))
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| target.err(e))?;
        if exists {
            continue;
        }
        let mut savepoint = tx.begin().await.map_err(|e| target.err(e))?;
        match savepoint.execute(sqlx::raw_sql(ddl)).await {
            Ok(_) => savepoint.commit().await.map_err(|e| target.err(e))?,
            Err(e) => {
                tracing::warn!(index, error = %e, "postgres: cannot create index; continuing without it");
                savepoint.rollback().await.map_err(|e| target.err(e))?;
            }
        }
    }
    Ok(())
}
