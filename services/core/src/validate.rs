//! Turning what callers send into domain values, refusing what does not make sense: the checks
//! every service (and the agent SDK, before it sends) applies the same way.
//!
//! Every check names the field and says what is wrong, because the message goes back to a person
//! (an operator at a terminal, or a gateway author reading logs). Nothing is written before the
//! whole request has passed.

use std::net::IpAddr;

use vigil_proto::v1 as pb;
use vigil_proto::v1::ResourceType;

use crate::cidr::Cidr;
use crate::selector::Selector;
use crate::{Checked, EpochMillis, Invalid};

/// Longest user, resource, device, gateway or filter string accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Most groups a user may carry on a session.
pub const MAX_GROUPS: usize = 64;
/// Most session ids in one selector.
pub const MAX_SELECTOR_IDS: usize = 10_000;
/// Longest gateway id accepted.
pub const MAX_GATEWAY_ID_LEN: usize = 128;

/// A validated session start.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStart {
    pub user: String,
    pub user_groups: Vec<String>,
    pub resource_name: String,
    pub resource_type: ResourceType,
    pub device: String,
    /// Normalised IP text.
    pub client_ip: String,
    pub started_at: Option<EpochMillis>,
}

/// A name that must be present, trimmed of nothing (names are compared exactly), and not too long.
pub fn required_name(field: &str, value: &str) -> Checked<String> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    optional_name(field, value).map(|name| name.unwrap_or_default())
}

/// A name that may be empty, but not too long or full of control characters.
pub fn optional_name(field: &str, value: &str) -> Checked<Option<String>> {
    if value.is_empty() {
        return Ok(None);
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(invalid(format!(
            "{field} is {chars} characters long; at most {MAX_NAME_LEN} are allowed"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!("{field} must not contain control characters")));
    }
    Ok(Some(value.to_owned()))
}

/// A gateway id: 1–128 letters, digits, '.', '_', ':' or '-'.
pub fn gateway_id(field: &str, value: &str) -> Checked<String> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.len() > MAX_GATEWAY_ID_LEN {
        return Err(invalid(format!(
            "{field} is {} characters long; at most {MAX_GATEWAY_ID_LEN} are allowed",
            value.len()
        )));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(invalid(format!(
            "{field} {value:?} contains {bad:?}; only letters, digits, '.', '_', ':' and '-' are allowed"
        )));
    }
    Ok(value.to_owned())
}

/// A session id: a UUID, returned in canonical lowercase hyphenated form.
pub fn session_id(field: &str, value: &str) -> Checked<String> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    uuid::Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| invalid(format!("{field} {:?} is not a session id (a UUID)", truncate(value))))
}

/// An IP address, returned normalised (`::ffff:1.2.3.4` stays IPv6; leading zeros are refused by the parser).
pub fn client_ip(field: &str, value: &str) -> Checked<String> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    value
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| invalid(format!("{field} {:?} is not an IPv4 or IPv6 address", truncate(value))))
}

/// A resource type that must be set.
pub fn resource_type(field: &str, value: i32) -> Checked<ResourceType> {
    match ResourceType::try_from(value) {
        Ok(ResourceType::Unspecified) => Err(invalid(format!("{field} must be SSH, RDP or WEB"))),
        Ok(kind) => Ok(kind),
        Err(_) => Err(invalid(format!("{field} {value} is not a known resource type"))),
    }
}

/// A resource type that may be unset (a filter).
pub fn optional_resource_type(field: &str, value: i32) -> Checked<Option<ResourceType>> {
    match ResourceType::try_from(value) {
        Ok(ResourceType::Unspecified) => Ok(None),
        Ok(kind) => Ok(Some(kind)),
        Err(_) => Err(invalid(format!("{field} {value} is not a known resource type"))),
    }
}

/// A timestamp that may be unset.
pub fn optional_timestamp(field: &str, value: Option<&prost_types::Timestamp>) -> Checked<Option<EpochMillis>> {
    value
        .map(|ts| {
            vigil_proto::millis_from_timestamp(ts)
                .ok_or_else(|| invalid(format!("{field} is outside the range of valid timestamps")))
        })
        .transpose()
}

/// A session start as a gateway reports it.
pub fn session_start(field: &str, start: Option<&pb::SessionStart>) -> Checked<ValidStart> {
    let start = start.ok_or_else(|| invalid(format!("{field} is required")))?;
    if start.user_groups.len() > MAX_GROUPS {
        return Err(invalid(format!(
            "{field}.user_groups has {} groups; at most {MAX_GROUPS} are allowed",
            start.user_groups.len()
        )));
    }
    let user_groups = start
        .user_groups
        .iter()
        .map(|group| required_name(&format!("{field}.user_groups[]"), group))
        .collect::<Checked<Vec<_>>>()?;
    Ok(ValidStart {
        user: required_name(&format!("{field}.user"), &start.user)?,
        user_groups,
        resource_name: required_name(&format!("{field}.resource_name"), &start.resource_name)?,
        resource_type: resource_type(&format!("{field}.resource_type"), start.resource_type)?,
        device: optional_name(&format!("{field}.device"), &start.device)?.unwrap_or_default(),
        client_ip: client_ip(&format!("{field}.client_ip"), &start.client_ip)?,
        started_at: optional_timestamp(&format!("{field}.started_at"), start.started_at.as_ref())?,
    })
}

/// Default and maximum page sizes (AIP-158: 0 means the default, larger values are capped).
pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// A page size.
pub fn page_size(value: i32) -> Checked<u64> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(invalid(format!("page_size {n} is negative"))),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

/// A selector of live sessions.
pub fn selector(selector: Option<&pb::SessionSelector>) -> Checked<Selector> {
    use pb::session_selector::Target;
    let target = selector.and_then(|selector| selector.target.as_ref()).ok_or_else(|| {
        invalid(
            "selector must name session ids, a user, a gateway, a resource, a group, a device, a network (cidr) or all",
        )
    })?;
    Ok(match target {
        Target::SessionIds(ids) => {
            if ids.ids.is_empty() {
                return Err(invalid("selector.session_ids must name at least one session"));
            }
            if ids.ids.len() > MAX_SELECTOR_IDS {
                return Err(invalid(format!(
                    "selector.session_ids names {} sessions; at most {MAX_SELECTOR_IDS} are allowed per call",
                    ids.ids.len()
                )));
            }
            let mut valid = Vec::with_capacity(ids.ids.len());
            for id in &ids.ids {
                let id = session_id("selector.session_ids[]", id)?;
                if !valid.contains(&id) {
                    valid.push(id);
                }
            }
            Selector::Ids(valid)
        }
        Target::User(user) => Selector::User(required_name("selector.user", user)?),
        Target::GatewayId(gateway) => Selector::Gateway(gateway_id("selector.gateway_id", gateway)?),
        Target::ResourceName(resource) => Selector::Resource(required_name("selector.resource_name", resource)?),
        Target::All(all) => Selector::All {
            idle_only: all.idle_only,
        },
        Target::Group(group) => Selector::Group(required_name("selector.group", group)?),
        Target::Device(device) => Selector::Device(required_name("selector.device", device)?),
        Target::Cidr(cidr) => Selector::Cidr(network("selector.cidr", cidr)?),
    })
}

/// A network in CIDR notation, as a selector or a lock names it (see [`Cidr::parse`] for what is
/// refused and why), no broader than a /8 (IPv4) or /16 (IPv6): see [`crate::cidr::MIN_PREFIX_V4`].
pub fn network(field: &str, value: &str) -> Checked<Cidr> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    Cidr::parse(value)
        .and_then(|network| network.check_breadth())
        .map_err(|error| invalid(error.describe(field, &truncate(value))))
}

/// Longest text kept in an audit record's target or detail.
pub const MAX_RECORD_TEXT: usize = 512;

/// Text from a caller as an audit trail keeps it: control characters written out as escapes
/// (`\n`, `\u{1b}`), so no reader of the trail is shown a forged line or a terminal escape, and
/// at most [`MAX_RECORD_TEXT`] characters, so a 1 MiB id does not become a 1 MiB record.
pub fn record_text(value: &str) -> String {
    // Counted on what is kept, escapes included (an escape is up to 10 characters).
    let mut out = String::with_capacity(value.len().min(MAX_RECORD_TEXT));
    let mut kept = 0;
    for c in value.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let width = piece.chars().count();
        if kept + width > MAX_RECORD_TEXT {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        kept += width;
    }
    out
}

/// The start of a value, for error messages (a 1 MB garbage string should not come back whole).
pub fn truncate(value: &str) -> String {
    const SHOWN: usize = 64;
    if value.chars().count() <= SHOWN {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(SHOWN).collect::<String>())
    }
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> pb::SessionStart {
        pb::SessionStart {
            user: "alice@acme.example".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh as i32,
            device: "alice-mbp".into(),
            client_ip: "81.2.69.142".into(),
            started_at: None,
            user_groups: vec!["sre".into()],
        }
    }

    fn message_of(result: Checked<impl std::fmt::Debug>) -> String {
        match result {
            Err(Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_good_start_passes_and_ipv6_is_normalised() {
        let mut start = start();
        start.client_ip = "2001:0db8:0000:0000:0000:0000:0000:0001".into();
        let valid = session_start("start", Some(&start)).unwrap();
        assert_eq!(valid.client_ip, "2001:db8::1");
        assert_eq!(valid.resource_type, ResourceType::Ssh);
    }

    #[test]
    fn bad_starts_name_the_field() {
        type Mutation = fn(&mut pb::SessionStart);
        let cases: Vec<(Mutation, &str)> = vec![
            (|s| s.user.clear(), "start.user must not be empty"),
            (
                |s| s.user = "x".repeat(300),
                "start.user is 300 characters long; at most 256 are allowed",
            ),
            (
                |s| s.resource_name = "   ".into(),
                "start.resource_name must not be empty",
            ),
            (|s| s.resource_type = 0, "start.resource_type must be SSH, RDP or WEB"),
            (
                |s| s.resource_type = 42,
                "start.resource_type 42 is not a known resource type",
            ),
            (
                |s| s.client_ip = "300.1.1.1".into(),
                "start.client_ip \"300.1.1.1\" is not an IPv4 or IPv6 address",
            ),
            (
                |s| s.device = "a\nb".into(),
                "start.device must not contain control characters",
            ),
            (
                |s| s.user_groups = vec!["g".into(); 65],
                "start.user_groups has 65 groups; at most 64 are allowed",
            ),
        ];
        for (mutate, expected) in cases {
            let mut start = start();
            mutate(&mut start);
            assert_eq!(message_of(session_start("start", Some(&start))), expected);
        }
        assert_eq!(message_of(session_start("start", None)), "start is required");
    }

    #[test]
    fn gateway_ids_are_restricted() {
        assert_eq!(
            gateway_id("gateway_id", "gw-fra_01.prod:a").unwrap(),
            "gw-fra_01.prod:a"
        );
        assert!(message_of(gateway_id("gateway_id", "gw 1")).contains("contains ' '"));
        assert!(message_of(gateway_id("gateway_id", "")).contains("must not be empty"));
        assert!(message_of(gateway_id("gateway_id", &"g".repeat(129))).contains("at most 128"));
    }

    #[test]
    fn session_ids_are_uuids_in_canonical_form() {
        assert_eq!(
            session_id("id", "6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap(),
            "6f9619ff-8b86-d011-b42d-00c04fc964ff"
        );
        assert!(message_of(session_id("id", "not-a-uuid")).contains("is not a session id"));
        assert!(message_of(session_id("id", &"z".repeat(10_000))).ends_with("…\" is not a session id (a UUID)"));
    }

    #[test]
    fn selectors_must_name_something() {
        assert!(message_of(selector(None)).contains("selector must name"));
        let empty = pb::SessionSelector {
            target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds { ids: vec![] })),
        };
        assert!(message_of(selector(Some(&empty))).contains("at least one"));
        let user = pb::SessionSelector {
            target: Some(pb::session_selector::Target::User(String::new())),
        };
        assert!(message_of(selector(Some(&user))).contains("selector.user must not be empty"));
    }

    #[test]
    fn selectors_by_group_device_and_network_are_checked() {
        use pb::session_selector::Target;
        let of = |target: Target| selector(Some(&pb::SessionSelector { target: Some(target) }));
        assert_eq!(of(Target::Group("sre".into())).unwrap(), Selector::Group("sre".into()));
        assert_eq!(
            of(Target::Device("alice-mbp".into())).unwrap(),
            Selector::Device("alice-mbp".into())
        );
        assert_eq!(
            of(Target::Cidr("2001:0db8::/32".into())).unwrap(),
            Selector::Cidr(Cidr::parse("2001:db8::/32").unwrap())
        );
        assert_eq!(
            message_of(of(Target::Group(" ".into()))),
            "selector.group must not be empty"
        );
        assert_eq!(
            message_of(of(Target::Device(String::new()))),
            "selector.device must not be empty"
        );
        assert_eq!(
            message_of(of(Target::Cidr(String::new()))),
            "selector.cidr must not be empty"
        );
        assert_eq!(
            message_of(of(Target::Cidr("10.0.0.1/8".into()))),
            "selector.cidr \"10.0.0.1/8\" has bits set past the prefix length; did you mean 10.0.0.0/8?"
        );
        assert!(message_of(of(Target::Cidr("0.0.0.0/0".into()))).contains("covers every address"));
        assert!(message_of(of(Target::Cidr("10.0.0.0/40".into()))).contains("from 1 to 32"));
        assert!(message_of(of(Target::Cidr("0.0.0.0/1".into()))).contains("too broad"));
        assert!(message_of(of(Target::Cidr("::/1".into()))).contains("too broad"));
    }

    #[test]
    fn record_text_escapes_controls_and_caps_length() {
        assert_eq!(
            record_text("lock a\nforged row \u{1b}[31m"),
            "lock a\\nforged row \\u{1b}[31m"
        );
        let long = record_text(&"x".repeat(1 << 20));
        assert_eq!(long.chars().count(), MAX_RECORD_TEXT + 1);
        assert!(!record_text("\r\t\u{7f}\u{9b}").chars().any(char::is_control));
        // Escapes count towards the cap (found by the record_text fuzz target).
        assert!(record_text(&"\u{1b}".repeat(1000)).chars().count() <= MAX_RECORD_TEXT + 1);
    }

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert!(message_of(page_size(-1)).contains("negative"));
    }
}
