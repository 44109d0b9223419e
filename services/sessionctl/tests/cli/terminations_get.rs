//! `terminations get`.

use sessionctl::EXIT_SERVER;

use crate::fakes::*;

#[tokio::test]
async fn terminations_get_shows_each_command() {
    let server = serve_both(None, Some(with_history())).await;
    let id = "0195a3c0-7e1f-7000-8000-000000000001";

    let text = run_to_string(&server, &["terminations", "get", id]).await.expect("get");

    assert!(
        text.lines().any(|l| l.starts_with("Termination") && l.ends_with(id)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Selector") && l.ends_with("user alice@example.com")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("Delivery")
            && l.ends_with("1 acknowledged, 0 failed, 0 already ended, 1 delivered, 0 pending")),
        "{text}"
    );
    let header = text.lines().find(|l| l.contains("ATTEMPTS")).expect("commands header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "SESSION", "USER", "GATEWAY", "STATE", "ATTEMPTS", "ACKED", "AT", "DETAIL"
        ]
    );
    let row = text
        .lines()
        .find(|l| l.contains("user2@example.com"))
        .expect("user2's row");
    for cell in [
        &session(2).id[..],
        "gw-ap-1",
        "Delivered",
        "3",
        "gateway slow to answer",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }

    let json = run_to_string(&server, &["terminations", "get", id, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["commands"][0]["state"], "acknowledged");
    assert_eq!(value["commands"][1]["attempts"], 3);

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["terminations", "get", missing])
        .await
        .expect_err("no such termination");
    assert_eq!(error.to_string(), format!("no termination {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}
