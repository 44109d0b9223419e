//! `terminations list`.

use vigil_proto::v1::EndReason;

use crate::fakes::*;

#[tokio::test]
async fn terminations_list_shows_the_audit_trail() {
    let terminations = with_history();
    let server = serve_both(None, Some(terminations.clone())).await;

    let (text, notes) = run_to_streams(
        &server,
        &[
            "terminations",
            "list",
            "--actor",
            "admin@example.com",
            "--reason",
            "admin",
            "--since",
            "2h",
            "--limit",
            "2",
        ],
    )
    .await
    .expect("list");

    let header = text.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.ends_with("FAILED"), "{text}");
    let row = text.lines().find(|l| l.contains("soc@example.com")).expect("soc's row");
    for cell in ["00000002", "all (idle)", "policy"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("user alice@example.com") && l.contains("admin")),
        "{text}"
    );
    assert!(!text.contains("self-service"), "one page of two: {text}");
    assert!(!text.contains("More"), "{text}");
    assert!(
        notes.contains("2 terminations\nMore: repeat with --page-token 2"),
        "{notes}"
    );
    {
        let seen = terminations.seen.lock().expect("seen lock");
        let request = &seen.list_requests[0];
        assert_eq!(request.actor, "admin@example.com");
        assert_eq!(request.reason, EndReason::Admin as i32);
        assert_eq!(request.page_size, 2);
        assert!(request.since.is_some());
    }

    let json = run_to_string(
        &server,
        &["terminations", "list", "--all", "--limit", "2", "-o", "json"],
    )
    .await
    .expect("list as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let reasons: Vec<&str> = value["terminations"]
        .as_array()
        .expect("terminations")
        .iter()
        .filter_map(|t| t["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["admin", "policy", "user_self_service"]);
    assert_eq!(value["terminations"][1]["selector"]["all"]["idle_only"], true);
    assert_eq!(value["next_page_token"], "");
}
