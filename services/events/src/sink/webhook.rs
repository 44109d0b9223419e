//! Webhook sink: one HTTPS POST per event, the CloudEvent in structured mode, signed.
//!
//! Headers: `Content-Type: application/cloudevents+json`, `Vigil-Event-Id: <id>`, and
//! `Vigil-Signature: t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
//! A receiver recomputes the HMAC with the key `kid` names, compares in constant time, rejects a
//! `t` too far from its clock (replays), and deduplicates on the event id (deliveries are at least
//! once). 2xx is delivered; 408, 429 and 5xx, timeouts and connection errors are retried
//! (`Retry-After` in seconds honoured); any other status is a rejection, recorded, not retried.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::SinkConfig;
use crate::event::Event;
use crate::format::cloudevents;
use crate::sink::{Outcome, tls};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "vigil-signature";
/// The header carrying the event id (also in the body).
pub const EVENT_ID_HEADER: &str = "vigil-event-id";

/// Most of a response body read (and thrown away) before the connection closes.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub struct WebhookSink {
    /// Kept-alive connections, idle, ready for the next request.
    idle: std::sync::Mutex<Vec<Sender>>,
    url: url::Url,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    secret: Vec<u8>,
    key_id: String,
    timeout: Duration,
}

/// `v1=` of the signature: hex HMAC-SHA256 over `"<timestamp>." + body`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The seconds of a `Retry-After` header (the HTTP-date form is not honoured: the backoff applies).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(24 * 3600)))
}

/// What a response status means for the event.
fn classify(status: http::StatusCode, headers: &http::HeaderMap) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status == http::StatusCode::REQUEST_TIMEOUT
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Outcome::Retry {
            error: format!("HTTP {status}"),
            after: retry_after(headers),
        }
    } else {
        Outcome::Rejected(format!("HTTP {status}"))
    }
}

impl WebhookSink {
    pub fn new(config: &SinkConfig) -> anyhow::Result<Self> {
        let url = url::Url::parse(&config.url).context("webhook url")?;
        let host = url.host_str().context("webhook url has no host")?.to_owned();
        let port = url.port_or_known_default().context("webhook url has no port")?;
        let tls = (url.scheme() == "https")
            .then(|| tls::connector(config.ca_file.as_deref()))
            .transpose()?;
        Ok(Self {
            idle: std::sync::Mutex::new(Vec::new()),
            url,
            host,
            port,
            tls,
            secret: config.secret.expose().as_bytes().to_vec(),
            key_id: config.key_id.clone(),
            timeout: config.timeout,
        })
    }

    pub async fn deliver(&self, event: &Event) -> Outcome {
        let body = cloudevents::to_body(event);
        let timestamp = u64::try_from(vigil_core::now_millis() / 1000).unwrap_or(0);
        let signature = format!(
            "t={timestamp},kid={},v1={}",
            self.key_id,
            sign(&self.secret, timestamp, &body)
        );
        match tokio::time::timeout(self.timeout, self.post(&event.id, signature, body)).await {
            Err(_) => Outcome::retry(format!("no answer within {:?}", self.timeout)),
            Ok(Err(error)) => Outcome::retry(format!("{error:#}")),
            Ok(Ok((status, headers))) => classify(status, &headers),
        }
    }

    async fn post(
        &self,
        event_id: &str,
        signature: String,
        body: Vec<u8>,
    ) -> anyhow::Result<(http::StatusCode, http::HeaderMap)> {
        let path = match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_owned(),
        };
        let authority = match self.url.port() {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        };
        let body = Bytes::from(body);
        let request = || {
            http::Request::post(path.as_str())
                .header(http::header::HOST, authority.as_str())
                .header(http::header::CONTENT_TYPE, cloudevents::CONTENT_TYPE)
                .header(
                    http::header::USER_AGENT,
                    concat!("vigil-events/", env!("CARGO_PKG_VERSION")),
                )
                .header(EVENT_ID_HEADER, event_id)
                .header(SIGNATURE_HEADER, signature.as_str())
                .body(Full::new(body.clone()))
        };
        // A kept-alive connection the server closed meanwhile fails at once: the request is sent
        // again once, on a new connection.
        let response = match self.reuse().await {
            Some(mut sender) => match sender.send_request(request()?).await {
                Ok(response) => Ok((response, sender)),
                Err(_) => Err(()),
            },
            None => Err(()),
        };
        let (response, sender) = match response {
            Ok(sent) => sent,
            Err(()) => {
                let mut sender = self.connect().await?;
                let response = sender.send_request(request()?).await.context("sending")?;
                (response, sender)
            }
        };
        let (parts, mut body) = response.into_parts();
        let mut read = 0;
        let mut complete = true;
        while let Some(frame) = body.frame().await {
            read += frame?.data_ref().map_or(0, Bytes::len);
            if read > MAX_RESPONSE_BODY {
                complete = false;
                break;
            }
        }
        // Kept for the next request when the answer was read to its end and the server keeps the
        // connection open; dropped (closed) otherwise.
        if complete && !sender.is_closed() {
            self.idle.lock().expect("idle connections").push(sender);
        }
        Ok((parts.status, parts.headers))
    }

    /// An idle kept-alive connection that is still open, if any.
    async fn reuse(&self) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().expect("idle connections").pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, self.port)).await.context("connecting")?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(host.to_owned()).context("webhook host name")?;
                let stream = connector.connect(name, tcp).await.context("TLS handshake")?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

/// An HTTP/1.1 connection over `stream`; its driver ends when the sender is dropped.
async fn handshake<S>(stream: S) -> anyhow::Result<Sender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "webhook connection closed");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_issue_says() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(classify(http::StatusCode::NO_CONTENT, &headers), Outcome::Delivered);
        assert!(matches!(
            classify(http::StatusCode::BAD_REQUEST, &headers),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            classify(http::StatusCode::GONE, &headers),
            Outcome::Rejected(_)
        ));
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        for status in [408, 429, 500, 503] {
            let outcome = classify(http::StatusCode::from_u16(status).unwrap(), &headers);
            assert_eq!(
                outcome,
                Outcome::Retry {
                    error: format!("HTTP {}", http::StatusCode::from_u16(status).unwrap()),
                    after: Some(Duration::from_secs(7))
                }
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: python3 -c "import hmac,hashlib;print(hmac.new(b'key', b'1.{}', hashlib.sha256).hexdigest())"
        assert_eq!(
            sign(b"key", 1, b"{}"),
            "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
