//! Persistence: one [`Store`] over an [`AnyPool`], so the same queries run on
//! SQLite (the default, a file) and PostgreSQL.
//!
//! Every query is written once with `$1, $2…` placeholders (sqlx-sqlite
//! accepts them). The Any driver only knows simple types, so timestamps are
//! BIGINT milliseconds, JSON is TEXT and flags are BOOLEAN on PostgreSQL and
//! 0/1 INTEGER on SQLite (read back by `flag`). The schema lives in
//! `migrations/sqlite/` and `migrations/postgres/`: the same tables and
//! columns, only the types differ.
//!
//! Privacy: no message body is kept. The message map only links remote ids to
//! Matrix event ids, the spool holds an event only until it is in Matrix, and
//! [`Store::purge_before`] enforces retention.
//!
//! One noun per file: `portal`, `ghost`, `user` (Matrix users and their
//! logins), `message` (message and reaction maps), `txn` (appservice
//! transaction and event dedupe), `state` (module state), `spool` (remote
//! events handed over durably, until they reach Matrix).

mod ghost;
mod message;
mod portal;
mod spool;
mod state;
mod txn;
mod user;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor, Row};

pub use ghost::GhostRow;
pub use message::{MessageRow, ReactionRow};
pub use portal::PortalRow;
pub use spool::SpoolRow;
pub use txn::PurgeCounts;
pub use user::{LoginRow, LoginState, MatrixUserRow};

pub type Result<T, E = Error> = std::result::Result<T, E>;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long an SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// A store error. Its `Display` names the kind of failure only: SQL text,
/// constraint names and connection URLs stay in the source chain and `Debug`,
/// for logs. Tell Matrix users [`Error::user_message`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening the pool failed: server down, bad credentials, unreadable file.
    #[error("could not connect to the database")]
    Connect(#[source] Box<sqlx::Error>),
    #[error("database query failed")]
    Database(#[source] Box<sqlx::Error>),
    #[error("database migration failed")]
    Migrate(#[source] Box<MigrateError>),
    /// The URL is neither `sqlite:` nor `postgres://`/`postgresql://`.
    #[error("unsupported database URL scheme `{scheme}` (expected sqlite or postgres)")]
    UnsupportedUrl { scheme: String },
    /// A stored value the code cannot read back (unknown enum string, invalid
    /// JSON): the database was edited by hand or by a newer version.
    #[error("invalid stored value in `{column}`")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
}

impl Error {
    /// What a Matrix user may be told: never SQL, never a URL.
    pub fn user_message(&self) -> &'static str {
        "internal database error"
    }

    /// Whether a unique constraint refused the write, e.g. a room that is
    /// already a portal or an event id that is already mapped.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Database(e) => e
                .as_database_error()
                .is_some_and(|db| db.is_unique_violation()),
            _ => false,
        }
    }

    /// Whether retrying later can help: the database is unreachable,
    /// restarting, overloaded, or the write lost a lock race. Constraint
    /// violations, bad data and configuration errors are permanent.
    pub fn is_transient(&self) -> bool {
        let (Error::Connect(e) | Error::Database(e)) = self else {
            return false;
        };
        match &**e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // The primary result code is the low byte of the extended one.
                    let primary = db
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .map(|c| c & 0xff);
                    matches!(primary, Some(SQLITE_BUSY | SQLITE_LOCKED))
                } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    let code = pg.code();
                    // 08: connection exception; 40001/40P01: serialization
                    // failure, deadlock; 53: insufficient resources;
                    // 57P01-03: the server is shutting down or starting.
                    code.starts_with("08")
                        || code.starts_with("53")
                        || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    fn corrupt(column: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            column,
            detail: detail.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(Box::new(e))
    }
}

impl From<MigrateError> for Error {
    fn from(e: MigrateError) -> Self {
        Error::Migrate(Box::new(e))
    }
}

/// The database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL's scheme.
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(Error::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// Pool settings; the defaults suit both backends.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// The bridge's database: portals, ghosts, users, logins, the message and
/// reaction maps, appservice dedupe and module state. Cheap to clone (the
/// pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the database and brings its schema up to date.
    ///
    /// `sqlite:` URLs create the file when it is missing (unless the URL sets
    /// its own `mode=`) and use WAL. An in-memory SQLite database
    /// (`sqlite::memory:`) is per connection, so it gets a single connection
    /// that is never recycled.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut pool_opts = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout);
        let url = match backend {
            Backend::Postgres => url.to_owned(),
            Backend::Sqlite => {
                if is_sqlite_memory(url) {
                    pool_opts = pool_opts
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                pool_opts = pool_opts.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL lets readers run while one connection writes;
                        // it is persistent, so setting it again is a no-op.
                        // In-memory databases answer "memory" and stay so.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; \
                             PRAGMA journal_mode = WAL;"
                        )))
                        .await?;
                        Ok(())
                    })
                });
                sqlite_url_creating_file(url)
            }
        };
        let pool = pool_opts
            .connect(&url)
            .await
            .map_err(|e| Error::Connect(Box::new(e)))?;
        backend.migrator().run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; later calls fail. Waits for checked-out
    /// connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Adds `mode=rwc` (create if missing) unless the URL chose a mode.
fn sqlite_url_creating_file(url: &str) -> String {
    if is_sqlite_memory(url) {
        return url.to_owned();
    }
    match url.split_once('?') {
        None => format!("{url}?mode=rwc"),
        Some((_, params)) if params.split('&').any(|p| p.starts_with("mode=")) => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
    }
}

/// Serialises a metadata column.
fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Reads a JSON TEXT column.
fn json_column(row: &AnyRow, column: &'static str) -> Result<serde_json::Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| Error::corrupt(column, e.to_string()))
}

/// Reads a flag column: PostgreSQL returns BOOLEAN, SQLite an integer.
fn flag(row: &AnyRow, column: &'static str) -> Result<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://passerelle.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u:p@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(matches!(
            Backend::from_url("mysql://u:secret@h/db"),
            Err(Error::UnsupportedUrl { scheme }) if scheme == "mysql"
        ));
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            sqlite_url_creating_file("sqlite://passerelle.db"),
            "sqlite://passerelle.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite://a.db?cache=private"),
            "sqlite://a.db?cache=private&mode=rwc"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        assert_eq!(
            sqlite_url_creating_file("sqlite::memory:"),
            "sqlite::memory:"
        );
    }

    #[test]
    fn errors_do_not_leak_details() {
        let err = Error::from(sqlx::Error::Protocol(
            "SELECT secret FROM login WHERE mxid = '@a:b'".into(),
        ));
        assert_eq!(err.to_string(), "database query failed");
        assert_eq!(err.user_message(), "internal database error");
        assert!(format!("{err:?}").contains("SELECT secret"));
        let err = Backend::from_url("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert_eq!(err.user_message(), "internal database error");
    }
}
