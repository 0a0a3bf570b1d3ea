//! A real PostgreSQL server for tests: a cluster made by `initdb` (once per machine, then
//! copied) in a scratch directory (`/dev/shm` if present), started with `pg_ctl` on 127.0.0.1 with a free port (its
//! Unix socket inside that directory), waited on with `pg_ctl -w` and `pg_isready`, stopped
//! and removed when dropped. Debian's server
//! binaries (`/usr/lib/postgresql/<version>/bin`, installed by `scripts/setup.sh`) are used;
//! `KITE_TEST_PG_BIN` may name another directory. PostgreSQL refuses to run as root, so as root
//! the server runs as the `postgres` user (via `runuser`) and owns its directory.
//!
//! Include it with `#[path = "common/postgres.rs"] mod postgres_server;`.
#![allow(dead_code, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

use kite::kontrol::storage::postgres::PostgresConfig;
use sqlx::{Connection, PgConnection};

/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";

/// A PostgreSQL server of the test's own.
pub struct PgServer {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some("postgres")` when running as root: commands run as that user.
    run_as: Option<&'static str>,
}

impl PgServer {
    /// Creates a cluster in a new temporary directory and starts it; returns once it accepts
    /// connections.
    pub fn start() -> PgServer {
        let bin = server_bin();
        let run_as = is_root().then_some("postgres");
        let template = template(&bin, run_as);
        let root = scratch().join(format!("kite-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join("sock")).expect("create the server's directory");
        // `cp -a` keeps the owner and the 0700 mode PostgreSQL insists on.
        run(
            Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(root.join("data")),
            "cp",
        );
        if let Some(user) = run_as {
            run(
                Command::new("chown")
                    .arg(format!("{user}:"))
                    .arg(&root)
                    .arg(root.join("sock")),
                "chown",
            );
        }
        let server = PgServer {
            port: free_port(),
            root,
            bin,
            run_as,
        };
        server.resume();
        server
    }

    /// The server shared by the tests of this process that hold it; started on first use and
    /// stopped when the last holder drops it. Tests give each other room by using databases
    /// of their own ([`PgServer::create_database`]).
    pub fn shared() -> Arc<PgServer> {
        static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(PgServer::start());
        *shared = Arc::downgrade(&server);
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits until it is down.
    pub fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .expect("run pg_ctl stop");
        check(&out, "pg_ctl stop");
    }

    /// Stops the server as a crash would (immediate shutdown: no checkpoint, so it runs
    /// crash recovery when started again and unlogged tables come back empty); waits until
    /// it is down.
    pub fn crash(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "60", "stop"])
            .output()
            .expect("run pg_ctl stop");
        check(&out, "pg_ctl stop -m immediate");
    }

    /// Starts the (stopped) server again on the same port; returns once it accepts
    /// connections.
    pub fn resume(&self) {
        let options = format!(
            "-F -p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 \
             -c wal_level=minimal -c max_wal_senders=0 -c full_page_writes=off -c synchronous_commit=off",
            self.port,
            self.root.join("sock").display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("run pg_ctl start");
        if !out.status.success() {
            panic!(
                "pg_ctl start failed: {}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
        // pg_ctl -w already waited for the server to accept connections; confirm over TCP.
        let out = Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-t", "30", "-p", &self.port.to_string()])
            .output()
            .expect("run pg_isready");
        check(&out, "pg_isready");
    }

    /// Settings to reach database `dbname` as `username`.
    pub fn config_as(&self, username: &str, dbname: &str) -> PostgresConfig {
        PostgresConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            username: username.into(),
            password: String::new(),
            dbname: dbname.into(),
            ..PostgresConfig::default()
        }
    }

    /// Settings to reach database `dbname` as the superuser.
    pub fn config(&self, dbname: &str) -> PostgresConfig {
        self.config_as(SUPERUSER, dbname)
    }

    /// Creates an empty database with a fresh name and returns the name.
    pub async fn create_database(&self) -> String {
        let name = format!("kite_{}", uuid::Uuid::new_v4().simple());
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await;
        name
    }

    /// Runs `sql` (one or more statements, no parameters) in `dbname` as the superuser.
    pub async fn execute(&self, dbname: &str, sql: &str) {
        let mut conn = self.connect(dbname).await;
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("executing SQL in {dbname}: {e}\n{sql}"));
        let _ = conn.close().await;
    }

    /// A plain connection to `dbname` as the superuser.
    pub async fn connect(&self, dbname: &str) -> PgConnection {
        let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .database(dbname)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("connecting to {dbname}: {e}"))
    }

    /// Process id of the running server's postmaster (its sessions are its children).
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: nothing needs to be kept. Fails harmlessly if already stopped.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A freshly `initdb`-ed cluster to copy, made once per server version and user and kept in
/// the scratch directory (initdb takes seconds; a copy takes a fraction of one).
fn template(bin: &Path, run_as: Option<&str>) -> PathBuf {
    let version = Command::new(bin.join("initdb"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let owner = run_as.map_or_else(|| format!("uid{}", uid()), str::to_string);
    let dir = scratch().join(format!("kite-pg-template-{version}-{owner}"));
    static MAKING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join("data").join("PG_VERSION").exists() {
        return dir;
    }
    // Built aside and renamed into place, so that a half-made template is never used.
    let tmp = scratch().join(format!(
        "kite-pg-template-tmp-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&tmp).expect("create the template directory");
    let mut cmd = match run_as {
        Some(user) => {
            run(
                Command::new("chown").arg(format!("{user}:")).arg(&tmp),
                "chown",
            );
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join("initdb"));
            c
        }
        None => Command::new(bin.join("initdb")),
    };
    let out = cmd
        .arg("-D")
        .arg(tmp.join("data"))
        .args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .output()
        .expect("run initdb");
    check(&out, "initdb");
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test process made it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        dir.join("data").join("PG_VERSION").exists(),
        "template cluster at {}",
        dir.display()
    );
    dir
}

/// The server binaries [`PgServer::start`] uses; panics saying how to get them when missing.
fn server_bin() -> PathBuf {
    find_server_bin().unwrap_or_else(|why| panic!("{why}"))
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, or `KITE_TEST_PG_BIN`; an
/// error saying how to get them when there is none.
pub fn find_server_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KITE_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => Err(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: \
             run scripts/setup.sh (installs Debian's `postgresql`) or set KITE_TEST_PG_BIN"
                .into(),
        ),
    }
}

/// Where clusters live: memory-backed `/dev/shm` when there is one (a cluster is tens of
/// megabytes written at once), else the temporary directory.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn is_root() -> bool {
    uid() == "0"
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    check(&out, what);
}

fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
