//! The web proxy's configuration, checked and parsed once at start: resources by host, trusted
//! networks, header names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hyper::header::HeaderName;
use hyper::http::uri::{Authority, Scheme};
use ipnet::IpNet;

use crate::config::{WebConfig, WebResourceConfig};

/// One application, ready to route to.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    pub authority: Authority,
    /// Put before every request's path; empty or starting with `/`, never ending with `/`.
    pub base_path: String,
    pub groups: Vec<String>,
}

impl Resource {
    /// Whether a user in `groups` may reach it.
    pub fn admits(&self, groups: &[String]) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|group| groups.contains(group))
    }
}

/// [`WebConfig`], checked.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub resources: Vec<Resource>,
    /// Lower-case host name → index in `resources`.
    by_host: HashMap<String, usize>,
    default_resource: Option<usize>,
    pub trusted: Vec<IpNet>,
    pub user_header: HeaderName,
    pub groups_header: HeaderName,
    pub upstream_user_header: HeaderName,
    pub upstream_groups_header: HeaderName,
    pub dev_password: String,
    pub cookie_name: String,
    pub secure_cookie: bool,
    pub session_idle: Duration,
    pub upstream_timeout: Duration,
    pub max_connections: usize,
}

impl WebSettings {
    /// Checks everything; the error names the setting.
    pub fn new(config: &WebConfig) -> Result<Self, String> {
        let mut resources = Vec::new();
        let mut by_host = HashMap::new();
        for (index, resource) in config.resources.iter().enumerate() {
            if resources.iter().any(|known: &Resource| known.name == resource.name) {
                return Err(format!("web.resources: {:?} appears twice", resource.name));
            }
            resources.push(parse_resource(resource)?);
            for host in &resource.hosts {
                let host = host.trim().to_ascii_lowercase();
                if host.is_empty() || host.contains([':', '/', ' ']) {
                    return Err(format!(
                        "web.resources.{}: {host:?} is not a host name (no port, no scheme)",
                        resource.name
                    ));
                }
                if by_host.insert(host.clone(), index).is_some() {
                    return Err(format!("web.resources: the host {host:?} is given to two resources"));
                }
            }
        }
        let default_resource = if config.default_resource.is_empty() {
            None
        } else {
            let index = resources
                .iter()
                .position(|resource| resource.name == config.default_resource)
                .ok_or_else(|| {
                    format!(
                        "web.default_resource: no resource is named {:?}",
                        config.default_resource
                    )
                })?;
            Some(index)
        };
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|net| {
                parse_net(net)
                    .ok_or_else(|| format!("web.trusted_proxies: {net:?} is not a network (10.0.0.0/8) nor an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if config.enabled && trusted.is_empty() && config.dev_password.is_empty() {
            return Err("web: no way to know the user: set web.trusted_proxies (the authenticating proxy's networks) or, in development only, web.dev_password".into());
        }
        if config.max_connections == 0 {
            return Err("web.max_connections must be at least 1".into());
        }
        let cookie_ok = !config.cookie_name.is_empty()
            && config
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !cookie_ok {
            return Err(format!(
                "web.cookie_name: {:?} is not a cookie name (letters, digits, _ - .)",
                config.cookie_name
            ));
        }
        Ok(Self {
            resources,
            by_host,
            default_resource,
            trusted,
            user_header: header("web.user_header", &config.user_header)?,
            groups_header: header("web.groups_header", &config.groups_header)?,
            upstream_user_header: header("web.upstream_user_header", &config.upstream_user_header)?,
            upstream_groups_header: header("web.upstream_groups_header", &config.upstream_groups_header)?,
            dev_password: config.dev_password.clone(),
            cookie_name: config.cookie_name.clone(),
            secure_cookie: config.secure_cookie,
            session_idle: config.session_idle,
            upstream_timeout: config.upstream_timeout,
            max_connections: config.max_connections,
        })
    }

    /// The resource a request's host (`wiki.example.com`, `wiki.example.com:2280`, `[::1]:2280`) reaches.
    pub fn resource_for_host(&self, host: Option<&str>) -> Option<&Resource> {
        let name = host.map(strip_port).map(str::to_ascii_lowercase);
        name.and_then(|name| self.by_host.get(&name).copied())
            .or(self.default_resource)
            .map(|index| &self.resources[index])
    }

    /// Whether a peer is one of the trusted proxies.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal: `[::1]:2280`.
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn parse_resource(resource: &WebResourceConfig) -> Result<Resource, String> {
    if !crate::login::is_target_name(&resource.name) {
        return Err(format!(
            "web.resources: {:?} is not a valid resource name (1 to 128 letters, digits and . _ -)",
            resource.name
        ));
    }
    let bad = |why: &str| {
        format!(
            "web.resources.{}: upstream {:?} {why}",
            resource.name, resource.upstream
        )
    };
    let uri: hyper::Uri = resource.upstream.trim().parse().map_err(|_| bad("is not a URL"))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad(
            "must start with http:// (put TLS in front of the gateway, not behind it)",
        ));
    }
    let authority = uri.authority().cloned().ok_or_else(|| bad("has no host"))?;
    if uri.query().is_some() || authority.as_str().contains('@') {
        return Err(bad("must not carry a query or credentials"));
    }
    Ok(Resource {
        name: resource.name.clone(),
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
        groups: resource.groups.clone(),
    })
}

fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

fn header(setting: &str, name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("{setting}: {name:?} is not a header name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(resources: Vec<WebResourceConfig>) -> WebConfig {
        WebConfig {
            enabled: true,
            resources,
            trusted_proxies: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            ..WebConfig::default()
        }
    }

    fn resource(name: &str, upstream: &str, hosts: &[&str]) -> WebResourceConfig {
        WebResourceConfig {
            name: name.into(),
            upstream: upstream.into(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn resources_are_found_by_host_with_or_without_port() {
        let mut web = config(vec![
            resource("wiki", "http://10.0.0.7:8080/wiki/", &["Wiki.example.com"]),
            resource("grafana", "http://10.0.0.8:3000", &["grafana.example.com"]),
        ]);
        let settings = WebSettings::new(&web).unwrap();
        assert_eq!(
            settings.resource_for_host(Some("wiki.example.com:2280")).unwrap().name,
            "wiki"
        );
        assert_eq!(
            settings.resource_for_host(Some("WIKI.example.com")).unwrap().base_path,
            "/wiki"
        );
        assert_eq!(
            settings
                .resource_for_host(Some("grafana.example.com"))
                .unwrap()
                .authority,
            "10.0.0.8:3000"
        );
        assert!(settings.resource_for_host(Some("[::1]:2280")).is_none());
        assert!(settings.resource_for_host(None).is_none());
        web.default_resource = "grafana".into();
        let settings = WebSettings::new(&web).unwrap();
        assert_eq!(
            settings.resource_for_host(Some("127.0.0.1:2280")).unwrap().name,
            "grafana"
        );
        assert!(settings.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(settings.is_trusted("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!settings.is_trusted("192.168.1.1".parse().unwrap()));
    }

    #[test]
    fn bad_settings_are_named() {
        for (web, expected) in [
            (
                config(vec![resource("a b", "http://x:1", &[])]),
                "not a valid resource name",
            ),
            (
                config(vec![resource("a", "https://x:1", &[])]),
                "must start with http://",
            ),
            (config(vec![resource("a", "http://x:1/?q", &[])]), "query"),
            (
                config(vec![
                    resource("a", "http://x:1", &["h"]),
                    resource("b", "http://y:1", &["H"]),
                ]),
                "two resources",
            ),
            (config(vec![resource("a", "http://x:1", &["h:80"])]), "not a host name"),
            (
                config(vec![resource("a", "http://x:1", &[]), resource("a", "http://y:1", &[])]),
                "twice",
            ),
            (
                WebConfig {
                    default_resource: "nope".into(),
                    ..config(vec![])
                },
                "web.default_resource",
            ),
            (
                WebConfig {
                    trusted_proxies: vec!["10.0.0.0/33".into()],
                    ..config(vec![])
                },
                "web.trusted_proxies",
            ),
            (
                WebConfig {
                    trusted_proxies: vec![],
                    ..config(vec![])
                },
                "no way to know the user",
            ),
            (
                WebConfig {
                    user_header: "X User".into(),
                    ..config(vec![])
                },
                "web.user_header",
            ),
            (
                WebConfig {
                    cookie_name: "a;b".into(),
                    ..config(vec![])
                },
                "web.cookie_name",
            ),
        ] {
            let error = WebSettings::new(&web).unwrap_err();
            assert!(error.contains(expected), "{error} (expected {expected})");
        }
    }
}
