//! The SSH login name: `user+target` (`ssh -p 2222 alice+prod-db-01@gateway`), or `user` alone to list
//! the targets the user may reach.

/// A parsed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub target: Option<String>,
}

/// Why a login name is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the login names no user; log in as user+target (e.g. alice+prod-db-01)")]
    NoUser,
    #[error("the user name is not valid; use 1 to 64 letters, digits and . _ - @")]
    BadUser,
    #[error("the target name is not valid; use 1 to 128 letters, digits and . _ -, as in alice+prod-db-01")]
    BadTarget,
}

/// Splits a login at its first `+`. The user part must be a valid user name; the target part, when
/// present, a valid resource name.
pub fn parse(login: &str) -> Result<Login, LoginError> {
    let (user, target) = match login.split_once('+') {
        Some((user, target)) => (user, Some(target)),
        None => (login, None),
    };
    if user.is_empty() {
        return Err(LoginError::NoUser);
    }
    if !is_user_name(user) {
        return Err(LoginError::BadUser);
    }
    if let Some(target) = target
        && !is_target_name(target)
    {
        return Err(LoginError::BadTarget);
    }
    Ok(Login {
        user: user.to_owned(),
        target: target.map(str::to_owned),
    })
}

/// 1 to 64 of `[A-Za-z0-9._@-]`.
pub fn is_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// 1 to 128 of `[A-Za-z0-9._-]`.
pub fn is_target_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_target() {
        assert_eq!(
            parse("alice+prod-db-01").unwrap(),
            Login {
                user: "alice".into(),
                target: Some("prod-db-01".into())
            }
        );
        assert_eq!(parse("alice").unwrap().target, None);
        assert_eq!(
            parse("alice.martin@acme.example+db").unwrap().user,
            "alice.martin@acme.example"
        );
    }

    #[test]
    fn malformed_logins_are_refused_with_a_reason() {
        assert_eq!(parse(""), Err(LoginError::NoUser));
        assert_eq!(parse("+db"), Err(LoginError::NoUser));
        assert_eq!(parse("alice+"), Err(LoginError::BadTarget));
        assert_eq!(parse("alice+db+x"), Err(LoginError::BadTarget));
        assert_eq!(parse("alice+db 01"), Err(LoginError::BadTarget));
        assert_eq!(parse("al ice+db"), Err(LoginError::BadUser));
        assert_eq!(parse("alice\u{1b}+db"), Err(LoginError::BadUser));
        assert_eq!(parse(&"a".repeat(65)), Err(LoginError::BadUser));
        assert_eq!(parse(&format!("a+{}", "t".repeat(129))), Err(LoginError::BadTarget));
    }
}
