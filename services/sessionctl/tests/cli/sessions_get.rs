//! `sessions get`.

use sessionctl::EXIT_SERVER;

use crate::fakes::*;

#[tokio::test]
async fn get_shows_a_session_and_reports_an_unknown_one() {
    let server = serve(five_sessions()).await;
    let id = session(3).id;

    let text = run_to_string(&server, &["sessions", "get", &id]).await.expect("get");
    assert!(
        text.contains(&id) && text.contains("user3@example.com") && text.contains("Berlin (DE)"),
        "{text}"
    );

    let json = run_to_string(&server, &["sessions", "get", &id, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["id"], id.as_str());
    assert_eq!(value["status"], "active");

    let missing = "ffffffff-0000-4000-8000-000000000000";
    let error = run_to_string(&server, &["sessions", "get", missing])
        .await
        .expect_err("no such session");
    assert_eq!(error.to_string(), format!("no session {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}
