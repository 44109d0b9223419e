//! `audit`: the merged trail, `--action`, and paging by time with the hint on stderr.

use crate::fakes::*;

#[tokio::test]
async fn audit_pages_by_time_and_filters_by_action() {
    let server = serve_all(five_sessions(), with_history(), three_policies()).await;

    let terminations = ["audit", "--since", "2025-01-01", "--action", "sessions.terminate"];
    let (out, err) = run_to_streams(&server, &[&terminations[..], &["--limit", "1"]].concat())
        .await
        .expect("audit");
    assert_eq!(out.lines().count(), 2, "a header and the newest event: {out}");
    assert!(
        out.lines().nth(1).is_some_and(|row| row.contains("sessions.terminate")),
        "{out}"
    );
    let until = err
        .split("--until ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a hint with --until in {err:?}"));
    assert!(err.starts_with("1 event (the newest; there are more)\n"), "{err}");

    // The hint's --until brings the next, older one.
    let (next, _) = run_to_streams(
        &server,
        &[&terminations[..], &["--limit", "1", "--until", until]].concat(),
    )
    .await
    .expect("the next page");
    assert_eq!(next.lines().count(), 2, "{next}");
    assert_ne!(next.lines().nth(1), out.lines().nth(1), "an older event: {next}");

    let (csv, _) = run_to_streams(&server, &[&terminations[..], &["-o", "csv"]].concat())
        .await
        .expect("csv");
    assert!(csv.starts_with("at,actor,action,target,outcome\n"), "{csv}");
    assert!(
        csv.lines().skip(1).all(|row| row.contains(",sessions.terminate,")),
        "{csv}"
    );

    let (none, err) = run_to_streams(&server, &["audit", "--since", "2025-01-01", "--action", "policy"])
        .await
        .expect("no policy changes");
    assert_eq!(none, "");
    assert_eq!(err, "Nothing was recorded in that time.\n0 events\n");
}
