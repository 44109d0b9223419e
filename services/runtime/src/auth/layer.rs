//! The tower layer every [`Server`](crate::server::Server) puts in front of its services: it
//! establishes who calls and whether the method's access rule lets them, before any handler runs.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::authenticator::Authenticator;
use super::config::AuthMode;
use super::gateway::GatewayGate;
use super::identity::Identity;
use super::permission::{Access, access_for};
use crate::ServiceError;

/// Puts an [`Identity`] into every admitted request's extensions and refuses the others.
///
/// - Authentication off: every caller is [`Identity::anonymous`] and everything is admitted.
/// - Required: health and reflection are open; the gateway link is admitted and authenticates in
///   its hello ([`authenticate_gateway`](super::authenticate_gateway)); everything else needs a
///   valid bearer token (`Unauthenticated` otherwise) whose roles grant the method's permission
///   (`PermissionDenied` naming it otherwise). Methods no table knows are refused.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> AuthService<S> {
    /// Decides on a request, adding what handlers need to its extensions.
    fn admit<B>(&self, request: &mut http::Request<B>) -> Result<(), ServiceError> {
        let access = access_for(request.uri().path());
        let extensions = request.extensions_mut();
        extensions.insert(GatewayGate(self.authenticator.clone()));
        if self.authenticator.mode() == AuthMode::Off {
            let peer = peer_ip(extensions);
            extensions.insert(Identity::anonymous(peer));
            return Ok(());
        }
        let permission = match access {
            Some(Access::Public | Access::Gateway) => return Ok(()),
            Some(Access::Requires(permission)) => Some((permission, None)),
            Some(Access::RequiresEither(permission, alternative)) => Some((permission, Some(alternative))),
            Some(Access::OwnSessionsOr(_) | Access::Authenticated) => None,
            None => {
                return Err(ServiceError::PermissionDenied(format!(
                    "no access rule covers {}; refused",
                    request.uri().path()
                )));
            }
        };
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap_or_default());
        let identity = self.authenticator.authenticate(authorization)?;
        if let Some((permission, alternative)) = permission
            && !alternative.is_some_and(|alternative| identity.has(alternative))
        {
            identity.require(permission)?;
        }
        request.extensions_mut().insert(identity);
        Ok(())
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        match self.admit(&mut request) {
            Ok(()) => self.inner.call(request).boxed(),
            Err(error) => {
                let method = request.uri().path().to_owned();
                tracing::info!(%method, %error, "call refused by the auth layer");
                futures::future::ready(Ok(tonic::Status::from(error).into_http())).boxed()
            }
        }
    }
}

/// The caller's address, over plain TCP or TLS.
fn peer_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip())
}
