//! A tiny web application for the demo, served on loopback behind the web proxy: a page greeting the
//! user the gateway names, and `/clock`, a response that streams a line a second (to watch a kill cut
//! it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::body::ProxyBody;
use super::pages::escape;
use crate::listen::next_connection;

/// The demo web application's resource name (also reached as `demo-web.localhost`).
pub const DEMO_WEB_RESOURCE: &str = "demo-web";

/// Starts the demo application on `listen`; returns where it listens.
pub async fn start(
    listen: SocketAddr,
    headers: (String, String),
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Some((socket, _)) = next_connection(&listener, &shutdown).await else {
                return;
            };
            let headers = headers.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = answer(&request, &headers);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(socket), service);
                tokio::select! {
                    _ = connection => {}
                    () = shutdown.cancelled() => {}
                }
            });
        }
    });
    Ok(addr)
}

fn answer(
    request: &Request<hyper::body::Incoming>,
    (user_header, groups_header): &(String, String),
) -> Response<ProxyBody> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if request.uri().path() == "/clock" {
        let mut response = Response::new(Clock::new().boxed_unsync());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return response;
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Vigil demo app</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\">\
         <h1>Hello, {user}</h1>\n<p>This is the demo web application behind vigil-gateway's web proxy \
         (your groups: {groups}). This browser session is a Vigil session: find it with \
         <code>sessionctl sessions list</code>, end it, and reload this page.</p>\n\
         <p><a href=\"/clock\">/clock</a> streams a line a second; ending the session cuts it.</p></body></html>\n",
        user = escape(&header(user_header)),
        groups = escape(&header(groups_header)),
    );
    let mut response = Response::new(
        Full::new(Bytes::from(html))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// A line with the time, every second, for an hour.
struct Clock {
    interval: tokio::time::Interval,
    left: u32,
}

impl Clock {
    fn new() -> Self {
        Self {
            interval: tokio::time::interval(Duration::from_secs(1)),
            left: 3600,
        }
    }
}

impl Body for Clock {
    type Data = Bytes;
    type Error = super::body::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.interval.poll_tick(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                self.left -= 1;
                let seconds = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let line = format!("tick {seconds}\n");
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(line)))))
            }
        }
    }
}
