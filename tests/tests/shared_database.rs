//! The services in one PostgreSQL schema or one SQLite file (as in development and the all-in-one
//! binary): each migrator keeps its own bookkeeping, so none sees another's migrations as unknown,
//! in any order, however often they run. Here rather than in a service's own tests because it
//! composes services, which only the all-in-one binary, the bench and these tests may do.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use vigil_registry::store::SessionStore;
use vigil_runtime::database::DatabaseConfig;
use vigil_termination::store::TerminationStore;
use vigil_tests::TestSchema;
use vigil_tests::tempdir::TempDir;

type RegistryMigrator = vigil_registry::store::migration::Migrator;
type TerminationMigrator = vigil_termination::store::migration::Migrator;

/// Runs `test` on a fresh PostgreSQL schema, then on a fresh SQLite file.
async fn on_both<F, Fut>(test: F)
where
    F: Fn(DatabaseConfig) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = TestSchema::new().await;
    test(schema.config.clone()).await;
    let dir = TempDir::new();
    test(DatabaseConfig {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display()),
        ..DatabaseConfig::default()
    })
    .await;
}

async fn migration_versions(db: &impl ConnectionTrait, table: &str) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT version FROM {table} ORDER BY version"),
        ))
        .await
        .expect("read the bookkeeping table");
    rows.into_iter().map(|row| row.try_get_by_index(0).unwrap()).collect()
}

fn names<M: MigratorTrait>() -> Vec<String> {
    M::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_termination_migrators_share_a_database() {
    on_both(|config| async move {
        // Termination first (migrated on opening), the registry after, then both again.
        let termination = vigil_termination::app::open_store(&config, true)
            .await
            .expect("termination store");
        let registry = vigil_registry::store::SqlStore::new(termination.connection().clone())
            .await
            .expect("registry store");
        for _ in 0..2 {
            registry.migrate().await.expect("registry migrations");
            termination.migrate().await.expect("termination migrations");
        }
        let db = termination.connection();
        assert!(
            TerminationMigrator::get_pending_migrations(db)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(RegistryMigrator::get_pending_migrations(db).await.unwrap().is_empty());
        assert_eq!(
            migration_versions(db, "termination_migrations").await,
            names::<TerminationMigrator>()
        );
        assert_eq!(
            migration_versions(db, "registry_migrations").await,
            names::<RegistryMigrator>()
        );

        // Both services work on the shared database.
        registry
            .gateway_connected("gw-1", "replica-1", "1.0.0", 1_700_000_000_000)
            .await
            .expect("registry write");
        assert_eq!(registry.list_gateways(false).await.unwrap().len(), 1);
        assert!(termination.open_commands_for_gateway("gw-1").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_termination_and_policy_migrators_share_a_database() {
    on_both(|config| async move {
        let store = vigil_policy::app::open_store(&config, true).await.expect("policy store");
        let db = store.connection();
        RegistryMigrator::up(db, None).await.unwrap();
        TerminationMigrator::up(db, None).await.unwrap();
        // Each keeps its own bookkeeping, so each runs again without tripping over the others'.
        store.migrate().await.unwrap();
        RegistryMigrator::up(db, None).await.unwrap();
        let ours = migration_versions(db, "policy_migrations").await;
        assert_eq!(ours.len(), 9, "{ours:?}");
        // The policy service's migrations are numbered `_2000nn`, apart from the others'.
        assert!(
            ours.iter().all(|version| version
                .split('_')
                .nth(1)
                .is_some_and(|number| number.starts_with("2000"))),
            "{ours:?}"
        );
        assert!(
            !migration_versions(db, "termination_migrations")
                .await
                .iter()
                .any(|version| ours.contains(version))
        );
        if db.get_database_backend() == DbBackend::Postgres {
            let tables = db
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'polic%'",
                ))
                .await
                .unwrap();
            let count: i64 = tables[0].try_get_by_index(0).unwrap();
            assert_eq!(
                count, 11,
                "policies, policy_slots, policy_idle_warnings, policy_leases, policy_audit_events, policy_locks, \
                 policy_lock_versions, policy_event_outbox, policy_event_cursors, policy_migrations, policy_set_versions"
            );
        }
    })
    .await;
}
