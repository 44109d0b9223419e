//! What a gateway shows its user when the registry ends a session or warns of idleness, worded the same
//! way by every gateway: a headline naming who or what ended the session, then the operator's message.

use std::time::{Duration, SystemTime};

use vigil_proto::v1::{EndReason, IdleWarning, TerminateCommand};

/// The text a disconnected user reads, for a terminate command: a headline by reason ("You have been
/// disconnected by an administrator") and the command's message after a colon.
///
/// The registry fills `user_message` with a default sentence when the operator gave none; a message
/// that already starts with the headline is shown alone rather than repeated. Control characters are
/// removed, so the text is safe to write into a terminal and to put in an SSH disconnect message.
pub fn disconnect_notice(command: &TerminateCommand) -> String {
    let reason = EndReason::try_from(command.reason).unwrap_or(EndReason::Unspecified);
    notice(reason, &command.user_message)
}

/// [`disconnect_notice`] for a reason and a message given separately.
pub fn notice(reason: EndReason, user_message: &str) -> String {
    let headline = headline(reason);
    let message = printable(user_message);
    let message = message.trim();
    let bare = message.trim_end_matches('.');
    if bare.is_empty() {
        format!("{headline}.")
    } else if bare.eq_ignore_ascii_case(headline) || starts_with_ignore_case(message, headline) {
        message.to_owned()
    } else {
        format!("{headline}: {message}")
    }
}

/// The first half of a notice: who or what ended the session.
pub fn headline(reason: EndReason) -> &'static str {
    match reason {
        EndReason::IdleTimeout => "You have been disconnected for inactivity",
        EndReason::MaxDuration => "You have been disconnected: the session reached its maximum duration",
        EndReason::ConcurrencyLimit => "You have been disconnected: a newer session of yours took this one's place",
        EndReason::Anomaly => "You have been disconnected by security",
        EndReason::Locked => "You have been disconnected: your access is locked",
        EndReason::Policy => "You have been disconnected by policy",
        EndReason::UserSelfService => "You ended this session",
        // The agent's own ends: strict fail mode after the link stayed down (GATEWAY_LOST).
        EndReason::Lost | EndReason::GatewayLost | EndReason::GatewayClosed => {
            "You have been disconnected by the gateway"
        }
        EndReason::Admin | EndReason::Unspecified | EndReason::UserClosed => {
            "You have been disconnected by an administrator"
        }
    }
}

/// The line an idle user reads: how long they have been idle (when the gateway knows) and how long
/// until the session is ended, followed by the registry's message when it says more.
///
/// `idle_for` is how long since the user's last input, as the gateway saw it; `now` is the gateway's
/// clock, against which the warning's `disconnect_at` is read.
pub fn idle_notice(warning: &IdleWarning, idle_for: Option<Duration>, now: SystemTime) -> String {
    let remaining = warning
        .disconnect_at
        .as_ref()
        .and_then(|at| SystemTime::try_from(*at).ok())
        .map(|at| at.duration_since(now).unwrap_or_default());
    let mut line = match (idle_for, remaining) {
        (Some(idle), Some(left)) => format!(
            "idle for {}; disconnected in {} unless you type",
            minutes(idle),
            minutes(left)
        ),
        (None, Some(left)) => format!("disconnected in {} unless you type", minutes(left)),
        (Some(idle), None) => format!("idle for {}; disconnected soon unless you type", minutes(idle)),
        (None, None) => "disconnected soon unless you type".to_owned(),
    };
    let message = printable(&warning.user_message);
    let message = message.trim();
    if !message.is_empty() {
        line.push_str(" (");
        line.push_str(message);
        line.push(')');
    }
    line
}

/// "10 minutes", "1 minute", "45 seconds": rounded to what a person reads at a glance.
fn minutes(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        return format!("{seconds} second{}", if seconds == 1 { "" } else { "s" });
    }
    let minutes = (seconds + 30) / 60;
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(reason: EndReason, message: &str) -> TerminateCommand {
        TerminateCommand {
            reason: reason as i32,
            user_message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_administrators_message_follows_the_headline() {
        assert_eq!(
            disconnect_notice(&command(EndReason::Admin, "Maintenance until 14:00")),
            "You have been disconnected by an administrator: Maintenance until 14:00"
        );
    }

    #[test]
    fn the_registrys_default_sentence_is_not_repeated() {
        assert_eq!(
            disconnect_notice(&command(
                EndReason::Admin,
                "You have been disconnected by an administrator."
            )),
            "You have been disconnected by an administrator."
        );
        assert_eq!(
            disconnect_notice(&command(EndReason::Admin, "")),
            "You have been disconnected by an administrator."
        );
    }

    #[test]
    fn every_reason_has_its_own_wording() {
        assert!(notice(EndReason::IdleTimeout, "x").starts_with("You have been disconnected for inactivity: "));
        assert!(notice(EndReason::MaxDuration, "x").contains("maximum duration"));
        assert!(notice(EndReason::ConcurrencyLimit, "x").contains("newer session"));
        assert!(notice(EndReason::Locked, "SOC says no").ends_with("your access is locked: SOC says no"));
        // Strict fail mode's end is the gateway's, not an administrator's.
        assert_eq!(
            notice(EndReason::GatewayLost, "Try again shortly."),
            "You have been disconnected by the gateway: Try again shortly."
        );
        // An unknown reason number reads as an administrator's action.
        let unknown = TerminateCommand {
            reason: 999,
            user_message: "bye".into(),
            ..Default::default()
        };
        assert_eq!(
            disconnect_notice(&unknown),
            "You have been disconnected by an administrator: bye"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let text = notice(EndReason::Admin, "bye\u{1b}[2J\r\nnow");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn the_idle_line_says_how_long_and_how_long_left() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let warning = IdleWarning {
            session_id: "s".into(),
            disconnect_at: Some((now + Duration::from_secs(20 * 60)).into()),
            user_message: String::new(),
        };
        assert_eq!(
            idle_notice(&warning, Some(Duration::from_secs(600)), now),
            "idle for 10 minutes; disconnected in 20 minutes unless you type"
        );
        let with_message = IdleWarning {
            user_message: "Save your work".into(),
            ..warning.clone()
        };
        assert_eq!(
            idle_notice(&with_message, None, now),
            "disconnected in 20 minutes unless you type (Save your work)"
        );
        let past = IdleWarning {
            disconnect_at: Some((now - Duration::from_secs(5)).into()),
            ..warning
        };
        assert_eq!(
            idle_notice(&past, Some(Duration::from_secs(59)), now),
            "idle for 59 seconds; disconnected in 0 seconds unless you type"
        );
    }
}
