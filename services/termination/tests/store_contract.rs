//! The `TerminationStore` contract: one suite, run against PostgreSQL and SQLite.
//!
//! Each test is an `async fn(Arc<SqlTerminationStore>)`; `contract_tests!` runs it as
//! `postgres::<name>` (a fresh schema on the database of `VIGIL_TEST_DATABASE_URL`, dropped
//! afterwards) and as `sqlite::<name>` (a fresh database file, deleted afterwards). Expected
//! results come from small in-test models of the rules, on data with ties in every order.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use uuid::Uuid;
use vigil_runtime::ServiceError;
use vigil_termination::domain::{
    CommandOutcome, CommandRecord, CommandReport, DeliveryCounts, DeliveryState, EndReason, SelectorRecord,
    TerminationQuery, TerminationRecord,
};
use vigil_termination::store::{SqlTerminationStore, TerminationStore};
use vigil_testkit::TestDatabase;

/// A fixed "now" for the data: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Opens and migrates a store on `database`, runs `test` on it, and closes it.
async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlTerminationStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = SqlTerminationStore::new(database.connect().await).await.expect("store");
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}

vigil_testkit::contract_tests!(
    on_store;
    record_and_get_round_trip_every_field,
    a_second_open_command_for_a_session_is_already_ended,
    concurrent_records_for_a_session_leave_one_open_command,
    given_already_ended_commands_are_stored_as_they_are,
    reports_move_commands_forward_only,
    reports_that_beat_their_record_are_applied_once_it_exists,
    acknowledgements_racing_their_record_are_never_lost,
    claim_due_takes_due_open_commands_and_backs_off,
    concurrent_claims_take_each_command_once,
    open_commands_for_a_gateway_oldest_first,
    list_filters_pages_and_counts,
    recording_ten_thousand_commands,
    an_end_all_answered_before_its_record_is_applied_whole,
);

// ---------------------------------------------------------------------------------------------
// Fixtures and models of the rules
// ---------------------------------------------------------------------------------------------

fn termination(actor: &str) -> TerminationRecord {
    TerminationRecord {
        id: Uuid::new_v4().to_string(),
        actor: actor.to_owned(),
        selector: SelectorRecord::All { idle_only: false },
        reason: EndReason::Admin,
        user_message: "Your session was ended by the security team.".to_owned(),
        note: "SOC-1234".to_owned(),
        created_at: T0,
    }
}

/// A PENDING command, due at once.
fn command(termination: &TerminationRecord, session_id: &str, gateway_id: &str) -> CommandRecord {
    CommandRecord {
        id: Uuid::new_v4().to_string(),
        termination_id: termination.id.clone(),
        session_id: session_id.to_owned(),
        gateway_id: gateway_id.to_owned(),
        user: "alice".to_owned(),
        reason: termination.reason,
        user_message: termination.user_message.clone(),
        state: DeliveryState::Pending,
        detail: String::new(),
        attempts: 0,
        created_at: termination.created_at,
        next_attempt_at: Some(termination.created_at),
        delivered_at: None,
        acknowledged_at: None,
    }
}

fn already_ended(command: CommandRecord, detail: &str) -> CommandRecord {
    CommandRecord {
        state: DeliveryState::AlreadyEnded,
        detail: detail.to_owned(),
        next_attempt_at: None,
        ..command
    }
}

fn session_id() -> String {
    format!("s-{}", Uuid::new_v4().simple())
}

/// The detail of a command not sent because `holder` is ending its session.
fn held_by(holder: &TerminationRecord) -> String {
    format!("already being ended by termination {}", holder.id)
}

fn delivered(command: &CommandRecord, at: i64) -> CommandReport {
    CommandReport {
        command_id: command.id.clone(),
        gateway_id: command.gateway_id.clone(),
        state: DeliveryState::Delivered,
        outcome: CommandOutcome::Unspecified,
        detail: String::new(),
        at,
    }
}

fn answered(command: &CommandRecord, outcome: CommandOutcome, detail: &str, at: i64) -> CommandReport {
    CommandReport {
        command_id: command.id.clone(),
        gateway_id: command.gateway_id.clone(),
        state: DeliveryState::Acknowledged,
        outcome,
        detail: detail.to_owned(),
        at,
    }
}

async fn record(
    store: &SqlTerminationStore,
    termination: &TerminationRecord,
    commands: &[CommandRecord],
) -> Vec<CommandRecord> {
    store.record(termination, commands).await.expect("record")
}

async fn stored_commands(store: &SqlTerminationStore, termination_id: &str) -> Vec<CommandRecord> {
    store
        .get(termination_id)
        .await
        .expect("get")
        .expect("termination exists")
        .1
}

async fn stored_command(store: &SqlTerminationStore, command: &CommandRecord) -> CommandRecord {
    stored_commands(store, &command.termination_id)
        .await
        .into_iter()
        .find(|stored| stored.id == command.id)
        .expect("command exists")
}

async fn apply(store: &SqlTerminationStore, reports: &[CommandReport]) -> u64 {
    store.apply_reports(reports).await.expect("apply reports")
}

/// Commands in the order `get` returns them.
fn in_creation_order(mut commands: Vec<CommandRecord>) -> Vec<CommandRecord> {
    commands.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    commands
}

/// The counts a list of commands adds up to.
fn tally(commands: &[CommandRecord]) -> DeliveryCounts {
    let mut counts = DeliveryCounts::default();
    for command in commands {
        match command.state {
            DeliveryState::Pending => counts.pending += 1,
            DeliveryState::Delivered => counts.delivered += 1,
            DeliveryState::Acknowledged => counts.acknowledged += 1,
            DeliveryState::Failed => counts.failed += 1,
            DeliveryState::AlreadyEnded => counts.already_ended += 1,
            DeliveryState::Unspecified => panic!("a stored command has no state"),
        }
    }
    counts
}

fn ids(commands: &[CommandRecord]) -> Vec<String> {
    commands.iter().map(|command| command.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

async fn record_and_get_round_trip_every_field(store: Arc<SqlTerminationStore>) {
    let mut requested = termination("alice@example.com");
    requested.selector = SelectorRecord::Ids(vec!["s-1".to_owned(), "s-\"2\"".to_owned()]);
    requested.reason = EndReason::Anomaly;
    requested.created_at = T0 + 123;
    let pending = CommandRecord {
        user: "bob".to_owned(),
        created_at: T0 + 1,
        next_attempt_at: Some(T0 + 5),
        ..command(&requested, "s-1", "gw-a")
    };
    let delivered = CommandRecord {
        state: DeliveryState::Delivered,
        detail: "handed to the link".to_owned(),
        attempts: u32::MAX,
        created_at: T0 + 2,
        next_attempt_at: Some(T0 + 9),
        delivered_at: Some(T0 + 7),
        reason: EndReason::Policy,
        user_message: "bye".to_owned(),
        ..command(&requested, "s-\"2\"", "gw-b")
    };
    let ended = already_ended(
        CommandRecord {
            created_at: T0,
            ..command(&requested, "s-3", "gw-a")
        },
        "the session had ended",
    );
    let acknowledged = CommandRecord {
        state: DeliveryState::Acknowledged,
        attempts: 1,
        created_at: T0 + 2,
        next_attempt_at: None,
        delivered_at: Some(T0 + 6),
        acknowledged_at: Some(T0 + 8),
        ..command(&requested, "s-4", "gw-c")
    };
    let given = vec![pending, delivered, ended, acknowledged];

    let stored = record(&store, &requested, &given).await;
    assert_eq!(stored, given, "recorded as given");
    let (stored_termination, commands) = store.get(&requested.id).await.unwrap().expect("recorded");
    assert_eq!(stored_termination, requested);
    assert_eq!(commands, in_creation_order(given.clone()));
    assert_eq!(store.counts(&requested.id).await.unwrap(), tally(&given));

    every_selector_round_trips(&store).await;

    assert_eq!(store.get("no-such-termination").await.unwrap(), None);
    assert_eq!(
        store.counts("no-such-termination").await.unwrap(),
        DeliveryCounts::default()
    );
    store.ping().await.expect("ping");
}

/// Every selector, each in a termination that covered nothing.
async fn every_selector_round_trips(store: &SqlTerminationStore) {
    let selectors = [
        SelectorRecord::Ids(Vec::new()),
        SelectorRecord::User("carol".to_owned()),
        SelectorRecord::Gateway("gw-a".to_owned()),
        SelectorRecord::Resource("prod-db".to_owned()),
        SelectorRecord::All { idle_only: true },
        SelectorRecord::All { idle_only: false },
        SelectorRecord::Group("sre".to_owned()),
        SelectorRecord::Device("carol-laptop".to_owned()),
        SelectorRecord::Cidr("2001:db8::/32".to_owned()),
    ];
    for selector in selectors {
        let requested = TerminationRecord {
            selector,
            reason: EndReason::IdleTimeout,
            user_message: String::new(),
            note: String::new(),
            ..termination("policy")
        };
        assert!(record(store, &requested, &[]).await.is_empty());
        assert_eq!(
            store.get(&requested.id).await.unwrap(),
            Some((requested.clone(), Vec::new()))
        );
        assert_eq!(store.counts(&requested.id).await.unwrap(), DeliveryCounts::default());
    }
}

async fn a_second_open_command_for_a_session_is_already_ended(store: Arc<SqlTerminationStore>) {
    let (s1, s2, s3) = (session_id(), session_id(), session_id());
    let first = termination("alice");
    let first_commands = vec![command(&first, &s1, "gw"), command(&first, &s2, "gw")];
    assert_eq!(record(&store, &first, &first_commands).await, first_commands);

    let second = TerminationRecord {
        created_at: T0 + 1,
        ..termination("bob")
    };
    let again = command(&second, &s2, "gw");
    let fresh = command(&second, &s3, "gw");
    let stored = record(&store, &second, &[again.clone(), fresh.clone()]).await;
    let expected = vec![already_ended(again, &held_by(&first)), fresh];
    assert_eq!(stored, expected);
    assert_eq!(
        stored_commands(&store, &second.id).await,
        in_creation_order(expected.clone())
    );
    assert_eq!(
        store.counts(&second.id).await.unwrap(),
        DeliveryCounts {
            pending: 1,
            already_ended: 1,
            ..DeliveryCounts::default()
        }
    );

    // Once the first command for s2 is answered, s2 can be ended again.
    assert_eq!(
        apply(
            &store,
            &[answered(&first_commands[1], CommandOutcome::Failed, "refused", T0 + 2)]
        )
        .await,
        1
    );
    let third = termination("carol");
    let retry = command(&third, &s2, "gw");
    assert_eq!(record(&store, &third, std::slice::from_ref(&retry)).await, vec![retry]);

    // Two commands for one session in one termination: one is sent, the other names this termination.
    let fourth = termination("dave");
    let s9 = session_id();
    let twins = [command(&fourth, &s9, "gw"), command(&fourth, &s9, "gw")];
    let stored = record(&store, &fourth, &twins).await;
    let open: Vec<&CommandRecord> = stored.iter().filter(|command| command.is_open()).collect();
    assert_eq!(open.len(), 1, "one open command for the session: {stored:?}");
    let other = stored.iter().find(|command| !command.is_open()).unwrap();
    assert_eq!(other.state, DeliveryState::AlreadyEnded);
    assert_eq!(other.detail, held_by(&fourth));
    assert_eq!(stored_commands(&store, &fourth.id).await, in_creation_order(stored));
}

async fn concurrent_records_for_a_session_leave_one_open_command(store: Arc<SqlTerminationStore>) {
    for _ in 0..5 {
        // Enough sessions that the two transactions overlap: the second to insert finds the
        // first's rows uncommitted, waits for them, and must then store its own as ALREADY_ENDED.
        let sessions: Vec<String> = (0..500).map(|_| session_id()).collect();
        let (a, b) = (termination("a"), termination("b"));
        let a_commands: Vec<CommandRecord> = sessions.iter().map(|session| command(&a, session, "gw")).collect();
        // The other way round, so that two transactions would lock in opposite orders if the store
        // did not impose one.
        let b_commands: Vec<CommandRecord> = sessions
            .iter()
            .rev()
            .map(|session| command(&b, session, "gw"))
            .collect();
        let record_in_task = |termination: TerminationRecord, commands: Vec<CommandRecord>| {
            let store = store.clone();
            tokio::spawn(async move { store.record(&termination, &commands).await })
        };
        let (from_a, from_b) = tokio::join!(
            record_in_task(a.clone(), a_commands),
            record_in_task(b.clone(), b_commands)
        );
        let all: Vec<CommandRecord> = from_a
            .unwrap()
            .expect("record a")
            .into_iter()
            .chain(from_b.unwrap().expect("record b"))
            .collect();

        let mut holder: HashMap<&str, &str> = HashMap::new();
        for command in all.iter().filter(|command| command.is_open()) {
            assert!(
                holder.insert(&command.session_id, &command.termination_id).is_none(),
                "two open commands for {}",
                command.session_id
            );
        }
        assert_eq!(holder.len(), sessions.len(), "every session has an open command");
        for command in all.iter().filter(|command| !command.is_open()) {
            assert_eq!(command.state, DeliveryState::AlreadyEnded);
            let holder_id = holder[command.session_id.as_str()];
            assert_ne!(holder_id, command.termination_id);
            assert_eq!(
                command.detail,
                format!("already being ended by termination {holder_id}")
            );
        }
        // And so it is stored.
        let mut stored = stored_commands(&store, &a.id).await;
        stored.extend(stored_commands(&store, &b.id).await);
        assert_eq!(in_creation_order(stored), in_creation_order(all));
    }
}

async fn given_already_ended_commands_are_stored_as_they_are(store: Arc<SqlTerminationStore>) {
    let (s1, s2) = (session_id(), session_id());
    let first = termination("alice");
    record(&store, &first, &[command(&first, &s1, "gw")]).await;

    // s1 has an open command elsewhere and s2 has none: either way, what was given is kept.
    let second = termination("bob");
    let given = vec![
        already_ended(command(&second, &s1, "gw"), "the session ended before the request"),
        already_ended(command(&second, &s2, "gw"), "the session ended before the request"),
    ];
    assert_eq!(record(&store, &second, &given).await, given);
    assert_eq!(stored_commands(&store, &second.id).await, in_creation_order(given));

    // A closed command holds nothing: s2 can still be ended.
    let third = termination("carol");
    let open = command(&third, &s2, "gw");
    assert_eq!(record(&store, &third, std::slice::from_ref(&open)).await, vec![open]);
}

async fn recording_ten_thousand_commands(store: Arc<SqlTerminationStore>) {
    const SESSIONS: usize = 10_000;
    const HELD: usize = 100;
    let sessions: Vec<String> = (0..SESSIONS).map(|_| session_id()).collect();
    let earlier = termination("earlier");
    let held: Vec<CommandRecord> = sessions[..HELD]
        .iter()
        .map(|session| command(&earlier, session, "gw-x"))
        .collect();
    record(&store, &earlier, &held).await;

    let end_all = TerminationRecord {
        created_at: T0 + 1,
        ..termination("admin")
    };
    let given: Vec<CommandRecord> = sessions
        .iter()
        .enumerate()
        .map(|(i, session)| command(&end_all, session, &format!("gw-{}", i % 4)))
        .collect();
    let stored = record(&store, &end_all, &given).await;
    assert_eq!(stored.len(), SESSIONS);
    for (i, (stored, given)) in stored.iter().zip(&given).enumerate() {
        if i < HELD {
            assert_eq!(*stored, already_ended(given.clone(), &held_by(&earlier)));
        } else {
            assert_eq!(stored, given);
        }
    }
    assert_eq!(stored_commands(&store, &end_all.id).await, in_creation_order(stored));
    assert_eq!(
        store.counts(&end_all.id).await.unwrap(),
        DeliveryCounts {
            pending: (SESSIONS - HELD) as u32,
            already_ended: HELD as u32,
            ..DeliveryCounts::default()
        }
    );
    let mut open = 0;
    for gateway in ["gw-0", "gw-1", "gw-2", "gw-3"] {
        open += store.open_commands_for_gateway(gateway).await.unwrap().len();
    }
    assert_eq!(open, SESSIONS - HELD);
}

/// An end-all's acknowledgements can all beat its record (the commands are published first): every
/// one is kept, then applied once the record exists — over more than one chunk of the walk — and
/// none is left behind.
async fn an_end_all_answered_before_its_record_is_applied_whole(store: Arc<SqlTerminationStore>) {
    const SESSIONS: usize = 2_500;
    let end_all = termination("admin");
    let given: Vec<CommandRecord> = (0..SESSIONS)
        .map(|i| command(&end_all, &session_id(), &format!("gw-{}", i % 7)))
        .collect();
    // As agents answer: in batches, each command delivered then acknowledged; every 10th only
    // delivered so far; every 50th answered by a gateway that does not hold it.
    let reports: Vec<CommandReport> = given
        .iter()
        .enumerate()
        .flat_map(|(i, command)| {
            let at = T0 + i as i64;
            let mut reports = vec![delivered(command, at)];
            if i.is_multiple_of(50) {
                reports.push(CommandReport {
                    gateway_id: "gw-elsewhere".to_owned(),
                    ..answered(command, CommandOutcome::Done, "", at + 1)
                });
            } else if !i.is_multiple_of(10) {
                reports.push(answered(command, CommandOutcome::Done, "ended", at + 1));
            }
            reports
        })
        .collect();
    for batch in reports.chunks(300) {
        assert_eq!(apply(&store, batch).await, 0, "nothing to apply before the record");
    }
    assert_eq!(early_reports_kept(&store).await, SESSIONS as i64);

    record(&store, &end_all, &given).await;
    // The record's own follow-up runs in the background; this walk finishes whatever it has not.
    store.settle_early_reports(T0 + 10_000).await.unwrap();
    let position: HashMap<String, usize> = given
        .iter()
        .enumerate()
        .map(|(i, command)| (command.id.clone(), i))
        .collect();
    let stored = stored_commands(&store, &end_all.id).await;
    assert_eq!(stored.len(), SESSIONS);
    for stored in stored {
        let i = position[&stored.id];
        let at = T0 + i as i64;
        let expected = if i.is_multiple_of(10) {
            CommandRecord {
                state: DeliveryState::Delivered,
                delivered_at: Some(at),
                ..given[i].clone()
            }
        } else {
            CommandRecord {
                state: DeliveryState::Acknowledged,
                detail: "ended".to_owned(),
                next_attempt_at: None,
                delivered_at: Some(at),
                acknowledged_at: Some(at + 1),
                ..given[i].clone()
            }
        };
        assert_eq!(stored, expected, "command {i}");
    }
    assert_eq!(early_reports_kept(&store).await, 0);
    assert_eq!(store.settle_early_reports(T0 + 20_000).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------

/// Polls `get` until every command of `termination_id` satisfies `done`, for at most 2 s; returns
/// the commands as last seen and how long it took.
async fn settled_within(
    store: &SqlTerminationStore,
    termination_id: &str,
    done: impl Fn(&CommandRecord) -> bool,
) -> (Vec<CommandRecord>, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let commands = stored_commands(store, termination_id).await;
        if commands.iter().all(&done) || started.elapsed() > std::time::Duration::from_secs(2) {
            return (commands, started.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Early reports still kept for a later round.
async fn early_reports_kept(store: &SqlTerminationStore) -> i64 {
    let db = store.connection();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS kept FROM termination_early_reports",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "kept").unwrap()
}

async fn reports_that_beat_their_record_are_applied_once_it_exists(store: Arc<SqlTerminationStore>) {
    let requested = termination("alice");
    let [c0, c1, c2, c3] = [0, 1, 2, 3].map(|_| command(&requested, &session_id(), "gw-a"));
    // The gateway answers before the termination is recorded: nothing to change yet.
    let early = [
        delivered(&c0, T0 + 10),
        answered(&c0, CommandOutcome::Done, "ended", T0 + 11),
        answered(&c1, CommandOutcome::Failed, "kill refused", T0 + 12),
        delivered(&c2, T0 + 13),
        CommandReport {
            gateway_id: "gw-b".to_owned(),
            ..answered(&c3, CommandOutcome::Done, "", T0 + 14)
        },
    ];
    assert_eq!(apply(&store, &early).await, 0);
    // Repeats keep the first report of each kind.
    assert_eq!(
        apply(&store, &[answered(&c0, CommandOutcome::Failed, "later", T0 + 15)]).await,
        0
    );
    record(&store, &requested, &[c0.clone(), c1.clone(), c2.clone(), c3.clone()]).await;

    let (_, _) = settled_within(&store, &requested.id, |command| {
        command.session_id == c3.session_id || command.state != DeliveryState::Pending
    })
    .await;
    assert_eq!(
        stored_command(&store, &c0).await,
        CommandRecord {
            state: DeliveryState::Acknowledged,
            detail: "ended".to_owned(),
            next_attempt_at: None,
            delivered_at: Some(T0 + 10),
            acknowledged_at: Some(T0 + 11),
            ..c0.clone()
        }
    );
    assert_eq!(
        stored_command(&store, &c1).await,
        CommandRecord {
            state: DeliveryState::Failed,
            detail: "kill refused".to_owned(),
            next_attempt_at: None,
            delivered_at: Some(T0 + 12),
            acknowledged_at: Some(T0 + 12),
            ..c1.clone()
        }
    );
    assert_eq!(
        stored_command(&store, &c2).await,
        CommandRecord {
            state: DeliveryState::Delivered,
            delivered_at: Some(T0 + 13),
            ..c2.clone()
        }
    );
    // Another gateway's answer is never applied, early or not.
    assert_eq!(stored_command(&store, &c3).await, c3);
    // Applied once: the kept rows are gone (the other gateway's too: it can never apply), a further
    // round changes nothing.
    assert_eq!(early_reports_kept(&store).await, 0);
    assert_eq!(store.settle_early_reports(T0 + 100).await.unwrap(), 0);
    assert_eq!(stored_command(&store, &c2).await.state, DeliveryState::Delivered);
    // The answer to c2 now arrives in order and applies directly.
    assert_eq!(
        apply(&store, &[answered(&c2, CommandOutcome::Done, "", T0 + 20)]).await,
        1
    );
}

/// Termination records a kill while it publishes it: the answers race the record. Whatever the
/// interleaving, every command ends up acknowledged with both times, within a second.
async fn acknowledgements_racing_their_record_are_never_lost(store: Arc<SqlTerminationStore>) {
    const ROUNDS: usize = 8;
    const SESSIONS: usize = 50;
    for round in 0..ROUNDS {
        let requested = termination("alice");
        let commands: Vec<CommandRecord> = (0..SESSIONS)
            .map(|i| command(&requested, &session_id(), &format!("gw-{}", i % 4)))
            .collect();
        let reports: Vec<CommandReport> = commands
            .iter()
            .flat_map(|command| {
                [
                    delivered(command, T0 + 1),
                    answered(command, CommandOutcome::Done, "ended", T0 + 2),
                ]
            })
            .collect();
        // Answers split in two batches, before, during and after the record, shifted each round.
        let (first, second) = reports.split_at(reports.len() / 2);
        let delay = std::time::Duration::from_millis((round % 4) as u64);
        let recording = {
            let store = store.clone();
            let requested = requested.clone();
            let commands = commands.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                store.record(&requested, &commands).await.expect("record");
            })
        };
        let answering = {
            let store = store.clone();
            let (first, second) = (first.to_vec(), second.to_vec());
            tokio::spawn(async move {
                store.apply_reports(&first).await.expect("apply");
                store.apply_reports(&second).await.expect("apply");
            })
        };
        recording.await.unwrap();
        answering.await.unwrap();
        let (stored, took) = settled_within(&store, &requested.id, |command| {
            command.state == DeliveryState::Acknowledged
        })
        .await;
        for command in &stored {
            assert_eq!(command.state, DeliveryState::Acknowledged, "round {round}: {command:?}");
            assert_eq!(command.delivered_at, Some(T0 + 1), "round {round}: {command:?}");
            assert_eq!(command.acknowledged_at, Some(T0 + 2), "round {round}: {command:?}");
        }
        assert!(took < std::time::Duration::from_secs(1), "round {round} took {took:?}");
    }
}

async fn reports_move_commands_forward_only(store: Arc<SqlTerminationStore>) {
    let requested = termination("alice");
    let given: Vec<CommandRecord> = (0..6)
        .map(|i| CommandRecord {
            created_at: T0 + i,
            ..command(&requested, &session_id(), "gw-a")
        })
        .collect();
    let ended = already_ended(command(&requested, &session_id(), "gw-a"), "gone before");
    let mut all = given.clone();
    all.push(ended.clone());
    record(&store, &requested, &all).await;
    let [c0, c1, c2, c3, c4, c5] = <[CommandRecord; 6]>::try_from(given).unwrap();

    delivered_then_acknowledged_once(&store, &c0).await;
    answered_before_delivered(&store, &c1).await;
    failed_is_final(&store, &c2).await;
    foreign_unknown_and_closed_are_ignored(&store, &c3, &ended).await;
    delivered_and_answered_in_one_batch(&store, &c4, &c5).await;
    assert_eq!(
        store.counts(&requested.id).await.unwrap(),
        DeliveryCounts {
            pending: 1,
            delivered: 1,
            acknowledged: 3,
            failed: 1,
            already_ended: 1,
        }
    );
}

/// PENDING → DELIVERED → ACKNOWLEDGED, each once; nothing moves it back.
async fn delivered_then_acknowledged_once(store: &SqlTerminationStore, c0: &CommandRecord) {
    // PENDING → DELIVERED, once; retries keep their schedule.
    assert_eq!(apply(store, &[delivered(c0, T0 + 10)]).await, 1);
    let c0_delivered = CommandRecord {
        state: DeliveryState::Delivered,
        delivered_at: Some(T0 + 10),
        ..c0.clone()
    };
    assert_eq!(stored_command(store, c0).await, c0_delivered);
    assert_eq!(apply(store, &[delivered(c0, T0 + 11)]).await, 0);
    assert_eq!(stored_command(store, c0).await, c0_delivered);

    // DELIVERED → ACKNOWLEDGED, once; nothing moves it back or over.
    assert_eq!(
        apply(store, &[answered(c0, CommandOutcome::Done, "ended", T0 + 20)]).await,
        1
    );
    let c0_acknowledged = CommandRecord {
        state: DeliveryState::Acknowledged,
        detail: "ended".to_owned(),
        next_attempt_at: None,
        acknowledged_at: Some(T0 + 20),
        ..c0_delivered
    };
    assert_eq!(stored_command(store, c0).await, c0_acknowledged);
    let late = [
        delivered(c0, T0 + 21),
        answered(c0, CommandOutcome::Failed, "too late", T0 + 22),
        answered(c0, CommandOutcome::Done, "again", T0 + 23),
    ];
    assert_eq!(apply(store, &late).await, 0);
    assert_eq!(stored_command(store, c0).await, c0_acknowledged);
}

/// An answer (NOT_FOUND) before the delivery report.
async fn answered_before_delivered(store: &SqlTerminationStore, c1: &CommandRecord) {
    // Reordered: the answer (NOT_FOUND) before the delivery, which then changes nothing.
    assert_eq!(
        apply(store, &[answered(c1, CommandOutcome::NotFound, "not held", T0 + 30)]).await,
        1
    );
    // An answered command was delivered: its delivery time is the answer's when none came.
    let c1_acknowledged = CommandRecord {
        state: DeliveryState::Acknowledged,
        detail: "not held".to_owned(),
        next_attempt_at: None,
        delivered_at: Some(T0 + 30),
        acknowledged_at: Some(T0 + 30),
        ..c1.clone()
    };
    assert_eq!(stored_command(store, c1).await, c1_acknowledged);
    assert_eq!(apply(store, &[delivered(c1, T0 + 31)]).await, 0);
    assert_eq!(stored_command(store, c1).await, c1_acknowledged);
}

/// A FAILED outcome is final.
async fn failed_is_final(store: &SqlTerminationStore, c2: &CommandRecord) {
    // A FAILED outcome: FAILED with the detail, final too.
    assert_eq!(
        apply(store, &[answered(c2, CommandOutcome::Failed, "kill refused", T0 + 40)]).await,
        1
    );
    let c2_failed = CommandRecord {
        state: DeliveryState::Failed,
        detail: "kill refused".to_owned(),
        next_attempt_at: None,
        delivered_at: Some(T0 + 40),
        acknowledged_at: Some(T0 + 40),
        ..c2.clone()
    };
    assert_eq!(stored_command(store, c2).await, c2_failed);
    assert_eq!(
        apply(store, &[answered(c2, CommandOutcome::Done, "", T0 + 41)]).await,
        0
    );
    assert_eq!(stored_command(store, c2).await, c2_failed);
}

/// Reports from another gateway's link, about an unknown command, or a closed one change nothing.
async fn foreign_unknown_and_closed_are_ignored(
    store: &SqlTerminationStore,
    c3: &CommandRecord,
    ended: &CommandRecord,
) {
    // Another gateway's link, an unknown command, a command that was never open.
    let foreign = |report: CommandReport| CommandReport {
        gateway_id: "gw-b".to_owned(),
        ..report
    };
    let ignored = [
        foreign(delivered(c3, T0 + 50)),
        foreign(answered(c3, CommandOutcome::Done, "", T0 + 50)),
        CommandReport {
            command_id: "no-such-command".to_owned(),
            ..delivered(c3, T0 + 50)
        },
        delivered(ended, T0 + 50),
        answered(ended, CommandOutcome::Done, "", T0 + 50),
    ];
    assert_eq!(apply(store, &ignored).await, 0);
    assert_eq!(stored_command(store, c3).await, *c3);
    assert_eq!(stored_command(store, ended).await, *ended);
}

/// Delivered and answered in one batch, with repeats.
async fn delivered_and_answered_in_one_batch(store: &SqlTerminationStore, c4: &CommandRecord, c5: &CommandRecord) {
    // Delivered and answered in one batch (one command changed, both times kept), and repeats.
    let batch = [
        answered(c4, CommandOutcome::Done, "", T0 + 61),
        delivered(c4, T0 + 60),
        delivered(c5, T0 + 62),
        delivered(c5, T0 + 63),
        delivered(c4, T0 + 64),
    ];
    assert_eq!(apply(store, &batch).await, 2);
    assert_eq!(
        stored_command(store, c4).await,
        CommandRecord {
            state: DeliveryState::Acknowledged,
            next_attempt_at: None,
            delivered_at: Some(T0 + 60),
            acknowledged_at: Some(T0 + 61),
            ..c4.clone()
        }
    );
    assert_eq!(
        stored_command(store, c5).await,
        CommandRecord {
            state: DeliveryState::Delivered,
            delivered_at: Some(T0 + 62),
            ..c5.clone()
        }
    );
    // The same batch again changes nothing.
    assert_eq!(apply(store, &batch).await, 0);
    assert_eq!(apply(store, &[]).await, 0);
}

async fn claim_due_takes_due_open_commands_and_backs_off(store: Arc<SqlTerminationStore>) {
    let retry_after = |attempts: u32| i64::from(attempts) * 1_000;
    let requested = termination("alice");
    let due_at = |at: i64| CommandRecord {
        next_attempt_at: Some(at),
        ..command(&requested, &session_id(), "gw")
    };
    let early = due_at(T0 - 10);
    let on_time = due_at(T0);
    let later = due_at(T0 + 10);
    let delivered = CommandRecord {
        state: DeliveryState::Delivered,
        attempts: 2,
        delivered_at: Some(T0 - 20),
        ..due_at(T0 - 5)
    };
    // Closed commands are never due, whatever their schedule says.
    let failed = CommandRecord {
        state: DeliveryState::Failed,
        ..due_at(T0 - 100)
    };
    let ended = already_ended(due_at(T0 - 100), "gone");
    let given = [&early, &on_time, &later, &delivered, &failed, &ended].map(Clone::clone);
    record(&store, &requested, &given).await;

    let claimed = store.claim_due(T0, 10, &retry_after).await.unwrap();
    let expected = vec![
        CommandRecord {
            attempts: 1,
            next_attempt_at: Some(T0 + 1_000),
            ..early.clone()
        },
        CommandRecord {
            attempts: 3,
            next_attempt_at: Some(T0 + 3_000),
            ..delivered.clone()
        },
        CommandRecord {
            attempts: 1,
            next_attempt_at: Some(T0 + 1_000),
            ..on_time.clone()
        },
    ];
    assert_eq!(claimed, expected, "due ones, oldest first, in their new state");
    for command in &expected {
        assert_eq!(&stored_command(&store, command).await, command);
    }
    assert!(
        store.claim_due(T0, 10, &retry_after).await.unwrap().is_empty(),
        "claimed once per due time"
    );
    assert!(store.claim_due(T0 + 1_000, 0, &retry_after).await.unwrap().is_empty());

    // At most `limit`, the longest due first.
    let claimed = store.claim_due(T0 + 1_000, 1, &retry_after).await.unwrap();
    assert_eq!(ids(&claimed), vec![later.id.clone()]);
    assert_eq!(claimed[0].next_attempt_at, Some(T0 + 2_000));

    later_claims_back_off(&store, &early, &on_time, &later, &delivered).await;
}

/// After a first claim: the next delay follows each command's own attempts, and an answered
/// command is no longer due.
async fn later_claims_back_off(
    store: &SqlTerminationStore,
    early: &CommandRecord,
    on_time: &CommandRecord,
    later: &CommandRecord,
    delivered: &CommandRecord,
) {
    let retry_after = |attempts: u32| i64::from(attempts) * 1_000;
    // The next delay follows each command's own attempts.
    let mut claimed = store.claim_due(T0 + 1_000, 10, &retry_after).await.unwrap();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    let mut expected = vec![
        CommandRecord {
            attempts: 2,
            next_attempt_at: Some(T0 + 3_000),
            ..early.clone()
        },
        CommandRecord {
            attempts: 2,
            next_attempt_at: Some(T0 + 3_000),
            ..on_time.clone()
        },
    ];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed, expected);

    // An answered command is no longer due.
    apply(store, &[answered(delivered, CommandOutcome::Done, "", T0 + 2_000)]).await;
    let claimed = store.claim_due(T0 + 10_000, 10, &retry_after).await.unwrap();
    let mut claimed_ids = ids(&claimed);
    claimed_ids.sort();
    let mut expected_ids = vec![early.id.clone(), on_time.id.clone(), later.id.clone()];
    expected_ids.sort();
    assert_eq!(claimed_ids, expected_ids);
}

async fn concurrent_claims_take_each_command_once(store: Arc<SqlTerminationStore>) {
    const SWEEPERS: usize = 4;
    let requested = termination("alice");
    let given: Vec<CommandRecord> = (0..400)
        .map(|i| CommandRecord {
            next_attempt_at: Some(T0 + i % 10),
            ..command(&requested, &session_id(), "gw")
        })
        .collect();
    record(&store, &requested, &given).await;

    let sweep = |store: Arc<SqlTerminationStore>| async move {
        let mut taken = Vec::new();
        loop {
            let batch = store.claim_due(T0 + 100, 5, &|_| 60_000).await.expect("claim");
            if batch.is_empty() {
                return taken;
            }
            taken.extend(batch);
        }
    };
    let sweepers = (0..SWEEPERS).map(|_| tokio::spawn(sweep(store.clone())));
    let mut all: Vec<CommandRecord> = Vec::new();
    for taken in futures::future::join_all(sweepers).await {
        all.extend(taken.unwrap());
    }

    let unique: HashSet<String> = all.iter().map(|command| command.id.clone()).collect();
    assert_eq!(unique.len(), all.len(), "a command was claimed twice");
    assert_eq!(unique, given.iter().map(|command| command.id.clone()).collect());
    assert!(all.iter().all(|command| command.attempts == 1));
    assert!(
        all.iter()
            .all(|command| command.next_attempt_at == Some(T0 + 100 + 60_000))
    );
}

async fn open_commands_for_a_gateway_oldest_first(store: Arc<SqlTerminationStore>) {
    let requested = termination("alice");
    let at = |created_at: i64, gateway: &str| CommandRecord {
        created_at,
        ..command(&requested, &session_id(), gateway)
    };
    let newest = at(T0 + 2, "gw-a");
    let (tied_1, tied_2) = (at(T0 + 1, "gw-a"), at(T0 + 1, "gw-a"));
    let delivered = CommandRecord {
        state: DeliveryState::Delivered,
        delivered_at: Some(T0 + 4),
        ..at(T0 + 3, "gw-a")
    };
    let acknowledged = CommandRecord {
        state: DeliveryState::Acknowledged,
        next_attempt_at: None,
        acknowledged_at: Some(T0 + 5),
        ..at(T0, "gw-a")
    };
    let ended = already_ended(at(T0, "gw-a"), "gone");
    let elsewhere = at(T0, "gw-b");
    let given = [&newest, &tied_1, &tied_2, &delivered, &acknowledged, &ended, &elsewhere].map(Clone::clone);
    record(&store, &requested, &given).await;

    let mut tied = [tied_1, tied_2];
    tied.sort_by(|a, b| a.id.cmp(&b.id));
    let expected = vec![tied[0].clone(), tied[1].clone(), newest.clone(), delivered];
    assert_eq!(store.open_commands_for_gateway("gw-a").await.unwrap(), expected);
    assert_eq!(store.open_commands_for_gateway("gw-b").await.unwrap(), vec![elsewhere]);
    assert!(store.open_commands_for_gateway("gw-none").await.unwrap().is_empty());

    apply(&store, &[answered(&newest, CommandOutcome::Done, "", T0 + 9)]).await;
    assert_eq!(
        ids(&store.open_commands_for_gateway("gw-a").await.unwrap()),
        ids(&[expected[0].clone(), expected[1].clone(), expected[3].clone()])
    );
}

// ---------------------------------------------------------------------------------------------
// The audit trail
// ---------------------------------------------------------------------------------------------

/// Terminations as the list returns them.
type Listed = Vec<(TerminationRecord, DeliveryCounts)>;

/// Pages through `query` with `limit` rows a page; returns the rows and the number of pages.
async fn all_pages(store: &SqlTerminationStore, query: &TerminationQuery) -> (Listed, usize) {
    let mut query = query.clone();
    let mut rows: Listed = Vec::new();
    for pages in 1..=100 {
        let page = store.list(&query).await.expect("list");
        assert!(page.terminations.len() as u64 <= query.limit);
        rows.extend(page.terminations);
        match page.next {
            Some(next) => {
                let (last, _) = rows.last().expect("a page with a cursor has rows");
                assert_eq!(next, (last.created_at, last.id.clone()));
                query.before = Some(next);
            }
            None => return (rows, pages),
        }
    }
    panic!("paging did not end");
}

async fn list_filters_pages_and_counts(store: Arc<SqlTerminationStore>) {
    let shared = session_id();
    let dataset = list_dataset(&store, &shared).await;
    let query = list_query;
    let expected = |keep: &dyn Fn(&TerminationRecord, &HashSet<String>) -> bool| expected_rows(&dataset, keep);
    let cases = list_cases(&dataset, &shared);
    for (name, query, expected) in cases {
        let (rows, pages) = all_pages(&store, &query).await;
        assert_eq!(rows, expected, "{name}");
        let expected_pages = expected.len().div_ceil(query.limit as usize).max(1);
        assert_eq!(pages, expected_pages, "{name}: pages");
    }
    // The checks above must have covered the interesting shapes.
    assert_eq!(
        all_pages(&store, &query(3)).await.1,
        5,
        "fourteen rows in pages of three"
    );
    assert_eq!(expected(&|_, sessions| sessions.contains(&shared)).len(), 4);
    assert!(dataset.iter().any(|(_, commands, _)| tally(commands).already_ended > 0));
    assert!(dataset.iter().any(|(_, commands, _)| tally(commands).delivered > 0));

    for limit in [0, 1001] {
        let refused = store.list(&query(limit)).await;
        assert!(
            matches!(refused, Err(ServiceError::InvalidArgument(_))),
            "limit {limit}: {refused:?}"
        );
    }
}

/// Terminations, their commands as stored and their sessions.
type Dataset = Vec<(TerminationRecord, Vec<CommandRecord>, HashSet<String>)>;

/// Fourteen terminations in threes per millisecond, recorded out of order; every fourth one also
/// covers `shared` (open once, then ALREADY_ENDED).
async fn list_dataset(store: &SqlTerminationStore, shared: &str) -> Dataset {
    const ACTORS: [&str; 3] = ["alice", "bob", "carol"];
    const REASONS: [EndReason; 2] = [EndReason::Admin, EndReason::Anomaly];
    let mut dataset: Dataset = Vec::new();
    for i in [5_i64, 0, 13, 7, 2, 9, 11, 1, 4, 12, 6, 3, 10, 8] {
        let requested = TerminationRecord {
            actor: ACTORS[i as usize % 3].to_owned(),
            reason: REASONS[(i as usize / 2) % 2],
            created_at: T0 + (i / 3) * 1_000,
            ..termination("")
        };
        let mut sessions: Vec<String> = (0..=(i % 3)).map(|_| session_id()).collect();
        if i % 4 == 0 {
            sessions.push(shared.to_owned());
        }
        let given: Vec<CommandRecord> = sessions
            .iter()
            .map(|session| command(&requested, session, "gw"))
            .collect();
        let mut stored = record(store, &requested, &given).await;
        // Some progress, so that the counts differ.
        if i % 2 == 1 {
            apply(store, &[delivered(&stored[0], T0 + 50_000)]).await;
            stored[0] = stored_command(store, &stored[0]).await;
        }
        dataset.push((requested, stored, sessions.into_iter().collect()));
    }

    dataset
}

/// What a list filtered by `keep` must show, newest first.
fn expected_rows(dataset: &Dataset, keep: &dyn Fn(&TerminationRecord, &HashSet<String>) -> bool) -> Listed {
    let mut rows: Listed = dataset
        .iter()
        .filter(|(termination, _, sessions)| keep(termination, sessions))
        .map(|(termination, commands, _)| (termination.clone(), tally(commands)))
        .collect();
    rows.sort_by(|(a, _), (b, _)| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    rows
}

fn list_query(limit: u64) -> TerminationQuery {
    TerminationQuery {
        limit,
        ..TerminationQuery::default()
    }
}

/// Each filter with its page size and expected rows.
fn list_cases(dataset: &Dataset, shared: &str) -> Vec<(&'static str, TerminationQuery, Listed)> {
    let expected = |keep: &dyn Fn(&TerminationRecord, &HashSet<String>) -> bool| expected_rows(dataset, keep);
    let query = list_query;
    let shared = shared.to_owned();
    vec![
        ("everything", query(3), expected(&|_, _| true)),
        (
            "actor",
            TerminationQuery {
                actor: Some("bob".to_owned()),
                ..query(2)
            },
            expected(&|termination, _| termination.actor == "bob"),
        ),
        (
            "reason",
            TerminationQuery {
                reason: Some(EndReason::Anomaly),
                ..query(2)
            },
            expected(&|termination, _| termination.reason == EndReason::Anomaly),
        ),
        (
            "since",
            TerminationQuery {
                since: Some(T0 + 2_000),
                ..query(3)
            },
            expected(&|termination, _| termination.created_at >= T0 + 2_000),
        ),
        (
            "session",
            TerminationQuery {
                session_id: Some(shared.clone()),
                ..query(1)
            },
            expected(&|_, sessions| sessions.contains(&shared)),
        ),
        (
            "unknown session",
            TerminationQuery {
                session_id: Some("no-such-session".to_owned()),
                ..query(5)
            },
            Vec::new(),
        ),
        (
            "all filters",
            TerminationQuery {
                actor: Some("alice".to_owned()),
                reason: Some(EndReason::Admin),
                since: Some(T0 + 1_000),
                session_id: Some(shared.clone()),
                ..query(1)
            },
            expected(&|termination, sessions| {
                termination.actor == "alice"
                    && termination.reason == EndReason::Admin
                    && termination.created_at >= T0 + 1_000
                    && sessions.contains(&shared)
            }),
        ),
        ("one big page", query(1000), expected(&|_, _| true)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------
