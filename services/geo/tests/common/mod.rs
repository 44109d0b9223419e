//! Shared by the geo service's integration tests: temporary directories, and stores on
//! PostgreSQL (a fresh schema on `VIGIL_TEST_DATABASE_URL`) and SQLite (a fresh file).

#![allow(dead_code, unused_macros)] // each test crate uses part of it

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use uuid::Uuid;
use vigil_geo::store::SqlHistoryStore;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("vigil-geo-test-{}", Uuid::new_v4().simple()));
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

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `condition` until it holds, failing the test after `deadline`.
pub async fn eventually(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `test` on a store in a schema of its own, then drops the schema (also when the test fails).
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<SqlHistoryStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = std::env::var("VIGIL_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let admin = Database::connect(url.as_str()).await.expect("connect to PostgreSQL");
    let schema = format!("t_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the test schema");

    let mut options = ConnectOptions::new(url);
    options
        .set_schema_search_path(schema.clone())
        .max_connections(4)
        .sqlx_logging(false);
    let db = Database::connect(options).await.expect("connect to the test schema");
    let store = Arc::new(SqlHistoryStore::new(db).expect("store"));
    store.migrate().await.expect("migrate");

    let outcome = tokio::spawn(test(store.clone())).await;
    let _ = store.connection().close_by_ref().await;
    let _ = admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Runs `test` on a store in a new SQLite file (a file, not `:memory:`, so that pooled
/// connections share it), then deletes the file.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<SqlHistoryStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TempDir::new();
    let path = dir.join("history.db");
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options.max_connections(4).sqlx_logging(false);
    let db = Database::connect(options).await.expect("open SQLite");
    let store = Arc::new(SqlHistoryStore::new(db).expect("store"));
    store.migrate().await.expect("migrate");

    let outcome = tokio::spawn(test(store.clone())).await;
    let _ = store.connection().close_by_ref().await;
    drop(dir);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// Declares each test once per backend: `postgres::<name>` and `sqlite::<name>`, each an
/// `async fn(Arc<SqlHistoryStore>)` in the including file.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::common::on_postgres(super::$name).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::common::on_sqlite(super::$name).await;
                }
            )*
        }
    };
}
