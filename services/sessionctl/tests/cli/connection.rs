//! What every command shares: the token, timeouts, separate service addresses.

use sessionctl::{CliError, EXIT_UNREACHABLE};

use crate::fakes::*;

#[tokio::test]
async fn the_token_goes_out_as_a_bearer_header_on_every_call() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    run_to_string(&server, &["--token", "s3cret", "stats"])
        .await
        .expect("stats");
    run_to_string(&server, &["gateways", "list", "--token", "s3cret"])
        .await
        .expect("gateways");
    run_to_string(&server, &["sessions", "list"])
        .await
        .expect("list without a token");

    let seen = fake.seen.lock().expect("seen lock");
    assert_eq!(
        seen.authorization,
        [Some("Bearer s3cret".to_owned()), Some("Bearer s3cret".to_owned()), None]
    );
}

#[tokio::test]
async fn a_registry_that_does_not_answer_times_out() {
    let server = serve(FakeRegistry {
        stall_stats: true,
        ..FakeRegistry::default()
    })
    .await;

    let error = run_to_string(&server, &["--timeout", "200ms", "stats"])
        .await
        .expect_err("stats stall");

    assert!(matches!(error, CliError::TimedOut { .. }), "{error:?}");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(error.to_string().contains("did not answer within 200ms"), "{error}");
}

#[tokio::test]
async fn a_separate_termination_server_is_used_when_given() {
    let (registry, terminations) = termination_fakes();
    let registry_server = serve_both(Some(registry), None).await;
    let termination_server = serve_both(None, Some(terminations.clone())).await;

    let ran = run_answering(
        &registry_server,
        &[
            "sessions",
            "end",
            "--all",
            "-y",
            "--no-wait",
            "--termination-server",
            &termination_server,
        ],
        None,
    )
    .await;
    ran.result.expect("ends through the separate termination service");
    assert_eq!(terminations.seen.lock().expect("seen lock").terminate_requests.len(), 1);

    // Without it, the registry's address is asked, which does not serve terminations here.
    let ran = run_answering(&registry_server, &["sessions", "end", "--all", "-y"], None).await;
    let error = ran.result.expect_err("no termination service there");
    assert!(
        error.to_string().contains("(unimplemented); is --termination-server"),
        "{error}"
    );

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let error = run_to_string(
        &registry_server,
        &["terminations", "list", "--termination-server", &nowhere],
    )
    .await
    .expect_err("unreachable");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot reach the Vigil termination service at {nowhere} (connection refused)"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_separate_policy_server_is_used_when_given() {
    let fake = three_policies();
    let registry_server = serve(FakeRegistry::default()).await;
    let policy_server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &registry_server,
        &["policies", "list", "--policy-server", &policy_server],
    )
    .await
    .expect("lists through the separate policy service");
    assert!(text.contains("group sre"), "{text}");

    // Without it, the registry's address is asked, which does not serve policies here.
    let error = run_to_string(&registry_server, &["policies", "list"])
        .await
        .expect_err("no policy service there");
    assert!(
        error.to_string().contains("(unimplemented); is --policy-server"),
        "{error}"
    );

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let error = run_to_string(&policy_server, &["policies", "list", "--policy-server", &nowhere])
        .await
        .expect_err("unreachable");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot reach the Vigil policy service at {nowhere} (connection refused)"
        )),
        "{error}"
    );
}
