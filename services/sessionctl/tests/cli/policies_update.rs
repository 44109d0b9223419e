//! `policies update`.

use sessionctl::EXIT_USAGE;
use vigil_proto::v1::{ConcurrencyAction, PolicyRules, UpdatePolicyRequest};

use crate::fakes::*;

#[tokio::test]
async fn policies_update_sends_the_current_rules_with_only_the_flags_changed() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "update",
            SRE_POLICY,
            "--idle-timeout",
            "1h",
            "--clear",
            "max-duration",
        ],
    )
    .await
    .expect("update");

    assert!(text.starts_with("Updated the policy for group sre.\n\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle timeout") && l.ends_with(" 1h")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Max duration") && l.ends_with(" inherit")),
        "{text}"
    );
    assert_eq!(fake.calls(), ["get", "update"], "read first, then replace");
    let request = fake.seen.lock().expect("seen lock").update_requests[0].clone();
    assert_eq!(
        request,
        UpdatePolicyRequest {
            id: SRE_POLICY.into(),
            rules: Some(PolicyRules {
                idle_timeout: minutes(60),
                max_concurrent_sessions: Some(3),
                concurrency_action: ConcurrencyAction::EndOldest.into(),
                ..PolicyRules::default()
            }),
            description: "on-call engineers".into(),
        }
    );
    let stored = fake.stored(SRE_POLICY).expect("still there");
    assert_eq!(stored.rules, request.rules);

    // Nothing to change, or a contradiction: refused before anything is asked.
    for args in [
        &["policies", "update", SRE_POLICY][..],
        &[
            "policies",
            "update",
            SRE_POLICY,
            "--flag-risk",
            "30",
            "--clear",
            "flag-risk",
        ],
    ] {
        let error = run_to_string(&server, args).await.expect_err("refused");
        assert_eq!(error.exit_code(), EXIT_USAGE, "{args:?}");
    }
    assert_eq!(fake.calls().len(), 2, "no further calls");

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["policies", "update", missing, "--deny-risk", "60"])
        .await
        .expect_err("no such policy");
    assert_eq!(error.to_string(), format!("no policy {missing} (not found)"));
    assert_eq!(fake.calls().last(), Some(&"get"), "nothing to update");
}
