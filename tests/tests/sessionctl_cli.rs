//! sessionctl against a real registry and termination service (PostgreSQL, Redis): abbreviated ids,
//! paging, time ranges and history, who ended a session, the pipe contract (stdout holds data only) and
//! exit codes. Formatting in every output format is checked against fakes in `services/sessionctl/tests`.

use std::sync::Arc;

use clap::Parser;
use sessionctl::{Cli, CliError};
use vigil_proto::v1::ResourceType;
use vigil_tests::*;

/// What one run printed, apart.
/// Runs sessionctl against `server` with stdin and stdout not terminals (so nothing can be asked).
async fn sessionctl(server: &str, args: &[&str]) -> SessionctlRun {
    run_sessionctl(&[&["--server", server][..], args].concat()).await
}

async fn ok(server: &str, args: &[&str]) -> (String, String) {
    let ran = sessionctl(server, args).await;
    match ran.result {
        Ok(()) => (ran.out, ran.err),
        Err(error) => panic!(
            "sessionctl {args:?} failed: {error}\nstdout: {}\nstderr: {}",
            ran.out, ran.err
        ),
    }
}

async fn fails(server: &str, args: &[&str]) -> CliError {
    let ran = sessionctl(server, args).await;
    assert!(ran.out.is_empty(), "nothing on stdout on failure: {}", ran.out);
    ran.result.expect_err("should fail")
}

/// `YYYY-MM-DD` of the UTC day `days_from_now` away (Howard Hinnant's civil-from-days).
fn utc_date(days_from_now: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let days = i64::try_from(now / 86_400).expect("days fit") + days_from_now;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Three live sessions through one gateway, on a registry with the termination service beside it.
async fn three_sessions() -> (TestRegistry, TestSchema, vigil_agent::Agent, Vec<String>) {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-cli", Arc::default()).await;
    let mut ids = Vec::new();
    for user in ["alice@acme.example", "bob@acme.example", "carol@acme.example"] {
        let admission = agent
            .open_session(start(user, "prod-db-01", ResourceType::Ssh, "81.2.69.142"))
            .await
            .expect("admission");
        ids.push(admission.session_id);
    }
    (registry, schema, agent, ids)
}

fn tail(id: &str) -> &str {
    &id[id.len() - 8..]
}

#[tokio::test]
async fn a_pipe_gets_the_table_alone_and_pages_say_how_to_go_on() {
    let (registry, _schema, _agent, ids) = three_sessions().await;
    let server = registry.url();

    let (out, err) = ok(&server, &["sessions", "list"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows, nothing else: {out}");
    assert!(
        lines[0].starts_with("SESSION") && lines[0].contains("RISK") && lines[0].contains("FLAGS"),
        "{out}"
    );
    // `| awk '{print $2}'` sees users, never the footer's "of".
    let second: Vec<&str> = lines[1..].iter().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(second.iter().all(|user| user.ends_with("@acme.example")), "{second:?}");
    assert_eq!(err, "3 of 3 sessions\n");

    let (out, _) = ok(&server, &["sessions", "list", "--no-headers"]).await;
    assert_eq!(out.lines().count(), 3, "{out}");

    // Two per page: the hint on stderr carries the token, which brings the last one.
    let (out, err) = ok(&server, &["sessions", "list", "--limit", "2"]).await;
    assert_eq!(out.lines().count(), 3, "{out}");
    let token = err
        .split("--page-token ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a page token in {err:?}"));
    let (out, err) = ok(&server, &["sessions", "list", "--limit", "2", "--page-token", token]).await;
    assert_eq!(out.lines().count(), 2, "the third session: {out}");
    assert!(!err.contains("--page-token"), "the last page: {err}");

    // -o name feeds other commands (which take `session/<id>` back); the ids are whole.
    let (out, _) = ok(&server, &["sessions", "list", "-o", "name"]).await;
    let mut names: Vec<&str> = out.lines().collect();
    names.sort_unstable();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("session/{id}")).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let (out, _) = ok(&server, &["sessions", "get", &expected[0]]).await;
    assert!(out.contains("prod-db-01"), "{out}");
    let (out, _) = ok(&server, &["sessions", "list", "-o", "jsonpath={.sessions[*].user}"]).await;
    assert_eq!(out.split_whitespace().count(), 3, "{out}");
    let (out, _) = ok(
        &server,
        &["sessions", "list", "-o", "csv", "--user", "bob@acme.example"],
    )
    .await;
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows[0].starts_with("id,user,groups,resource"), "{out}");
    assert!(rows[1].starts_with(&format!("{},bob@acme.example,", ids[1])), "{out}");
    registry.stop().await;
}

#[tokio::test]
async fn abbreviated_ids_are_resolved_and_ambiguous_ones_list_the_candidates() {
    let (registry, _schema, _agent, ids) = three_sessions().await;
    let server = registry.url();

    // The tail the table prints.
    let (out, _) = ok(&server, &["sessions", "get", tail(&ids[1])]).await;
    assert!(out.contains(&ids[1]) && out.contains("bob@acme.example"), "{out}");
    // A unique prefix.
    let (out, _) = ok(&server, &["sessions", "get", &ids[2][..30]]).await;
    assert!(out.contains("carol@acme.example"), "{out}");
    // UUIDv7: sessions opened within moments share their first characters (a timestamp).
    let shared: String = ids[0]
        .chars()
        .zip(ids[1].chars())
        .zip(ids[2].chars())
        .take_while(|((a, b), c)| a == b && b == c)
        .map(|((a, _), _)| a)
        .collect();
    assert!(!shared.is_empty(), "{ids:?}");
    let error = fails(&server, &["sessions", "get", &shared]).await;
    assert_eq!(error.exit_code(), sessionctl::EXIT_USAGE, "{error}");
    let message = error.to_string();
    assert!(message.contains("matches 3 sessions"), "{message}");
    for id in &ids {
        assert!(message.contains(id.as_str()), "{id} listed in {message}");
    }
    // Nothing matches: the service's NOT_FOUND, exit 1.
    let error = fails(&server, &["sessions", "get", "fedcba98"]).await;
    assert_eq!(error.exit_code(), sessionctl::EXIT_SERVER, "{error}");
    assert!(error.to_string().contains("fedcba98"), "{error}");
    // A flag slipped into the ids is a usage error, not an id sent to the server.
    let error = Cli::try_parse_from(["sessionctl", "sessions", "end", "--", "--dry-run"]).expect_err("not an id");
    assert_eq!(error.exit_code(), 2);
    registry.stop().await;
}

#[tokio::test]
async fn an_ended_session_says_who_ended_it_and_time_ranges_reach_history() {
    let (registry, _schema, _agent, ids) = three_sessions().await;
    let server = registry.url();

    // --dry-run: what would end, and nothing ends.
    let (out, err) = ok(&server, &["sessions", "end", tail(&ids[0]), "--dry-run"]).await;
    assert!(out.contains("alice@acme.example"), "{out}");
    assert!(err.contains("Dry run"), "{err}");
    let (out, _) = ok(&server, &["sessions", "list", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 3, "nothing ended: {out}");
    // Without a terminal, ending needs --yes (exit 2), before anything is asked of the servers.
    let error = fails(&server, &["sessions", "end", tail(&ids[0])]).await;
    assert_eq!(error.exit_code(), sessionctl::EXIT_USAGE);

    let (out, _) = ok(
        &server,
        &["sessions", "end", tail(&ids[0]), "--yes", "--note", "ticket SOC-1234"],
    )
    .await;
    assert!(out.contains("termination"), "{out}");
    let ended = eventually("alice's session ends", || {
        let server = server.clone();
        let id = ids[0].clone();
        async move {
            let (out, _) = ok(&server, &["sessions", "get", &id]).await;
            out.contains("Disconnected").then_some(out)
        }
    })
    .await;
    assert!(ended.contains("Ended by") && ended.contains("(admin)"), "{ended}");
    assert!(ended.contains("Note") && ended.contains("ticket SOC-1234"), "{ended}");
    let (json, _) = ok(&server, &["sessions", "get", tail(&ids[0]), "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["ended_by"]["note"], "ticket SOC-1234", "{json}");
    assert_eq!(value["ended_by"]["reason"], "admin", "{json}");

    // Live only by default; --since reaches ended ones too.
    let (out, _) = ok(&server, &["sessions", "list", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    let (out, err) = ok(&server, &["sessions", "list", "--since", "1h", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 3, "history included: {out} {err}");
    // A date is its local midnight: yesterday's (in UTC) is before now in every time zone.
    let yesterday = utc_date(-1);
    let (out, _) = ok(
        &server,
        &["sessions", "list", "--since", &yesterday, "--status", "disconnected"],
    )
    .await;
    assert!(out.contains("alice@acme.example") && !out.contains("bob@"), "{out}");
    let (out, err) = ok(&server, &["sessions", "list", "--until", "2000-01-01"]).await;
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("No sessions match"), "{err}");
    let tomorrow = format!("{}T00:00:00Z", utc_date(2));
    let (out, _) = ok(&server, &["sessions", "list", "--since", &tomorrow]).await;
    assert!(out.is_empty(), "RFC 3339, in the future: {out}");

    // The termination: by the session's abbreviated id, and by its own.
    let (out, _) = ok(
        &server,
        &["terminations", "list", "--session", tail(&ids[0]), "-o", "name"],
    )
    .await;
    let termination = out
        .trim()
        .strip_prefix("termination/")
        .expect("one termination")
        .to_owned();
    let (out, _) = ok(&server, &["terminations", "get", tail(&termination)]).await;
    assert!(out.contains("ticket SOC-1234"), "{out}");
    let (out, _) = ok(
        &server,
        &["terminations", "list", "--since", &yesterday, "--reason", "admin"],
    )
    .await;
    assert!(out.contains(tail(&termination)), "{out}");
    let (out, _) = ok(&server, &["terminations", "list", "--until", "2000-01-01"]).await;
    assert!(out.is_empty(), "{out}");
    registry.stop().await;
}

#[tokio::test]
async fn exit_codes_follow_the_documented_table() {
    init_logs();
    // 3: nobody listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = format!("http://{}", dead.local_addr().expect("address"));
    drop(dead);
    let error = fails(&server, &["sessions", "list"]).await;
    assert_eq!(error.exit_code(), sessionctl::EXIT_UNREACHABLE, "{error}");
    // 2: usage errors, found before anything is asked of a server.
    let error = fails(&server, &["policies", "delete", "0195a3c0"]).await;
    assert_eq!(error.exit_code(), sessionctl::EXIT_USAGE, "{error}");
    let error = Cli::try_parse_from(["sessionctl", "-o", "xml", "stats"]).expect_err("no such format");
    assert_eq!(error.exit_code(), 2);
}
