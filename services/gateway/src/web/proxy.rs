//! The request path: resource by host, the user, the browser session (admitted through the agent
//! like an SSH login), then the application; and the pages for everything that goes wrong.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue, SET_COOKIE, USER_AGENT, WWW_AUTHENTICATE};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vigil_agent::{Agent, AgentError};
use vigil_proto::v1::{ResourceType, SessionStart};

use super::body::{Metered, ProxyBody};
use super::headers;
use super::identity::{self, Identity, Refusal};
use super::pages::page;
use super::sessions::{Lookup, WebSession, WebSessions};
use super::settings::{Resource, WebSettings};
use crate::users::Users;

/// What the web proxy shares between connections.
pub struct WebProxy {
    pub settings: WebSettings,
    pub users: Users,
    pub agent: Agent,
    pub sessions: Arc<WebSessions>,
    client: Client<HttpConnector, ProxyBody>,
}

impl WebProxy {
    pub fn new(settings: WebSettings, users: Users, agent: Agent, sessions: Arc<WebSessions>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.upstream_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self {
            settings,
            users,
            agent,
            sessions,
            client,
        }
    }

    /// Answers one request from `peer`.
    pub async fn handle(&self, peer: SocketAddr, request: Request<Incoming>) -> Response<ProxyBody> {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|authority| authority.as_str().to_owned()));
        let Some(resource) = self.settings.resource_for_host(host.as_deref()).cloned() else {
            crate::metrics::web_request("unknown_resource");
            let place = host.map_or_else(|| "this address".to_owned(), |host| format!("\"{host}\""));
            return page(
                StatusCode::NOT_FOUND,
                "Unknown application",
                &format!("No web application is served at {place} by this gateway."),
            );
        };
        let identity = match identity::identify(&self.settings, &self.users, peer.ip(), request.headers()) {
            Ok(identity) => identity,
            Err(refusal) => return self.refused(&refusal),
        };
        if !resource.admits(&identity.groups) {
            crate::metrics::web_request("not_allowed");
            return page(
                StatusCode::FORBIDDEN,
                "Access refused",
                &format!("{} may not reach {}.", identity.user, resource.name),
            );
        }
        let (session, new) = match self.session_for(peer.ip(), &request, &identity, &resource).await {
            Ok(found) => found,
            Err(response) => return response,
        };
        session.request(&self.agent);
        let mut response = self.forward(peer.ip(), request, &identity, &resource, &session).await;
        if new && let Ok(cookie) = HeaderValue::from_str(&self.cookie(&session.cookie)) {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        response
    }

    fn refused(&self, refusal: &Refusal) -> Response<ProxyBody> {
        match refusal {
            Refusal::Untrusted { header, peer } => {
                tracing::warn!(%peer, %header, "an identity header from outside web.trusted_proxies; refused");
                crate::metrics::web_request("untrusted");
                page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    &format!(
                        "This request carries the {header} header but does not come from a trusted proxy \
                         ({peer} is not in web.trusted_proxies), so the gateway does not believe it."
                    ),
                )
            }
            Refusal::Missing { header, basic } => {
                crate::metrics::web_request("no_user");
                let how = if *basic {
                    "sign in with your user name and the development password"
                } else {
                    "reach it through the authenticating proxy"
                };
                let mut response = page(
                    StatusCode::UNAUTHORIZED,
                    "Who are you?",
                    &format!("The gateway does not know who you are (no {header} header from a trusted proxy): {how}."),
                );
                if *basic {
                    response.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"vigil-gateway\", charset=\"UTF-8\""),
                    );
                }
                response
            }
            Refusal::BadCredentials => {
                crate::metrics::web_request("no_user");
                let mut response = page(
                    StatusCode::UNAUTHORIZED,
                    "Who are you?",
                    "Unknown user or wrong password.",
                );
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"vigil-gateway\", charset=\"UTF-8\""),
                );
                response
            }
            Refusal::Malformed(why) => {
                crate::metrics::web_request("malformed");
                page(StatusCode::BAD_REQUEST, "Bad request", &format!("{why}."))
            }
        }
    }

    /// The browser session of a request: the one its cookie names, or a new one admitted now (then
    /// `true`). `Err`: the page to answer with (the session ended, or admission refused).
    async fn session_for(
        &self,
        peer: IpAddr,
        request: &Request<Incoming>,
        identity: &Identity,
        resource: &Resource,
    ) -> Result<(Arc<WebSession>, bool), Response<ProxyBody>> {
        if let Some(cookie) = headers::cookie_value(request.headers(), &self.settings.cookie_name) {
            match self.sessions.lookup(&cookie) {
                Lookup::Live(session) if session.user == identity.user && session.resource == resource.name => {
                    return Ok((session, false));
                }
                Lookup::Ended(notice) => {
                    crate::metrics::web_request("ended");
                    return Err(self.ended_page(&notice));
                }
                // Another user or application (or an unknown id): a session of its own.
                Lookup::Live(_) | Lookup::Unknown => {}
            }
        }
        let start = SessionStart {
            user: identity.user.clone(),
            resource_name: resource.name.clone(),
            resource_type: ResourceType::Web as i32,
            device: device_of(request),
            client_ip: headers::client_ip(&self.settings, peer, request.headers()).to_string(),
            started_at: Some(SystemTime::now().into()),
            user_groups: identity.groups.clone(),
        };
        let admission = match self.agent.open_session(start).await {
            Ok(admission) => admission,
            Err(AgentError::InvalidInput(why)) => {
                crate::metrics::web_request("malformed");
                return Err(page(StatusCode::BAD_REQUEST, "Bad request", &why));
            }
            Err(error) => {
                tracing::warn!(user = %identity.user, %error, "admission failed");
                crate::metrics::web_request("error");
                return Err(page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later",
                    &format!("The gateway cannot open sessions right now: {error}"),
                ));
            }
        };
        if !admission.allowed {
            tracing::info!(user = %identity.user, resource = %resource.name, reason = %admission.reason, "browser session refused");
            crate::metrics::web_request("refused");
            return Err(page(
                StatusCode::FORBIDDEN,
                "Access refused",
                &format!("Access refused: {}", admission.reason),
            ));
        }
        let session = Arc::new(WebSession::new(
            admission.session_id,
            identity.user.clone(),
            resource.name.clone(),
        ));
        tracing::info!(session_id = %session.session_id, user = %session.user, resource = %session.resource, "browser session admitted");
        self.sessions.insert(Arc::clone(&session));
        Ok((session, true))
    }

    /// The page for a session the registry ended, clearing the cookie.
    fn ended_page(&self, notice: &str) -> Response<ProxyBody> {
        let mut response = page(StatusCode::FORBIDDEN, "Session ended", notice);
        if let Ok(clear) = HeaderValue::from_str(&format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
            self.settings.cookie_name,
            if self.settings.secure_cookie { "; Secure" } else { "" }
        )) {
            response.headers_mut().append(SET_COOKIE, clear);
        }
        response
    }

    fn cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax{}",
            self.settings.cookie_name,
            if self.settings.secure_cookie { "; Secure" } else { "" }
        )
    }

    /// Sends the request to the application and its answer back, both counted and cut with the session.
    async fn forward(
        &self,
        peer: IpAddr,
        mut request: Request<Incoming>,
        identity: &Identity,
        resource: &Resource,
        session: &Arc<WebSession>,
    ) -> Response<ProxyBody> {
        let upgrade = headers::upgrade_requested(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let Ok(uri) = format!("http://{}{}{path}", resource.authority, resource.base_path).parse::<Uri>() else {
            crate::metrics::web_request("malformed");
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request's target is not a path.",
            );
        };
        parts.uri = uri;
        parts.version = hyper::Version::HTTP_11;
        headers::to_upstream(&mut parts.headers, &self.settings, identity, resource, peer, upgrade);
        let body = Metered::new(body, session, &self.agent, true).boxed_unsync();
        let sent = tokio::select! {
            sent = tokio::time::timeout(self.settings.upstream_timeout, self.client.request(Request::from_parts(parts, body))) => sent,
            () = session.ended.cancelled() => return self.ended_page(&self.notice_of(session)),
        };
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::warn!(resource = %resource.name, error = %error_chain(&error), "the application cannot be reached");
                crate::metrics::web_request("upstream_error");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Application unreachable",
                    &format!("{} cannot be reached right now; try again in a moment.", resource.name),
                );
            }
            Err(_) => {
                crate::metrics::web_request("upstream_timeout");
                return page(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Application too slow",
                    &format!(
                        "{} did not answer within {:?}.",
                        resource.name, self.settings.upstream_timeout
                    ),
                );
            }
        };
        crate::metrics::web_request("proxied");
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway",
                    "The application switched protocols unasked.",
                );
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(
                client_upgrade,
                upstream_upgrade,
                Arc::clone(session),
                self.agent.clone(),
            ));
            // The 101 keeps its Connection and Upgrade headers: they are the answer.
            return response.map(|_| Empty::new().map_err(|never| match never {}).boxed_unsync());
        }
        headers::strip_hop_by_hop(response.headers_mut());
        let agent = self.agent.clone();
        response.map(|body| Metered::new(body, session, &agent, false).boxed_unsync())
    }

    /// The notice of a session the registry just ended (kept for its next request), or a plain one.
    fn notice_of(&self, session: &WebSession) -> String {
        match self.sessions.lookup(&session.cookie) {
            Lookup::Ended(notice) => notice,
            _ => "This session has ended.".to_owned(),
        }
    }
}

/// The browser (its `User-Agent`), the session's device.
fn device_of(request: &Request<Incoming>) -> String {
    let agent = request
        .headers()
        .get(USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let device: String = agent
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(256)
        .collect();
    if device.trim().is_empty() {
        "unknown browser".to_owned()
    } else {
        device.trim().to_owned()
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Relays an upgraded connection (a WebSocket) both ways, counting bytes (the browser's are activity),
/// until either side closes or the session ends; then both connections are dropped, which closes them.
async fn tunnel(client: OnUpgrade, upstream: OnUpgrade, session: Arc<WebSession>, agent: Agent) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => (TokioIo::new(client), TokioIo::new(upstream)),
        (Err(error), _) | (_, Err(error)) => {
            tracing::debug!(%error, "an upgrade did not complete");
            return;
        }
    };
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let relay = async {
        tokio::join!(
            pipe(client_read, upstream_write, &session, &agent, true),
            pipe(upstream_read, client_write, &session, &agent, false),
        )
    };
    tokio::select! {
        _ = relay => {}
        () = session.ended.cancelled() => {
            tracing::debug!(session_id = %session.session_id, "upgraded connection cut: the session ended");
        }
    }
}

async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    session: &WebSession,
    agent: &Agent,
    inbound: bool,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if inbound {
            session.request(agent);
        }
        session.count(agent, inbound, read);
        crate::metrics::relayed(if inbound { "in" } else { "out" }, read);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
