//! Golden outputs of `sessions list` in every format, the pipe contract and `--no-headers`.

use clap::Parser;
use sessionctl::Cli;
use vigil_proto::v1::{Risk, RiskFlag, SessionStatus};

use crate::fakes::*;

/// Two sessions: one active, one idle with a risk flag.
fn two_sessions() -> FakeRegistry {
    let mut flagged = session(2);
    flagged.status = SessionStatus::Idle.into();
    flagged.user_groups = vec!["sre".into(), "oncall".into()];
    flagged.risk = Some(Risk {
        score: 60,
        flags: vec![RiskFlag {
            code: "new_country".into(),
            points: 60,
            explanation: "first session from DE".into(),
        }],
        assessed: true,
    });
    FakeRegistry {
        sessions: vec![session(1), flagged],
        ..FakeRegistry::default()
    }
}

/// `HH:MM` (or `Mon DD HH:MM` on another day) of the fakes' start, as the table shows it here.
fn started() -> String {
    let at = chrono::DateTime::from_timestamp(1_741_076_100, 0)
        .expect("valid")
        .with_timezone(&chrono::Local);
    if at.date_naive() == chrono::Local::now().date_naive() {
        at.format("%H:%M").to_string()
    } else if at.format("%Y").to_string() == chrono::Local::now().format("%Y").to_string() {
        at.format("%b %d %H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

async fn list(args: &[&str]) -> (String, String) {
    let server = serve(two_sessions()).await;
    let mut full = vec!["sessions", "list"];
    full.extend_from_slice(args);
    run_to_streams(&server, &full).await.expect("list")
}

#[tokio::test]
async fn golden_tables_with_the_footer_on_stderr() {
    let start = format!("32m since {}", started());
    let pad = " ".repeat(start.len().saturating_sub("DURATION".len()));
    let (out, err) = list(&[]).await;
    assert_eq!(
        out,
        format!(
            "SESSION    USER                RESOURCE           DEVICE                 DURATION{pad}   LOCATION     RISK   FLAGS         STATUS\n\
             00000000   user1@example.com   prod-db-01 (SSH)   laptop-1 81.2.69.142   {start}   Berlin, DE   -      -             Active\n\
             00000000   user2@example.com   prod-db-01 (SSH)   laptop-2 81.2.69.142   {start}   Berlin, DE   60     new_country   Idle\n"
        )
    );
    assert_eq!(err, "2 of 2 sessions\n");

    let (no_headers, _) = list(&["--no-headers"]).await;
    assert_eq!(no_headers, out.split_once('\n').expect("a header").1);

    let (wide, err) = list(&["-o", "wide"]).await;
    assert_eq!(
        wide,
        format!(
            "SESSION                                USER                RESOURCE           GATEWAY   DEVICE                 DURATION{pad}   LOCATION     RISK   FLAGS         STATUS\n\
             00000001-0000-4000-8000-000000000000   user1@example.com   prod-db-01 (SSH)   gw-eu-1   laptop-1 81.2.69.142   {start}   Berlin, DE   -      -             Active\n\
             00000002-0000-4000-8000-000000000000   user2@example.com   prod-db-01 (SSH)   gw-eu-1   laptop-2 81.2.69.142   {start}   Berlin, DE   60     new_country   Idle\n"
        )
    );
    assert_eq!(err, "2 of 2 sessions\n");
    // `--wide` is the same as `-o wide`.
    assert_eq!(list(&["--wide"]).await.0, wide);
}

#[tokio::test]
async fn golden_machine_formats_with_nothing_on_stderr() {
    let (name, err) = list(&["-o", "name"]).await;
    assert_eq!(
        name,
        "session/00000001-0000-4000-8000-000000000000\nsession/00000002-0000-4000-8000-000000000000\n"
    );
    assert_eq!(err, "");

    let (ids, _) = list(&["-o", "jsonpath={.sessions[*].id}"]).await;
    assert_eq!(
        ids,
        "00000001-0000-4000-8000-000000000000 00000002-0000-4000-8000-000000000000\n"
    );
    let (flags, _) = list(&["-o", "jsonpath={.sessions[1].user}: {.sessions[1].risk.flags[*].code}"]).await;
    assert_eq!(flags, "user2@example.com: new_country\n");

    let (csv, err) = list(&["-o", "csv"]).await;
    assert_eq!(
        csv,
        "id,user,groups,resource,type,gateway,device,client_ip,country,city,status,started_at,last_activity_at,\
         ended_at,duration_seconds,risk_score,risk_flags,bytes_in,bytes_out\n\
         00000001-0000-4000-8000-000000000000,user1@example.com,,prod-db-01,ssh,gw-eu-1,laptop-1,81.2.69.142,DE,\
         Berlin,active,2025-03-04T08:15:00Z,,,1920,,,0,0\n\
         00000002-0000-4000-8000-000000000000,user2@example.com,sre;oncall,prod-db-01,ssh,gw-eu-1,laptop-2,\
         81.2.69.142,DE,Berlin,idle,2025-03-04T08:15:00Z,,,1920,60,new_country,0,0\n"
    );
    assert_eq!(err, "");
    let (rows, _) = list(&["-o", "csv", "--no-headers"]).await;
    assert_eq!(rows, csv.split_once('\n').expect("a header").1);

    let (json, err) = list(&["-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["total_size"], 2);
    assert_eq!(value["sessions"][1]["risk"]["flags"][0]["code"], "new_country");
    assert_eq!(
        value["sessions"][1]["user_groups"],
        serde_json::json!(["sre", "oncall"])
    );
    assert_eq!(err, "");

    let (yaml, _) = list(&["-o", "yaml"]).await;
    let second = yaml.split("\n  - ").nth(2).expect("a second session");
    assert_eq!(
        second,
        "bytes_in: 0\n    bytes_out: 0\n    client_ip: 81.2.69.142\n    device: laptop-2\n    duration_seconds: 1920\n    \
         end_detail: \"\"\n    end_reason: null\n    ended_at: null\n    gateway_id: gw-eu-1\n    \
         id: 00000002-0000-4000-8000-000000000000\n    last_activity_at: null\n    location:\n      asn: null\n      \
         asn_organization: \"\"\n      city: Berlin\n      coordinates: null\n      country_code: DE\n      \
         country_name: \"\"\n      kind: located\n      region: \"\"\n      time_zone: \"\"\n    \
         resource_name: prod-db-01\n    resource_type: ssh\n    risk:\n      assessed: true\n      flags:\n        \
         - code: new_country\n          explanation: first session from DE\n          points: 60\n      \
         score: 60\n    started_at: \"2025-03-04T08:15:00Z\"\n    status: idle\n    user: user2@example.com\n    \
         user_groups:\n      - sre\n      - oncall\ntotal_size: 2\ntotal_size_is_lower_bound: false\n"
    );
    assert!(
        yaml.starts_with("next_page_token: \"\"\nsessions:\n  - bytes_in: 0\n"),
        "{yaml}"
    );
}

#[tokio::test]
async fn formats_that_do_not_fit_are_usage_errors() {
    let server = serve(two_sessions()).await;
    let error = run_to_string(&server, &["stats", "-o", "csv"])
        .await
        .expect_err("stats is no list");
    assert_eq!(error.exit_code(), sessionctl::EXIT_USAGE, "{error}");
    assert!(error.to_string().contains("-o csv is for lists"), "{error}");
    let error = run_to_string(&server, &["stats", "-o", "name"])
        .await
        .expect_err("stats has no name");
    assert_eq!(error.exit_code(), sessionctl::EXIT_USAGE, "{error}");
    let error = Cli::try_parse_from(["sessionctl", "-o", "jsonpath={.a", "stats"]).expect_err("unclosed");
    assert_eq!(error.exit_code(), 2);
}
