//! Connecting to PostgreSQL (production) or SQLite (the embedded default) through sea-orm.
//!
//! The URL may hold a password: it is only ever shown through [`redact_url`], in `Debug`,
//! `Display`, logs and error messages alike.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// How long a SQLite connection waits for another one's write lock before failing with
/// "database is locked". Several pooled connections share one file, so waiting is the norm.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Statements slower than this are logged at warn.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);

/// Where and how to connect.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db` or `sqlite://path/to/file.db?mode=rwc`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// Connections the pool keeps open when idle.
    pub min_connections: u32,
    /// Size of a second pool, apart from the one serving calls, for the service's background work
    /// (the registry's activity writes, idle marking, gateway liveness and event relay; policy's
    /// sweeper; termination's re-sends), so that no load on the API can starve it. `0` runs the
    /// background work on the API's pool. An in-memory SQLite database always shares one pool (a
    /// second pool would be a second, empty database).
    pub background_connections: u32,
    /// How long to wait for a new connection, and for a free one from the pool.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// A pooled connection idle at least this long is checked (one round trip) before it is
    /// handed out; one used more recently is handed out as it is. Checking every time, the pool's
    /// habit, doubled the round trips of a busy service (admission is five statements in series).
    /// A connection that failed is closed when it goes back to the pool, so a database that
    /// restarted is noticed either way; only one restarted within this window can fail a call
    /// once. `0s` checks every time.
    #[serde(with = "humantime_serde")]
    pub check_idle_after: Duration,
    /// PostgreSQL only: the schema this service's tables live in (set as the `search_path` of
    /// every connection). It must exist; see [`create_schema`].
    pub schema: Option<String>,
}

impl Default for DatabaseConfig {
    /// A SQLite file under `vigil-data/`, created on first use: the all-in-one binary runs
    /// without any database server.
    fn default() -> Self {
        Self {
            url: "sqlite://vigil-data/vigil.db?mode=rwc".to_owned(),
            max_connections: 8,
            min_connections: 1,
            background_connections: 4,
            connect_timeout: Duration::from_secs(5),
            check_idle_after: Duration::from_secs(1),
            schema: None,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("background_connections", &self.background_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("check_idle_after", &self.check_idle_after)
            .field("schema", &self.schema)
            .finish()
    }
}

impl fmt::Display for DatabaseConfig {
    /// The redacted URL, plus the schema when one is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))?;
        match &self.schema {
            Some(schema) => write!(f, " (schema {schema})"),
            None => Ok(()),
        }
    }
}

/// The database engines Vigil runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    fn of(url: &str) -> Result<Self, ServiceError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(ServiceError::invalid(format!(
                "unsupported database URL {}: expected postgres://… or sqlite:…",
                redact_url(url)
            )))
        }
    }
}

/// Opens a connection pool.
///
/// SQLite: the directory of the database file is created if missing, and every connection uses
/// WAL journaling and a busy timeout, so that pooled connections wait for each other's writes
/// instead of failing with "database is locked". (A transaction that starts as a reader and then
/// writes can still be refused; writers should begin their transactions as writers.)
///
/// PostgreSQL: when `schema` is set, it becomes the `search_path` of every connection.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, ServiceError> {
    let redacted = redact_url(&config.url);
    let engine = Engine::of(&config.url)?;

    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .min_connections(config.min_connections)
        .connect_timeout(config.connect_timeout)
        .acquire_timeout(config.connect_timeout)
        .test_before_acquire_if_idle_for(config.check_idle_after)
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Debug)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, SLOW_STATEMENT);

    match engine {
        Engine::Sqlite => {
            if config.schema.is_some() {
                tracing::warn!(url = %redacted, "database.schema is ignored: SQLite has no schemas");
            }
            create_sqlite_directory(&config.url)?;
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable across application crashes in WAL mode, and much faster than FULL.
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
            });
        }
        Engine::Postgres => {
            if let Some(schema) = &config.schema {
                validate_schema_name(schema)?;
                options.set_schema_search_path(schema.clone());
            }
        }
    }

    tracing::info!(url = %redacted, schema = ?config.schema, max_connections = config.max_connections, "connecting to the database");
    Database::connect(options)
        .await
        .map_err(|error| ServiceError::Unavailable(format!("cannot connect to the database at {redacted}: {error}")))
}

/// The pool for the service's background work (see [`DatabaseConfig::background_connections`]):
/// a pool of its own on the same database, or `api` itself when the configuration says `0` or the
/// database is an in-memory SQLite one.
pub async fn connect_background(
    config: &DatabaseConfig,
    api: &DatabaseConnection,
) -> Result<DatabaseConnection, ServiceError> {
    if config.background_connections == 0 || is_sqlite_memory(&config.url) {
        return Ok(api.clone());
    }
    let background = DatabaseConfig {
        max_connections: config.background_connections,
        min_connections: config.min_connections.min(config.background_connections),
        ..config.clone()
    };
    connect(&background).await
}

fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// Creates the directory a file-backed SQLite URL points into, so `mode=rwc` can create the file.
fn create_sqlite_directory(url: &str) -> Result<(), ServiceError> {
    if is_sqlite_memory(url) {
        return Ok(());
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| ServiceError::invalid(format!("invalid SQLite URL {url}: {error}")))?;
    let Some(directory) = options
        .get_filename()
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
    else {
        return Ok(());
    };
    std::fs::create_dir_all(directory).map_err(|error| {
        ServiceError::Unavailable(format!(
            "cannot create the directory {} for the SQLite database: {error}",
            directory.display()
        ))
    })
}

/// Returns `url` with the password replaced by `****`: in the user-info part
/// (`postgres://user:****@host/db`) and in `password=` query parameters. Strings that are not
/// URLs come back unchanged.
pub fn redact_url(url: &str) -> String {
    const MASK: &str = "****";
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);

    let mut redacted = String::with_capacity(url.len());
    redacted.push_str(head);
    // The host follows the *last* '@': an unencoded '@' inside the password must not leak the rest.
    match authority.rfind('@') {
        Some(at) => {
            let (user_info, host) = authority.split_at(at);
            match user_info.split_once(':') {
                Some((user, _password)) => {
                    redacted.push_str(user);
                    redacted.push(':');
                    redacted.push_str(MASK);
                }
                None => redacted.push_str(user_info),
            }
            redacted.push_str(host);
        }
        None => redacted.push_str(authority),
    }

    match tail.split_once('?') {
        Some((path, query)) => {
            redacted.push_str(path);
            redacted.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((key, _value)) if key.to_ascii_lowercase().contains("password") => format!("{key}={MASK}"),
                    _ => parameter.to_owned(),
                })
                .collect();
            redacted.push_str(&parameters.join("&"));
            if let Some(fragment) = fragment {
                redacted.push('#');
                redacted.push_str(fragment);
            }
        }
        None => redacted.push_str(tail),
    }
    redacted
}

/// Creates a PostgreSQL schema if it does not exist, connecting with `admin_url` (a role allowed
/// to create schemas). Tests use it to give each test its own schema.
pub async fn create_schema(admin_url: &str, schema: &str) -> Result<(), ServiceError> {
    validate_schema_name(schema)?;
    execute_as_admin(admin_url, &format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await
}

/// Drops a PostgreSQL schema and everything in it, if it exists.
pub async fn drop_schema(admin_url: &str, schema: &str) -> Result<(), ServiceError> {
    validate_schema_name(schema)?;
    execute_as_admin(admin_url, &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await
}

/// Runs one statement over a short-lived single connection.
async fn execute_as_admin(admin_url: &str, sql: &str) -> Result<(), ServiceError> {
    if Engine::of(admin_url)? != Engine::Postgres {
        return Err(ServiceError::invalid(format!(
            "schemas exist in PostgreSQL only, not at {}",
            redact_url(admin_url)
        )));
    }
    let mut options = ConnectOptions::new(admin_url.to_owned());
    options.max_connections(1).min_connections(0).sqlx_logging(false);
    let db = Database::connect(options).await.map_err(|error| {
        ServiceError::Unavailable(format!(
            "cannot connect to the database at {}: {error}",
            redact_url(admin_url)
        ))
    })?;
    let outcome = db.execute_unprepared(sql).await;
    // Closing only returns the connection; the statement's outcome is what the caller needs.
    if let Err(error) = db.close().await {
        tracing::debug!(%error, "closing the admin connection failed");
    }
    outcome.map(|_| ()).map_err(ServiceError::from)
}

/// Accepts plain SQL identifiers only (`[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes, PostgreSQL's
/// limit), so a schema name can be quoted into SQL without any escaping question.
fn validate_schema_name(schema: &str) -> Result<(), ServiceError> {
    let mut chars = schema.chars();
    let valid_start = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_start && valid_rest && schema.len() <= 63 {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "schema name {schema:?} must be 1–63 letters, digits or underscores, not starting with a digit"
        )))
    }
}

/// SQLite 3.35 brought `UPDATE … RETURNING`, which every store relies on.
const MIN_SQLITE_VERSION: (u32, u32) = (3, 35);

/// Checks that `db` is a backend Vigil's stores run on: PostgreSQL, or SQLite 3.35 or newer.
/// `service` names who needs it in the error.
pub async fn check_backend(db: &DatabaseConnection, service: &str) -> Result<(), ServiceError> {
    match db.get_database_backend() {
        DbBackend::Postgres => Ok(()),
        DbBackend::Sqlite => {
            let row = db
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT sqlite_version()"))
                .await?;
            let version: String = match row {
                Some(row) => row.try_get_by_index(0)?,
                None => return Err(ServiceError::internal("SQLite did not report its version")),
            };
            let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
            let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if found < MIN_SQLITE_VERSION {
                return Err(ServiceError::internal(format!(
                    "SQLite {version} is too old: the {service} needs {}.{} or newer",
                    MIN_SQLITE_VERSION.0, MIN_SQLITE_VERSION.1
                )));
            }
            Ok(())
        }
        other => Err(ServiceError::internal(format!(
            "unsupported database backend {other:?}"
        ))),
    }
}

/// A transaction that will write. On SQLite it takes the (database-wide) write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
/// `SQLITE_BUSY` instead of waiting when another connection wrote in between.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, ServiceError> {
    let sqlite = db.get_database_backend() == DbBackend::Sqlite;
    let options = TransactionOptions {
        sqlite_transaction_mode: sqlite.then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(db.begin_with_options(options).await?)
}

/// The PostgreSQL advisory lock key that serialises Vigil's migrations ("vigilreg" in ASCII: the
/// registry's, which every service now shares).
pub const MIGRATION_LOCK: i64 = 0x7669_6769_6c72_6567;

/// Applies the migrations of `M` that have not been applied yet. Safe when several replicas (of
/// one service or of several sharing a database) start at once: the migrations run in one
/// transaction that first takes a database-wide lock (a PostgreSQL advisory lock; SQLite's write
/// lock), so the others wait, then find nothing to do.
pub async fn migrate_locked<M: sea_orm_migration::MigratorTrait>(db: &DatabaseConnection) -> Result<(), ServiceError> {
    let txn = begin_write(db).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
    }
    M::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}

/// How long the readiness check waits for the database before calling it down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How often services check their dependencies for readiness: with [`PROBE_TIMEOUT`], a dead
/// database shows as NOT_SERVING within a second.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The readiness check of a database: a one-connection pool of its own, apart from the service's.
///
/// A ping through the service's pool would wait for a free connection, then for a new one, each
/// up to `database.connect_timeout` (5 s by default): a database that died (or hangs) went
/// unnoticed for that long, and a busy pool looked like a dead database. The probe's connection
/// is opened lazily, re-opened after a failure, and every check is bounded by its own timeout.
#[derive(Debug, Clone)]
pub struct Probe {
    db: DatabaseConnection,
    timeout: Duration,
}

impl Probe {
    /// A probe of the database `config` names, answering within `timeout`. Does not connect yet.
    pub async fn new(config: &DatabaseConfig, timeout: Duration) -> Result<Self, ServiceError> {
        let engine = Engine::of(&config.url)?;
        let mut options = ConnectOptions::new(config.url.clone());
        options
            .max_connections(1)
            .min_connections(0)
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            .connect_lazy(true)
            .sqlx_logging(false);
        if engine == Engine::Sqlite {
            options.map_sqlx_sqlite_opts(move |sqlite| sqlite.busy_timeout(timeout));
        }
        let db = Database::connect(options).await.map_err(|error| {
            ServiceError::Unavailable(format!(
                "cannot set up the database probe for {}: {error}",
                redact_url(&config.url)
            ))
        })?;
        Ok(Self { db, timeout })
    }

    /// Whether the database answered a ping within the timeout.
    pub async fn check(&self) -> bool {
        self.ping().await.is_ok()
    }

    /// A ping within the timeout, or why not.
    pub async fn ping(&self) -> Result<(), ServiceError> {
        match tokio::time::timeout(self.timeout, self.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ServiceError::Unavailable(format!("database ping failed: {error}"))),
            Err(_) => Err(ServiceError::Unavailable(format!(
                "the database did not answer within {:?}",
                self.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, Statement};

    use super::*;

    fn test_database_url() -> String {
        std::env::var("VIGIL_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    fn unique_name(prefix: &str) -> String {
        format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
    }

    #[test]
    fn redacts_the_password_in_user_info() {
        assert_eq!(
            redact_url("postgres://user:hunter2@host:5432/db"),
            "postgres://user:****@host:5432/db"
        );
        assert_eq!(
            redact_url("postgres://user:p@ss@host/db?sslmode=disable"),
            "postgres://user:****@host/db?sslmode=disable"
        );
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379"),
            "redis://:****@127.0.0.1:6379"
        );
    }

    #[test]
    fn redacts_password_query_parameters() {
        assert_eq!(
            redact_url("postgres://host/db?user=vigil&password=hunter2&sslmode=require"),
            "postgres://host/db?user=vigil&password=****&sslmode=require"
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://host/db",
            "sqlite://vigil-data/vigil.db?mode=rwc",
            "sqlite::memory:",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let config = DatabaseConfig {
            url: "postgres://vigil:hunter2@db/vigil".into(),
            schema: Some("registry".into()),
            ..DatabaseConfig::default()
        };
        for text in [format!("{config:?}"), config.to_string()] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("postgres://vigil:****@db/vigil"), "{text}");
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["registry", "_t1", "vigil_test_0123abcd"] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a\"; DROP TABLE x; --", "ä", &"x".repeat(64)] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn rejects_unknown_engines() {
        let config = DatabaseConfig {
            url: "mysql://root:pw@localhost/db".into(),
            ..DatabaseConfig::default()
        };
        let error = connect(&config).await.unwrap_err();
        assert!(matches!(error, ServiceError::InvalidArgument(_)), "{error}");
        assert!(!error.to_string().contains(":pw@"), "{error}");
    }

    /// An in-memory SQLite database is one per pool: the background work must share the API's.
    #[tokio::test]
    async fn background_work_shares_an_in_memory_sqlite_pool() {
        let config = DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            ..DatabaseConfig::default()
        };
        let api = connect(&config).await.unwrap();
        api.execute_unprepared("CREATE TABLE probe (id integer)").await.unwrap();
        let background = connect_background(&config, &api).await.unwrap();
        background
            .execute_unprepared("INSERT INTO probe VALUES (1)")
            .await
            .unwrap();
    }

    /// A file database gets a pool of its own, on the same file.
    #[tokio::test]
    async fn background_work_on_a_file_gets_a_pool_of_its_own() {
        let directory = std::env::temp_dir().join(unique_name("vigil-background"));
        let config = DatabaseConfig {
            url: format!("sqlite://{}?mode=rwc", directory.join("vigil.db").display()),
            max_connections: 1,
            background_connections: 1,
            ..DatabaseConfig::default()
        };
        let api = connect(&config).await.unwrap();
        api.execute_unprepared("CREATE TABLE probe (id integer)").await.unwrap();
        // The API's only connection is taken: the background pool still answers.
        let held = begin_write(&api).await.unwrap();
        let background = connect_background(&config, &api).await.unwrap();
        let count = background
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM probe"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count.try_get_by_index::<i64>(0).unwrap(), 0);
        drop(held);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[tokio::test]
    async fn sqlite_file_in_a_new_directory() {
        let directory = std::env::temp_dir().join(unique_name("vigil-sqlite"));
        let file = directory.join("nested").join("vigil.db");
        assert!(!directory.exists());
        let config = DatabaseConfig {
            url: format!("sqlite://{}?mode=rwc", file.display()),
            max_connections: 4,
            ..DatabaseConfig::default()
        };

        let db = connect(&config).await.unwrap();
        let one = db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT 1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.try_get_by_index::<i32>(0).unwrap(), 1);
        let mode = db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA journal_mode"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
        db.close().await.unwrap();

        assert!(file.is_file());
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[tokio::test]
    async fn postgres_with_a_schema_of_its_own() {
        let url = test_database_url();
        let schema = unique_name("vigil_runtime_test");
        create_schema(&url, &schema).await.unwrap();
        // Idempotent: a second create is not an error.
        create_schema(&url, &schema).await.unwrap();

        let config = DatabaseConfig {
            url: url.clone(),
            schema: Some(schema.clone()),
            ..DatabaseConfig::default()
        };
        let db = connect(&config).await.unwrap();
        let one = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT 1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.try_get_by_index::<i32>(0).unwrap(), 1);
        let current = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_schema()::text",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.try_get_by_index::<String>(0).unwrap(), schema);
        db.execute_unprepared("CREATE TABLE probe (id integer)").await.unwrap();
        db.close().await.unwrap();

        drop_schema(&url, &schema).await.unwrap();
        let admin = connect(&DatabaseConfig {
            url,
            ..DatabaseConfig::default()
        })
        .await
        .unwrap();
        let remaining = admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
                [schema.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(remaining.try_get_by_index::<i64>(0).unwrap(), 0);
    }

    #[tokio::test]
    async fn unreachable_postgres_is_unavailable_and_redacted() {
        // A port that was free a moment ago: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = DatabaseConfig {
            url: format!("postgres://vigil:hunter2@127.0.0.1:{port}/vigil"),
            min_connections: 0,
            connect_timeout: Duration::from_secs(2),
            ..DatabaseConfig::default()
        };
        let error = connect(&config).await.unwrap_err();
        assert!(matches!(error, ServiceError::Unavailable(_)), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
