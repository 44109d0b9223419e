//! One server span per gRPC call, continuing the caller's trace.
//!
//! [`RpcTraceLayer`] is the outermost layer of every [`crate::server::Server`]: each call runs in
//! a `tracing` span named after its method (`vigil.v1.TerminationService/Terminate`), of kind
//! server, with the `rpc.system`, `rpc.service` and `rpc.method` attributes, whose parent is the
//! span named by the call's `traceparent`/`tracestate` headers. The span lasts until the response
//! body ends — the whole stream, for a streaming call — and records the call's gRPC status
//! (`rpc.grpc.status_code`, and an error status for the codes that mean the server failed).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::Instrument;

use super::propagation;

/// Health checks and reflection are not traced: load balancers and probes call them every few
/// seconds, and a trace each time would bury the real ones.
const UNTRACED_PREFIX: &str = "/grpc.";

/// Tower layer making the span of each call; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcTraceLayer;

impl<S> Layer<S> for RpcTraceLayer {
    type Service = RpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTrace { inner }
    }
}

/// The service made by [`RpcTraceLayer`].
#[derive(Debug, Clone)]
pub struct RpcTrace<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcTrace<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let span = rpc_span(&request);
        let future = span.in_scope(|| self.inner.call(request));
        let body_span = span.clone();
        async move {
            let response = future.await?;
            // A failure before any message is sent comes as a trailers-only response: the status
            // is in the headers.
            if let Some(code) = response.headers().get("grpc-status") {
                record_status(&body_span, code);
            }
            Ok(response.map(|inner| TracedBody { inner, span: body_span }))
        }
        .instrument(span)
        .boxed()
    }
}

/// The span of one call: `Span::none()` for the untraced services and for paths that are not
/// gRPC methods.
fn rpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    let Some((name, service, method)) = rpc_name(request.uri().path()) else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        "grpc",
        otel.name = %name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    propagation::set_remote_parent(&span, propagation::extract_headers(request.headers()));
    span
}

/// `/vigil.v1.Service/Method` → (`vigil.v1.Service/Method`, `vigil.v1.Service`, `Method`), for the
/// traced services only.
fn rpc_name(path: &str) -> Option<(&str, &str, &str)> {
    if path.starts_with(UNTRACED_PREFIX) {
        return None;
    }
    let name = path.strip_prefix('/')?;
    let (service, method) = name.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some((name, service, method))
}

/// Records a `grpc-status` value on the call's span. The codes that mean the server failed (not
/// the caller) also mark the span as an error, as OpenTelemetry's conventions for gRPC servers say.
fn record_status(span: &tracing::Span, value: &http::HeaderValue) {
    let Some(code) = value.to_str().ok().and_then(|text| text.parse::<i64>().ok()) else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if is_server_error(code) {
        span.record("otel.status_code", "error");
    }
}

/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

pin_project_lite::pin_project! {
    /// A response body that keeps its call's span open until it ends, and records the status from
    /// its trailers.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: tracing::Span,
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // A streaming handler's stream is polled from here: what it logs belongs to the call.
        let _entered = this.span.enter();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(code) = frame.trailers_ref().and_then(|trailers| trailers.get("grpc-status"))
        {
            record_status(this.span, code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_the_servers_fault_codes() {
        let errors: Vec<i64> = (0..=16).filter(|code| is_server_error(*code)).collect();
        assert_eq!(errors, [2, 4, 12, 13, 14, 15]);
    }

    #[test]
    fn methods_are_named_and_health_reflection_and_other_paths_are_not_traced() {
        assert_eq!(
            rpc_name("/vigil.v1.TerminationService/Terminate"),
            Some((
                "vigil.v1.TerminationService/Terminate",
                "vigil.v1.TerminationService",
                "Terminate"
            ))
        );
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/",
            "/metrics",
            "/a/b/c",
            "//Method",
        ] {
            assert_eq!(rpc_name(path), None, "{path}");
        }
    }
}
