//! The SSH login name a gateway reads (`user+target`).

use vigil_gateway::login::{self, Login};

/// Parsed or refused without a panic; what parses is valid and reassembles to the input.
pub fn login_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Login { user, target }) = login::parse(text) {
        assert!(login::is_user_name(&user), "{user:?}");
        assert!(!user.contains('+'));
        let rebuilt = match &target {
            Some(target) => {
                assert!(login::is_target_name(target), "{target:?}");
                format!("{user}+{target}")
            }
            None => user.clone(),
        };
        assert_eq!(rebuilt, text);
        assert!(!rebuilt.chars().any(char::is_control));
    }
}
