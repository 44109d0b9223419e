//! `policies get`.

use sessionctl::EXIT_SERVER;

use crate::fakes::*;

#[tokio::test]
async fn policies_get_shows_one_and_reports_an_unknown_one() {
    let server = serve_policies(three_policies()).await;

    let text = run_to_string(&server, &["policies", "get", SRE_POLICY])
        .await
        .expect("get");
    let value_of = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
    };
    assert_eq!(value_of("Policy"), SRE_POLICY);
    assert_eq!(value_of("Scope"), "group sre");
    assert_eq!(value_of("Description"), "on-call engineers");
    assert_eq!(value_of("Idle warning"), "inherit");
    assert_eq!(value_of("Idle timeout"), "45m");
    assert_eq!(value_of("Max sessions"), "3");
    assert_eq!(value_of("On excess"), "end oldest");

    let json = run_to_string(&server, &["policies", "get", SRE_POLICY, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["id"], SRE_POLICY);
    assert_eq!(value["rules"]["max_session_duration_seconds"], 12 * 3600);

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["policies", "get", missing])
        .await
        .expect_err("no such policy");
    assert_eq!(error.to_string(), format!("no policy {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}
