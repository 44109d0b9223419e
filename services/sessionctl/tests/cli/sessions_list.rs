//! `sessions list`: a page at a time, every page, the footer.

use vigil_proto::v1::ResourceType;

use crate::fakes::*;

#[tokio::test]
async fn list_shows_one_page_and_how_to_get_the_next() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    let (text, notes) = run_to_streams(&server, &["sessions", "list", "--limit", "2", "--type", "ssh"])
        .await
        .expect("list");

    assert!(
        text.contains("user1@example.com") && text.contains("user2@example.com"),
        "{text}"
    );
    assert!(!text.contains("user3@example.com"), "{text}");
    // The footer and the hint go to stderr: stdout is the table alone, for pipes.
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(notes.contains("2 of 5 sessions"), "{notes}");
    assert!(notes.contains("--page-token 2"), "{notes}");
    let seen = fake.seen.lock().expect("seen lock");
    let request = &seen.list_requests[0];
    assert_eq!(request.page_size, 2);
    assert_eq!(
        request.filter.as_ref().map(|f| f.resource_type),
        Some(ResourceType::Ssh as i32)
    );
}

#[tokio::test]
async fn list_all_follows_every_page() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    let text = run_to_string(&server, &["sessions", "list", "--limit", "2", "--all", "-o", "json"])
        .await
        .expect("list");

    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let users: Vec<&str> = value["sessions"]
        .as_array()
        .expect("sessions array")
        .iter()
        .filter_map(|s| s["user"].as_str())
        .collect();
    assert_eq!(
        users,
        [
            "user1@example.com",
            "user2@example.com",
            "user3@example.com",
            "user4@example.com",
            "user5@example.com"
        ]
    );
    assert_eq!(value["next_page_token"], "");
    assert_eq!(value["total_size"], 5);
    let tokens: Vec<String> = fake
        .seen
        .lock()
        .expect("seen lock")
        .list_requests
        .iter()
        .map(|r| r.page_token.clone())
        .collect();
    assert_eq!(tokens, ["", "2", "4"]);
}
