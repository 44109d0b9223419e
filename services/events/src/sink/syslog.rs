//! Syslog sink: RFC 5424 messages over TCP with octet-counting framing (RFC 6587), over TLS
//! (RFC 5425, the same framing), or over UDP (RFC 5426, one message per datagram).
//!
//! One connection per sink, written in order and kept open; a write that fails drops it and the
//! relay retries the event on a new one. TCP confirms bytes reached the peer's kernel, not that
//! the receiver stored them: a receiver that dies with data in its buffers loses that data.

use std::io;
use std::pin::Pin;

use anyhow::Context;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use crate::config::{SinkConfig, SyslogFormat, Transport};
use crate::event::Event;
use crate::format::rfc5424::{self, Header};
use crate::sink::{Outcome, tls};

/// Largest datagram sent over UDP; longer messages are cut (RFC 5426 asks receivers for 2048 at
/// least; 8192 is safe on loopback and most networks).
const MAX_DATAGRAM: usize = 8192;

enum Connection {
    Stream(Pin<Box<dyn AsyncWrite + Send>>),
    Datagram(UdpSocket),
}

pub struct SyslogSink {
    address: String,
    transport: Transport,
    tls: Option<TlsConnector>,
    header: Header,
    timeout: std::time::Duration,
    connection: Mutex<Option<Connection>>,
}

/// `LEN SP MSG`: RFC 6587 octet counting.
pub fn frame(message: &str) -> Vec<u8> {
    let mut framed = format!("{} ", message.len()).into_bytes();
    framed.extend_from_slice(message.as_bytes());
    framed
}

impl SyslogSink {
    pub fn new(config: &SinkConfig) -> anyhow::Result<Self> {
        let tls = (config.transport == Transport::Tls)
            .then(|| tls::connector(config.ca_file.as_deref()))
            .transpose()?;
        Ok(Self {
            address: config.address.clone(),
            transport: config.transport,
            tls,
            header: Header {
                facility: config.facility,
                hostname: config.hostname.clone(),
                app_name: config.app_name.clone(),
                cef: config.format == SyslogFormat::Cef,
            },
            timeout: config.timeout,
            connection: Mutex::new(None),
        })
    }

    /// The message `event` becomes (without framing).
    pub fn message(&self, event: &Event) -> String {
        rfc5424::format(event, &self.header)
    }

    pub async fn deliver(&self, event: &Event) -> Outcome {
        let message = self.message(event);
        let mut connection = self.connection.lock().await;
        let attempt = tokio::time::timeout(self.timeout, async {
            let open = match connection.as_mut() {
                Some(open) => open,
                None => connection.insert(self.connect().await?),
            };
            match open {
                Connection::Stream(stream) => {
                    stream.write_all(&frame(&message)).await?;
                    stream.flush().await?;
                }
                Connection::Datagram(socket) => {
                    let bytes = message.as_bytes();
                    socket.send(&bytes[..bytes.len().min(MAX_DATAGRAM)]).await?;
                }
            }
            anyhow::Ok(())
        })
        .await;
        match attempt {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(error)) => {
                *connection = None;
                Outcome::retry(format!("{error:#}"))
            }
            Err(_) => {
                *connection = None;
                Outcome::retry(format!("not written within {:?}", self.timeout))
            }
        }
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        Ok(match self.transport {
            Transport::Udp => {
                let local = if self.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let socket = UdpSocket::bind(local).await?;
                socket
                    .connect(&self.address)
                    .await
                    .context("resolving the syslog address")?;
                Connection::Datagram(socket)
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(&self.address).await.context("connecting")?;
                stream.set_nodelay(true)?;
                Connection::Stream(Box::pin(stream))
            }
            Transport::Tls => {
                let stream = TcpStream::connect(&self.address).await.context("connecting")?;
                let host = self
                    .address
                    .rsplit_once(':')
                    .map_or(self.address.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned()).context("syslog host name")?;
                let connector = self.tls.as_ref().ok_or_else(|| io::Error::other("no TLS connector"))?;
                Connection::Stream(Box::pin(
                    connector.connect(name, stream).await.context("TLS handshake")?,
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        assert_eq!(frame("é"), b"2 \xc3\xa9".to_vec());
    }
}
