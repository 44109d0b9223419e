//! RFC 5424 syslog messages:
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [vigil@32473 …] MSG`.
//!
//! PRI is `facility * 8 + severity` (the severity follows the event type); MSGID is the event
//! type; the structured data element `vigil@32473` (32473 is the private enterprise number RFC 5612
//! reserves for documentation) carries the id, session, subject, actor and risk score; MSG is the
//! event's one-line summary, or a CEF record (`CEF:0|…`) when the sink says so.

use crate::event::Event;
use crate::format::{cef, cloudevents::rfc3339};

/// The SD-ID of Vigil's structured data element.
pub const SD_ID: &str = "vigil@32473";

/// Header fields that are the sender's, not the event's.
#[derive(Debug, Clone)]
pub struct Header {
    /// 0–23 (10: security/authorization, "authpriv").
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
    /// What MSG holds.
    pub cef: bool,
}

/// `text` as a header field: printable US-ASCII only (others become `_`), at most `max`
/// characters, `-` when empty.
fn header_field(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() { "-".to_owned() } else { cleaned }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash.
fn param_value(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '"' | '\\' | ']') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The whole message (without transport framing).
pub fn format(event: &Event, header: &Header) -> String {
    let pri = u16::from(header.facility.min(23)) * 8 + u16::from(event.kind.severity());
    let mut params = vec![
        ("id", event.id.clone()),
        ("type", event.kind.as_str().to_owned()),
        ("subject", event.subject.clone()),
    ];
    if let Some(session) = &event.session_id {
        params.push(("session", session.clone()));
    }
    if let Some(actor) = &event.actor {
        params.push(("actor", actor.clone()));
    }
    if let Some(score) = event.risk_score {
        params.push(("risk", score.to_string()));
    }
    let data: Vec<String> = params
        .into_iter()
        .map(|(name, value)| format!("{name}=\"{}\"", param_value(&value)))
        .collect();
    let msg = if header.cef {
        cef::format(event)
    } else {
        event.summary()
    };
    format!(
        "<{pri}>1 {} {} {} {} {} [{SD_ID} {}] {}",
        rfc3339(event.time),
        header_field(&header.hostname, 255),
        header_field(&header.app_name, 48),
        header_field(&std::process::id().to_string(), 128),
        header_field(event.kind.as_str(), 32),
        data.join(" "),
        msg.replace(['\n', '\r'], " ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn escapes_param_values_and_cleans_header_fields() {
        assert_eq!(param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("my host", 255), "my_host");
        assert_eq!(header_field("", 48), "-");
        let event = Event::at(
            EventType::SessionDenied,
            "registry",
            "session/s\"1".into(),
            0,
            serde_json::json!({}),
        );
        let header = Header {
            facility: 10,
            hostname: "h".into(),
            app_name: "vigil".into(),
            cef: false,
        };
        let line = format(&event, &header);
        assert!(line.starts_with("<84>1 1970-01-01T00:00:00.000Z h vigil "), "{line}");
        assert!(line.contains(r#"subject="session/s\"1""#), "{line}");
    }
}
