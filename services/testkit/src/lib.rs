//! What Vigil's tests share, so that each store's contract suite and each end-to-end test says only
//! what it tests:
//!
//! - [`TestDatabase`]: a database of one test's own — a fresh PostgreSQL schema on the server of
//!   `VIGIL_TEST_DATABASE_URL`, or a new SQLite file — removed afterwards, also when the test fails
//!   ([`with_database`]).
//! - [`contract_tests!`]: runs each test of a store's contract on both, as `postgres::<name>` and
//!   `sqlite::<name>`, through the suite's own harness (which opens and migrates its store).
//! - [`eventually`] and the patience constants: how long a test waits for what happens in the
//!   background.
//! - [`TempDir`]: a directory of a test's own.

pub mod http;
mod throwaway_postgres;

pub use throwaway_postgres::ThrowawayPostgres;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

/// Where the tests find PostgreSQL when `VIGIL_TEST_DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long a test waits for something that happens in the background (a write, an event, a
/// reconnection) before it fails. Generous: CI's two cores run two suites at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] looks again.
pub const POLL: Duration = Duration::from_millis(25);

/// The PostgreSQL server of the tests.
pub fn database_url() -> String {
    std::env::var("VIGIL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A database of one test's own: a fresh PostgreSQL schema, or a new SQLite file (a file, not
/// `:memory:`, so that several pooled connections share it and concurrency is real).
pub enum TestDatabase {
    Postgres {
        url: String,
        schema: String,
        admin: DatabaseConnection,
    },
    Sqlite {
        path: PathBuf,
    },
}

impl TestDatabase {
    /// A new schema on the tests' PostgreSQL server.
    pub async fn postgres() -> Self {
        let url = database_url();
        let admin = Database::connect(url.as_str()).await.expect("connect to PostgreSQL");
        let schema = format!("t_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the test schema");
        Self::Postgres { url, schema, admin }
    }

    /// A new SQLite file under the system's temporary directory.
    pub fn sqlite() -> Self {
        Self::Sqlite {
            path: std::env::temp_dir().join(format!("vigil-test-{}.db", Uuid::new_v4().simple())),
        }
    }

    /// Options for a pool of its own (like one replica's): four connections, no statement logs.
    pub fn options(&self) -> ConnectOptions {
        let mut options = match self {
            Self::Postgres { url, schema, .. } => {
                let mut options = ConnectOptions::new(url.clone());
                options.set_schema_search_path(schema.clone());
                options
            }
            Self::Sqlite { path } => ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display())),
        };
        options.max_connections(4).sqlx_logging(false);
        options
    }

    /// A new pool on this database.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.options())
            .await
            .expect("connect to the test database")
    }

    /// Removes the schema or the file. Best effort: a leftover is harmless.
    pub async fn remove(&self) {
        match self {
            Self::Postgres { schema, admin, .. } => {
                let _ = admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await;
            }
            Self::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

/// Runs `test` on `database`, then removes the database, also when the test fails.
pub async fn with_database<F, Fut>(database: TestDatabase, test: F)
where
    F: FnOnce(Arc<TestDatabase>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = Arc::new(database);
    let outcome = tokio::spawn(test(database.clone())).await;
    database.remove().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Runs each named test of a store's contract on PostgreSQL and on SQLite: as
/// `postgres::<name>` and `sqlite::<name>`. A harness is the suite's
/// `async fn(Arc<TestDatabase>, test)`, which opens (and migrates) the store and hands it to the
/// test; a suite with tests of several shapes names a harness per group.
///
/// ```ignore
/// vigil_testkit::contract_tests!(on_store; record_and_get_round_trip, lists_page_by_time);
/// vigil_testkit::contract_tests!(on_store: [record_and_get_round_trip], on_database: [migrations_race]);
/// ```
#[macro_export]
macro_rules! contract_tests {
    ($harness:ident; $($name:ident),* $(,)?) => {
        $crate::contract_tests!($harness: [$($name),*]);
    };
    ($($harness:ident: [$($name:ident),* $(,)?]),+ $(,)?) => {
        mod postgres {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let database = $crate::TestDatabase::postgres().await;
                    $crate::with_database(database, |database| super::$harness(database, super::$name)).await;
                }
            )*)+
        }
        mod sqlite {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let database = $crate::TestDatabase::sqlite();
                    $crate::with_database(database, |database| super::$harness(database, super::$name)).await;
                }
            )*)+
        }
    };
}

/// Retries `check` until it returns `Some`, or fails the test, naming `what`, after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(PATIENCE, what, check).await
}

/// [`eventually`] with a patience of the caller's.
pub async fn eventually_within<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what} (after {patience:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every transaction running anywhere on the server when called has ended (PostgreSQL;
/// nothing to wait for on SQLite). An event outbox is read only below the oldest running
/// transaction (`vigil_events::Outbox`), and tests share one server: a long transaction of a test
/// running beside this one would otherwise hide events this test committed.
pub async fn past_running_transactions(db: &DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let number = |sql: &'static str| async move {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql))
            .await
            .expect("ask PostgreSQL about transactions")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a transaction number")
    };
    // A transaction id of its own, taken now: every transaction running earlier has a lower one.
    let now = number("SELECT txid_current()").await;
    eventually("the transactions running earlier to end", || async move {
        (number("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").await > now).then_some(())
    })
    .await;
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("vigil-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
