//! `policies effective`.

use vigil_proto::v1::GetEffectivePolicyRequest;

use crate::fakes::*;

#[tokio::test]
async fn policies_effective_shows_the_merged_rules_and_where_they_come_from() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "alice@example.com",
            "--group",
            "sre",
            "--group",
            "eng",
            "--resource",
            "prod-db-01",
        ],
    )
    .await
    .expect("effective");

    assert!(
        text.starts_with("Rules for alice@example.com (groups sre, eng) on prod-db-01:\n\n"),
        "{text}"
    );
    let value_of = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
    };
    assert_eq!(value_of("Idle warning"), "10m", "from the global policy");
    assert_eq!(value_of("Idle timeout"), "45m", "from sre");
    assert_eq!(value_of("Max sessions"), "3");
    assert_eq!(value_of("On excess"), "end oldest");
    assert_eq!(value_of("Deny if risk ≥"), "70", "from alice's own");
    assert_eq!(value_of("From policies"), ALICE_POLICY);
    assert!(
        text.ends_with(&format!(
            "{ALICE_POLICY}\n                {SRE_POLICY}\n                {GLOBAL_POLICY}\n"
        )),
        "{text}"
    );
    assert_eq!(
        fake.seen.lock().expect("seen lock").effective_requests,
        [GetEffectivePolicyRequest {
            user: "alice@example.com".into(),
            user_groups: vec!["sre".into(), "eng".into()],
            resource_name: "prod-db-01".into(),
        }]
    );

    let json = run_to_string(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "bob",
            "--resource",
            "wiki",
            "-o",
            "json",
        ],
    )
    .await
    .expect("effective as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["policy_ids"], serde_json::json!([GLOBAL_POLICY]));
    assert_eq!(value["rules"]["idle_timeout_seconds"], 1800);
    assert_eq!(value["rules"]["concurrency_action"], "deny_new");
}

#[tokio::test]
async fn without_groups_the_users_latest_session_gives_them() {
    let mut latest = session(1);
    latest.user_groups = vec!["sre".into()];
    let registry = FakeRegistry {
        sessions: vec![latest],
        ..FakeRegistry::default()
    };
    let policies = three_policies();
    let server = serve_all(registry, FakeTerminations::default(), policies.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "user1@example.com",
            "--resource",
            "prod-db-01",
        ],
    )
    .await
    .expect("effective");
    assert!(text.contains("(group sre, from their latest session)"), "{text}");
    let asked = policies.seen.lock().expect("seen lock").effective_requests.clone();
    assert_eq!(asked[0].user_groups, ["sre"]);

    // Nobody the registry knows: the rules without groups, and a note saying so.
    let server = serve_all(FakeRegistry::default(), FakeTerminations::default(), three_policies()).await;
    let (_, notes) = run_to_streams(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "nobody@example.com",
            "--resource",
            "prod-db-01",
        ],
    )
    .await
    .expect("effective");
    assert!(notes.contains("their groups are not"), "{notes}");
}
