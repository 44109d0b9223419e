//! The event model: what happened, to what, by whom, when — plain values, no transport.

use serde::{Deserialize, Serialize};
use vigil_core::EpochMillis;

/// Every kind of event Vigil emits. The text form (`session.opened`) is what filters name, what
/// syslog carries as MSGID and, prefixed with `vigil.`, the CloudEvents `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "session.opened")]
    SessionOpened,
    #[serde(rename = "session.denied")]
    SessionDenied,
    #[serde(rename = "session.flagged")]
    SessionFlagged,
    #[serde(rename = "session.idle_warned")]
    SessionIdleWarned,
    #[serde(rename = "session.ended")]
    SessionEnded,
    #[serde(rename = "termination.requested")]
    TerminationRequested,
    #[serde(rename = "termination.delivered")]
    TerminationDelivered,
    #[serde(rename = "termination.acknowledged")]
    TerminationAcknowledged,
    #[serde(rename = "termination.failed")]
    TerminationFailed,
    #[serde(rename = "lock.created")]
    LockCreated,
    #[serde(rename = "lock.deleted")]
    LockDeleted,
    #[serde(rename = "lock.expired")]
    LockExpired,
    #[serde(rename = "policy.created")]
    PolicyCreated,
    #[serde(rename = "policy.changed")]
    PolicyChanged,
    #[serde(rename = "policy.deleted")]
    PolicyDeleted,
    #[serde(rename = "gateway.connected")]
    GatewayConnected,
    #[serde(rename = "gateway.lost")]
    GatewayLost,
    /// Sent by `sessionctl events test`; never written by a change.
    #[serde(rename = "test")]
    Test,
}

impl EventType {
    /// Every type, in documentation order.
    pub const ALL: [EventType; 18] = [
        Self::SessionOpened,
        Self::SessionDenied,
        Self::SessionFlagged,
        Self::SessionIdleWarned,
        Self::SessionEnded,
        Self::TerminationRequested,
        Self::TerminationDelivered,
        Self::TerminationAcknowledged,
        Self::TerminationFailed,
        Self::LockCreated,
        Self::LockDeleted,
        Self::LockExpired,
        Self::PolicyCreated,
        Self::PolicyChanged,
        Self::PolicyDeleted,
        Self::GatewayConnected,
        Self::GatewayLost,
        Self::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionOpened => "session.opened",
            Self::SessionDenied => "session.denied",
            Self::SessionFlagged => "session.flagged",
            Self::SessionIdleWarned => "session.idle_warned",
            Self::SessionEnded => "session.ended",
            Self::TerminationRequested => "termination.requested",
            Self::TerminationDelivered => "termination.delivered",
            Self::TerminationAcknowledged => "termination.acknowledged",
            Self::TerminationFailed => "termination.failed",
            Self::LockCreated => "lock.created",
            Self::LockDeleted => "lock.deleted",
            Self::LockExpired => "lock.expired",
            Self::PolicyCreated => "policy.created",
            Self::PolicyChanged => "policy.changed",
            Self::PolicyDeleted => "policy.deleted",
            Self::GatewayConnected => "gateway.connected",
            Self::GatewayLost => "gateway.lost",
            Self::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// How much a security team should care, as a syslog severity (RFC 5424: 4 warning, 5 notice,
    /// 6 informational).
    pub fn severity(self) -> u8 {
        match self {
            Self::SessionDenied | Self::SessionFlagged | Self::TerminationFailed | Self::GatewayLost => 4,
            Self::TerminationRequested | Self::LockCreated | Self::LockDeleted | Self::PolicyCreated => 5,
            Self::PolicyChanged | Self::PolicyDeleted => 5,
            _ => 6,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. `id` is stable: the same event delivered twice carries the same id, so receivers
/// deduplicate on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7 (time-ordered), made when the change was written.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When the change happened.
    pub time: EpochMillis,
    /// The service that wrote it: `registry`, `termination`, `policy`.
    pub source: String,
    /// What it is about: `session/<id>`, `gateway/<id>`, `termination/<id>`, `lock/<id>`, `policy/<id>`.
    pub subject: String,
    /// The session concerned, when there is one: events of one session are delivered in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Who caused it, when a person or a service did (the authenticated caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The session's risk score, when it was assessed (filters compare against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<u32>,
    /// The subject's fields (user, gateway, resource, reason, flags, …), as a JSON object.
    pub data: serde_json::Value,
}

impl Event {
    /// A new event of `kind` about `subject`, now, with a fresh id.
    pub fn new(kind: EventType, source: &str, subject: String, data: serde_json::Value) -> Self {
        Self::at(kind, source, subject, vigil_core::now_millis(), data)
    }

    /// A new event that happened at `time`.
    pub fn at(kind: EventType, source: &str, subject: String, time: EpochMillis, data: serde_json::Value) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            time,
            source: source.to_owned(),
            subject,
            session_id: None,
            actor: None,
            risk_score: None,
            data,
        }
    }

    pub fn with_session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn with_actor(mut self, actor: &str) -> Self {
        if !actor.is_empty() {
            self.actor = Some(actor.to_owned());
        }
        self
    }

    pub fn with_risk(mut self, score: Option<u32>) -> Self {
        self.risk_score = score;
        self
    }

    /// What orders delivery: events with the same key go out one after another, in the order
    /// they were written (the session, else the subject).
    pub fn ordering_key(&self) -> &str {
        self.session_id.as_deref().unwrap_or(&self.subject)
    }

    /// A string field of `data`, or "".
    pub fn field(&self, name: &str) -> &str {
        self.data
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }

    /// One line for people (syslog's MSG, CEF's `msg`).
    pub fn summary(&self) -> String {
        let mut text = format!("{} {}", self.kind, self.subject);
        for key in ["user", "gateway_id", "resource", "reason", "detail"] {
            let value = self.field(key);
            if !value.is_empty() {
                text.push_str(&format!(" {key}={value}"));
            }
        }
        if let Some(actor) = &self.actor {
            text.push_str(&format!(" actor={actor}"));
        }
        if let Some(score) = self.risk_score {
            text.push_str(&format!(" risk={score}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_text_and_serde() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(EventType::parse("session.nope"), None);
    }

    #[test]
    fn ids_are_time_ordered_uuids() {
        let a = Event::new(EventType::Test, "test", "x".into(), serde_json::json!({}));
        let b = Event::new(EventType::Test, "test", "x".into(), serde_json::json!({}));
        assert!(uuid::Uuid::parse_str(&a.id).unwrap().get_version_num() == 7);
        assert!(a.id < b.id);
        assert_eq!(a.ordering_key(), "x");
        assert_eq!(a.with_session("s1").ordering_key(), "s1");
    }
}
