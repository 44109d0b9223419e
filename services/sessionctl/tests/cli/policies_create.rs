//! `policies create`.

use sessionctl::{CliError, EXIT_SERVER};
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::{ConcurrencyAction, CreatePolicyRequest, PolicyRules, PolicyScope};

use crate::fakes::*;

#[tokio::test]
async fn policies_create_sends_the_scope_and_rules_and_shows_the_result() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "create",
            "--resource",
            "prod-db-01",
            "--idle-timeout",
            "15m",
            "--max-sessions",
            "1",
            "--on-excess",
            "deny-new",
            "--flag-risk",
            "40",
            "--description",
            "production database",
        ],
    )
    .await
    .expect("create");

    assert!(
        text.starts_with("Created the policy for resource prod-db-01.\n\nPolicy "),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle timeout") && l.ends_with(" 15m")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle warning") && l.ends_with(" inherit")),
        "{text}"
    );
    let request = fake.seen.lock().expect("seen lock").create_requests[0].clone();
    assert_eq!(
        request,
        CreatePolicyRequest {
            scope: Some(PolicyScope {
                scope: Some(Scope::ResourceName("prod-db-01".into()))
            }),
            rules: Some(PolicyRules {
                idle_timeout: minutes(15),
                max_concurrent_sessions: Some(1),
                concurrency_action: ConcurrencyAction::DenyNew.into(),
                flag_risk_score: Some(40),
                ..PolicyRules::default()
            }),
            description: "production database".into(),
        }
    );

    let (list, notes) = run_to_streams(&server, &["policies", "list"]).await.expect("list");
    assert!(list.contains("resource prod-db-01"), "{list}");
    assert_eq!(notes, "4 policies\n");

    a_taken_scope_is_refused_in_the_servers_words(&server).await;
    a_policy_is_created_as_json(&server).await;
}

/// The server's refusal comes through as it was worded.
async fn a_taken_scope_is_refused_in_the_servers_words(server: &str) {
    let error = run_to_string(server, &["policies", "create", "--group", "sre"])
        .await
        .expect_err("sre has one");
    assert_eq!(error.to_string(), "that scope already has a policy (already exists)");
}

/// `-o json`: the created policy as the server answered it.
async fn a_policy_is_created_as_json(server: &str) {
    let json = run_to_string(
        server,
        &[
            "policies",
            "create",
            "--group",
            "dba",
            "--max-sessions",
            "0",
            "-o",
            "json",
        ],
    )
    .await
    .expect("create as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["scope"]["group"], "dba");
    assert_eq!(value["rules"]["max_concurrent_sessions"], 0);
}

#[tokio::test]
async fn invalid_rules_are_refused_with_the_servers_words() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let error = run_to_string(
        &server,
        &[
            "policies",
            "create",
            "--user",
            "bob@example.com",
            "--idle-warning",
            "10m",
            "--idle-timeout",
            "5m",
        ],
    )
    .await
    .expect_err("timeout before warning");
    assert!(matches!(error, CliError::Server { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "idle_timeout (300s) must exceed idle_warning_after (600s) (invalid argument)"
    );
    assert_eq!(error.exit_code(), EXIT_SERVER);

    // The same through an update: the global policy warns at 10m, so a 5m timeout contradicts it.
    let error = run_to_string(&server, &["policies", "update", GLOBAL_POLICY, "--idle-timeout", "5m"])
        .await
        .expect_err("timeout before warning");
    assert_eq!(
        error.to_string(),
        "idle_timeout (300s) must exceed idle_warning_after (600s) (invalid argument)"
    );
    assert_eq!(
        fake.stored(GLOBAL_POLICY)
            .and_then(|p| p.rules)
            .and_then(|r| r.idle_timeout),
        minutes(30),
        "unchanged"
    );
}
