//! The servers a chaos run kills: Kontrol as a process of its own (the built `kontrol`
//! binary, on a fixed port so that a restart comes back at the same URL) and its database
//! server (PostgreSQL or etcd through the tests' helpers; SQLite is a file of Kontrol's).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::etcd_server::EtcdServer;
use crate::postgres_server::{PgServer, SUPERUSER};

/// Longest wait for Kontrol to print that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Kontrol keeps its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Etcd,
}

impl Backend {
    pub fn parse(s: &str) -> Result<Backend, String> {
        match s.trim() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            "etcd" => Ok(Backend::Etcd),
            other => Err(format!(
                "unknown backend {other:?} (sqlite, postgres or etcd)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Etcd => "etcd",
        }
    }
}

/// The database server of a backend, running.
pub enum Db {
    /// Kontrol's own file: nothing runs apart.
    Sqlite,
    /// A scratch cluster and the database Kontrol uses in it.
    Postgres(Arc<PgServer>, String),
    Etcd(EtcdServer),
}

impl Db {
    /// Starts the server of `backend` (none for SQLite).
    pub async fn start(backend: Backend) -> Result<Db, String> {
        match backend {
            Backend::Sqlite => Ok(Db::Sqlite),
            Backend::Postgres => {
                // The helper blocks (pg_ctl) and panics on failure: run it aside.
                let pg = tokio::task::spawn_blocking(PgServer::start)
                    .await
                    .map_err(|e| format!("PostgreSQL did not start: {e}"))?;
                let pg = Arc::new(pg);
                let db = pg.create_database().await;
                Ok(Db::Postgres(pg, db))
            }
            Backend::Etcd => Ok(Db::Etcd(EtcdServer::start().await)),
        }
    }

    /// Kontrol's storage flags for this server (SQLite's file goes to `home`).
    pub fn kontrol_args(&self, home: &Path) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Db::Sqlite => vec!["--storage", "sqlite", "--data-dir"],
            Db::Postgres(..) => vec!["--storage", "postgres"],
            Db::Etcd(_) => vec!["--storage", "etcd"],
        }
        .into_iter()
        .map(String::from)
        .collect();
        match self {
            Db::Sqlite => args.push(home.display().to_string()),
            Db::Postgres(pg, db) => args.extend([
                "--postgres-host".into(),
                "127.0.0.1".into(),
                "--postgres-port".into(),
                pg.port().to_string(),
                "--postgres-username".into(),
                SUPERUSER.into(),
                "--postgres-dbname".into(),
                db.clone(),
            ]),
            Db::Etcd(etcd) => args.extend(["--machines".into(), etcd.endpoint()]),
        }
        args
    }

    /// PostgreSQL crashed (immediate stop: no checkpoint, crash recovery at the next start).
    pub async fn crash_postgres(&self) -> Result<(), String> {
        let Db::Postgres(pg, _) = self else {
            return Err("not PostgreSQL".into());
        };
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.crash())
            .await
            .map_err(|e| format!("pg_ctl stop -m immediate failed: {e}"))
    }

    /// PostgreSQL started again on the same port; returns once it accepts connections.
    pub async fn resume_postgres(&self) -> Result<(), String> {
        let Db::Postgres(pg, _) = self else {
            return Err("not PostgreSQL".into());
        };
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.resume())
            .await
            .map_err(|e| format!("PostgreSQL did not start again: {e}"))
    }

    /// etcd killed (its data stays).
    pub fn stop_etcd(&mut self) -> Result<(), String> {
        let Db::Etcd(etcd) = self else {
            return Err("not etcd".into());
        };
        etcd.stop();
        Ok(())
    }

    /// etcd started again on the same ports and data; returns once it is healthy.
    pub async fn restart_etcd(&mut self) -> Result<(), String> {
        let Db::Etcd(etcd) = self else {
            return Err("not etcd".into());
        };
        etcd.restart().await;
        Ok(())
    }
}

/// The `kontrol` binary run on one port with one storage and `KITE_HOME`.
pub struct KontrolProcess {
    bin: PathBuf,
    home: PathBuf,
    port: u16,
    storage: Vec<String>,
    child: Option<Child>,
}

impl KontrolProcess {
    /// Prepares Kontrol on a free port, writing the operator's kite.key into `home` with
    /// `kontrol --initial` (which also creates Kontrol's key pair in storage); returns it
    /// with the key.
    pub async fn initial(
        bin: &Path,
        home: &Path,
        storage: Vec<String>,
    ) -> Result<(KontrolProcess, String), String> {
        std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
        let mut k = KontrolProcess {
            bin: bin.to_path_buf(),
            home: home.to_path_buf(),
            port: free_port()?,
            storage,
            child: None,
        };
        let out = k
            .command()
            .args(["--initial", "--username", "chaos"])
            .stdout(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "kontrol --initial failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let key = std::fs::read_to_string(home.join("kite.key"))
            .map_err(|e| format!("kontrol --initial wrote no kite.key: {e}"))?;
        k.start().await?;
        Ok((k, key))
    }

    /// Kontrol's URL (the kite key's kontrolURL).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/kite", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Its log (stderr of every run, appended).
    pub fn log(&self) -> PathBuf {
        self.home.join("kontrol.log")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("KITE_HOME", &self.home)
            .args(["--ip", "127.0.0.1", "--port", &self.port.to_string()])
            .args(&self.storage)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Ok(log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
        {
            c.stderr(log);
        }
        c
    }

    /// Starts Kontrol; returns once it prints that it listens (a port still held by the
    /// previous process is retried until `START_TIMEOUT`).
    pub async fn start(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut child = self
                .command()
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let left = deadline.saturating_duration_since(Instant::now());
            let first = tokio::time::timeout(left, lines.next_line()).await;
            if let Ok(Ok(Some(line))) = &first {
                if line.starts_with("kontrol listening on") {
                    // Keep reading, so that a later line never meets a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    self.child = Some(child);
                    return Ok(());
                }
            }
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            if Instant::now() >= deadline {
                return Err(format!(
                    "kontrol did not start within {START_TIMEOUT:?} ({status:?}); see {}",
                    self.log().display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`, and waits until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
