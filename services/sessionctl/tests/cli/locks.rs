//! `locks create|list|delete`.

use prost_types::Timestamp;
use sessionctl::{EXIT_ABORTED, EXIT_SERVER, EXIT_USAGE};
use vigil_proto::v1::lock_target::Target as LockOn;

use crate::fakes::*;

#[tokio::test]
async fn locks_are_created_listed_and_removed() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    a_two_hour_lock_is_created(&server, &policies).await;
    expired_locks_are_listed_only_with_all(&server, &policies).await;
    a_lock_is_removed_once(&server).await;
}

/// `locks create --for 2h --yes`: said with its message and reason, the TTL sent, its session ending.
async fn a_two_hour_lock_is_created(server: &str, policies: &FakePolicies) {
    let out = run_to_string(
        server,
        &[
            "locks",
            "create",
            "--user",
            "user1@example.com",
            "--for",
            "2h",
            "--reason",
            "SOC-1234",
            "--yes",
        ],
    )
    .await
    .expect("created");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Locked user user1@example.com until ")
            && lines[0].ends_with(&format!("(lock {FIRST_LOCK}).")),
        "{out}"
    );
    assert!(
        out.contains("\nMessage  Your access is locked by security; contact your administrator.\n"),
        "{out}"
    );
    assert!(out.contains("\nReason   SOC-1234\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Ending 1 live session it covers (termination {TERMINATION_ID}).\n"
        )),
        "{out}"
    );
    let created = policies.seen.lock().expect("seen lock").create_lock_requests[0].clone();
    assert_eq!(
        created.ttl,
        Some(prost_types::Duration {
            seconds: 7200,
            nanos: 0
        })
    );
}

/// A second lock, already expired: listed only with `--all`.
async fn expired_locks_are_listed_only_with_all(server: &str, policies: &FakePolicies) {
    {
        let mut locks = policies.locks.lock().expect("locks lock");
        let mut expired = locks[0].0.clone();
        expired.id = "0195a3c0-7e1f-7000-8000-00000000dead".into();
        expired.target = Some(vigil_proto::v1::LockTarget {
            target: Some(LockOn::Cidr("203.0.113.0/24".into())),
        });
        expired.expires_at = Some(Timestamp {
            seconds: 1_741_076_100,
            nanos: 0,
        });
        locks.push((expired, true));
    }
    let (out, notes) = run_to_streams(server, &["locks", "list"]).await.expect("listed");
    assert!(out.contains("user user1@example.com"), "{out}");
    assert!(!out.contains("203.0.113.0/24"), "{out}");
    assert_eq!(notes, "1 lock\n");
    let (out, notes) = run_to_streams(server, &["locks", "list", "--all", "--wide"])
        .await
        .expect("listed");
    assert!(out.contains(FIRST_LOCK), "{out}");
    assert!(out.contains("network 203.0.113.0/24"), "{out}");
    assert!(out.contains("expired "), "{out}");
    assert_eq!(notes, "2 locks\n");
    let requests = policies.seen.lock().expect("seen lock").list_lock_requests.clone();
    assert_eq!(
        requests.iter().map(|r| r.include_expired).collect::<Vec<_>>(),
        vec![false, true]
    );
    let json = run_to_string(server, &["locks", "list", "-o", "json"])
        .await
        .expect("listed");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["locks"][0]["id"], FIRST_LOCK);
    assert_eq!(
        value["locks"][0]["target"],
        serde_json::json!({ "user": "user1@example.com" })
    );
    assert_eq!(value["locks"][0]["reason"], "SOC-1234");
    assert!(value["locks"][0]["expires_at"].is_string());
}

/// `locks delete`: removed, then not found, which `--ignore-not-found` lets pass.
async fn a_lock_is_removed_once(server: &str) {
    let out = run_to_string(server, &["locks", "delete", FIRST_LOCK])
        .await
        .expect("removed");
    assert_eq!(
        out,
        format!("Removed lock {FIRST_LOCK} (user user1@example.com): what it refused is admitted again.\n")
    );
    let error = run_to_string(server, &["locks", "delete", FIRST_LOCK])
        .await
        .expect_err("gone already");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(
        error.to_string(),
        format!("lock \"{FIRST_LOCK}\" not found (not found)")
    );
    // kubectl's --ignore-not-found: a second delete is no failure.
    let (out, notes) = run_to_streams(server, &["locks", "delete", FIRST_LOCK, "--ignore-not-found"])
        .await
        .expect("nothing to do is fine");
    assert_eq!(out, "");
    assert_eq!(notes, "No such lock; nothing to remove.\n");
}

#[tokio::test]
async fn a_refused_lock_is_reported_in_the_servers_words() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    let error = run_to_string(&server, &["locks", "create", "--cidr", "10.1.2.3/16"])
        .await
        .expect_err("host bits");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(
        error.to_string(),
        "target.cidr \"10.1.2.3/16\" has bits set past the prefix length; did you mean 10.1.0.0/16? (invalid argument)"
    );
    assert!(policies.locks.lock().expect("locks lock").is_empty());
}

#[tokio::test]
async fn a_lock_that_would_end_live_sessions_asks_first_and_dry_run_changes_nothing() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;
    let lock_user1 = ["locks", "create", "--user", "user1@example.com"];

    // Without a terminal and without --yes: refused, nothing locked.
    let ran = run_answering(&server, &lock_user1, None).await;
    let error = ran.result.expect_err("needs --yes");
    assert_eq!(error.exit_code(), EXIT_USAGE, "{error}");
    assert!(error.to_string().contains("would end"), "{error}");

    // --dry-run shows what would end.
    let ran = run_answering(&server, &[&lock_user1[..], &["--dry-run"]].concat(), None).await;
    ran.result.expect("dry run");
    assert!(ran.out.contains("user1@example.com"), "{}", ran.out);
    assert!(ran.err.contains("Dry run: nothing was locked"), "{}", ran.err);

    // A no at the prompt: nothing locked, exit 4.
    let ran = run_answering(&server, &lock_user1, Some("n\n")).await;
    assert_eq!(ran.result.expect_err("declined").exit_code(), EXIT_ABORTED);
    assert!(
        ran.console.contains("user1@example.com"),
        "the question shows what ends: {}",
        ran.console
    );
    assert!(policies.seen.lock().expect("seen lock").create_lock_requests.is_empty());

    // A yes: locked.
    let ran = run_answering(&server, &lock_user1, Some("y\n")).await;
    ran.result.expect("locked");
    assert_eq!(policies.seen.lock().expect("seen lock").create_lock_requests.len(), 1);

    // Removing every lock on the user by target, then again with --ignore-not-found.
    let ran = run_answering(
        &server,
        &["locks", "delete", "--user", "user1@example.com", "--dry-run"],
        None,
    )
    .await;
    ran.result.expect("dry run");
    assert!(ran.out.starts_with("Would remove: Removed lock"), "{}", ran.out);
    assert!(policies.seen.lock().expect("seen lock").delete_lock_requests.is_empty());
    run_to_string(&server, &["locks", "delete", "--user", "user1@example.com"])
        .await
        .expect("removed");
    assert_eq!(policies.seen.lock().expect("seen lock").delete_lock_requests.len(), 1);
    let error = run_to_string(&server, &["locks", "delete", "--user", "user1@example.com"])
        .await
        .expect_err("none left");
    assert_eq!(error.exit_code(), EXIT_SERVER, "{error}");
    run_to_string(
        &server,
        &["locks", "delete", "--user", "user1@example.com", "--ignore-not-found"],
    )
    .await
    .expect("nothing to do is fine");
}
