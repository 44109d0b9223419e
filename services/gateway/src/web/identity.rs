//! Who is asking: the user named by the authenticating proxy in front (a header, believed only from
//! the trusted networks), or, in development, HTTP basic auth against the users file.

use std::net::IpAddr;

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use super::settings::WebSettings;
use crate::users::Users;

/// How the user was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Header,
    BasicAuth,
}

/// The user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub via: Via,
}

/// Why a request has no user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An identity header from a peer outside the trusted networks (403).
    Untrusted { header: String, peer: IpAddr },
    /// No identity at all (401).
    Missing { header: String, basic: bool },
    /// An identity header that is not a usable name (400).
    Malformed(String),
    /// Basic auth with an unknown user or a wrong password (401).
    BadCredentials,
}

/// The most characters of a user name or a group taken from a header.
const MAX_NAME: usize = 256;

/// Finds the request's user; `peer` is the address the request came from.
pub fn identify(settings: &WebSettings, users: &Users, peer: IpAddr, headers: &HeaderMap) -> Result<Identity, Refusal> {
    let named = [&settings.user_header, &settings.groups_header]
        .into_iter()
        .find(|header| headers.contains_key(*header));
    if let Some(header) = named {
        if !settings.is_trusted(peer) {
            return Err(Refusal::Untrusted {
                header: header.as_str().to_owned(),
                peer,
            });
        }
        return from_headers(settings, headers);
    }
    let basic = !settings.dev_password.is_empty();
    if basic && let Some(credentials) = basic_credentials(headers) {
        return check_password(settings, users, &credentials);
    }
    Err(Refusal::Missing {
        header: settings.user_header.as_str().to_owned(),
        basic,
    })
}

fn from_headers(settings: &WebSettings, headers: &HeaderMap) -> Result<Identity, Refusal> {
    let user = headers
        .get(&settings.user_header)
        .ok_or_else(|| Refusal::Missing {
            header: settings.user_header.as_str().to_owned(),
            basic: false,
        })?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|user| is_name(user))
        .ok_or_else(|| Refusal::Malformed(format!("the {} header is not a user name", settings.user_header)))?;
    let mut groups = Vec::new();
    for value in headers.get_all(&settings.groups_header) {
        let value = value
            .to_str()
            .map_err(|_| Refusal::Malformed(format!("the {} header is not text", settings.groups_header)))?;
        for group in value.split(',').map(str::trim).filter(|group| !group.is_empty()) {
            if !is_name(group) {
                return Err(Refusal::Malformed(format!(
                    "the {} header has an invalid group",
                    settings.groups_header
                )));
            }
            groups.push(group.to_owned());
        }
    }
    Ok(Identity {
        user: user.to_owned(),
        groups,
        via: Via::Header,
    })
}

/// Printable, at most [`MAX_NAME`] characters, not empty.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().count() <= MAX_NAME && !text.chars().any(char::is_control)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn check_password(
    settings: &WebSettings,
    users: &Users,
    (user, password): &(String, String),
) -> Result<Identity, Refusal> {
    let right: bool = password.as_bytes().ct_eq(settings.dev_password.as_bytes()).into();
    match users.get(user) {
        Some(known) if right => Ok(Identity {
            user: known.name,
            groups: known.groups,
            via: Via::BasicAuth,
        }),
        _ => Err(Refusal::BadCredentials),
    }
}
