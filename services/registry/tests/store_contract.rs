//! The `SessionStore` contract: one suite, run against PostgreSQL and SQLite.
//!
//! Each test is an `async fn(Arc<SqlStore>)` on a migrated store; `contract_tests!` runs it as
//! `postgres::<name>` (a fresh schema on the database of `VIGIL_TEST_DATABASE_URL`, dropped
//! afterwards) and as `sqlite::<name>` (a fresh database file, deleted afterwards). Expected results come from
//! small in-test models of the rules (`expected_*`), so every filter and order is checked on data
//! with ties and a mix of live and ended sessions.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use sea_orm_migration::MigratorTrait;
use uuid::Uuid;
use vigil_registry::domain::{
    EndReason, GatewayEnd, GeoLocation, ListQuery, LocationKind, PageCursor, PendingActivity, ResourceType,
    RiskAssessment, RiskFlag, Selector, SessionEnd, SessionFilter, SessionRecord, SessionStats, SessionStatus, SortKey,
    SortValue,
};
use vigil_registry::store::migration::Migrator;
use vigil_registry::store::{SessionStore, SqlStore};
use vigil_runtime::ServiceError;
use vigil_testkit::TestDatabase;

/// A fixed "now" for the data: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const IDLE_AFTER_MS: i64 = 300_000;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A store on `database` with a connection pool of its own (like one replica), not migrated.
async fn open_store(database: &TestDatabase) -> SqlStore {
    SqlStore::new(database.connect().await).await.expect("store")
}

/// Runs `test` on a migrated store on `database`.
async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = open_store(&database).await;
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}

/// Runs `test` on the bare database (for the tests of migrating it).
async fn on_database<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<TestDatabase>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(database).await;
}

vigil_testkit::contract_tests!(
    on_store: [
        insert_and_get_round_trip_every_field,
        inserting_a_taken_id_is_already_exists,
        ending_is_idempotent_and_limited_to_the_gateway,
        ending_in_a_batch_answers_each_entry_in_order,
        activity_only_moves_forward_and_merges_duplicates,
        activity_ignores_ended_unknown_and_foreign_sessions,
        activity_wakes_idle_sessions_with_recent_input,
        mark_idle_turns_stale_active_sessions_idle_in_batches,
        activity_moves_sessions_in_the_last_activity_order_and_out_of_the_idle_sweep,
        mark_idle_from_two_callers_returns_each_session_once,
        reconcile_ends_missing_registers_unknown_and_leaves_known,
        list_applies_every_filter,
        list_query_treats_like_wildcards_literally,
        free_text_finds_sessions_however_they_were_inserted,
        free_text_finds_sessions_by_country_name_and_code,
        free_text_finds_countries_of_sessions_recorded_before_they_were_searched,
        free_text_of_live_sessions_follows_every_end_and_revival,
        free_text_finds_sessions_recorded_before_their_times_were_copied,
        free_text_pages_reach_matches_beyond_the_walk,
        list_pages_through_every_order_in_both_directions,
        list_page_edges_and_bad_cursors,
        list_total_is_exact_up_to_the_limit_then_a_lower_bound,
        stats_count_live_sessions,
        resolve_each_selector,
        live_locations_are_the_users_live_sessions,
        live_targets_come_in_batches_of_whole_gateways,
        gateways_connect_seen_disconnect_and_list,
        migrations_are_idempotent,
        gateways_seen_in_one_batch_only_move_forward,
        lost_gateways_have_their_sessions_ended_once,
        lost_gateways_from_two_callers_end_each_session_once,
        a_returning_gateway_revives_only_the_lost_sessions_it_holds,
        activity_is_kept_through_ends,
        activity_is_kept_through_revival_idle_and_wake,
    ],
    on_database: [first_migration_from_two_replicas_at_once],
);

// ---------------------------------------------------------------------------------------------
// Fixtures and models of the rules
// ---------------------------------------------------------------------------------------------

fn session(user: &str, gateway: &str) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4().to_string(),
        user: user.to_owned(),
        user_groups: vec!["staff".to_owned()],
        gateway_id: gateway.to_owned(),
        resource_name: "db-1".to_owned(),
        resource_type: ResourceType::Ssh,
        device: "laptop".to_owned(),
        client_ip: "203.0.113.7".to_owned(),
        location: GeoLocation::default(),
        risk: RiskAssessment::default(),
        started_at: T0,
        last_activity_at: T0,
        status: SessionStatus::Active,
        ended_at: None,
        end_reason: None,
        end_detail: String::new(),
        bytes_in: 0,
        bytes_out: 0,
    }
}

fn ended(mut session: SessionRecord, at: i64) -> SessionRecord {
    session.status = SessionStatus::Disconnected;
    session.ended_at = Some(at);
    session.end_reason = Some(EndReason::UserClosed);
    session.end_detail = "logout".to_owned();
    session
}

fn end(at: i64, reason: EndReason) -> SessionEnd {
    SessionEnd {
        ended_at: at,
        reason,
        detail: format!("{reason:?}"),
    }
}

fn flag(code: &str) -> RiskFlag {
    RiskFlag {
        code: code.to_owned(),
        points: 25,
        explanation: format!("{code} fired"),
    }
}

async fn insert_all(store: &SqlStore, sessions: &[SessionRecord]) {
    for session in sessions {
        store.insert_session(session).await.expect("insert");
    }
}

async fn get(store: &SqlStore, id: &str) -> SessionRecord {
    store.get_session(id).await.expect("get").expect("session exists")
}

fn ids(sessions: &[SessionRecord]) -> Vec<String> {
    sessions.iter().map(|session| session.id.clone()).collect()
}

fn id_set(sessions: &[SessionRecord]) -> HashSet<String> {
    sessions.iter().map(|session| session.id.clone()).collect()
}

fn activity(id: &str, last_input_at: Option<i64>, bytes_in: u64, bytes_out: u64) -> PendingActivity {
    PendingActivity {
        session_id: id.to_owned(),
        last_input_at,
        bytes_in,
        bytes_out,
    }
}

/// Thirty sessions with ties on every sort key, on two gateways, live and ended.
fn dataset() -> Vec<SessionRecord> {
    const USERS: [&str; 3] = ["alice", "bob", "carol"];
    const RESOURCES: [&str; 3] = ["db-1", "jump", "web-portal"];
    const TYPES: [ResourceType; 3] = [ResourceType::Ssh, ResourceType::Rdp, ResourceType::Web];
    const PLACES: [(&str, &str); 3] = [("Berlin", "DE"), ("Austin", "US"), ("Paris", "FR")];
    (0..30_i64)
        .map(|i| {
            let n = i as usize;
            let (city, country) = PLACES[n % 3];
            let mut session = SessionRecord {
                resource_name: RESOURCES[(n / 2) % 3].to_owned(),
                resource_type: TYPES[(n / 3) % 3],
                device: format!("laptop-{}", i % 2),
                client_ip: format!("10.0.0.{}", i % 6),
                location: GeoLocation {
                    kind: LocationKind::Located as i32,
                    city: city.to_owned(),
                    country_code: country.to_owned(),
                    ..GeoLocation::default()
                },
                risk: RiskAssessment {
                    assessed: true,
                    score: ((i % 4) * 10) as u32,
                    flags: if i % 4 == 3 {
                        vec![flag("NEW_COUNTRY")]
                    } else {
                        Vec::new()
                    },
                },
                started_at: T0 + (i % 7) * 1_000,
                last_activity_at: T0 + 10_000 + (i % 5) * 1_000,
                status: if i % 5 == 0 {
                    SessionStatus::Idle
                } else {
                    SessionStatus::Active
                },
                ..session(USERS[n % 3], if i % 2 == 0 { "gw-a" } else { "gw-b" })
            };
            if i % 6 == 5 {
                session = ended(session, T0 + 50_000 + i * 1_000);
            }
            session
        })
        .collect()
}

/// What `SessionFilter` says a list should contain.
fn expected_match(filter: &SessionFilter, session: &SessionRecord) -> bool {
    let status = if filter.statuses.is_empty() {
        session.is_live()
    } else {
        filter.statuses.contains(&session.status)
    };
    status && expected_match_ignoring_status(filter, session)
}

fn expected_match_ignoring_status(filter: &SessionFilter, session: &SessionRecord) -> bool {
    let text = [
        session.user.as_str(),
        &session.resource_name,
        &session.device,
        &session.client_ip,
        &session.location.city,
        &session.gateway_id,
    ]
    .map(str::to_lowercase);
    filter.user.as_ref().is_none_or(|user| &session.user == user)
        && filter
            .resource_name
            .as_ref()
            .is_none_or(|name| &session.resource_name == name)
        && filter
            .resource_type
            .is_none_or(|resource_type| session.resource_type == resource_type)
        && filter
            .gateway_id
            .as_ref()
            .is_none_or(|gateway| &session.gateway_id == gateway)
        && filter
            .country_code
            .as_ref()
            .is_none_or(|country| &session.location.country_code == country)
        && filter
            .query
            .as_ref()
            .is_none_or(|query| text.iter().any(|field| field.contains(query.as_str())))
        && filter.min_risk_score.is_none_or(|score| session.risk.score >= score)
        && (!filter.flagged_only || !session.risk.flags.is_empty())
        && filter.client_ip.as_ref().is_none_or(|ip| &session.client_ip == ip)
}

/// The list order: sort key, then id, both reversed when descending.
fn expected_order(sessions: &[SessionRecord], filter: &SessionFilter, key: SortKey, ascending: bool) -> Vec<String> {
    let mut matching: Vec<&SessionRecord> = sessions
        .iter()
        .filter(|session| expected_match(filter, session))
        .collect();
    matching.sort_by(|a, b| {
        let by_key = match (key.value_of(a), key.value_of(b)) {
            (SortValue::Int(a), SortValue::Int(b)) => a.cmp(&b),
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(&b),
            _ => Ordering::Equal,
        };
        let ordering = by_key.then_with(|| a.id.cmp(&b.id));
        if ascending { ordering } else { ordering.reverse() }
    });
    matching.into_iter().map(|session| session.id.clone()).collect()
}

fn query(filter: SessionFilter, sort: SortKey, ascending: bool, limit: u64, after: Option<PageCursor>) -> ListQuery {
    ListQuery {
        filter,
        sort,
        ascending,
        limit,
        after,
    }
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

async fn insert_and_get_round_trip_every_field(store: Arc<SqlStore>) {
    let full = SessionRecord {
        id: Uuid::new_v4().to_string(),
        user: "Ünïcode.User@example.com".to_owned(),
        user_groups: vec!["admins".to_owned(), "on-call".to_owned()],
        gateway_id: "gw-frankfurt-1".to_owned(),
        resource_name: "prod-db".to_owned(),
        resource_type: ResourceType::Rdp,
        device: "MacBook \"work\"".to_owned(),
        client_ip: "2001:db8::1".to_owned(),
        location: GeoLocation {
            kind: LocationKind::Located as i32,
            city: "Frankfurt am Main".to_owned(),
            region: "Hesse".to_owned(),
            country_code: "DE".to_owned(),
            country_name: "Germany".to_owned(),
            coordinates: Some((50.1109, 8.682_127)),
            accuracy_radius_km: 20,
            time_zone: "Europe/Berlin".to_owned(),
            asn: 4_200_000_000,
            asn_organization: "Example Carrier GmbH".to_owned(),
        },
        risk: RiskAssessment {
            assessed: true,
            score: 75,
            flags: vec![
                flag("IMPOSSIBLE_TRAVEL"),
                RiskFlag {
                    points: 50,
                    ..flag("NEW_DEVICE")
                },
            ],
        },
        started_at: T0,
        last_activity_at: T0 + 1_234,
        status: SessionStatus::Disconnected,
        ended_at: Some(T0 + 9_999),
        end_reason: Some(EndReason::Admin),
        end_detail: "ended by ops: suspicious".to_owned(),
        bytes_in: 5_000_000_000_000,
        bytes_out: u64::try_from(i64::MAX).unwrap(),
    };
    let minimal = SessionRecord {
        location: GeoLocation {
            kind: LocationKind::Private as i32,
            ..GeoLocation::default()
        },
        user_groups: Vec::new(),
        ..session("bob", "gw-1")
    };
    insert_all(&store, &[full.clone(), minimal.clone()]).await;

    assert_eq!(get(&store, &full.id).await, full);
    assert_eq!(get(&store, &minimal.id).await, minimal);
    assert_eq!(store.get_session(&Uuid::new_v4().to_string()).await.unwrap(), None);
    store.ping().await.expect("ping");
}

async fn inserting_a_taken_id_is_already_exists(store: Arc<SqlStore>) {
    let original = session("alice", "gw-1");
    store.insert_session(&original).await.unwrap();
    let again = SessionRecord {
        user: "mallory".to_owned(),
        ..original.clone()
    };
    let error = store.insert_session(&again).await.unwrap_err();
    assert!(matches!(error, ServiceError::AlreadyExists(_)), "{error:?}");
    assert_eq!(
        get(&store, &original.id).await,
        original,
        "the first record is untouched"
    );
}

async fn ending_is_idempotent_and_limited_to_the_gateway(store: Arc<SqlStore>) {
    let on_a = session("alice", "gw-a");
    let other = session("bob", "gw-b");
    insert_all(&store, &[on_a.clone(), other.clone()]).await;

    let first = end(T0 + 5_000, EndReason::UserClosed);
    assert_eq!(
        store.end_session(&on_a.id, Some("gw-b"), &first).await.unwrap(),
        None,
        "another gateway's session"
    );
    assert!(get(&store, &on_a.id).await.is_live());

    let ended_record = store
        .end_session(&on_a.id, Some("gw-a"), &first)
        .await
        .unwrap()
        .expect("ended");
    let expected = SessionRecord {
        status: SessionStatus::Disconnected,
        ended_at: Some(T0 + 5_000),
        end_reason: Some(EndReason::UserClosed),
        end_detail: "UserClosed".to_owned(),
        ..on_a.clone()
    };
    assert_eq!(ended_record, expected);

    let second = end(T0 + 9_000, EndReason::Admin);
    assert_eq!(
        store.end_session(&on_a.id, None, &second).await.unwrap(),
        None,
        "second end changes nothing"
    );
    assert_eq!(get(&store, &on_a.id).await, expected);
    assert_eq!(
        store
            .end_session(&Uuid::new_v4().to_string(), None, &second)
            .await
            .unwrap(),
        None
    );

    let by_admin = store
        .end_session(&other.id, None, &second)
        .await
        .unwrap()
        .expect("ended without gateway check");
    assert_eq!(by_admin.end_reason, Some(EndReason::Admin));
}

async fn ending_in_a_batch_answers_each_entry_in_order(store: Arc<SqlStore>) {
    let first = session("alice", "gw-a");
    let second = session("bob", "gw-a");
    let foreign = session("carol", "gw-b");
    let already = ended(session("dave", "gw-a"), T0 + 1_000);
    insert_all(
        &store,
        &[first.clone(), second.clone(), foreign.clone(), already.clone()],
    )
    .await;
    let on_a = |id: &str, reason: EndReason| GatewayEnd {
        session_id: id.to_owned(),
        gateway_id: "gw-a".into(),
        end: end(T0 + 5_000, reason),
    };
    let unknown = Uuid::new_v4().to_string();
    let answers = store
        .end_sessions(&[
            on_a(&first.id, EndReason::Admin),
            on_a(&foreign.id, EndReason::Admin),
            on_a(&already.id, EndReason::Admin),
            on_a(&unknown, EndReason::Admin),
            on_a(&second.id, EndReason::Locked),
            on_a(&first.id, EndReason::Policy),
        ])
        .await
        .unwrap();
    let ended_ids: Vec<Option<String>> = answers.iter().map(|a| a.as_ref().map(|s| s.id.clone())).collect();
    assert_eq!(
        ended_ids,
        vec![Some(first.id.clone()), None, None, None, Some(second.id.clone()), None],
        "only live sessions of the gateway end, each once, answered at its first mention"
    );
    let expected = SessionRecord {
        status: SessionStatus::Disconnected,
        ended_at: Some(T0 + 5_000),
        end_reason: Some(EndReason::Locked),
        end_detail: "Locked".to_owned(),
        ..second.clone()
    };
    assert_eq!(answers[4].as_ref(), Some(&expected));
    assert_eq!(get(&store, &second.id).await, expected);
    assert!(
        get(&store, &foreign.id).await.is_live(),
        "another gateway's session stays live"
    );
    assert_eq!(
        get(&store, &already.id).await,
        already,
        "an ended session keeps its end"
    );
    assert!(store.end_sessions(&[]).await.unwrap().is_empty());
}

async fn activity_only_moves_forward_and_merges_duplicates(store: Arc<SqlStore>) {
    let tracked = SessionRecord {
        last_activity_at: T0 + 1_000,
        bytes_in: 100,
        bytes_out: 200,
        ..session("a", "gw")
    };
    insert_all(&store, std::slice::from_ref(&tracked)).await;
    let now = T0 + 10_000;
    let apply = |batch: Vec<PendingActivity>| {
        let store = store.clone();
        async move {
            store
                .apply_activity(None, &batch, now, IDLE_AFTER_MS)
                .await
                .expect("apply")
        }
    };
    let state = |store: Arc<SqlStore>, id: String| async move {
        let session = get(&store, &id).await;
        (session.last_activity_at, session.bytes_in, session.bytes_out)
    };

    assert!(
        apply(vec![activity(&tracked.id, Some(T0 + 5_000), 150, 250)])
            .await
            .is_empty(),
        "no status change"
    );
    assert_eq!(state(store.clone(), tracked.id.clone()).await, (T0 + 5_000, 150, 250));

    apply(vec![activity(&tracked.id, Some(T0 + 2_000), 10, 10)]).await;
    assert_eq!(
        state(store.clone(), tracked.id.clone()).await,
        (T0 + 5_000, 150, 250),
        "older report ignored"
    );

    apply(vec![activity(&tracked.id, None, 300, 250)]).await;
    assert_eq!(
        state(store.clone(), tracked.id.clone()).await,
        (T0 + 5_000, 300, 250),
        "bytes only"
    );

    apply(vec![
        activity(&tracked.id, Some(T0 + 9_000), 1_000, 1),
        activity(&tracked.id, Some(T0 + 8_000), 1, 2_000),
    ])
    .await;
    assert_eq!(
        state(store.clone(), tracked.id.clone()).await,
        (T0 + 9_000, 1_000, 2_000),
        "the maximum of each"
    );

    assert!(apply(Vec::new()).await.is_empty());
    assert_eq!(get(&store, &tracked.id).await.status, SessionStatus::Active);
}

async fn activity_ignores_ended_unknown_and_foreign_sessions(store: Arc<SqlStore>) {
    let finished = ended(session("a", "gw-a"), T0 + 500);
    let mine = session("b", "gw-a");
    let foreign = session("c", "gw-b");
    insert_all(&store, &[finished.clone(), mine.clone(), foreign.clone()]).await;
    let now = T0 + 10_000;
    let batch = [
        activity(&finished.id, Some(T0 + 5_000), 10, 10),
        activity(&mine.id, Some(T0 + 5_000), 10, 10),
        activity(&foreign.id, Some(T0 + 5_000), 10, 10),
        activity(&Uuid::new_v4().to_string(), Some(T0 + 5_000), 10, 10),
    ];
    store
        .apply_activity(Some("gw-a"), &batch, now, IDLE_AFTER_MS)
        .await
        .unwrap();

    assert_eq!(get(&store, &finished.id).await, finished);
    assert_eq!(get(&store, &foreign.id).await, foreign);
    let updated = get(&store, &mine.id).await;
    assert_eq!(
        (updated.last_activity_at, updated.bytes_in, updated.bytes_out),
        (T0 + 5_000, 10, 10)
    );
    assert_eq!(
        store.get_session(&batch[3].session_id).await.unwrap(),
        None,
        "unknown ids are not created"
    );

    // Without a gateway restriction, any live session takes the report.
    store.apply_activity(None, &batch, now, IDLE_AFTER_MS).await.unwrap();
    assert_eq!(get(&store, &foreign.id).await.bytes_in, 10);
    assert_eq!(get(&store, &finished.id).await, finished);
}

async fn activity_wakes_idle_sessions_with_recent_input(store: Arc<SqlStore>) {
    let idle = |user: &str, gateway: &str| SessionRecord {
        status: SessionStatus::Idle,
        ..session(user, gateway)
    };
    let wakes = idle("wakes", "gw-a");
    let old_input = idle("old-input", "gw-a");
    let bytes_only = idle("bytes-only", "gw-a");
    let foreign = idle("foreign", "gw-b");
    let active = session("active", "gw-a");
    insert_all(
        &store,
        &[
            wakes.clone(),
            old_input.clone(),
            bytes_only.clone(),
            foreign.clone(),
            active.clone(),
        ],
    )
    .await;

    let now = T0 + 1_000_000;
    let batch = [
        activity(&wakes.id, Some(now - 1_000), 1, 1),
        // Exactly at the threshold is not recent.
        activity(&old_input.id, Some(now - IDLE_AFTER_MS), 1, 1),
        activity(&bytes_only.id, None, 5, 5),
        activity(&foreign.id, Some(now - 1_000), 1, 1),
        activity(&active.id, Some(now - 1_000), 1, 1),
    ];
    let woken = store
        .apply_activity(Some("gw-a"), &batch, now, IDLE_AFTER_MS)
        .await
        .unwrap();
    let expected = SessionRecord {
        status: SessionStatus::Active,
        last_activity_at: now - 1_000,
        bytes_in: 1,
        bytes_out: 1,
        ..wakes.clone()
    };
    assert_eq!(
        woken,
        vec![expected.clone()],
        "only the idle session with recent input, in its new state"
    );
    assert_eq!(get(&store, &wakes.id).await, expected);
    assert_eq!(get(&store, &old_input.id).await.status, SessionStatus::Idle);
    assert_eq!(get(&store, &bytes_only.id).await.status, SessionStatus::Idle);
    assert_eq!(get(&store, &foreign.id).await.status, SessionStatus::Idle);

    let again = store
        .apply_activity(Some("gw-a"), &batch, now + 1, IDLE_AFTER_MS)
        .await
        .unwrap();
    assert!(again.is_empty(), "an active session is not reported again: {again:?}");
}

async fn mark_idle_turns_stale_active_sessions_idle_in_batches(store: Arc<SqlStore>) {
    let cutoff = T0 + 100_000;
    let stale: Vec<SessionRecord> = (0..5)
        .map(|i| SessionRecord {
            last_activity_at: T0 + i * 1_000,
            ..session("stale", "gw")
        })
        .collect();
    let fresh = SessionRecord {
        last_activity_at: cutoff,
        ..session("fresh", "gw")
    };
    let already_idle = SessionRecord {
        status: SessionStatus::Idle,
        ..session("idle", "gw")
    };
    let finished = ended(session("ended", "gw"), T0 + 1);
    insert_all(&store, &stale).await;
    insert_all(&store, &[fresh.clone(), already_idle.clone(), finished.clone()]).await;

    let first = store.mark_idle(cutoff, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(id_set(&first), id_set(&stale[..2]), "the longest inactive first");
    assert!(first.iter().all(|session| session.status == SessionStatus::Idle));
    let rest = store.mark_idle(cutoff, 10).await.unwrap();
    assert_eq!(id_set(&rest), id_set(&stale[2..]));
    assert!(store.mark_idle(cutoff, 10).await.unwrap().is_empty());
    assert!(store.mark_idle(cutoff, 0).await.unwrap().is_empty());

    for session in &stale {
        assert_eq!(
            get(&store, &session.id).await,
            SessionRecord {
                status: SessionStatus::Idle,
                ..session.clone()
            }
        );
    }
    assert_eq!(get(&store, &fresh.id).await, fresh);
    assert_eq!(get(&store, &already_idle.id).await, already_idle);
    assert_eq!(get(&store, &finished.id).await, finished);
}

/// Activity moves the indexed rank with the time: the list by last activity and the idle sweep
/// (which find sessions by rank) see it at once, and the exact time is kept.
async fn activity_moves_sessions_in_the_last_activity_order_and_out_of_the_idle_sweep(store: Arc<SqlStore>) {
    use vigil_registry::domain::LAST_ACTIVITY_ORDER_MS;
    let sessions: Vec<SessionRecord> = (0..3)
        .map(|i| SessionRecord {
            last_activity_at: T0 + i * LAST_ACTIVITY_ORDER_MS,
            ..session("u", "gw")
        })
        .collect();
    insert_all(&store, &sessions).await;
    // The oldest becomes the most recent, to the millisecond, within the newest's 10 s.
    let moved_to = T0 + 2 * LAST_ACTIVITY_ORDER_MS + 7;
    let now = T0 + 3 * LAST_ACTIVITY_ORDER_MS;
    store
        .apply_activity(
            None,
            &[activity(&sessions[0].id, Some(moved_to), 0, 0)],
            now,
            IDLE_AFTER_MS,
        )
        .await
        .unwrap();
    assert_eq!(get(&store, &sessions[0].id).await.last_activity_at, moved_to);

    let newest_first = store
        .list_sessions(&query(SessionFilter::default(), SortKey::LastActivity, false, 10, None))
        .await
        .unwrap();
    let mut same_rank = [sessions[0].id.clone(), sessions[2].id.clone()];
    same_rank.sort();
    same_rank.reverse();
    assert_eq!(
        ids(&newest_first.sessions),
        vec![same_rank[0].clone(), same_rank[1].clone(), sessions[1].id.clone()],
        "ranked by 10 s of last activity, then by id"
    );

    // A sweep for sessions idle since before the middle one's activity takes only that one.
    let idled = store.mark_idle(T0 + LAST_ACTIVITY_ORDER_MS + 1, 10).await.unwrap();
    assert_eq!(ids(&idled), vec![sessions[1].id.clone()]);
}

async fn mark_idle_from_two_callers_returns_each_session_once(store: Arc<SqlStore>) {
    let stale: Vec<SessionRecord> = (0..120)
        .map(|i| SessionRecord {
            last_activity_at: T0 + i,
            ..session("stale", "gw")
        })
        .collect();
    insert_all(&store, &stale).await;
    let sweep = |store: Arc<SqlStore>| async move {
        let mut taken = Vec::new();
        loop {
            let batch = store.mark_idle(T0 + 1_000_000, 7).await.expect("mark idle");
            if batch.is_empty() {
                return taken;
            }
            taken.extend(batch.into_iter().map(|session| session.id));
        }
    };
    let (first, second) = tokio::join!(tokio::spawn(sweep(store.clone())), tokio::spawn(sweep(store.clone())));
    let mut all: Vec<String> = first.unwrap();
    all.extend(second.unwrap());

    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a session was returned twice");
    assert_eq!(unique, id_set(&stale));
}

async fn reconcile_ends_missing_registers_unknown_and_leaves_known(store: Arc<SqlStore>) {
    let kept = SessionRecord {
        bytes_in: 7,
        ..session("kept", "gw-a")
    };
    let gone = session("gone", "gw-a");
    let already_ended = ended(session("old", "gw-a"), T0 + 10);
    let elsewhere = session("elsewhere", "gw-b");
    insert_all(
        &store,
        &[kept.clone(), gone.clone(), already_ended.clone(), elsewhere.clone()],
    )
    .await;

    let new = SessionRecord {
        started_at: T0 + 3,
        ..session("new", "gw-a")
    };
    // The gateway's view of a known session differs; the registry's record stays as it is.
    let kept_as_reported = SessionRecord {
        bytes_in: 999,
        ..kept.clone()
    };
    let lost = end(T0 + 20_000, EndReason::Lost);
    let outcome = store
        .reconcile_gateway("gw-a", &[kept_as_reported, new.clone()], &lost)
        .await
        .unwrap();

    let gone_ended = SessionRecord {
        status: SessionStatus::Disconnected,
        ended_at: Some(T0 + 20_000),
        end_reason: Some(EndReason::Lost),
        end_detail: "Lost".to_owned(),
        ..gone.clone()
    };
    assert_eq!(outcome.ended, vec![gone_ended.clone()]);
    assert_eq!(outcome.registered, vec![new.clone()]);
    assert_eq!(get(&store, &gone.id).await, gone_ended);
    assert_eq!(get(&store, &new.id).await, new);
    assert_eq!(get(&store, &kept.id).await, kept);
    assert_eq!(get(&store, &already_ended.id).await, already_ended);
    assert_eq!(get(&store, &elsewhere.id).await, elsewhere);

    let repeat = store
        .reconcile_gateway("gw-a", &[kept.clone(), new.clone()], &lost)
        .await
        .unwrap();
    assert!(repeat.ended.is_empty() && repeat.registered.is_empty(), "{repeat:?}");

    let emptied = store.reconcile_gateway("gw-a", &[], &lost).await.unwrap();
    assert_eq!(id_set(&emptied.ended), id_set(&[kept, new]));
    assert!(emptied.registered.is_empty());
}

async fn list_applies_every_filter(store: Arc<SqlStore>) {
    let data = dataset();
    insert_all(&store, &data).await;
    let filters = [
        SessionFilter::default(),
        filtered(|f| f.statuses = vec![SessionStatus::Idle]),
        filtered(|f| f.statuses = vec![SessionStatus::Disconnected]),
        filtered(|f| f.statuses = vec![SessionStatus::Active, SessionStatus::Disconnected]),
        filtered(|f| f.user = Some("bob".into())),
        filtered(|f| f.resource_name = Some("jump".into())),
        filtered(|f| f.resource_type = Some(ResourceType::Rdp)),
        filtered(|f| f.gateway_id = Some("gw-b".into())),
        filtered(|f| f.country_code = Some("DE".into())),
        filtered(|f| f.query = Some("berl".into())),
        filtered(|f| f.query = Some("10.0.0.3".into())),
        filtered(|f| f.query = Some("laptop-1".into())),
        filtered(|f| f.query = Some("gw-a".into())),
        filtered(|f| f.query = Some("nothing-like-this".into())),
        filtered(|f| f.min_risk_score = Some(20)),
        filtered(|f| f.flagged_only = true),
        filtered(|f| f.client_ip = Some("10.0.0.4".into())),
        filtered(|f| {
            f.statuses = vec![SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected];
            f.user = Some("alice".into());
            f.min_risk_score = Some(10);
        }),
    ];
    for filter in filters {
        let expected = expected_order(&data, &filter, SortKey::StartedAt, true);
        let page = store
            .list_sessions(&query(filter.clone(), SortKey::StartedAt, true, 1000, None))
            .await
            .unwrap();
        assert_eq!(ids(&page.sessions), expected, "{filter:?}");
        assert_eq!(page.total, expected.len() as u64, "{filter:?}");
        assert_eq!(page.next, None);
    }
    // The data set is varied enough for the filters above to mean something.
    assert!(expected_order(&data, &SessionFilter::default(), SortKey::StartedAt, true).len() > 20);
}

/// The default filter with what `set` changes.
fn filtered(set: impl FnOnce(&mut SessionFilter)) -> SessionFilter {
    let mut filter = SessionFilter::default();
    set(&mut filter);
    filter
}

async fn list_query_treats_like_wildcards_literally(store: Arc<SqlStore>) {
    let underscore = session("a_b", "gw");
    let letter = session("axb", "gw");
    let percent = SessionRecord {
        device: "100% laptop".into(),
        ..session("c", "gw")
    };
    let backslash = SessionRecord {
        device: r"corp\laptop".into(),
        ..session("d", "gw")
    };
    let upper = SessionRecord {
        device: "ThinkPad".into(),
        ..session("e", "gw")
    };
    insert_all(
        &store,
        &[
            underscore.clone(),
            letter.clone(),
            percent.clone(),
            backslash.clone(),
            upper.clone(),
        ],
    )
    .await;
    let search = |text: &str| {
        let store = store.clone();
        let filter = SessionFilter {
            query: Some(text.to_owned()),
            ..SessionFilter::default()
        };
        async move {
            id_set(
                &store
                    .list_sessions(&query(filter, SortKey::User, true, 100, None))
                    .await
                    .unwrap()
                    .sessions,
            )
        }
    };
    assert_eq!(search("a_b").await, id_set(std::slice::from_ref(&underscore)));
    assert_eq!(search("0%").await, id_set(std::slice::from_ref(&percent)));
    assert_eq!(search(r"p\l").await, id_set(std::slice::from_ref(&backslash)));
    assert_eq!(
        search("thinkpad").await,
        id_set(std::slice::from_ref(&upper)),
        "stored text is lower-cased"
    );
    assert_eq!(search("").await.len(), 5, "an empty query does not filter");
}

/// Free text searches the database's own copy of each session's text (`session_search`, filled
/// on insert): a session a gateway's hello registered is found like one admitted one at a time,
/// and an ended one drops out of the live list.
async fn free_text_finds_sessions_however_they_were_inserted(store: Arc<SqlStore>) {
    let admitted = SessionRecord {
        device: "Workstation-Alpha".to_owned(),
        ..session("ada", "gw-a")
    };
    insert_all(&store, std::slice::from_ref(&admitted)).await;
    let registered: Vec<SessionRecord> = ["alphabet-01", "beta-02"]
        .into_iter()
        .map(|device| SessionRecord {
            device: device.to_owned(),
            ..session("bob", "gw-b")
        })
        .collect();
    let outcome = store
        .reconcile_gateway("gw-b", &registered, &end(T0 + 1, EndReason::Lost))
        .await
        .unwrap();
    assert_eq!(outcome.registered.len(), 2);
    let search = |text: &str| SessionFilter {
        query: Some(text.to_owned()),
        ..SessionFilter::default()
    };
    let found = |store: Arc<SqlStore>, text: &'static str| async move {
        let page = store
            .list_sessions(&query(search(text), SortKey::StartedAt, true, 10, None))
            .await
            .unwrap();
        let mut found = ids(&page.sessions);
        found.sort();
        found
    };
    let mut alpha = vec![admitted.id.clone(), registered[0].id.clone()];
    alpha.sort();
    assert_eq!(
        found(store.clone(), "ALPHA").await,
        alpha,
        "case-insensitive, any field"
    );
    assert_eq!(found(store.clone(), "beta-0").await, vec![registered[1].id.clone()]);
    assert!(found(store.clone(), "gamma").await.is_empty());

    store
        .end_session(&admitted.id, None, &end(T0 + 2, EndReason::Admin))
        .await
        .unwrap();
    assert_eq!(found(store.clone(), "alpha").await, vec![registered[0].id.clone()]);
}

/// People search by the place they read in the table ("Bhutan"), not only by city: the country's
/// name and code are part of the searched text.
async fn free_text_finds_sessions_by_country_name_and_code(store: Arc<SqlStore>) {
    let located = |user: &str, city: &str, code: &str, name: &str| SessionRecord {
        location: GeoLocation {
            kind: LocationKind::Located as i32,
            city: city.to_owned(),
            country_code: code.to_owned(),
            country_name: name.to_owned(),
            ..GeoLocation::default()
        },
        ..session(user, "gw")
    };
    let thimphu = located("tashi", "Thimphu", "BT", "Bhutan");
    let berlin = located("anna", "Berlin", "DE", "Germany");
    insert_all(&store, &[thimphu.clone(), berlin.clone()]).await;
    let found = |text: &'static str| {
        let store = store.clone();
        async move {
            let filter = SessionFilter {
                query: Some(text.to_owned()),
                ..SessionFilter::default()
            };
            id_set(
                &store
                    .list_sessions(&query(filter, SortKey::User, true, 10, None))
                    .await
                    .unwrap()
                    .sessions,
            )
        }
    };
    assert_eq!(found("bhutan").await, id_set(std::slice::from_ref(&thimphu)));
    assert_eq!(found("Germany").await, id_set(std::slice::from_ref(&berlin)));
    assert!(found("france").await.is_empty());
}

/// Sessions recorded by a version that did not search countries: their stored text lacks them
/// until the migration writes it again.
async fn free_text_finds_countries_of_sessions_recorded_before_they_were_searched(store: Arc<SqlStore>) {
    use sea_orm::ConnectionTrait;
    let thimphu = SessionRecord {
        location: GeoLocation {
            kind: LocationKind::Located as i32,
            city: "Thimphu".to_owned(),
            country_code: "BT".to_owned(),
            country_name: "Bhutan".to_owned(),
            ..GeoLocation::default()
        },
        ..session("tashi", "gw")
    };
    insert_all(&store, std::slice::from_ref(&thimphu)).await;
    // The text as the earlier version wrote it: user, resource, device, address, city, gateway.
    let db = store.connection();
    let old_text = "tashi\ndb-1\nlaptop\n203.0.113.7\nthimphu\ngw";
    for (table, key) in [("sessions", "id"), ("session_search", "session_id")] {
        db.execute_unprepared(&format!(
            "UPDATE {table} SET search_text = '{old_text}' WHERE {key} = '{}'",
            thimphu.id
        ))
        .await
        .unwrap();
    }
    db.execute_unprepared("DELETE FROM registry_migrations WHERE version = 'm20261212_000402_search_text_countries'")
        .await
        .unwrap();
    let search = |text: &str| SessionFilter {
        query: Some(text.to_owned()),
        ..SessionFilter::default()
    };
    let found = |text: &'static str| {
        let store = store.clone();
        async move {
            id_set(
                &store
                    .list_sessions(&query(search(text), SortKey::User, true, 10, None))
                    .await
                    .unwrap()
                    .sessions,
            )
        }
    };
    assert!(found("bhutan").await.is_empty(), "the old text is in place");

    store.migrate().await.expect("migrate");
    assert_eq!(found("bhutan").await, id_set(std::slice::from_ref(&thimphu)));
    assert_eq!(found("BT").await, id_set(std::slice::from_ref(&thimphu)));
    assert_eq!(found("thimphu").await, id_set(std::slice::from_ref(&thimphu)));
}

/// A free-text list of live sessions by start time is chosen in `session_search` (which carries
/// each session's start time) and `session_activity` (whose rows are the live sessions); whichever
/// way a session ends, or comes back, that list must say what the list chosen in `sessions` says.
async fn free_text_of_live_sessions_follows_every_end_and_revival(store: Arc<SqlStore>) {
    let kiosk = |user: &str, gateway: &str, minute: i64| SessionRecord {
        device: format!("kiosk-{user}"),
        started_at: T0 + minute * 60_000,
        ..session(user, gateway)
    };
    let sessions: Vec<SessionRecord> = (0..12)
        .map(|n| kiosk(&format!("user{n}"), if n < 8 { "gw-a" } else { "gw-b" }, n % 5))
        .collect();
    insert_all(&store, &sessions).await;
    insert_all(&store, &[ended(kiosk("refused", "gw-a", 9), T0 + 9 * 60_000)]).await;
    let live_kiosks = |store: Arc<SqlStore>| async move { live_by_text_both_ways(&store, "kiosk", 5).await };
    let mut expected: HashSet<String> = id_set(&sessions);
    assert_eq!(
        live_kiosks(store.clone()).await,
        expected,
        "a refused start is not live"
    );

    // One end, then a batch of them.
    store
        .end_session(&sessions[0].id, None, &end(T0 + 10_000_000, EndReason::Admin))
        .await
        .unwrap()
        .expect("ended");
    expected.remove(&sessions[0].id);
    let batch: Vec<GatewayEnd> = sessions[1..3]
        .iter()
        .map(|session| GatewayEnd {
            session_id: session.id.clone(),
            gateway_id: "gw-a".into(),
            end: end(T0 + 10_000_000, EndReason::UserClosed),
        })
        .collect();
    store.end_sessions(&batch).await.unwrap();
    expected.remove(&sessions[1].id);
    expected.remove(&sessions[2].id);
    assert_eq!(live_kiosks(store.clone()).await, expected);

    // A gateway's reconnection without two of its sessions ends them.
    let still_held: Vec<SessionRecord> = sessions[3..6].to_vec();
    store
        .reconcile_gateway("gw-a", &still_held, &end(T0 + 10_000_000, EndReason::Lost))
        .await
        .unwrap();
    expected.remove(&sessions[6].id);
    expected.remove(&sessions[7].id);
    assert_eq!(live_kiosks(store.clone()).await, expected);

    // A lost gateway's sessions end; when it returns holding one, that one is live again.
    store.gateway_connected("gw-b", "replica-a", "1", T0).await.unwrap();
    let lost = store
        .end_lost_gateways(T0 + 5_000, &end(T0 + 10_000_000, EndReason::GatewayLost), 10)
        .await
        .unwrap();
    assert_eq!(lost.ended.len(), 4);
    for session in &sessions[8..12] {
        expected.remove(&session.id);
    }
    assert_eq!(live_kiosks(store.clone()).await, expected);
    let revived = store
        .revive_lost_sessions("gw-b", &ids(&sessions[8..9]), T0 + 10_000_500, IDLE_AFTER_MS)
        .await
        .unwrap();
    assert_eq!(ids(&revived), ids(&sessions[8..9]));
    expected.insert(sessions[8].id.clone());
    assert_eq!(live_kiosks(store.clone()).await, expected);
}

/// The live sessions matching `text`, newest first, `page_size` at a time; checked to be the list
/// the plan reading every match in `sessions` gives, oldest first too, with a steady total.
async fn live_by_text_both_ways(store: &SqlStore, text: &str, page_size: u64) -> HashSet<String> {
    let text_alone = SessionFilter {
        query: Some(text.into()),
        ..SessionFilter::default()
    };
    // The same list, by the plan that reads every match in `sessions` (no session's score is
    // below zero).
    let through_sessions = SessionFilter {
        min_risk_score: Some(0),
        ..text_alone.clone()
    };
    let mut lists = Vec::new();
    for filter in [text_alone, through_sessions] {
        for ascending in [false, true] {
            let (mut seen, mut after, mut totals) = (Vec::new(), None, HashSet::new());
            loop {
                let page = store
                    .list_sessions(&query(filter.clone(), SortKey::StartedAt, ascending, page_size, after))
                    .await
                    .unwrap();
                totals.insert(page.total);
                seen.extend(ids(&page.sessions));
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
            // Exact up to the limit, then the limit (as a floor).
            let total = (seen.len() as u64).min(vigil_registry::domain::EXACT_TOTAL_UP_TO);
            assert_eq!(totals, HashSet::from([total]), "{filter:?}");
            lists.push(seen);
        }
    }
    assert_eq!(lists[0], lists[2], "newest first, both plans");
    assert_eq!(lists[1], lists[3], "oldest first, both plans");
    let mut reversed = lists[1].clone();
    reversed.reverse();
    assert_eq!(lists[0], reversed);
    lists[0].iter().cloned().collect()
}

/// A term with more matches than the exact total is found among the sessions after the cursor,
/// walked in the list's order a bounded number at a time (pages of 25 walk 1,040): matches beyond
/// them, too few among them, or ended ones among them must still give the list the plan reading
/// every match in `sessions` gives.
async fn free_text_pages_reach_matches_beyond_the_walk(store: Arc<SqlStore>) {
    use vigil_registry::domain::EXACT_TOTAL_UP_TO;
    let at_minute = |device: String, minute: i64| SessionRecord {
        device,
        started_at: T0 + minute * 60_000,
        ..session("pat", "gw")
    };
    // Kiosks older than every desk, then more desks than a walk, with one live kiosk and an ended
    // one among the newest desks, and an ended one among the kiosks.
    let mut kiosks: Vec<SessionRecord> = (0..=EXACT_TOTAL_UP_TO as i64 + 9)
        .map(|n| at_minute(format!("kiosk-{n}"), -2_000 + n))
        .collect();
    let desks: Vec<SessionRecord> = (0..1_100).map(|n| at_minute(format!("desk-{n}"), n)).collect();
    kiosks.push(at_minute("kiosk-fresh".into(), 1_050));
    // Recorded as a gateway's hello: in bulk.
    let held: Vec<SessionRecord> = kiosks.iter().chain(&desks).cloned().collect();
    store
        .reconcile_gateway("gw", &held, &end(T0, EndReason::Lost))
        .await
        .unwrap();
    let gone = [
        ended(at_minute("kiosk-gone".into(), 1_060), T0 + 1_070 * 60_000),
        ended(at_minute("kiosk-gone-early".into(), -1_500), T0),
    ];
    insert_all(&store, &gone).await;

    assert_eq!(
        live_by_text_both_ways(&store, "kiosk", 25).await,
        id_set(&kiosks),
        "every live kiosk, old and new, and not the ended ones"
    );
}

/// Sessions recorded before `session_search` carried start times: the migration copies them, so
/// the live list by free text finds the live ones in their order, and not the ended.
async fn free_text_finds_sessions_recorded_before_their_times_were_copied(store: Arc<SqlStore>) {
    use sea_orm::ConnectionTrait;
    let older = SessionRecord {
        started_at: T0 - 60_000,
        ..session("pat", "gw")
    };
    let newer = session("pat", "gw");
    let gone = ended(session("pat", "gw"), T0 + 1_000);
    insert_all(&store, &[older.clone(), newer.clone(), gone]).await;
    // The columns as the migration finds them: the defaults of a column added to existing rows.
    let db = store.connection();
    db.execute_unprepared("UPDATE session_search SET started_at = 0")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM registry_migrations WHERE version = 'm20261215_000701_free_text_covering'")
        .await
        .unwrap();
    store.migrate().await.expect("migrate");
    let filter = SessionFilter {
        query: Some("pat".into()),
        ..SessionFilter::default()
    };
    let page = store
        .list_sessions(&query(filter, SortKey::StartedAt, false, 10, None))
        .await
        .unwrap();
    assert_eq!(ids(&page.sessions), ids(&[newer, older]));
    assert_eq!(page.total, 2);
}

/// What admission tells geo of a user's other sessions: where each live one comes from, every
/// field of it, and nothing of ended sessions or other users'.
async fn live_locations_are_the_users_live_sessions(store: Arc<SqlStore>) {
    let at = |city: &str, coordinates: Option<(f64, f64)>| GeoLocation {
        kind: LocationKind::Located as i32,
        city: city.to_owned(),
        region: format!("{city} region"),
        country_code: "DE".to_owned(),
        country_name: "Germany".to_owned(),
        coordinates,
        accuracy_radius_km: 20,
        time_zone: "Europe/Berlin".to_owned(),
        asn: 3320,
        asn_organization: "Deutsche Telekom AG".to_owned(),
    };
    let located = |user: &str, location: GeoLocation| SessionRecord {
        location,
        ..session(user, "gw")
    };
    let berlin = at("Berlin", Some((52.52, 13.405)));
    let unplaced = at("Hamburg", None);
    insert_all(
        &store,
        &[
            located("lea", berlin.clone()),
            located("lea", unplaced.clone()),
            ended(located("lea", at("Munich", Some((48.1, 11.6)))), T0 + 1),
            located("max", at("Cologne", Some((50.9, 6.9)))),
        ],
    )
    .await;
    let mut found = store.live_locations_of("lea").await.unwrap();
    found.sort_by(|a, b| a.city.cmp(&b.city));
    assert_eq!(found, [berlin, unplaced]);
    assert!(store.live_locations_of("nobody").await.unwrap().is_empty());
}

async fn list_pages_through_every_order_in_both_directions(store: Arc<SqlStore>) {
    let data = dataset();
    insert_all(&store, &data).await;
    let everything = SessionFilter {
        statuses: vec![SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected],
        ..SessionFilter::default()
    };
    let on_gateway = SessionFilter {
        gateway_id: Some("gw-a".into()),
        ..SessionFilter::default()
    };
    // Free text pages by another plan (every match read, counted in the same pass).
    let free_text = SessionFilter {
        statuses: everything.statuses.clone(),
        query: Some("laptop-1".into()),
        ..SessionFilter::default()
    };
    let keys = [
        SortKey::StartedAt,
        SortKey::LastActivity,
        SortKey::User,
        SortKey::Resource,
        SortKey::RiskScore,
    ];
    // Live sessions by free text alone: newest first, chosen in `session_search` alone.
    let live_text = SessionFilter {
        query: Some("laptop-1".into()),
        ..SessionFilter::default()
    };
    for filter in [everything, on_gateway, free_text, live_text] {
        for key in keys {
            for ascending in [true, false] {
                let expected = expected_order(&data, &filter, key, ascending);
                let mut seen = Vec::new();
                let mut after = None;
                let mut pages = 0;
                loop {
                    let page = store
                        .list_sessions(&query(filter.clone(), key, ascending, 4, after))
                        .await
                        .unwrap();
                    assert_eq!(page.total, expected.len() as u64);
                    pages += 1;
                    seen.extend(ids(&page.sessions));
                    match page.next {
                        Some(cursor) => {
                            assert_eq!(page.sessions.len(), 4, "only full pages have a next");
                            after = Some(cursor);
                        }
                        None => break,
                    }
                    assert!(pages <= expected.len(), "paging does not end");
                }
                assert!(pages >= 3, "{key:?}: {pages} pages");
                assert_eq!(seen, expected, "{key:?} ascending={ascending} {filter:?}");
            }
        }
    }
}

async fn list_total_is_exact_up_to_the_limit_then_a_lower_bound(store: Arc<SqlStore>) {
    use vigil_registry::domain::EXACT_TOTAL_UP_TO;
    let limit = EXACT_TOTAL_UP_TO as usize;
    // Exactly at the limit on "gw-a", one past it on "gw-b" (one more than gw-a's).
    let sessions: Vec<SessionRecord> = (0..limit)
        .map(|_| session("u", "gw-a"))
        .chain((0..=limit).map(|_| session("u", "gw-b")))
        .collect();
    insert_all(&store, &sessions).await;
    let on = |gateway: &str| SessionFilter {
        gateway_id: Some(gateway.into()),
        ..SessionFilter::default()
    };
    let on_text = |gateway: &str| SessionFilter {
        query: Some(gateway.into()),
        ..SessionFilter::default()
    };

    // By gateway and by free text (the count apart from the page: the free-text page is found
    // among the newest sessions).
    for filter in [on, on_text] {
        let at_limit = store
            .list_sessions(&query(filter("gw-a"), SortKey::StartedAt, true, 10, None))
            .await
            .unwrap();
        assert_eq!(
            (at_limit.total, at_limit.total_is_lower_bound),
            (EXACT_TOTAL_UP_TO, false)
        );
        let past_limit = store
            .list_sessions(&query(filter("gw-b"), SortKey::StartedAt, true, 10, None))
            .await
            .unwrap();
        assert_eq!(
            (
                past_limit.total,
                past_limit.total_is_lower_bound,
                past_limit.sessions.len()
            ),
            (EXACT_TOTAL_UP_TO, true, 10),
            "past the limit the total is a floor, and the page is still served"
        );
        let next = store
            .list_sessions(&query(filter("gw-a"), SortKey::StartedAt, true, 10, at_limit.next))
            .await
            .unwrap();
        assert_eq!(
            next.total, EXACT_TOTAL_UP_TO,
            "a next page counts every match, not those after it"
        );
    }
}

async fn list_page_edges_and_bad_cursors(store: Arc<SqlStore>) {
    let sessions: Vec<SessionRecord> = (0..4)
        .map(|i| SessionRecord {
            started_at: T0 + i,
            ..session("u", "gw")
        })
        .collect();
    insert_all(&store, &sessions).await;

    let exact = store
        .list_sessions(&query(SessionFilter::default(), SortKey::StartedAt, true, 4, None))
        .await
        .unwrap();
    assert_eq!(
        (exact.sessions.len(), exact.next, exact.total),
        (4, None, 4),
        "a page that ends exactly has no next"
    );

    let first = store
        .list_sessions(&query(SessionFilter::default(), SortKey::StartedAt, true, 3, None))
        .await
        .unwrap();
    let next = first.next.expect("more rows");
    assert_eq!(
        next,
        PageCursor {
            value: SortValue::Int(T0 + 2),
            id: sessions[2].id.clone()
        }
    );

    let empty = SessionFilter {
        user: Some("nobody".into()),
        ..SessionFilter::default()
    };
    let none = store
        .list_sessions(&query(empty, SortKey::User, false, 10, None))
        .await
        .unwrap();
    assert_eq!((none.sessions.len(), none.next, none.total), (0, None, 0));

    let wrong_kind = PageCursor {
        value: SortValue::Text("u".into()),
        id: sessions[0].id.clone(),
    };
    let error = store
        .list_sessions(&query(
            SessionFilter::default(),
            SortKey::StartedAt,
            true,
            3,
            Some(wrong_kind),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, ServiceError::InvalidArgument(_)), "{error:?}");
    for limit in [0, 1001] {
        let error = store
            .list_sessions(&query(SessionFilter::default(), SortKey::User, true, limit, None))
            .await;
        assert!(
            matches!(error, Err(ServiceError::InvalidArgument(_))),
            "limit {limit}: {error:?}"
        );
    }
}

async fn stats_count_live_sessions(store: Arc<SqlStore>) {
    let now = T0 + 100_000;
    let mut data = dataset();
    data.push(SessionRecord {
        started_at: now + 60_000,
        ..session("future", "gw-a")
    });
    insert_all(&store, &data).await;
    store.gateway_connected("gw-a", "r1", "1.0", T0).await.unwrap();
    store.gateway_connected("gw-b", "r1", "1.0", T0).await.unwrap();
    store.gateway_connected("gw-c", "r2", "1.0", T0).await.unwrap();
    store.gateway_disconnected("gw-b", "r1", T0).await.unwrap();
    let ended_since = T0 + 62_000;

    let filters = [
        SessionFilter::default(),
        // Statuses are ignored by stats.
        filtered(|f| f.statuses = vec![SessionStatus::Disconnected]),
        filtered(|f| f.gateway_id = Some("gw-a".into())),
        filtered(|f| f.gateway_id = Some("gw-b".into())),
        filtered(|f| {
            f.user = Some("carol".into());
            f.flagged_only = true;
        }),
    ];
    for filter in filters {
        let stats = store.stats(&filter, now, ended_since).await.unwrap();
        assert_eq!(stats, expected_stats(&data, &filter, now, ended_since), "{filter:?}");
    }
    // The figures are not trivially zero.
    let all = store.stats(&SessionFilter::default(), now, ended_since).await.unwrap();
    assert!(
        all.active > 0 && all.idle > 0 && all.flagged > 0 && all.ended_since > 0,
        "{all:?}"
    );
    // The gauge's cheap counts agree with the full figures.
    assert_eq!(store.live_counts().await.unwrap(), (all.active, all.idle));
}

/// Every live session once, as where a kill goes, in batches that never split a gateway and are
/// at least the size asked for (but the last); the idle ones alone when asked.
async fn live_targets_come_in_batches_of_whole_gateways(store: Arc<SqlStore>) {
    let idle = SessionRecord {
        status: SessionStatus::Idle,
        ..session("carol", "gw-a")
    };
    let live = vec![
        session("alice", "gw-a"),
        session("bob", "gw-a"),
        idle.clone(),
        session("alice", "gw-b"),
        session("dave", "gw-c"),
        session("erin", "gw-c"),
        session("frank", "gw-d"),
    ];
    let gone = ended(session("bob", "gw-b"), T0 + 5);
    insert_all(&store, &live).await;
    insert_all(&store, std::slice::from_ref(&gone)).await;

    let read = |idle_only: bool| {
        let store = store.clone();
        async move {
            let (sink, mut batches) = tokio::sync::mpsc::channel(1);
            let reading = tokio::spawn(async move { store.live_targets(idle_only, 2, &sink).await });
            let mut received = Vec::new();
            while let Some(batch) = batches.recv().await {
                received.push(batch.expect("a batch"));
            }
            reading.await.unwrap().expect("read");
            received
        }
    };
    let batches = read(false).await;
    let targets: Vec<(String, String, String)> = batches
        .iter()
        .flatten()
        .map(|target| (target.id.clone(), target.gateway_id.clone(), target.user.clone()))
        .collect();
    let mut expected: Vec<(String, String, String)> = live
        .iter()
        .map(|session| (session.id.clone(), session.gateway_id.clone(), session.user.clone()))
        .collect();
    expected.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    assert_eq!(targets, expected, "every live session once, by gateway then id");
    for (index, batch) in batches.iter().enumerate() {
        if index + 1 < batches.len() {
            assert!(batch.len() >= 2, "batch {index} is short: {batch:?}");
        }
        for later in &batches[index + 1..] {
            assert!(
                later
                    .iter()
                    .all(|target| batch.iter().all(|here| here.gateway_id != target.gateway_id)),
                "a gateway split over two batches: {batches:?}"
            );
        }
    }
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1],
        "gw-a; gw-b and gw-c; gw-d"
    );

    let idle_only: Vec<String> = read(true).await.into_iter().flatten().map(|target| target.id).collect();
    assert_eq!(idle_only, vec![idle.id.clone()]);
}

/// The model of `stats`: the live sessions `filter` covers (whatever their status) counted by status, type
/// and flag, their running time, the covered sessions ended since `ended_since`, and the gateways
/// connected (gw-a and gw-c; gw-b disconnected).
fn expected_stats(data: &[SessionRecord], filter: &SessionFilter, now: i64, ended_since: i64) -> SessionStats {
    let covered: Vec<&SessionRecord> = data
        .iter()
        .filter(|session| expected_match_ignoring_status(filter, session))
        .collect();
    let live: Vec<&SessionRecord> = covered.iter().copied().filter(|session| session.is_live()).collect();
    let count = |wanted: &dyn Fn(&SessionRecord) -> bool| live.iter().filter(|session| wanted(session)).count() as u64;
    let by_type = [ResourceType::Ssh, ResourceType::Rdp, ResourceType::Web]
        .into_iter()
        .map(|resource_type| (resource_type, count(&|session| session.resource_type == resource_type)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let running_ms: i64 = live.iter().map(|session| (now - session.started_at).max(0)).sum();
    SessionStats {
        active: count(&|session| session.status == SessionStatus::Active),
        idle: count(&|session| session.status == SessionStatus::Idle),
        total_live_duration_seconds: (running_ms / 1000) as u64,
        by_type,
        flagged: count(&|session| !session.risk.flags.is_empty()),
        ended_since: covered
            .iter()
            .filter(|session| session.ended_at.is_some_and(|at| at >= ended_since))
            .count() as u64,
        gateways_connected: match filter.gateway_id.as_deref() {
            None => 2,
            Some("gw-a") => 1,
            Some(_) => 0,
        },
    }
}

async fn resolve_each_selector(store: Arc<SqlStore>) {
    let alice_live = SessionRecord {
        resource_name: "jump".into(),
        started_at: T0 + 1,
        ..session("alice", "gw-a")
    };
    let alice_idle = SessionRecord {
        status: SessionStatus::Idle,
        started_at: T0 + 2,
        ..session("alice", "gw-b")
    };
    let alice_ended = ended(session("alice", "gw-a"), T0 + 5);
    let bob_live = SessionRecord {
        resource_name: "jump".into(),
        started_at: T0 + 3,
        ..session("bob", "gw-b")
    };
    insert_all(
        &store,
        &[
            alice_live.clone(),
            alice_idle.clone(),
            alice_ended.clone(),
            bob_live.clone(),
        ],
    )
    .await;

    let unknown = Uuid::new_v4().to_string();
    let by_ids = store
        .resolve(&Selector::Ids(vec![
            bob_live.id.clone(),
            alice_ended.id.clone(),
            unknown.clone(),
            bob_live.id.clone(),
        ]))
        .await
        .unwrap();
    assert_eq!(ids(&by_ids.live), vec![bob_live.id.clone()]);
    assert_eq!(by_ids.live[0], bob_live);
    assert_eq!(by_ids.already_ended, vec![alice_ended.id.clone()]);
    assert_eq!(by_ids.unknown, vec![unknown]);

    let live_ids = |selector: Selector| {
        let store = store.clone();
        async move {
            let resolution = store.resolve(&selector).await.unwrap();
            assert!(resolution.already_ended.is_empty() && resolution.unknown.is_empty());
            id_set(&resolution.live)
        }
    };
    assert_eq!(
        live_ids(Selector::User("alice".into())).await,
        id_set(&[alice_live.clone(), alice_idle.clone()])
    );
    assert_eq!(
        live_ids(Selector::Gateway("gw-a".into())).await,
        id_set(std::slice::from_ref(&alice_live))
    );
    assert_eq!(
        live_ids(Selector::Resource("jump".into())).await,
        id_set(&[alice_live.clone(), bob_live.clone()])
    );
    assert_eq!(
        live_ids(Selector::All { idle_only: false }).await,
        id_set(&[alice_live.clone(), alice_idle.clone(), bob_live.clone()])
    );
    assert_eq!(
        live_ids(Selector::All { idle_only: true }).await,
        id_set(std::slice::from_ref(&alice_idle))
    );
    assert!(live_ids(Selector::User("nobody".into())).await.is_empty());
}

async fn gateways_connect_seen_disconnect_and_list(store: Arc<SqlStore>) {
    store.gateway_connected("gw-1", "replica-a", "1.0.0", T0).await.unwrap();
    store
        .gateway_connected("gw-2", "replica-b", "1.1.0", T0 + 10)
        .await
        .unwrap();
    insert_all(
        &store,
        &[
            session("a", "gw-1"),
            session("b", "gw-1"),
            ended(session("c", "gw-1"), T0),
        ],
    )
    .await;

    store.gateways_seen(&[("gw-1".into(), T0 + 500)]).await.unwrap();
    store
        .gateways_seen(&[("gw-1".into(), T0 + 100), ("gw-unknown".into(), T0 + 100)])
        .await
        .unwrap();
    // A late "closed" from a link on another replica changes nothing.
    store.gateway_disconnected("gw-1", "replica-b", T0 + 600).await.unwrap();

    let all = store.list_gateways(false).await.unwrap();
    assert_eq!(all.len(), 2, "seeing an unknown gateway does not create it: {all:?}");
    assert_eq!(
        (
            all[0].id.as_str(),
            all[0].connected,
            all[0].replica.as_deref(),
            all[0].last_seen_at,
            all[0].live_sessions
        ),
        ("gw-1", true, Some("replica-a"), T0 + 500, 2)
    );
    assert_eq!((all[0].connected_at, all[0].agent_version.as_str()), (T0, "1.0.0"));
    assert_eq!((all[1].id.as_str(), all[1].live_sessions), ("gw-2", 0));

    store.gateway_disconnected("gw-1", "replica-a", T0 + 700).await.unwrap();
    let connected = store.list_gateways(true).await.unwrap();
    assert_eq!(
        connected.iter().map(|gateway| gateway.id.as_str()).collect::<Vec<_>>(),
        ["gw-2"]
    );
    let gw1 = store.list_gateways(false).await.unwrap().remove(0);
    assert_eq!(
        (gw1.connected, gw1.replica, gw1.last_seen_at, gw1.live_sessions),
        (false, None, T0 + 700, 2)
    );

    store
        .gateway_connected("gw-1", "replica-c", "1.2.0", T0 + 900)
        .await
        .unwrap();
    let gw1 = store.list_gateways(true).await.unwrap().remove(0);
    assert_eq!(
        (
            gw1.id.as_str(),
            gw1.connected,
            gw1.replica.as_deref(),
            gw1.connected_at,
            gw1.agent_version.as_str()
        ),
        ("gw-1", true, Some("replica-c"), T0 + 900, "1.2.0")
    );
}

async fn migrations_are_idempotent(store: Arc<SqlStore>) {
    store.migrate().await.expect("second migrate");
    store.migrate().await.expect("third migrate");
    let applied = Migrator::get_applied_migrations(store.connection()).await.unwrap();
    assert_eq!(applied.len(), Migrator::migrations().len());
    assert!(
        Migrator::get_pending_migrations(store.connection())
            .await
            .unwrap()
            .is_empty()
    );
    let record = session("a", "gw");
    store.insert_session(&record).await.unwrap();
    assert_eq!(get(&store, &record.id).await, record);
}

/// Not in the list above: it needs a database nobody has migrated yet.
async fn first_migration_from_two_replicas_at_once(database: Arc<TestDatabase>) {
    let (first, second) = (open_store(&database).await, open_store(&database).await);
    let (first_outcome, second_outcome) = tokio::join!(first.migrate(), second.migrate());
    first_outcome.expect("first replica migrates");
    second_outcome.expect("second replica migrates");
    let applied = Migrator::get_applied_migrations(first.connection()).await.unwrap();
    assert_eq!(applied.len(), Migrator::migrations().len());
    let record = session("a", "gw");
    second.insert_session(&record).await.unwrap();
    assert_eq!(get(&first, &record.id).await, record);
}

// ---------------------------------------------------------------------------------------------
// Gateway liveness
// ---------------------------------------------------------------------------------------------

async fn gateways_seen_in_one_batch_only_move_forward(store: Arc<SqlStore>) {
    for gateway in ["gw-1", "gw-2"] {
        store
            .gateway_connected(gateway, "replica-a", "1.0.0", T0)
            .await
            .unwrap();
    }
    let batch = [
        ("gw-1".to_owned(), T0 + 500),
        ("gw-2".to_owned(), T0 + 300),
        ("gw-unknown".to_owned(), T0 + 100),
    ];
    store.gateways_seen(&batch).await.unwrap();
    // A late, older batch moves nothing back.
    store.gateways_seen(&[("gw-1".to_owned(), T0 + 100)]).await.unwrap();
    store.gateways_seen(&[]).await.unwrap();
    let seen: Vec<(String, i64)> = store
        .list_gateways(false)
        .await
        .unwrap()
        .into_iter()
        .map(|gateway| (gateway.id, gateway.last_seen_at))
        .collect();
    assert_eq!(
        seen,
        [("gw-1".to_owned(), T0 + 500), ("gw-2".to_owned(), T0 + 300)],
        "seeing an unknown gateway does not create it"
    );
}

async fn lost_gateways_have_their_sessions_ended_once(store: Arc<SqlStore>) {
    store.gateway_connected("gw-old", "replica-a", "1", T0).await.unwrap();
    store
        .gateway_connected("gw-fresh", "replica-a", "1", T0 + 10_000)
        .await
        .unwrap();
    // Connected per its row (its replica died), nothing live: only the row is set straight.
    store.gateway_connected("gw-empty", "replica-b", "1", T0).await.unwrap();
    // Disconnected cleanly long ago, nothing live: nothing to do.
    store.gateway_connected("gw-gone", "replica-a", "1", T0).await.unwrap();
    store.gateway_disconnected("gw-gone", "replica-a", T0).await.unwrap();
    let old_live = [session("a", "gw-old"), session("b", "gw-old")];
    let old_ended = ended(session("c", "gw-old"), T0);
    let fresh_live = session("d", "gw-fresh");
    insert_all(&store, &old_live).await;
    insert_all(&store, &[old_ended.clone(), fresh_live.clone()]).await;

    let lost_end = end(T0 + 6_000, EndReason::GatewayLost);
    let lost = store.end_lost_gateways(T0 + 5_000, &lost_end, 10).await.unwrap();
    let mut gateways = lost.gateway_ids.clone();
    gateways.sort();
    assert_eq!(gateways, ["gw-empty", "gw-old"]);
    assert_eq!(id_set(&lost.ended), id_set(&old_live));
    for session in &lost.ended {
        assert_eq!(session.status, SessionStatus::Disconnected);
        assert_eq!(session.ended_at, Some(T0 + 6_000));
        assert_eq!(session.end_reason, Some(EndReason::GatewayLost));
        assert_eq!(get(&store, &session.id).await, *session);
    }
    // What was ended already, and the fresh gateway's session, are untouched.
    assert_eq!(get(&store, &old_ended.id).await, old_ended);
    assert_eq!(get(&store, &fresh_live.id).await, fresh_live);
    let connected: Vec<String> = store
        .list_gateways(true)
        .await
        .unwrap()
        .into_iter()
        .map(|gateway| gateway.id)
        .collect();
    assert_eq!(connected, ["gw-fresh"]);
    // Nothing left to do: a second round finds nothing.
    let again = store.end_lost_gateways(T0 + 5_000, &lost_end, 10).await.unwrap();
    assert!(again.gateway_ids.is_empty() && again.ended.is_empty(), "{again:?}");
    assert!(
        store
            .end_lost_gateways(T0 + 5_000, &lost_end, 0)
            .await
            .unwrap()
            .gateway_ids
            .is_empty()
    );
}

async fn lost_gateways_from_two_callers_end_each_session_once(store: Arc<SqlStore>) {
    let mut live = Vec::new();
    for g in 0..30 {
        let gateway = format!("gw-{g}");
        store
            .gateway_connected(&gateway, "replica-a", "1", T0 + g)
            .await
            .unwrap();
        for user in ["a", "b", "c"] {
            live.push(session(user, &gateway));
        }
    }
    insert_all(&store, &live).await;
    let check = |store: Arc<SqlStore>| async move {
        let mut taken = Vec::new();
        loop {
            let lost = store
                .end_lost_gateways(T0 + 1_000, &end(T0 + 2_000, EndReason::GatewayLost), 4)
                .await
                .expect("end lost gateways");
            if lost.gateway_ids.is_empty() {
                return taken;
            }
            taken.extend(lost.ended.into_iter().map(|session| session.id));
        }
    };
    let (first, second) = tokio::join!(tokio::spawn(check(store.clone())), tokio::spawn(check(store.clone())));
    let mut all: Vec<String> = first.unwrap();
    all.extend(second.unwrap());
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a session was ended twice");
    assert_eq!(unique, id_set(&live));
}

async fn a_returning_gateway_revives_only_the_lost_sessions_it_holds(store: Arc<SqlStore>) {
    let lost_end = end(T0 + 100, EndReason::GatewayLost);
    let recent = SessionRecord {
        last_activity_at: T0 + 50,
        bytes_in: 42,
        ..session("recent", "gw-1")
    };
    let quiet = SessionRecord {
        last_activity_at: T0 - IDLE_AFTER_MS,
        ..session("quiet", "gw-1")
    };
    let not_held = session("not-held", "gw-1");
    let killed = session("killed", "gw-1");
    let live = session("live", "gw-1");
    let other_gateway = session("other", "gw-2");
    insert_all(
        &store,
        &[
            recent.clone(),
            quiet.clone(),
            not_held.clone(),
            killed.clone(),
            live.clone(),
            other_gateway.clone(),
        ],
    )
    .await;
    for session in [&recent, &quiet, &not_held, &other_gateway] {
        store
            .end_session(&session.id, None, &lost_end)
            .await
            .unwrap()
            .expect("ended");
    }
    store
        .end_session(&killed.id, None, &end(T0 + 100, EndReason::Admin))
        .await
        .unwrap()
        .expect("ended");

    let held = ids(&[
        recent.clone(),
        quiet.clone(),
        killed.clone(),
        live.clone(),
        other_gateway.clone(),
    ]);
    let now = T0 + 1_000;
    let revived = store
        .revive_lost_sessions("gw-1", &held, now, IDLE_AFTER_MS)
        .await
        .unwrap();
    assert_eq!(id_set(&revived), id_set(&[recent.clone(), quiet.clone()]));
    // Live again as they were, ACTIVE or IDLE by their last activity.
    assert_eq!(get(&store, &recent.id).await, recent);
    assert_eq!(
        get(&store, &quiet.id).await,
        SessionRecord {
            status: SessionStatus::Idle,
            ..quiet.clone()
        }
    );
    // Not held, ended otherwise, or another gateway's: still ended.
    for id in [&not_held.id, &killed.id, &other_gateway.id] {
        assert!(get(&store, id).await.ended_at.is_some(), "{id} stays ended");
    }
    assert_eq!(get(&store, &live.id).await, live);
    // Once live, reviving again changes nothing.
    assert!(
        store
            .revive_lost_sessions("gw-1", &held, now, IDLE_AFTER_MS)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .revive_lost_sessions("gw-1", &[], now, IDLE_AFTER_MS)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Live sessions keep their activity apart from the rest of their row (`session_activity`): what
/// was reported must be what every read shows and what lists sort by, live or ended, whichever way
/// the session ended.
async fn activity_is_kept_through_ends(store: Arc<SqlStore>) {
    let one = session("one", "gw-1");
    let batch = session("batch", "gw-1");
    let quiet = session("quiet", "gw-1");
    insert_all(&store, &[one.clone(), batch.clone(), quiet.clone()]).await;
    store
        .apply_activity(
            None,
            &[
                activity(&one.id, Some(T0 + 30_000), 10, 20),
                activity(&batch.id, Some(T0 + 60_000), 1, 2),
            ],
            T0 + 60_000,
            IDLE_AFTER_MS,
        )
        .await
        .unwrap();
    let current = current_activity;
    assert_eq!(current(&get(&store, &one.id).await), (T0 + 30_000, 10, 20));
    // Pages in every other order, and of free text, show it too (they join it to the page).
    for text in [None, Some("one".to_owned())] {
        let mut filter = SessionFilter {
            user: Some("one".into()),
            ..SessionFilter::default()
        };
        filter.query = text;
        for sort in [SortKey::StartedAt, SortKey::User, SortKey::LastActivity] {
            let page = store
                .list_sessions(&query(filter.clone(), sort, true, 10, None))
                .await
                .unwrap();
            assert_eq!(
                page.sessions.iter().map(current).collect::<Vec<_>>(),
                [(T0 + 30_000, 10, 20)]
            );
        }
    }

    // Ended alone, and in a batch: the answer and the record keep the activity of the last report.
    let lost = end(T0 + 70_000, EndReason::GatewayLost);
    let ended_one = store.end_session(&one.id, None, &lost).await.unwrap().expect("ended");
    assert_eq!(current(&ended_one), (T0 + 30_000, 10, 20));
    let answers = store
        .end_sessions(&[GatewayEnd {
            session_id: batch.id.clone(),
            gateway_id: "gw-1".into(),
            end: end(T0 + 70_000, EndReason::UserClosed),
        }])
        .await
        .unwrap();
    assert_eq!(answers[0].as_ref().map(current), Some((T0 + 60_000, 1, 2)));
    for (session, expected) in [(&one, (T0 + 30_000, 10, 20)), (&batch, (T0 + 60_000, 1, 2))] {
        assert_eq!(current(&get(&store, &session.id).await), expected);
    }
    // Reports after the end change nothing.
    store
        .apply_activity(
            None,
            &[activity(&one.id, Some(T0 + 80_000), 99, 99)],
            T0 + 80_000,
            IDLE_AFTER_MS,
        )
        .await
        .unwrap();
    assert_eq!(current(&get(&store, &one.id).await), (T0 + 30_000, 10, 20));

    // Lists by last activity: live and ended together, and live only.
    let every = [SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected];
    let page = store.list_sessions(&by_last_activity(every.to_vec())).await.unwrap();
    assert_eq!(ids(&page.sessions), ids(&[batch.clone(), one.clone(), quiet.clone()]));
    assert_eq!(current(&page.sessions[1]), (T0 + 30_000, 10, 20));
}

fn by_last_activity(statuses: Vec<SessionStatus>) -> ListQuery {
    query(
        SessionFilter {
            statuses,
            ..SessionFilter::default()
        },
        SortKey::LastActivity,
        false,
        10,
        None,
    )
}

fn current_activity(session: &SessionRecord) -> (i64, u64, u64) {
    (session.last_activity_at, session.bytes_in, session.bytes_out)
}

/// A revived session goes on from the activity its end kept; the records the idle sweep and the
/// flush's wake-up announce carry the current activity.
async fn activity_is_kept_through_revival_idle_and_wake(store: Arc<SqlStore>) {
    let current = current_activity;
    let one = session("one", "gw-1");
    let quiet = session("quiet", "gw-1");
    insert_all(&store, &[one.clone(), quiet.clone()]).await;
    store
        .apply_activity(
            None,
            &[activity(&one.id, Some(T0 + 30_000), 10, 20)],
            T0 + 30_000,
            IDLE_AFTER_MS,
        )
        .await
        .unwrap();
    let lost = end(T0 + 70_000, EndReason::GatewayLost);
    store.end_session(&one.id, None, &lost).await.unwrap().expect("ended");

    let revived = store
        .revive_lost_sessions("gw-1", std::slice::from_ref(&one.id), T0 + 90_000, IDLE_AFTER_MS)
        .await
        .unwrap();
    assert_eq!(revived.iter().map(current).collect::<Vec<_>>(), [(T0 + 30_000, 10, 20)]);
    store
        .apply_activity(
            None,
            &[activity(&one.id, Some(T0 + 100_000), 50, 60)],
            T0 + 100_000,
            IDLE_AFTER_MS,
        )
        .await
        .unwrap();
    assert_eq!(current(&get(&store, &one.id).await), (T0 + 100_000, 50, 60));
    let page = store.list_sessions(&by_last_activity(Vec::new())).await.unwrap();
    assert_eq!(ids(&page.sessions), ids(&[one.clone(), quiet.clone()]));
    assert_eq!(current(&page.sessions[0]), (T0 + 100_000, 50, 60));

    // Idle and woken, the records the sweep and the flush announce carry the current activity.
    let idled = store.mark_idle(T0 + 100_000 + IDLE_AFTER_MS + 1, 10).await.unwrap();
    assert_eq!(id_set(&idled), id_set(&[one.clone(), quiet.clone()]));
    let idle_one = idled.iter().find(|session| session.id == one.id).expect("one idled");
    assert_eq!(current(idle_one), (T0 + 100_000, 50, 60));
    let now = T0 + 200_000 + IDLE_AFTER_MS;
    let woken = store
        .apply_activity(None, &[activity(&one.id, Some(now), 70, 80)], now, IDLE_AFTER_MS)
        .await
        .unwrap();
    assert_eq!(woken.iter().map(current).collect::<Vec<_>>(), [(now, 70, 80)]);
    assert_eq!(get(&store, &one.id).await.status, SessionStatus::Active);
}
