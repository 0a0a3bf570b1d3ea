//! Behavioural tests of Kontrol's storage. One suite (`common/storage_suite.rs`) runs, with
//! the same assertions, against every backend: memory, SQLite in a temporary file, and
//! PostgreSQL on a real server started for the test (`common/postgres.rs`). PostgreSQL also
//! shows that two storages on one database form one registry (kites, key pairs and events),
//! that a database laid out by the reference Kontrol's SQL is taken over as it is, and that
//! calls fail with `Unavailable` while the server is down and work again — watchers
//! included — once it is back. SQLite and PostgreSQL are also opened from the strings
//! `kite::kontrol::storage::open` takes (`sqlite:PATH`, `postgres://…`).

#[path = "common/storage_suite.rs"]
mod storage_suite;

#[cfg(feature = "postgres")]
#[path = "common/postgres.rs"]
mod postgres_server;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use kite::kontrol::storage::memory::Memory;
use kite::kontrol::storage::{Event, KiteRecord, Storage, StorageError};
use storage_suite::*;

#[tokio::test]
async fn memory_storage() {
    suite(&Memory::new()).await;
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use kite::kontrol::storage::sqlite::Sqlite;

    /// A directory removed when dropped.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("kite-sqlite-{}", uuid::Uuid::new_v4().simple()));
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn sqlite_storage() {
        let dir = TempDir::new();
        let s = Sqlite::open(dir.0.join("kontrol.db")).await.expect("open");
        suite(&s).await;
    }

    /// The file keeps kites and key pairs across reopening, in WAL mode.
    #[tokio::test]
    async fn sqlite_file_survives_reopen() {
        let dir = TempDir::new();
        let path = dir.0.join("nested").join("kontrol.db");
        let key = key_pair();
        let r = record(
            kite([&user(), "prod", "math", "1.0.0", "eu", "h1"]),
            "http://r/kite",
            &key,
        );
        {
            let s = Sqlite::open(&path).await.expect("open");
            s.add_key(&key).await.expect("add key");
            s.upsert(&r).await.expect("upsert");
            assert!(path.with_extension("db-wal").exists(), "WAL journal in use");
        }
        let s = Sqlite::open(&path).await.expect("reopen");
        assert_eq!(s.get_by_id(&r.kite.id).await.expect("get"), Some(r));
        assert_eq!(s.key_by_id(&key.id).await.expect("key"), key);
    }

    /// `sqlite:PATH` names the same file `Sqlite::open` opens.
    #[tokio::test]
    async fn sqlite_opened_from_a_spec() {
        let dir = TempDir::new();
        let path = dir.0.join("kontrol.db");
        let key = key_pair();
        let spec = format!("sqlite:{}", path.display());
        let s = kite::kontrol::storage::open(&spec).await.expect("open");
        s.add_key(&key).await.expect("add key");
        drop(s);
        let s = Sqlite::open(&path).await.expect("reopen");
        assert_eq!(s.key_by_id(&key.id).await.expect("key"), key);
    }

    /// Opening fails with `Unavailable` when the file cannot be created.
    #[tokio::test]
    async fn sqlite_unopenable_file_is_unavailable() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).expect("mkdir");
        // A directory where the database file should be.
        let path = dir.0.join("kontrol.db");
        std::fs::create_dir_all(&path).expect("mkdir");
        match Sqlite::open(&path).await {
            Err(StorageError::Unavailable(msg)) => assert!(msg.contains("sqlite"), "{msg}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;
    use std::time::Instant;

    use super::postgres_server::PgServer;
    use super::*;
    use futures_util::stream::BoxStream;
    use kite::auth::KeyPair;
    use kite::kontrol::storage::postgres::Postgres;
    use sqlx::Row;

    async fn connect(server: &PgServer, dbname: &str) -> Postgres {
        Postgres::connect(&server.config(dbname))
            .await
            .expect("connect")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_storage() {
        let server = PgServer::shared();
        let db = server.create_database().await;
        let s = connect(&server, &db).await;
        suite(&s).await;
    }

    /// A `postgres://` URL (opened in a spawned task: the future is `Send`) reaches the same
    /// database as its `PostgresConfig`: a kite registered through one is read through the
    /// other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_opened_from_a_url() {
        let server = PgServer::shared();
        let db = server.create_database().await;
        let url = format!(
            "postgres://{}@127.0.0.1:{}/{db}?sslmode=disable&connect_timeout=5",
            postgres_server::SUPERUSER,
            server.port()
        );
        let s = tokio::spawn(async move { kite::kontrol::storage::open(&url).await })
            .await
            .expect("join")
            .expect("open");
        let key = key_pair();
        s.add_key(&key).await.expect("add key");
        let u = user();
        let r = record(
            kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
            "http://r/kite",
            &key,
        );
        s.upsert(&r).await.expect("upsert");
        let everything = query([&u, "", "", "", "", "", ""]);
        assert_eq!(s.get(&everything).await.expect("get"), vec![r.clone()]);
        let direct = connect(&server, &db).await;
        assert_eq!(direct.get(&everything).await.expect("get"), vec![r]);
    }

    /// A URL whose server does not answer fails within its `connect_timeout`, saying so
    /// without the password.
    #[tokio::test]
    async fn postgres_url_without_server_fails_clearly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = format!("postgres://kontrol:hunter2@127.0.0.1:{port}/kontrol?connect_timeout=1");
        let started = Instant::now();
        let e = kite::kontrol::storage::open(&url)
            .await
            .err()
            .expect("no server");
        let msg = e.to_string();
        assert!(matches!(e, kite::Error::Config(_)), "{e:?}");
        assert!(
            msg.contains("postgres") && msg.contains(&port.to_string()),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    /// Two storages on one database (as two Kontrols) see each other's kites, key pairs and
    /// events; starting both at once on an empty database creates the schema once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_two_storages_form_one_registry() {
        let server = PgServer::shared();
        let db = server.create_database().await;
        let (a, b) = tokio::join!(connect(&server, &db), connect(&server, &db));
        let mut wa = a.watch().await.expect("watch a");
        let mut wb = b.watch().await.expect("watch b");

        let key = key_pair();
        a.add_key(&key).await.expect("add key via a");
        assert_eq!(b.key_by_id(&key.id).await.expect("key via b"), key);
        assert!(b.active_keys().await.expect("active via b").contains(&key));

        let u = user();
        let r = record(
            kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
            "http://r/kite",
            &key,
        );
        a.upsert(&r).await.expect("upsert via a");
        assert_eq!(
            b.get(&query([&u, "", "", "", "", "", ""]))
                .await
                .expect("get via b"),
            vec![r.clone()]
        );
        assert!(b.touch(&r.kite).await.expect("touch via b"));
        assert!(b.delete(&r.kite).await.expect("delete via b"));
        assert_eq!(a.get_by_id(&r.kite.id).await.expect("get via a"), None);

        let r2 = record(
            kite([&u, "prod", "math", "1.0.0", "eu", "h2"]),
            "http://r2/kite",
            &key,
        );
        b.upsert(&r2).await.expect("upsert via b");
        assert_eq!(
            a.expire(Duration::ZERO).await.expect("expire via a"),
            vec![r2.kite.clone()]
        );

        for w in [&mut wa, &mut wb] {
            assert_eq!(next(w).await, Event::Register(r.clone()));
            assert_eq!(next(w).await, Event::Deregister(r.kite.clone()));
            assert_eq!(next(w).await, Event::Register(r2.clone()));
            assert_eq!(next(w).await, Event::Deregister(r2.kite.clone()));
        }

        b.delete_key(&key.id).await.expect("delete key via b");
        assert_eq!(a.key_by_id(&key.id).await, Err(StorageError::KeyDeleted));
    }

    /// The reference Kontrol's database layout, as its SQL files (`001-schema.sql`,
    /// `002-table.sql`, `003-migration-*.sql`) leave it: roles, schema, tables, grants and
    /// indexes.
    const REFERENCE_SCHEMA: &str = r#"
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kontrol') THEN CREATE ROLE kontrol; END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kontrolapplication') THEN
                CREATE USER kontrolapplication PASSWORD 'kontrolapplication';
            END IF;
        END $$;
        GRANT kontrol TO kontrolapplication;
        CREATE SCHEMA kite;
        GRANT USAGE ON SCHEMA kite TO kontrol;
        CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
        CREATE TABLE IF NOT EXISTS kite.key (
            id UUID NOT NULL DEFAULT uuid_generate_v4(),
            public TEXT NOT NULL COLLATE "default",
            private TEXT NOT NULL COLLATE "default",
            created_at timestamp(6) WITH TIME ZONE NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
            deleted_at timestamp(6) WITH TIME ZONE,
            PRIMARY KEY (id) NOT DEFERRABLE INITIALLY IMMEDIATE,
            CONSTRAINT key_public_unique UNIQUE (public) NOT DEFERRABLE INITIALLY IMMEDIATE,
            CONSTRAINT key_private_unique UNIQUE (private) NOT DEFERRABLE INITIALLY IMMEDIATE,
            CONSTRAINT key_created_at_lte_deleted_at_check CHECK (created_at <= deleted_at)
        );
        GRANT SELECT, INSERT, UPDATE ON kite.key TO kontrol;
        CREATE UNLOGGED TABLE kite.kite (
            username TEXT NOT NULL,
            environment TEXT NOT NULL,
            kitename TEXT NOT NULL,
            version TEXT NOT NULL,
            region TEXT NOT NULL,
            hostname TEXT NOT NULL,
            id uuid PRIMARY KEY,
            url TEXT NOT NULL,
            created_at timestamptz NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
            updated_at timestamptz NOT NULL DEFAULT (NOW() AT TIME ZONE 'UTC'),
            key_id UUID NOT NULL,
            CONSTRAINT kite_key_id_fkey FOREIGN KEY (key_id) REFERENCES kite.key (id)
                ON UPDATE NO ACTION ON DELETE NO ACTION NOT DEFERRABLE INITIALLY IMMEDIATE
        );
        GRANT SELECT, INSERT, UPDATE, DELETE ON kite.kite TO kontrol;
        CREATE INDEX kite_updated_at_btree_idx ON kite.kite USING BTREE (updated_at DESC);
        CREATE INDEX kite_key_public_idx ON kite.key USING btree (public);
        CREATE INDEX kite_key_deleted_at_public_idx ON kite.key USING btree (deleted_at DESC NULLS FIRST, public);
    "#;

    /// Columns (name, type, nullability) and constraint and index names of schema `kite`.
    async fn layout(server: &PgServer, db: &str) -> Vec<String> {
        let mut conn = server.connect(db).await;
        let rows = sqlx::query(
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
             FROM information_schema.columns WHERE table_schema = 'kite' \
             UNION ALL SELECT 'constraint ' || conname FROM pg_constraint \
               WHERE connamespace = 'kite'::regnamespace \
             UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'kite' \
             UNION ALL SELECT 'unlogged ' || relname FROM pg_class \
               WHERE relnamespace = 'kite'::regnamespace AND relpersistence = 'u' AND relkind = 'r'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read layout");
        let mut out: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        out.sort();
        out
    }

    /// Column names of `kite.kite` in table order (the reference reads `SELECT *`).
    async fn kite_columns(server: &PgServer, db: &str) -> Vec<String> {
        let mut conn = server.connect(db).await;
        sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'kite' AND table_name = 'kite' ORDER BY ordinal_position",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read columns")
    }

    /// A database laid out and filled by the reference Kontrol is used as it is, by a role
    /// with only the reference's grants; a fresh database gets the same layout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_takes_over_reference_database() {
        let server = PgServer::shared();
        let reference = server.create_database().await;
        server.execute(&reference, REFERENCE_SCHEMA).await;

        // Rows as the reference writes them.
        let (go_key, old_key) = (key_pair(), key_pair());
        let (live, stale) = (uuid(), uuid());
        let u = user();
        insert_reference_rows(
            &server,
            &reference,
            &u,
            (&go_key, &old_key),
            (&live, &stale),
        )
        .await;
        let before = layout(&server, &reference).await;

        let s = Postgres::connect(&server.config_as("kontrolapplication", &reference))
            .await
            .expect("connect with the reference's grants");
        assert_eq!(
            layout(&server, &reference).await,
            before,
            "nothing to migrate"
        );

        let found = s
            .get(&query([&u, "prod", "math", "", "", "", ""]))
            .await
            .expect("get");
        let mut go_kite = kite([&u, "prod", "math", "1.0.0", "eu", "go-host"]);
        go_kite.id = live.clone();
        assert_eq!(ids(&found), BTreeSet::from([live.clone(), stale.clone()]));
        assert!(found.contains(&KiteRecord {
            kite: go_kite.clone(),
            url: "http://go:6000/kite".into(),
            key_id: go_key.id.clone(),
        }));
        assert_eq!(s.key_by_id(&go_key.id).await.expect("go key"), go_key);
        assert_eq!(
            s.key_by_public(&old_key.public_pem).await,
            Err(StorageError::KeyDeleted)
        );
        assert_eq!(s.active_keys().await.expect("active"), vec![go_key.clone()]);

        // Liveness compares the way the reference writes it.
        let mut stale_kite = go_kite.clone();
        stale_kite.id = stale.clone();
        assert_eq!(
            s.expire(Duration::from_secs(90)).await.expect("expire"),
            vec![stale_kite]
        );

        // What we write, the reference reads.
        let ours = record(
            kite([&u, "prod", "math", "1.1.0", "eu", "rs-host"]),
            "http://rs/kite",
            &go_key,
        );
        s.upsert(&ours).await.expect("upsert");
        assert_reference_reads(&server, &reference, &ours, &go_key).await;
        assert_fresh_layout(&server, &reference, &before).await;
    }

    /// Writes key pairs and kites as the reference does: `go_key` active, `old_key`
    /// deleted, kite `live` fresh and kite `stale` ten minutes old.
    async fn insert_reference_rows(
        server: &PgServer,
        reference: &str,
        u: &str,
        (go_key, old_key): (&KeyPair, &KeyPair),
        (live, stale): (&str, &str),
    ) {
        server
            .execute(
                reference,
                &format!(
                    "INSERT INTO kite.key (id, public, private) VALUES \
                       ('{}', '{}', '{}'), ('{}', '{}', '{}');
                     UPDATE kite.key SET deleted_at = (now() at time zone 'utc') WHERE id = '{}';
                     INSERT INTO kite.kite (username, environment, kitename, version, region, hostname, id, url, key_id) \
                       VALUES ('{u}', 'prod', 'math', '1.0.0', 'eu', 'go-host', '{live}', 'http://go:6000/kite', '{}');
                     INSERT INTO kite.kite (username, environment, kitename, version, region, hostname, id, url, key_id, updated_at) \
                       VALUES ('{u}', 'prod', 'math', '1.0.0', 'eu', 'go-host', '{stale}', 'http://go:6001/kite', '{}', \
                               (now() at time zone 'utc') - interval '10 minutes');",
                    go_key.id, go_key.public_pem, go_key.private_pem,
                    old_key.id, old_key.public_pem, old_key.private_pem,
                    old_key.id, go_key.id, go_key.id,
                ),
            )
            .await;
    }

    /// The reference's view of a row we wrote: its name, URL, key pair and liveness.
    async fn assert_reference_reads(
        server: &PgServer,
        reference: &str,
        ours: &KiteRecord,
        go_key: &KeyPair,
    ) {
        let mut conn = server.connect(reference).await;
        let row = sqlx::query(
            "SELECT kitename, url, key_id::text, updated_at > (now() at time zone 'utc') - interval '1 minute' \
             FROM kite.kite WHERE id = $1::uuid",
        )
        .bind(&ours.kite.id)
        .fetch_one(&mut conn)
        .await
        .expect("read our row");
        assert_eq!(row.get::<String, _>(0), "math");
        assert_eq!(row.get::<String, _>(1), "http://rs/kite");
        assert_eq!(row.get::<String, _>(2), go_key.id);
        assert!(row.get::<bool, _>(3), "updated_at in the reference's clock");
    }

    /// A fresh database is laid out as the reference's `before`, plus our lookup index;
    /// connecting again changes nothing.
    async fn assert_fresh_layout(server: &PgServer, reference: &str, before: &[String]) {
        // A fresh database gets the reference's layout (the key id default aside: built-in
        // gen_random_uuid() instead of uuid-ossp's), in the same column order, plus the
        // index getKites looks kites up with (the reference scans the table).
        let fresh = server.create_database().await;
        drop(connect(server, &fresh).await);
        let mut expected = before.to_vec();
        expected.push("index kite_kite_query_idx".to_string());
        expected.sort();
        assert_eq!(layout(server, &fresh).await, expected);
        assert_eq!(
            kite_columns(server, &fresh).await,
            kite_columns(server, reference).await
        );
        // Connecting again changes nothing.
        drop(connect(server, &fresh).await);
        assert_eq!(layout(server, &fresh).await, expected);
    }

    /// While the server is down every call fails quickly with `Unavailable`; once it is back
    /// the same storage works again by itself, its watchers included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_outage_is_unavailable_then_recovers() {
        let server = Arc::new(
            tokio::task::spawn_blocking(PgServer::start)
                .await
                .expect("start"),
        );
        let db = server.create_database().await;
        let config = kite::kontrol::storage::postgres::PostgresConfig {
            connect_timeout: Duration::from_millis(500),
            ..server.config(&db)
        };
        let s = Postgres::connect(&config).await.expect("connect");
        let key = key_pair();
        s.add_key(&key).await.expect("add key");
        let u = user();
        let a = record(
            kite([&u, "prod", "math", "1.0.0", "eu", "h1"]),
            "http://a/kite",
            &key,
        );
        s.upsert(&a).await.expect("upsert");
        let mut events = s.watch().await.expect("watch");

        let srv = server.clone();
        tokio::task::spawn_blocking(move || srv.stop())
            .await
            .expect("stop");

        assert_calls_fail_quickly(&s, &u, &a, &key).await;

        let srv = server.clone();
        tokio::task::spawn_blocking(move || srv.resume())
            .await
            .expect("resume");

        // The same storage works again; the kite survived a clean shutdown.
        assert_eq!(
            s.get(&query([&u, "", "", "", "", "", ""]))
                .await
                .expect("get after restart"),
            vec![a.clone()]
        );
        assert!(s.touch(&a.kite).await.expect("touch after restart"));

        assert_watcher_recovers(&s, &mut events, &u, &a, &key).await;
    }

    /// Every kind of call on a storage whose server is down fails with `Unavailable` within
    /// a few seconds.
    async fn assert_calls_fail_quickly(s: &Postgres, u: &str, a: &KiteRecord, key: &KeyPair) {
        let started = Instant::now();
        let b = record(
            kite([u, "prod", "math", "1.0.0", "eu", "h2"]),
            "http://b/kite",
            key,
        );
        let new_key = key_pair();
        let everything = query([u, "", "", "", "", "", ""]);
        let (get, upsert, touch, by_id, add) = tokio::join!(
            s.get(&everything),
            s.upsert(&b),
            s.touch(&a.kite),
            s.key_by_id(&key.id),
            s.add_key(&new_key),
        );
        let errors = [get.err(), upsert.err(), touch.err(), by_id.err(), add.err()];
        for e in &errors {
            match e {
                Some(StorageError::Unavailable(msg)) => assert!(msg.contains("postgres"), "{msg}"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "calls fail quickly: {:?}",
            started.elapsed()
        );
    }

    /// After the outage the watcher re-listens by itself: a probe registered now is seen,
    /// and so is the removal of `a`.
    async fn assert_watcher_recovers(
        s: &Postgres,
        events: &mut BoxStream<'static, Event>,
        u: &str,
        a: &KiteRecord,
        key: &KeyPair,
    ) {
        // The watcher re-listens by itself. Changes made before it has may be missed, so
        // register probes until one is seen (each wait is bounded; no fixed sleep).
        let probe = record(
            kite([u, "prod", "probe", "1.0.0", "eu", "h9"]),
            "http://probe/kite",
            key,
        );
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "watcher did not recover");
            s.upsert(&probe).await.expect("upsert probe");
            match tokio::time::timeout(Duration::from_millis(250), events.next()).await {
                Ok(Some(Event::Register(r))) if r == probe => break,
                Ok(Some(other)) => panic!("unexpected event {other:?}"),
                Ok(None) => panic!("event stream ended"),
                Err(_) => continue,
            }
        }
        assert!(s.delete(&a.kite).await.expect("delete after restart"));
        loop {
            match next(events).await {
                Event::Register(r) if r == probe => continue,
                e => {
                    assert_eq!(e, Event::Deregister(a.kite.clone()));
                    break;
                }
            }
        }
    }
}
