//! `policies list`.

use crate::fakes::*;

#[tokio::test]
async fn policies_list_shows_each_scope_with_inherit_for_unset_rules() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(&server, &["policies", "list", "--token", "s3cret"])
        .await
        .expect("list");

    let header = text.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.ends_with("UPDATED"), "{text}");
    let row = text.lines().find(|l| l.contains("group sre")).expect("the sre row");
    for cell in [
        "000000a2",
        "inherit",
        "45m",
        "12h",
        "3 (end oldest)",
        "by admin@example.com",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    let row = text.lines().find(|l| l.contains("global")).expect("the global row");
    for cell in ["10m", "30m", "8h", "unlimited (deny new)", "90", "50"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("user alice@example.com"))
        .expect("alice's row");
    assert_eq!(row.matches("inherit").count(), 5, "all but the deny threshold: {row:?}");
    assert!(row.contains(" 70 "), "{row:?}");
    assert_eq!(text.lines().count(), 4, "a header and three rows: {text}");
    assert_eq!(
        fake.seen.lock().expect("seen lock").authorization,
        [Some("Bearer s3cret".to_owned())]
    );

    let json = run_to_string(&server, &["policies", "list", "-o", "json"])
        .await
        .expect("list as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let policies = value["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 3);
    assert_eq!(policies[0]["scope"], serde_json::json!({ "global": {} }));
    assert_eq!(policies[1]["scope"]["group"], "sre");
    assert_eq!(policies[1]["rules"]["idle_timeout_seconds"], 2700);
    assert_eq!(
        policies[1]["rules"]["idle_warning_after_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(policies[1]["rules"]["concurrency_action"], "end_oldest");
    assert_eq!(policies[2]["rules"]["deny_risk_score"], 70);
}
