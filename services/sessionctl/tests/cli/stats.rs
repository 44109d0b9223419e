//! `stats`.

use crate::fakes::*;

#[tokio::test]
async fn stats_and_gateways_render() {
    let server = serve(five_sessions()).await;

    let text = run_to_string(&server, &["stats"]).await.expect("stats");
    assert!(
        text.lines().any(|l| l.starts_with("Active") && l.ends_with(" 2")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Total duration") && l.ends_with("3h 07m")),
        "{text}"
    );

    let (text, notes) = run_to_streams(&server, &["gateways", "list", "--connected"])
        .await
        .expect("gateways");
    assert!(text.contains("gw-eu-1") && text.contains("registry-0"), "{text}");
    assert!(notes.contains("1 gateway, 1 connected"), "{notes}");
}
