//! Shared by the geo service's integration tests: the store harness for `contract_tests!` (a
//! store on a database of the test's own, PostgreSQL or SQLite; see `vigil-testkit`).

#![allow(dead_code, unused_imports)] // each test crate uses part of it

use std::future::Future;
use std::sync::Arc;

use vigil_geo::store::SqlHistoryStore;
pub use vigil_testkit::{TempDir, TestDatabase, eventually_within};

/// Opens and migrates a store on `database`, runs `test` on it, and closes it.
pub async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlHistoryStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = Arc::new(SqlHistoryStore::new(database.connect().await).expect("store"));
    store.migrate().await.expect("migrate");
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}
