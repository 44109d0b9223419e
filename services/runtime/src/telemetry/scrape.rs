//! The Prometheus scrape endpoint: `GET /metrics` in the text exposition format, on its own
//! listener (`telemetry.prometheus_listen`), apart from the gRPC port.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr` now (so a taken port fails start-up) and serves until `stop` is cancelled.
/// Returns the bound address (port 0 picks a free one).
pub(super) fn start(
    addr: SocketAddr,
    registry: prometheus::Registry,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, registry, stop));
    Ok(local)
}

async fn serve(listener: TcpListener, registry: prometheus::Registry, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: the next accept may well work.
                    tracing::warn!(%error, "metrics endpoint: cannot accept a connection");
                    continue;
                }
            },
        };
        let registry = registry.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| std::future::ready(Ok::<_, Infallible>(respond(&request, &registry))));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = stop.cancelled() => {}
                served = connection => if let Err(error) = served {
                    tracing::debug!(%error, "metrics endpoint: connection failed");
                },
            }
        });
    }
}

fn respond(request: &hyper::Request<Incoming>, registry: &prometheus::Registry) -> hyper::Response<Full<Bytes>> {
    let reply = |status: http::StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(http::header::CONTENT_TYPE, value);
        }
        response
    };
    if request.uri().path() != "/metrics" {
        return reply(
            http::StatusCode::NOT_FOUND,
            "text/plain",
            b"only /metrics is served here\n".to_vec(),
        );
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return reply(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"use GET\n".to_vec(),
        );
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => reply(http::StatusCode::OK, encoder.format_type(), body),
        Err(error) => {
            tracing::warn!(%error, "metrics endpoint: cannot encode the metrics");
            reply(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode the metrics: {error}\n").into_bytes(),
            )
        }
    }
}
