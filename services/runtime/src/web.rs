//! The browser's way in: gRPC-Web (through `tonic-web`, on the same port and behind the same
//! authentication layer and permission tables as gRPC), origin checks, and the pages of an
//! embedded web application (the console) answered to plain `GET`s.
//!
//! [`WebLayer`] sits outside every other layer of a [`Server`](crate::server::Server) built with
//! [`Server::with_web`](crate::server::Server::with_web):
//! - `GET` / `HEAD`: answered from the [`WebPages`] (never gRPC: gRPC and gRPC-Web calls are `POST`s).
//! - `OPTIONS` (a CORS preflight): answered for an allowed origin, `403` otherwise.
//! - gRPC-Web calls (`application/grpc-web*`) from a browser carry `Origin`: the call goes on only when
//!   that origin is the server's own (the console it serves) or listed in
//!   [`WebConfig::allowed_origins`]; otherwise it fails with `PERMISSION_DENIED` before any handler.
//!   Calls without `Origin` (tools, tests) go on: the bearer token is what guards them, as for gRPC.
//! - Everything else (gRPC over HTTP/2) goes on untouched.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct WebPage {
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Whether the file may be cached for long (a content-hashed asset) rather than revalidated.
    pub immutable: bool,
}

/// The files of an embedded web application, by request path.
pub trait WebPages: Send + Sync + 'static {
    /// The file to answer `path` with (`/`, `/sessions/<id>`, `/assets/app.js`); `None` is a 404.
    fn page(&self, path: &str) -> Option<WebPage>;
}

/// Settings of the browser's access.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Origins (`https://console.example.com`) whose pages may call this server with gRPC-Web
    /// besides the server's own. Empty: only pages this server served.
    pub allowed_origins: Vec<String>,
}

/// The [`tower::Layer`] described in the module docs.
#[derive(Clone)]
pub struct WebLayer {
    pages: Option<Arc<dyn WebPages>>,
    allowed_origins: Arc<Vec<String>>,
}

impl WebLayer {
    pub fn new(pages: Option<Arc<dyn WebPages>>, config: &WebConfig) -> Self {
        let allowed_origins = config
            .allowed_origins
            .iter()
            .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Self {
            pages,
            allowed_origins: Arc::new(allowed_origins),
        }
    }
}

impl<S> Layer<S> for WebLayer {
    type Service = WebService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`WebLayer`].
#[derive(Clone)]
pub struct WebService<S> {
    inner: S,
    layer: WebLayer,
}

/// What the layer makes of an origin.
#[derive(Debug, PartialEq, Eq)]
enum OriginVerdict {
    /// No `Origin` header: not a browser's cross-document request.
    Absent,
    /// The server's own origin (same host and port as the request's `Host`).
    SameOrigin,
    /// A listed origin: allowed, with CORS headers on the answer.
    Listed(http::HeaderValue),
    Refused(String),
}

impl WebLayer {
    fn judge_origin(&self, headers: &http::HeaderMap) -> OriginVerdict {
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return OriginVerdict::Absent;
        };
        let Ok(text) = origin.to_str() else {
            return OriginVerdict::Refused("the Origin header is not text".into());
        };
        let normalized = text.trim_end_matches('/').to_ascii_lowercase();
        let host = headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .map(str::to_ascii_lowercase);
        let origin_host = normalized
            .strip_prefix("http://")
            .or_else(|| normalized.strip_prefix("https://"));
        if origin_host.is_some() && origin_host == host.as_deref() {
            return OriginVerdict::SameOrigin;
        }
        if self.allowed_origins.contains(&normalized) {
            return OriginVerdict::Listed(origin.clone());
        }
        OriginVerdict::Refused(format!(
            "gRPC-Web calls from origin {text} are not allowed; add it to server.web.allowed_origins"
        ))
    }

    fn serve_page(&self, method: &http::Method, path: &str) -> http::Response<tonic::body::Body> {
        let page = self.pages.as_ref().and_then(|pages| pages.page(path));
        let Some(page) = page else {
            return plain(http::StatusCode::NOT_FOUND, "not found\n");
        };
        let body = if *method == http::Method::HEAD {
            tonic::body::Body::default()
        } else {
            tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from_static(page.body)))
        };
        let mut response = http::Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(page.content_type),
        );
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(page.body.len()));
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static(if page.immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
        headers.insert(http::header::X_FRAME_OPTIONS, http::HeaderValue::from_static("DENY"));
        headers.insert(
            http::header::REFERRER_POLICY,
            http::HeaderValue::from_static("no-referrer"),
        );
        // Scripts and calls only from this server: an injected script or a page elsewhere can
        // neither run here nor receive what the console reads.
        headers.insert(
            http::header::CONTENT_SECURITY_POLICY,
            http::HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
        response
    }

    fn preflight(&self, headers: &http::HeaderMap) -> http::Response<tonic::body::Body> {
        match self.judge_origin(headers) {
            OriginVerdict::Listed(origin) => {
                let mut response = http::Response::new(tonic::body::Body::default());
                *response.status_mut() = http::StatusCode::NO_CONTENT;
                let out = response.headers_mut();
                out.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                out.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    http::HeaderValue::from_static("POST"),
                );
                out.insert(
                    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                    http::HeaderValue::from_static(
                        "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, traceparent",
                    ),
                );
                out.insert(
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    http::HeaderValue::from_static("600"),
                );
                out.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
                response
            }
            // The same origin never preflights; whatever else asks is told no.
            _ => plain(http::StatusCode::FORBIDDEN, "origin not allowed\n"),
        }
    }
}

fn plain(status: http::StatusCode, text: &'static str) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(text.as_bytes()),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn is_grpc_web(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc-web"))
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for WebService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.method().clone();
        if method == http::Method::GET || method == http::Method::HEAD {
            let response = self.layer.serve_page(&method, request.uri().path());
            return futures::future::ready(Ok(response)).boxed();
        }
        if method == http::Method::OPTIONS {
            return futures::future::ready(Ok(self.layer.preflight(request.headers()))).boxed();
        }
        if !is_grpc_web(request.headers()) {
            return self.inner.call(request).boxed();
        }
        match self.layer.judge_origin(request.headers()) {
            OriginVerdict::Absent | OriginVerdict::SameOrigin => self.inner.call(request).boxed(),
            OriginVerdict::Listed(origin) => self
                .inner
                .call(request)
                .map(move |result| {
                    result.map(|mut response| {
                        let headers = response.headers_mut();
                        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                        headers.insert(
                            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                            http::HeaderValue::from_static("grpc-status, grpc-message, grpc-status-details-bin"),
                        );
                        headers.insert(http::header::VARY, http::HeaderValue::from_static("origin"));
                        response
                    })
                })
                .boxed(),
            OriginVerdict::Refused(reason) => {
                tracing::info!(path = request.uri().path(), %reason, "gRPC-Web call refused");
                // Answered in gRPC-Web's own framing, so a client reads the status.
                let mut response = tonic::Status::permission_denied(reason).into_http::<tonic::body::Body>();
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc-web+proto"),
                );
                futures::future::ready(Ok(response)).boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn origins_are_judged_against_the_host_and_the_list() {
        let layer = WebLayer::new(
            None,
            &WebConfig {
                allowed_origins: vec!["https://Console.example.com/".into()],
            },
        );
        assert_eq!(
            layer.judge_origin(&headers(&[("host", "127.0.0.1:7400")])),
            OriginVerdict::Absent
        );
        assert_eq!(
            layer.judge_origin(&headers(&[
                ("host", "127.0.0.1:7400"),
                ("origin", "http://127.0.0.1:7400")
            ])),
            OriginVerdict::SameOrigin
        );
        assert!(matches!(
            layer.judge_origin(&headers(&[
                ("host", "vigil:7400"),
                ("origin", "https://console.example.com")
            ])),
            OriginVerdict::Listed(_)
        ));
        assert!(matches!(
            layer.judge_origin(&headers(&[
                ("host", "127.0.0.1:7400"),
                ("origin", "http://127.0.0.1:7401")
            ])),
            OriginVerdict::Refused(_)
        ));
        assert!(matches!(
            layer.judge_origin(&headers(&[("host", "127.0.0.1:7400"), ("origin", "null")])),
            OriginVerdict::Refused(_)
        ));
    }
}
