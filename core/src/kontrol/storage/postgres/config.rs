//! Where the PostgreSQL storage connects ([`PostgresConfig`]) and how a failed call names
//! its target (`Target`): the bottom of `postgres`, below its schema, watch and queries.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::kontrol::storage::StorageError;

/// Where the PostgreSQL storage connects. Field names follow the reference's
/// `KONTROL_POSTGRES_*` settings.
#[derive(Clone)]
pub struct PostgresConfig {
    /// Server host name or address, or a directory holding its Unix socket (starts with `/`).
    /// Default: `localhost`.
    pub host: String,
    /// Server port. Default: 5432.
    pub port: u16,
    /// Role to connect as (required).
    pub username: String,
    /// Its password; empty for none. Default: empty.
    pub password: String,
    /// Database name (required).
    pub dbname: String,
    /// How long a call waits for a database connection before failing with
    /// [`StorageError::Unavailable`]; dialling is retried within it. Default: 5 s.
    pub connect_timeout: Duration,
    /// Connections kept at most (one more is used for watching). Default: 10.
    pub max_connections: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 5432,
            username: String::new(),
            password: String::new(),
            dbname: String::new(),
            connect_timeout: Duration::from_secs(5),
            max_connections: 10,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "[redacted]"
                },
            )
            .field("dbname", &self.dbname)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PostgresConfig {
    pub(super) fn connect_options(&self) -> PgConnectOptions {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.username)
            .database(&self.dbname)
            .ssl_mode(PgSslMode::Disable)
            .application_name("kite-kontrol");
        if !self.password.is_empty() {
            o = o.password(&self.password);
        }
        o
    }

    /// `host:port/dbname`, for messages.
    pub(super) fn target(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.dbname)
    }
}

/// What a call failed on, for messages.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) name: String,
    pub(super) timeout: Duration,
}

impl Target {
    /// Maps a driver error: bad data to [`StorageError::Invalid`], the rest to
    /// [`StorageError::Unavailable`].
    pub(super) fn err(&self, e: sqlx::Error) -> StorageError {
        match e {
            sqlx::Error::PoolTimedOut => StorageError::Unavailable(format!(
                "postgres: no connection to {} within {:?} (is the server running?)",
                self.name, self.timeout
            )),
            sqlx::Error::PoolClosed => StorageError::Unavailable(format!(
                "postgres: connection pool for {} is closed",
                self.name
            )),
            sqlx::Error::Io(e) => StorageError::Unavailable(format!(
                "postgres: connection to {} failed: {e}",
                self.name
            )),
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default().into_owned();
                // Classes 22 (data exception) and 23 (integrity violation) are the caller's data.
                if code.starts_with("22") || code.starts_with("23") {
                    StorageError::Invalid(format!("postgres: {}", d.message()))
                } else {
                    StorageError::Unavailable(format!("postgres: {} ({code})", d.message()))
                }
            }
            other => StorageError::Unavailable(format!("postgres: {}: {other}", self.name)),
        }
    }
}
