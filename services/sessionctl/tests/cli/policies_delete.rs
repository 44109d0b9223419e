//! `policies delete`.

use sessionctl::{CliError, EXIT_ABORTED, EXIT_USAGE};

use crate::fakes::*;

#[tokio::test]
async fn policies_delete_shows_the_policy_and_asks_first() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    for typed in ["n\n", "\n", ""] {
        let ran = run_answering(&server, &["policies", "delete", SRE_POLICY], Some(typed)).await;
        let error = ran.result.expect_err("declined");
        assert!(matches!(error, CliError::Aborted(_)), "{typed:?}: {error:?}");
        assert_eq!(error.to_string(), "aborted; nothing was deleted");
        assert_eq!(error.exit_code(), EXIT_ABORTED);
        assert!(ran.console.starts_with("Policy "), "{}", ran.console);
        assert!(ran.console.contains("on-call engineers"), "{}", ran.console);
        // At the end of input the prompt's line is closed for the shell.
        assert!(
            ran.console.trim_end_matches('\n').ends_with(
                "What it covers falls back to the less specific policies.\nDelete the policy for group sre? [y/N] "
            ),
            "{}",
            ran.console
        );
        assert_eq!(ran.out, "");
    }
    assert!(fake.calls().iter().all(|call| *call == "get"), "{:?}", fake.calls());
    assert!(fake.stored(SRE_POLICY).is_some());

    let ran = run_answering(&server, &["policies", "delete", SRE_POLICY], Some("y\n")).await;
    ran.result.expect("confirmed");
    assert_eq!(ran.out, format!("Deleted policy {SRE_POLICY} (group sre).\n"));
    assert!(fake.stored(SRE_POLICY).is_none());
    assert_eq!(fake.seen.lock().expect("seen lock").delete_requests, [SRE_POLICY]);
}

#[tokio::test]
async fn policies_delete_without_a_terminal_needs_yes() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let ran = run_answering(&server, &["policies", "delete", ALICE_POLICY], None).await;
    let error = ran.result.expect_err("refused");
    assert_eq!(error.exit_code(), EXIT_USAGE);
    assert!(error.to_string().contains("pass --yes"), "{error}");
    assert!(fake.calls().is_empty(), "nothing asked of the server");

    let ran = run_answering(
        &server,
        &["policies", "delete", ALICE_POLICY, "--yes", "-o", "json"],
        None,
    )
    .await;
    ran.result.expect("deleted");
    assert_eq!(ran.console, "", "nothing asked");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("valid JSON");
    assert_eq!(value["deleted"]["id"], ALICE_POLICY);
    assert_eq!(value["deleted"]["scope"]["user"], "alice@example.com");
    assert!(fake.stored(ALICE_POLICY).is_none());

    // The server keeps the global policy; its refusal comes through.
    let ran = run_answering(&server, &["policies", "delete", GLOBAL_POLICY, "-y"], None).await;
    let error = ran.result.expect_err("the global policy stays");
    assert_eq!(
        error.to_string(),
        "the global policy cannot be deleted, only changed (failed precondition)"
    );
}
