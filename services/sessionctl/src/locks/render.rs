//! Locks for people.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use vigil_proto::v1::{CreateLockRequest, EndReason, Lock, ResolveSessionsResponse, SessionSelector, Termination};

use crate::format::{self, NONE};
use crate::output::Grid;
use crate::render::{key_values, table, with_ago};
use crate::sessions::render::end_confirmation;

/// The locks table, oldest first, then how many there are. `wide` shows full lock ids, which `locks delete`
/// takes; `with_expired` says whether expired locks were asked for (it changes what "none" means).
pub fn locks_table<Tz: TimeZone>(locks: &[Lock], now: &DateTime<Tz>, wide: bool) -> String {
    if locks.is_empty() {
        return String::new();
    }
    let mut table = table(&["ID", "TARGET", "EXPIRES", "CREATED", "REASON", "MESSAGE"]);
    for lock in locks {
        let id = if wide {
            format::or_none(&lock.id)
        } else {
            format::short_id(&lock.id)
        };
        table.add_row(vec![
            id.to_owned(),
            format::lock_target(lock.target.as_ref()),
            format::lock_expiry(lock.expires_at.as_ref(), now),
            created(lock, format::ago(lock.created_at.as_ref(), now)),
            format::or_none(&lock.reason).to_owned(),
            format::or_none(&lock.message).to_owned(),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// `N locks` (and "No locks in force." when there are none): for stderr.
pub fn locks_footer(locks: &[Lock], with_expired: bool) -> String {
    let count = match locks.len() {
        1 => "1 lock\n".to_owned(),
        n => format!("{n} locks\n"),
    };
    if locks.is_empty() {
        let none = if with_expired {
            "No locks."
        } else {
            "No locks in force."
        };
        format!("{none}\n{count}")
    } else {
        count
    }
}

/// For `-o csv`.
pub fn locks_csv(locks: &[Lock]) -> Grid {
    let time = |ts: Option<&prost_types::Timestamp>| {
        ts.and_then(format::to_datetime)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    let mut grid = Grid::new(&[
        "id",
        "target",
        "expires_at",
        "created_at",
        "created_by",
        "reason",
        "message",
    ]);
    for lock in locks {
        grid.rows.push(vec![
            lock.id.clone(),
            format::lock_target(lock.target.as_ref()),
            time(lock.expires_at.as_ref()),
            time(lock.created_at.as_ref()),
            lock.created_by.clone(),
            lock.reason.clone(),
            lock.message.clone(),
        ]);
    }
    grid
}

/// `2h ago by soc@example.com`: when, then who when known.
fn created(lock: &Lock, when: String) -> String {
    if lock.created_by.is_empty() {
        when
    } else {
        format!("{when} by {}", lock.created_by)
    }
}

/// One lock as `Key   value` lines.
pub fn lock_detail<Tz: TimeZone<Offset: Display>>(lock: &Lock, now: &DateTime<Tz>) -> String {
    let expires = match lock.expires_at.as_ref() {
        None => "never (until removed)".to_owned(),
        Some(at) => format!(
            "{} ({})",
            format::date_time(Some(at), now),
            format::lock_expiry(Some(at), now)
        ),
    };
    key_values(&[
        ("Lock", format::or_none(&lock.id).to_owned()),
        ("Target", format::lock_target(lock.target.as_ref())),
        ("Message", format::or_none(&lock.message).to_owned()),
        ("Reason", format::or_none(&lock.reason).to_owned()),
        ("Expires", expires),
        ("Created", created(lock, with_ago(lock.created_at.as_ref(), now))),
    ])
}

/// The line printed once a lock is in place: `Locked user alice until removed (lock 0195…).`
pub fn locked<Tz: TimeZone<Offset: Display>>(lock: &Lock, now: &DateTime<Tz>) -> String {
    format!(
        "Locked {} {} (lock {}).\n",
        format::lock_target(lock.target.as_ref()),
        format::lock_until(lock.expires_at.as_ref(), now),
        format::or_none(&lock.id)
    )
}

/// What `locks create` prints: the lock, then what became of the sessions it covered (`termination`: the
/// one the policy service issued for it, if any).
pub fn lock_created<Tz: TimeZone<Offset: Display>>(
    lock: &Lock,
    termination: Option<&Termination>,
    now: &DateTime<Tz>,
) -> String {
    format!(
        "{}\n{}\n{}",
        locked(lock, now),
        lock_detail(lock, now),
        lock_sessions(termination)
    )
}

/// Whether a new lock ended anything: `Ending 2 live sessions it covers (termination 0195…).`
pub fn lock_sessions(termination: Option<&Termination>) -> String {
    match termination {
        Some(termination) if termination.session_count > 0 => format!(
            "Ending {} it covers (termination {}).\n",
            format::counted(termination.session_count.into(), "live session"),
            format::or_none(&termination.id)
        ),
        Some(_) => "It covered no live session.\n".to_owned(),
        None => "No live session was ended for it.\n".to_owned(),
    }
}

/// The line printed once a lock is removed.
pub fn lock_deleted(id: &str, lock: Option<&Lock>) -> String {
    match lock {
        Some(lock) => format!(
            "Removed lock {id} ({}): what it refused is admitted again.\n",
            format::lock_target(lock.target.as_ref())
        ),
        None => format!("Removed lock {id}: what it refused is admitted again.\n"),
    }
}

/// What `sessions end --lock` is about to do, shown before asking: the sessions that will end (as
/// [`end_confirmation`] lists them; none is fine) and the lock.
pub fn end_lock_confirmation(
    preview: &ResolveSessionsResponse,
    selector: &SessionSelector,
    lock: &CreateLockRequest,
) -> String {
    let mut out = if preview.sessions.is_empty() {
        format!("No live sessions for {}.\n", format::selector(Some(selector)))
    } else {
        end_confirmation(preview, selector, EndReason::Locked)
    };
    let how_long = match lock.ttl {
        None => "until the lock is removed".to_owned(),
        Some(ttl) => format!("for {}", format::rule_duration(Some(&ttl), NONE)),
    };
    let message = if lock.message.is_empty() {
        "the server's lock message".to_owned()
    } else {
        format!("\"{}\"", lock.message)
    };
    out.push_str(&format!(
        "\n{} will be locked out {how_long}: new sessions are refused with {message}.\n",
        format::lock_target(lock.target.as_ref())
    ));
    out
}

/// The question after [`end_lock_confirmation`]; the answer is typed on the same line.
pub fn end_lock_question(count: usize, lock: &CreateLockRequest) -> String {
    let target = format::lock_target(lock.target.as_ref());
    if count == 0 {
        format!("Lock {target}? [y/N] ")
    } else {
        format!(
            "End {} and lock {target}? [y/N] ",
            format::counted(count as u64, "session")
        )
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::session_selector::Target;
    use vigil_proto::v1::{Lock, Termination};

    use super::*;
    use crate::testing::*;

    #[test]
    fn locks_list_with_their_target_expiry_and_creator() {
        let network = Lock {
            id: "0195a3c0-7e1f-7000-8000-00000000cafe".into(),
            target: Some(vigil_proto::v1::LockTarget {
                target: Some(vigil_proto::v1::lock_target::Target::Cidr("203.0.113.0/24".into())),
            }),
            reason: String::new(),
            ..soc_lock(at("2025-03-04T11:00:00+01:00"))
        };
        let locks = [soc_lock(at("2025-03-04T13:00:00+01:00")), network.clone()];
        let text = locks_table(&locks, &now(), false);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].starts_with("0000f00d "), "{text}");
        assert!(lines[1].contains("user alice@example.com"), "{text}");
        assert!(lines[1].contains("in 1h"), "{text}");
        assert!(lines[1].contains("30m ago by soc@example.com"), "{text}");
        assert!(lines[1].contains("SOC-1234"), "{text}");
        assert!(lines[2].contains("network 203.0.113.0/24"), "{text}");
        assert!(lines[2].contains("expired 1h ago"), "{text}");
        assert_eq!(lines.len(), 3, "the count is a footer, for stderr: {text}");
        assert_eq!(locks_footer(&locks, true), "2 locks\n");
        assert!(locks_table(&[network], &now(), true).contains("0195a3c0-7e1f-7000-8000-00000000cafe"));
        assert_eq!(locks_table(&[], &now(), false), "");
        assert_eq!(locks_footer(&[], false), "No locks in force.\n0 locks\n");
        assert_eq!(locks_footer(&[], true), "No locks.\n0 locks\n");
        let forever = locks_table(&[soc_lock(None)], &now(), false);
        assert!(forever.contains("never"), "{forever}");
    }

    #[test]
    fn a_new_lock_says_what_it_covers_and_for_how_long() {
        let lock = soc_lock(at("2025-03-04T13:00:00+01:00"));
        assert_eq!(
            locked(&lock, &now()),
            "Locked user alice@example.com until 13:00 (for 1h) (lock 0195a3c0-7e1f-7000-8000-00000000f00d).\n"
        );
        assert_eq!(
            locked(&soc_lock(None), &now()),
            "Locked user alice@example.com until removed (lock 0195a3c0-7e1f-7000-8000-00000000f00d).\n"
        );
        let ending = Termination {
            id: "0195a3c0-7e1f-7000-8000-00000000beef".into(),
            session_count: 2,
            ..Termination::default()
        };
        let text = lock_created(&lock, Some(&ending), &now());
        assert!(
            text.contains("Message  Your access is suspended by security — contact the SOC\n"),
            "{text}"
        );
        assert!(text.contains("Expires  2025-03-04 13:00:00 +01:00 (in 1h)\n"), "{text}");
        assert!(
            text.contains("Created  2025-03-04 11:30:00 +01:00 (30m ago) by soc@example.com\n"),
            "{text}"
        );
        assert!(
            text.ends_with("Ending 2 live sessions it covers (termination 0195a3c0-7e1f-7000-8000-00000000beef).\n"),
            "{text}"
        );
        let nothing = Termination::default();
        assert_eq!(lock_sessions(Some(&nothing)), "It covered no live session.\n");
        assert_eq!(lock_sessions(None), "No live session was ended for it.\n");
        assert_eq!(
            lock_deleted(&lock.id, Some(&lock)),
            "Removed lock 0195a3c0-7e1f-7000-8000-00000000f00d (user alice@example.com): what it refused is admitted again.\n"
        );
    }

    #[test]
    fn ending_with_a_lock_shows_both_before_asking() {
        let request = CreateLockRequest {
            target: Some(vigil_proto::v1::LockTarget {
                target: Some(vigil_proto::v1::lock_target::Target::User("alice@example.com".into())),
            }),
            message: "Contact the SOC".into(),
            ttl: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            reason: String::new(),
        };
        let selector = SessionSelector {
            target: Some(Target::User("alice@example.com".into())),
        };
        let preview = ResolveSessionsResponse {
            sessions: vec![alice()],
            already_ended: vec![],
        };
        let text = end_lock_confirmation(&preview, &selector, &request);
        assert!(
            text.starts_with("1 session will end (user alice@example.com, reason: locked):"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\nuser alice@example.com will be locked out for 1h: new sessions are refused with \"Contact the SOC\".\n"
            ),
            "{text}"
        );
        assert_eq!(
            end_lock_question(1, &request),
            "End 1 session and lock user alice@example.com? [y/N] "
        );
        let quiet = end_lock_confirmation(
            &ResolveSessionsResponse::default(),
            &selector,
            &CreateLockRequest {
                ttl: None,
                message: String::new(),
                ..request.clone()
            },
        );
        assert_eq!(
            quiet,
            "No live sessions for user alice@example.com.\n\nuser alice@example.com will be locked out until the lock is \
             removed: new sessions are refused with the server's lock message.\n"
        );
        assert_eq!(end_lock_question(0, &request), "Lock user alice@example.com? [y/N] ");
    }
}
