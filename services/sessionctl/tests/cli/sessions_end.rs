//! `sessions end` (with and without --lock): preview, confirmation, waiting for the gateways.

use sessionctl::{CliError, EXIT_ABORTED, EXIT_SERVER, EXIT_USAGE};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{DeliveryState, EndReason};

use crate::fakes::*;

#[tokio::test]
async fn end_with_yes_waits_for_the_gateways_and_summarises() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry.clone()), Some(terminations.clone())).await;

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--gateway",
            "gw-eu-1",
            "--reason",
            "anomaly",
            "--message",
            "Your session was ended by security",
            "--note",
            "ticket SOC-1234",
            "--yes",
            "--token",
            "s3cret",
        ],
        None,
    )
    .await;

    ran.result.expect("the sessions end");
    assert_eq!(ran.console, "", "--yes asks nothing");
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(
        lines,
        [
            &format!("Termination {TERMINATION_ID}: ending 5 sessions (gateway gw-eu-1, reason: anomaly).")[..],
            "Waiting for the gateways: 0 of 5 acknowledged, 0 failed, 0 already ended, 5 waiting",
            "Waiting for the gateways: 2 of 5 acknowledged, 0 failed, 0 already ended, 3 waiting",
            "Ended 5 sessions: 4 acknowledged, 0 failed, 1 already ended.",
            &format!("Each session's state: sessionctl terminations get {TERMINATION_ID}")[..],
        ],
        "{}",
        ran.out
    );

    let seen = terminations.seen.lock().expect("seen lock");
    let [request] = seen.terminate_requests.as_slice() else {
        panic!("one Terminate call, got {:?}", seen.terminate_requests)
    };
    assert_eq!(
        request.selector.as_ref().and_then(|s| s.target.clone()),
        Some(Target::GatewayId("gw-eu-1".into()))
    );
    assert_eq!(request.expected_count, Some(5), "the previewed count guards the action");
    assert_eq!(request.reason, EndReason::Anomaly as i32);
    assert_eq!(request.user_message, "Your session was ended by security");
    assert_eq!(request.note, "ticket SOC-1234");
    assert_eq!(seen.get_requests, 2, "polled until nothing was left waiting");
    assert!(
        seen.authorization.iter().all(|h| h.as_deref() == Some("Bearer s3cret")),
        "{:?}",
        seen.authorization
    );
    let previews = &registry.seen.lock().expect("seen lock").resolve_requests;
    assert_eq!(previews.len(), 1);
}

#[tokio::test]
async fn end_as_json_prints_the_final_termination() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry), Some(terminations)).await;

    let ran = run_answering(&server, &["sessions", "end", "--all", "-y", "-o", "json"], None).await;

    ran.result.expect("the sessions end");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("only JSON on stdout");
    assert_eq!(value["termination"]["id"], TERMINATION_ID);
    assert_eq!(
        value["termination"]["selector"],
        serde_json::json!({ "all": { "idle_only": false } })
    );
    assert_eq!(value["termination"]["acknowledged"], 4);
    assert_eq!(value["termination"]["already_ended"], 1);
    assert_eq!(value["termination"]["pending"], 0);
    assert_eq!(value["termination"]["commands"][4]["state"], "already_ended");
    assert_eq!(value["already_ended"], serde_json::json!([]));
}

#[tokio::test]
async fn a_declined_prompt_ends_nothing_and_exits_4() {
    for typed in ["n\n", "\n", "", "nope\n"] {
        let (registry, terminations) = termination_fakes();
        let server = serve_both(Some(registry), Some(terminations.clone())).await;

        let ran = run_answering(&server, &["sessions", "end", "--resource", "prod-db-01"], Some(typed)).await;

        let error = ran.result.expect_err("declined");
        assert!(matches!(error, CliError::Aborted(_)), "{typed:?}: {error:?}");
        assert_eq!(error.exit_code(), EXIT_ABORTED);
        assert_eq!(error.to_string(), "aborted; nothing was ended");
        assert!(
            ran.console
                .starts_with("5 sessions will end (resource prod-db-01, reason: admin):\n"),
            "{}",
            ran.console
        );
        for n in 1..=5 {
            assert!(ran.console.contains(&format!("user{n}@example.com")), "{}", ran.console);
        }
        assert!(
            ran.console
                .contains("\nEnding a session may lose the user's unsaved work.\nEnd 5 sessions? [y/N] ")
        );
        assert_eq!(ran.out, "", "nothing on stdout");
        assert!(
            terminations
                .seen
                .lock()
                .expect("seen lock")
                .terminate_requests
                .is_empty(),
            "{typed:?}: Terminate must not be called"
        );
    }
}

#[tokio::test]
async fn a_confirmed_prompt_ends_the_sessions() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;
    let id = session(3).id;

    let ran = run_answering(&server, &["sessions", "end", &id, "--no-wait"], Some("yes\n")).await;

    ran.result.expect("confirmed");
    assert!(
        ran.console
            .starts_with("1 session will end (session 00000000, reason: admin):"),
        "{}",
        ran.console
    );
    assert!(ran.console.ends_with("End 1 session? [y/N] "), "{}", ran.console);
    assert_eq!(
        ran.out,
        format!(
            "Termination {TERMINATION_ID}: ending 1 session (session 00000000, reason: admin).\n\
             Not waiting for the gateways. Each session's state: sessionctl terminations get {TERMINATION_ID}\n"
        )
    );
    let seen = terminations.seen.lock().expect("seen lock");
    assert_eq!(seen.terminate_requests.len(), 1);
    assert_eq!(seen.get_requests, 0, "--no-wait does not poll");
}

#[tokio::test]
async fn without_a_terminal_end_needs_yes_and_asks_the_server_nothing() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry.clone()), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--all"], None).await;

    let error = ran.result.expect_err("refused");
    assert_eq!(error.exit_code(), EXIT_USAGE);
    assert!(error.to_string().contains("pass --yes"), "{error}");
    assert!(registry.seen.lock().expect("seen lock").resolve_requests.is_empty());
    assert!(
        terminations
            .seen
            .lock()
            .expect("seen lock")
            .terminate_requests
            .is_empty()
    );
}

#[tokio::test]
async fn a_world_changed_since_the_preview_is_refused_with_a_clear_message() {
    let (mut registry, mut terminations) = termination_fakes();
    registry.late_arrival = Some(session(6));
    terminations.registry = registry.clone();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--gateway", "gw-eu-1"], Some("y\n")).await;

    let error = ran.result.expect_err("the count changed");
    assert!(matches!(error, CliError::PreviewChanged { now: Some(6) }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the set of sessions changed since the preview (now 6); nothing was ended; run the command again"
    );
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert!(ran.console.contains("End 5 sessions? [y/N] "), "{}", ran.console);
    let seen = terminations.seen.lock().expect("seen lock");
    assert_eq!(seen.terminate_requests[0].expected_count, Some(5));
}

#[tokio::test]
async fn nothing_live_means_nothing_to_do_but_unknown_ids_are_errors() {
    let (mut registry, mut terminations) = termination_fakes();
    let gone = "0000dead-0000-4000-8000-000000000000";
    registry.ended = vec![gone.to_owned()];
    terminations.registry = registry.clone();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--user", "nobody@example.com"], Some("")).await;
    ran.result.expect("nothing to end is not an error");
    assert_eq!(
        ran.out,
        "No live sessions for user nobody@example.com; nothing to end.\n"
    );
    assert_eq!(ran.console, "", "nothing to confirm");

    let ran = run_answering(&server, &["sessions", "end", gone, "-y"], None).await;
    ran.result.expect("nothing to end is not an error");
    assert_eq!(
        ran.out,
        format!("None of the given sessions is live; nothing to end.\nAlready ended: {gone}\n")
    );

    let missing = "ffffffff-0000-4000-8000-000000000000";
    let ran = run_answering(&server, &["sessions", "end", missing, "-y"], None).await;
    let error = ran.result.expect_err("unknown id");
    assert_eq!(error.to_string(), format!("no session {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);

    assert!(
        terminations
            .seen
            .lock()
            .expect("seen lock")
            .terminate_requests
            .is_empty()
    );
}

#[tokio::test]
async fn a_wait_that_runs_out_says_what_is_still_pending() {
    let (registry, mut terminations) = termination_fakes();
    terminations.progress = vec![vec![
        DeliveryState::Acknowledged,
        DeliveryState::Failed,
        DeliveryState::Delivered,
        DeliveryState::Pending,
        DeliveryState::Pending,
    ]];
    let server = serve_both(Some(registry), Some(terminations)).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--all", "--yes", "--wait-timeout", "500ms"],
        None,
    )
    .await;

    ran.result
        .expect("a wait that runs out is not an error: the termination goes on");
    let progress = ran.out.lines().filter(|l| l.starts_with("Waiting")).count();
    assert_eq!(progress, 1, "a line only when the counts move: {}", ran.out);
    assert!(
        ran.out.contains(
            "Ended 5 sessions: 1 acknowledged, 1 failed (00000000: the gateway could not end it), 0 already ended; \
             1 delivered, not yet acknowledged, 2 still pending (the gateways will get them when they reconnect).\n"
        ),
        "{}",
        ran.out
    );
}

#[tokio::test]
async fn end_with_lock_locks_the_target_and_follows_what_the_lock_ended() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations.clone(), policies.clone()).await;

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--gateway",
            "gw-eu-1",
            "--lock",
            "--for",
            "1h",
            "--message",
            "Your access is suspended by security — contact the SOC",
            "--note",
            "SOC-1234",
            "--yes",
            "--token",
            "s3cret",
        ],
        None,
    )
    .await;

    ran.result.expect("locked and ended");
    let lines: Vec<&str> = ran.out.lines().collect();
    assert!(
        lines[0].starts_with("Locked gateway gw-eu-1 until ") && lines[0].ends_with(&format!("(lock {FIRST_LOCK}).")),
        "{}",
        ran.out
    );
    assert_eq!(
        lines[1..],
        [
            &format!("Termination {TERMINATION_ID}: ending 5 sessions (gateway gw-eu-1, reason: locked).")[..],
            "Waiting for the gateways: 0 of 5 acknowledged, 0 failed, 0 already ended, 5 waiting",
            "Waiting for the gateways: 2 of 5 acknowledged, 0 failed, 0 already ended, 3 waiting",
            "Ended 5 sessions: 4 acknowledged, 0 failed, 1 already ended.",
            &format!("Each session's state: sessionctl terminations get {TERMINATION_ID}")[..],
        ],
        "{}",
        ran.out
    );

    let seen = policies.seen.lock().expect("seen lock");
    let [request] = seen.create_lock_requests.as_slice() else {
        panic!("one CreateLock call, got {:?}", seen.create_lock_requests)
    };
    assert_eq!(
        request.target.as_ref().and_then(|t| t.target.clone()),
        Some(LockOn::GatewayId("gw-eu-1".into()))
    );
    assert_eq!(
        request.ttl,
        Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0
        })
    );
    assert_eq!(
        request.message,
        "Your access is suspended by security — contact the SOC"
    );
    assert_eq!(request.reason, "SOC-1234");
    assert!(seen.authorization.iter().all(|h| h.as_deref() == Some("Bearer s3cret")));
    // The lock ended the sessions; sessionctl only found that termination and followed it.
    let seen = terminations.seen.lock().expect("seen lock");
    assert!(seen.terminate_requests.is_empty(), "{:?}", seen.terminate_requests);
    assert_eq!(seen.list_requests[0].reason, EndReason::Locked as i32);
    assert_eq!(seen.get_requests, 2);
}

#[tokio::test]
async fn end_with_lock_asks_about_both_and_a_no_does_neither() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--gateway", "gw-eu-1", "--lock"],
        Some("n\n"),
    )
    .await;

    let error = ran.result.expect_err("declined");
    assert_eq!(error.exit_code(), EXIT_ABORTED);
    assert_eq!(error.to_string(), "aborted; nothing was ended or locked");
    assert!(
        ran.console
            .starts_with("5 sessions will end (gateway gw-eu-1, reason: locked):\n"),
        "{}",
        ran.console
    );
    assert!(
        ran.console.ends_with(
            "\ngateway gw-eu-1 will be locked out until the lock is removed: new sessions are refused with the \
             server's lock message.\nEnd 5 sessions and lock gateway gw-eu-1? [y/N] "
        ),
        "{}",
        ran.console
    );
    assert!(policies.seen.lock().expect("seen lock").create_lock_requests.is_empty());

    // Without a terminal, --yes is needed before anything is asked of the servers.
    let ran = run_answering(&server, &["sessions", "end", "--user", "a", "--lock"], None).await;
    assert_eq!(ran.result.expect_err("no terminal").exit_code(), EXIT_USAGE);
    assert!(policies.seen.lock().expect("seen lock").create_lock_requests.is_empty());
}

#[tokio::test]
async fn a_user_never_seen_can_be_locked_out_ahead_of_time() {
    let registry = FakeRegistry {
        unknown_users_not_found: true,
        ..five_sessions()
    };
    let (registry, terminations, policies) = lock_fakes(registry);
    let server = serve_all(registry, terminations, policies.clone()).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--user", "ghost@example.com", "--lock"],
        Some("y\n"),
    )
    .await;
    ran.result.expect("locked");
    assert_eq!(
        ran.console,
        "No live sessions for user ghost@example.com.\n\nuser ghost@example.com will be locked out until the lock \
         is removed: new sessions are refused with the server's lock message.\nLock user ghost@example.com? [y/N] "
    );
    assert_eq!(
        ran.out,
        format!(
            "Locked user ghost@example.com until removed (lock {FIRST_LOCK}).\nNo live session was ended for it.\n"
        )
    );

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--user",
            "ghost2@example.com",
            "--lock",
            "-y",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    ran.result.expect("locked");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("only JSON on stdout");
    assert_eq!(
        value["lock"]["target"],
        serde_json::json!({ "user": "ghost2@example.com" })
    );
    assert_eq!(value["lock"]["expires_at"], serde_json::Value::Null);
    assert_eq!(value["termination"], serde_json::Value::Null);
    assert_eq!(value["already_ended"], serde_json::json!([]));
    assert_eq!(policies.seen.lock().expect("seen lock").create_lock_requests.len(), 2);
}
