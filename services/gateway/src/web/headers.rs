//! What the proxy changes in the headers both ways: hop-by-hop headers out, the session cookie and
//! the identity headers never forwarded, the user and `X-Forwarded-*` set by the gateway.

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{
    AUTHORIZATION, CONNECTION, COOKIE, HOST, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::identity::{Identity, Via};
use super::settings::{Resource, WebSettings};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): the fixed ones and those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The protocol a request asks to upgrade to (`websocket`), if it asks.
pub fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// The value of the cookie `name` among the request's cookies.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// The `Cookie` headers without the cookie `name` (removed altogether when nothing else is left).
fn drop_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(key, _)| key != name))
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, value);
    }
}

/// The client's address: the last `X-Forwarded-For` entry when the request comes through a trusted
/// proxy (the address that proxy saw), the peer otherwise.
pub fn client_ip(settings: &WebSettings, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if settings.is_trusted(peer)
        && let Some(forwarded) = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return forwarded.to_canonical();
    }
    peer.to_canonical()
}

/// Rewrites a request's headers for the application.
pub fn to_upstream(
    headers: &mut HeaderMap,
    settings: &WebSettings,
    identity: &Identity,
    resource: &Resource,
    peer: IpAddr,
    upgrade: Option<HeaderValue>,
) {
    let trusted = settings.is_trusted(peer);
    let original_host = headers.get(HOST).cloned();
    strip_hop_by_hop(headers);
    for name in [
        &settings.user_header,
        &settings.groups_header,
        &settings.upstream_user_header,
        &settings.upstream_groups_header,
    ] {
        headers.remove(name);
    }
    if identity.via == Via::BasicAuth {
        // The development password is the gateway's, not the application's.
        headers.remove(AUTHORIZATION);
    }
    drop_cookie(headers, &settings.cookie_name);
    let peer_text = peer.to_canonical().to_string();
    let forwarded_for = match headers.get(X_FORWARDED_FOR).and_then(|value| value.to_str().ok()) {
        Some(earlier) if trusted => format!("{earlier}, {peer_text}"),
        _ => peer_text,
    };
    set(headers, X_FORWARDED_FOR, &forwarded_for);
    if !(trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !(trusted && headers.contains_key(X_FORWARDED_HOST)) {
        headers.remove(X_FORWARDED_HOST);
        if let Some(host) = original_host {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
    if let Ok(host) = HeaderValue::from_str(resource.authority.as_str()) {
        headers.insert(HOST, host);
    }
    set(headers, settings.upstream_user_header.clone(), &identity.user);
    if !identity.groups.is_empty() {
        set(
            headers,
            settings.upstream_groups_header.clone(),
            &identity.groups.join(","),
        );
    }
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{WebConfig, WebResourceConfig};

    fn settings() -> WebSettings {
        WebSettings::new(&WebConfig {
            enabled: true,
            trusted_proxies: vec!["10.0.0.1".into()],
            resources: vec![WebResourceConfig {
                name: "wiki".into(),
                upstream: "http://10.0.0.7:8080".into(),
                hosts: vec!["wiki.example.com".into()],
                groups: vec![],
            }],
            ..WebConfig::default()
        })
        .unwrap()
    }

    fn request_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn the_application_gets_the_user_and_never_the_cookie_nor_hop_by_hop_headers() {
        let settings = settings();
        let mut headers = request_headers(&[
            ("host", "wiki.example.com:2280"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("cookie", "theme=dark; vigil_web_session=abc; lang=fr"),
            ("x-forwarded-user", "alice"),
            ("x-vigil-user", "mallory"),
            ("x-forwarded-for", "203.0.113.9"),
            ("authorization", "Bearer app-token"),
        ]);
        let identity = Identity {
            user: "alice".into(),
            groups: vec!["sre".into(), "web".into()],
            via: Via::Header,
        };
        let resource = settings.resources[0].clone();
        to_upstream(
            &mut headers,
            &settings,
            &identity,
            &resource,
            "10.0.0.1".parse().unwrap(),
            None,
        );
        assert_eq!(headers["cookie"], "theme=dark; lang=fr");
        assert!(headers.get("x-hop").is_none() && headers.get("keep-alive").is_none());
        assert!(headers.get("connection").is_none() && headers.get("x-forwarded-user").is_none());
        assert_eq!(headers["x-vigil-user"], "alice");
        assert_eq!(headers["x-vigil-groups"], "sre,web");
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 10.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "wiki.example.com:2280");
        assert_eq!(headers["host"], "10.0.0.7:8080");
        // Not the gateway's: passed on.
        assert_eq!(headers["authorization"], "Bearer app-token");
        // From an untrusted peer, its X-Forwarded-For is replaced.
        let mut headers = request_headers(&[("x-forwarded-for", "1.2.3.4"), ("cookie", "vigil_web_session=abc")]);
        to_upstream(
            &mut headers,
            &settings,
            &identity,
            &resource,
            "192.0.2.7".parse().unwrap(),
            None,
        );
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert!(headers.get("cookie").is_none());
    }

    #[test]
    fn upgrades_and_client_addresses() {
        let settings = settings();
        let headers = request_headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(upgrade_requested(&headers).unwrap(), "websocket");
        assert!(upgrade_requested(&request_headers(&[("upgrade", "websocket")])).is_none());
        let headers = request_headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.2")]);
        assert_eq!(
            client_ip(&settings, "10.0.0.1".parse().unwrap(), &headers).to_string(),
            "198.51.100.2"
        );
        assert_eq!(
            client_ip(&settings, "192.0.2.7".parse().unwrap(), &headers).to_string(),
            "192.0.2.7"
        );
        let cookies = request_headers(&[("cookie", "a=1; vigil_web_session=xyz")]);
        assert_eq!(cookie_value(&cookies, "vigil_web_session").unwrap(), "xyz");
    }
}
