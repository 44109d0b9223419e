//! ArcSight Common Event Format (CEF:0), the line SIEMs ingest without a parser:
//! `CEF:0|Vigil|Vigil|<version>|<type>|<name>|<severity>|<key=value …>`.

use crate::event::Event;

/// A header field: `\` and `|` escaped, line breaks as spaces.
fn header(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// An extension value: `\` and `=` escaped, line breaks as `\n` / `\r`.
fn value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// CEF severity (0–10) from the syslog severity of the type.
fn severity(event: &Event) -> u8 {
    match event.kind.severity() {
        0..=4 => 7,
        5 => 5,
        _ => 3,
    }
}

/// The event's name for people: "session opened".
fn name(event: &Event) -> String {
    event.kind.as_str().replace(['.', '_'], " ")
}

/// The CEF record of `event`.
pub fn format(event: &Event) -> String {
    let mut extension: Vec<(&str, String)> = vec![
        ("rt", event.time.to_string()),
        ("externalId", event.id.clone()),
        ("act", event.kind.as_str().to_owned()),
    ];
    let user = event.field("user");
    if !user.is_empty() {
        extension.push(("suser", user.to_owned()));
    }
    let client_ip = event.field("client_ip");
    if client_ip.parse::<std::net::IpAddr>().is_ok() {
        extension.push(("src", client_ip.to_owned()));
    }
    let reason = event.field("reason");
    if !reason.is_empty() {
        extension.push(("reason", reason.to_owned()));
    }
    let labelled = [
        ("cs1", "sessionId", event.session_id.clone()),
        ("cs2", "gateway", Some(event.field("gateway_id").to_owned())),
        ("cs3", "resource", Some(event.field("resource").to_owned())),
        ("cs4", "actor", event.actor.clone()),
        ("cs5", "subject", Some(event.subject.clone())),
    ];
    for (key, label, text) in labelled {
        if let Some(text) = text.filter(|text| !text.is_empty()) {
            extension.push((key, text));
            extension.push(match key {
                "cs1" => ("cs1Label", label.to_owned()),
                "cs2" => ("cs2Label", label.to_owned()),
                "cs3" => ("cs3Label", label.to_owned()),
                "cs4" => ("cs4Label", label.to_owned()),
                _ => ("cs5Label", label.to_owned()),
            });
        }
    }
    if let Some(score) = event.risk_score {
        extension.push(("cn1", score.to_string()));
        extension.push(("cn1Label", "riskScore".to_owned()));
    }
    extension.push(("msg", event.summary()));
    let extension: Vec<String> = extension
        .into_iter()
        .map(|(key, text)| format!("{key}={}", value(&text)))
        .collect();
    format!(
        "CEF:0|Vigil|Vigil|{}|{}|{}|{}|{}",
        header(env!("CARGO_PKG_VERSION")),
        header(event.kind.as_str()),
        header(&name(event)),
        severity(event),
        extension.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn escapes_as_the_format_says() {
        assert_eq!(header("a|b\\c"), "a\\|b\\\\c");
        assert_eq!(value("a=b\\c\nd"), "a\\=b\\\\c\\nd");
        let event = Event::at(
            EventType::SessionFlagged,
            "registry",
            "session/s1".into(),
            5,
            serde_json::json!({"user": "al=ice", "client_ip": "203.0.113.9"}),
        )
        .with_session("s1")
        .with_risk(Some(70));
        let line = format(&event);
        assert!(line.starts_with("CEF:0|Vigil|Vigil|"), "{line}");
        assert!(line.contains("|session.flagged|session flagged|7|rt=5 "), "{line}");
        assert!(line.contains("suser=al\\=ice src=203.0.113.9"), "{line}");
        assert!(line.contains("cn1=70 cn1Label=riskScore"), "{line}");
    }
}
