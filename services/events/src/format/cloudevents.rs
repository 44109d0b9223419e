//! CloudEvents 1.0, JSON event format, structured mode (`application/cloudevents+json`): the
//! attributes and the data in one JSON object.

use serde_json::{Map, Value, json};

use crate::event::Event;

/// The media type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// `event` as a CloudEvent: `specversion` 1.0, `id` the event's stable id, `source`
/// `/vigil/<service>`, `type` `vigil.<type>`, `subject`, `time` (RFC 3339, UTC, milliseconds),
/// `datacontenttype` JSON, and the extension attributes `sessionid`, `actor`, `riskscore` when set.
pub fn to_json(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("specversion".into(), json!("1.0"));
    object.insert("id".into(), json!(event.id));
    object.insert("source".into(), json!(format!("/vigil/{}", event.source)));
    object.insert("type".into(), json!(format!("vigil.{}", event.kind)));
    object.insert("subject".into(), json!(event.subject));
    object.insert("time".into(), json!(rfc3339(event.time)));
    object.insert("datacontenttype".into(), json!("application/json"));
    if let Some(session) = &event.session_id {
        object.insert("sessionid".into(), json!(session));
    }
    if let Some(actor) = &event.actor {
        object.insert("actor".into(), json!(actor));
    }
    if let Some(score) = event.risk_score {
        object.insert("riskscore".into(), json!(score));
    }
    object.insert("data".into(), event.data.clone());
    Value::Object(object)
}

/// The body of a webhook POST.
pub fn to_body(event: &Event) -> Vec<u8> {
    serde_json::to_vec(&to_json(event)).unwrap_or_default()
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds (`2026-12-07T03:04:05.678Z`).
pub fn rfc3339(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let fraction = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_612_645_678), "2026-12-07T03:04:05.678Z");
    }

    #[test]
    fn a_cloudevent_carries_the_required_attributes() {
        let event = Event::at(
            EventType::SessionOpened,
            "registry",
            "session/s1".into(),
            0,
            json!({"user": "alice"}),
        )
        .with_session("s1")
        .with_risk(Some(40));
        let value = to_json(&event);
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["id"], event.id.as_str());
        assert_eq!(value["type"], "vigil.session.opened");
        assert_eq!(value["source"], "/vigil/registry");
        assert_eq!(value["sessionid"], "s1");
        assert_eq!(value["riskscore"], 40);
        assert_eq!(value["data"]["user"], "alice");
        assert!(value.get("actor").is_none());
    }
}
