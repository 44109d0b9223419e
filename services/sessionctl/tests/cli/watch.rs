//! `watch`: a line (or a JSON object) per event until stopped.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost_types::Timestamp;
use sessionctl::{CliError, EXIT_SERVER, run_until};
use tokio::sync::Notify;
use vigil_proto::v1::{EndReason, Session, SessionEvent, SessionEventKind, SessionStatus};

use crate::fakes::*;

/// A writer that keeps each printed line where the test can see it while `run` is still running.
#[derive(Clone, Default)]
struct Lines {
    printed: Arc<Mutex<Vec<String>>>,
    pending: Vec<u8>,
    /// Woken on every line; `notify_one` keeps a permit, so no wake-up is lost between checks.
    changed: Arc<Notify>,
}

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.printed.lock().expect("lines lock").clone()
    }

    async fn wait_for(&self, wanted: usize) {
        while self.snapshot().len() < wanted {
            self.changed.notified().await;
        }
    }
}

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.printed
                .lock()
                .expect("lines lock")
                .push(String::from_utf8_lossy(&line[..end]).into_owned());
            self.changed.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event(kind: SessionEventKind, session: Option<Session>) -> SessionEvent {
    SessionEvent {
        kind: kind.into(),
        session,
        at: Some(Timestamp {
            seconds: 1_741_076_107,
            nanos: 0,
        }),
        detail: String::new(),
    }
}

fn watch_events() -> Vec<SessionEvent> {
    vec![
        event(SessionEventKind::Snapshot, Some(session(1))),
        event(SessionEventKind::SnapshotDone, None),
        event(SessionEventKind::Opened, Some(session(2))),
    ]
}

/// Runs `sessionctl <args>` until `wanted` lines have been printed, then stops it the way Ctrl-C would.
async fn watch_lines(server: &str, args: &[&str], wanted: usize) -> (Result<(), CliError>, Vec<String>) {
    let mut out = Lines::default();
    let watcher = out.clone();
    let shutdown = async move { watcher.wait_for(wanted).await };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run_until(cli(server, args), &mut out, shutdown),
    )
    .await
    .expect("the watch stops once the lines are printed");
    (result, out.snapshot())
}

#[tokio::test]
async fn watch_prints_a_line_per_event_until_stopped() {
    let fake = FakeRegistry {
        events: watch_events(),
        ..FakeRegistry::default()
    };
    let server = serve(fake.clone()).await;

    let (result, lines) = watch_lines(&server, &["watch", "--snapshot", "--user", "user2@example.com"], 3).await;

    result.expect("stopping the watch is a clean exit");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("SNAPSHOT") && lines[0].contains("user1@example.com"),
        "{lines:?}"
    );
    assert!(lines[1].contains("snapshot complete"), "{lines:?}");
    assert!(lines[2].contains("OPENED") && lines[2].contains("prod-db-01 (SSH)") && lines[2].contains("Active"));
    let seen = fake.seen.lock().expect("seen lock");
    let request = &seen.watch_requests[0];
    assert!(request.include_snapshot);
    assert_eq!(
        request.filter.as_ref().map(|f| f.user.as_str()),
        Some("user2@example.com")
    );
}

#[tokio::test]
async fn watch_as_json_prints_one_object_per_line() {
    let server = serve(FakeRegistry {
        events: watch_events(),
        ..FakeRegistry::default()
    })
    .await;

    let (result, lines) = watch_lines(&server, &["watch", "-o", "json"], 3).await;

    result.expect("stopping the watch is a clean exit");
    let kinds: Vec<String> = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("each line is a JSON object"))
        .map(|value| value["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["snapshot", "snapshot_done", "opened"]);
}

#[tokio::test]
async fn a_watch_the_registry_ends_is_an_error() {
    let server = serve(FakeRegistry {
        events: watch_events(),
        end_watch: true,
        ..FakeRegistry::default()
    })
    .await;

    // Ask for more lines than will come: the stream ends first.
    let (result, lines) = watch_lines(&server, &["watch"], 4).await;

    let error = result.expect_err("the stream ended");
    assert!(matches!(error, CliError::WatchEnded { .. }), "{error:?}");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(lines.len(), 3, "every event was printed before the end: {lines:?}");
}

#[tokio::test]
async fn an_ended_session_in_a_watch_names_who_ended_it_and_why() {
    let history = with_history();
    let termination = history.history[0].clone();
    let mut ended = session(3);
    ended.status = SessionStatus::Disconnected.into();
    ended.end_reason = EndReason::Admin.into();
    ended.end_detail = format!("ended by termination {}", termination.id);
    let registry = FakeRegistry {
        events: vec![event(SessionEventKind::Ended, Some(ended))],
        ..FakeRegistry::default()
    };
    let server = serve_both(Some(registry), Some(history)).await;

    let (result, lines) = watch_lines(&server, &["watch"], 1).await;
    result.expect("stopped cleanly");
    let note = if termination.note.is_empty() {
        String::new()
    } else {
        format!(": {}", termination.note)
    };
    assert!(
        lines[0].ends_with(&format!("(by {}, admin{note})", termination.actor)),
        "{lines:?}"
    );

    let (result, lines) = watch_lines(&server, &["watch", "-o", "json"], 1).await;
    result.expect("stopped cleanly");
    let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
    assert_eq!(value["session"]["ended_by"]["actor"], termination.actor.as_str());
    assert_eq!(value["session"]["ended_by"]["termination_id"], termination.id.as_str());
}
