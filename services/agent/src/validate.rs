//! Local checks of what a gateway asks to open, with the registry's own rules and limits
//! (`vigil_core::validate`), so that a gateway author sees "client_ip is not an IP address" at once
//! instead of as a denied admission in production.

use vigil_core::validate::{self, MAX_GROUPS, MAX_NAME_LEN};
use vigil_proto::v1::{ResourceType, SessionStart};

use crate::AgentError;

/// Checks a session start; the error names the field and what is wrong with it.
pub(crate) fn session_start(start: &SessionStart) -> Result<(), AgentError> {
    required_name("user", &start.user)?;
    required_name("resource_name", &start.resource_name)?;
    match ResourceType::try_from(start.resource_type) {
        Ok(ResourceType::Ssh | ResourceType::Rdp | ResourceType::Web) => {}
        Ok(ResourceType::Unspecified) => return Err(invalid("resource_type must be SSH, RDP or WEB".to_owned())),
        Err(_) => {
            return Err(invalid(format!(
                "resource_type {} is not a known type",
                start.resource_type
            )));
        }
    }
    optional_name("device", &start.device)?;
    validate::client_ip("client_ip", &start.client_ip).map_err(|refusal| invalid(refusal.0))?;
    if start.user_groups.len() > MAX_GROUPS {
        return Err(invalid(format!(
            "user_groups has {} entries; at most {MAX_GROUPS} are allowed",
            start.user_groups.len()
        )));
    }
    for group in &start.user_groups {
        required_name("user_groups entry", group)?;
    }
    Ok(())
}

/// Makes free text acceptable to the registry, for calls that cannot fail (closes, acknowledgements):
/// control characters become spaces and the text is cut at the registry's limit. A detail the registry
/// refuses would otherwise end the whole link.
pub(crate) fn detail(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_NAME_LEN)
        .collect()
}

fn required_name(field: &str, value: &str) -> Result<(), AgentError> {
    validate::required_name(field, value)
        .map(drop)
        .map_err(|refusal| invalid(refusal.0))
}

fn optional_name(field: &str, value: &str) -> Result<(), AgentError> {
    validate::optional_name(field, value)
        .map(drop)
        .map_err(|refusal| invalid(refusal.0))
}

fn invalid(message: String) -> AgentError {
    AgentError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SessionStart {
        SessionStart {
            user: "alice.martin@acme.example".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh as i32,
            device: "alice-macbook".into(),
            client_ip: "81.2.69.142".into(),
            started_at: None,
            user_groups: vec!["sre".into()],
        }
    }

    fn error_of(start: &SessionStart) -> String {
        match session_start(start) {
            Err(AgentError::InvalidInput(message)) => message,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_start_passes() {
        assert!(session_start(&valid()).is_ok());
        let ipv6 = SessionStart {
            client_ip: "2001:480::1".into(),
            device: String::new(),
            user_groups: vec![],
            ..valid()
        };
        assert!(session_start(&ipv6).is_ok());
    }

    #[test]
    fn user_and_resource_must_be_present_and_short() {
        assert!(
            error_of(&SessionStart {
                user: " ".into(),
                ..valid()
            })
            .contains("user must not be empty")
        );
        assert!(
            error_of(&SessionStart {
                resource_name: String::new(),
                ..valid()
            })
            .contains("resource_name")
        );
        let long = "é".repeat(257);
        assert!(error_of(&SessionStart { user: long, ..valid() }).contains("257 characters"));
        // 256 multi-byte characters are fine: the limit counts characters, not bytes.
        assert!(
            session_start(&SessionStart {
                user: "é".repeat(256),
                ..valid()
            })
            .is_ok()
        );
    }

    #[test]
    fn resource_type_must_be_specified_and_known() {
        let unspecified = SessionStart {
            resource_type: ResourceType::Unspecified as i32,
            ..valid()
        };
        assert!(error_of(&unspecified).contains("SSH, RDP or WEB"));
        assert!(
            error_of(&SessionStart {
                resource_type: 42,
                ..valid()
            })
            .contains("42")
        );
    }

    #[test]
    fn client_ip_must_parse() {
        for bad in ["", "81.2.69", "81.2.69.300", "alice-macbook", "81.2.69.0/24"] {
            let message = error_of(&SessionStart {
                client_ip: bad.into(),
                ..valid()
            });
            assert!(message.contains("client_ip"), "{bad}: {message}");
        }
    }

    #[test]
    fn details_are_made_acceptable_rather_than_refused() {
        assert_eq!(detail("user logged out"), "user logged out");
        assert_eq!(detail("backend\nhung\t"), "backend hung ");
        let long = detail(&"é".repeat(300));
        assert_eq!(long.chars().count(), 256);
        assert!(optional_name("detail", &long).is_ok());
    }

    #[test]
    fn device_and_groups_are_bounded() {
        assert!(
            error_of(&SessionStart {
                device: "x".repeat(300),
                ..valid()
            })
            .contains("device")
        );
        assert!(
            error_of(&SessionStart {
                device: "bad\ndevice".into(),
                ..valid()
            })
            .contains("control")
        );
        let many = SessionStart {
            user_groups: vec!["g".into(); 65],
            ..valid()
        };
        assert!(error_of(&many).contains("65 entries"));
        let empty_group = SessionStart {
            user_groups: vec![String::new()],
            ..valid()
        };
        assert!(error_of(&empty_group).contains("user_groups entry"));
    }
}
