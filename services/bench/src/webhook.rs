//! `--events-webhook`: a webhook receiver on loopback that the services' event relays deliver
//! every event to (one sink, `bench`), counting what arrives and when. It answers 204 at once and
//! keeps connections alive, as a fast SIEM collector would: the figure is the relays' rate, not
//! the receiver's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The sink's HMAC key (the receiver does not check it; the relays pay for signing all the same).
pub const SECRET: &str = "vigil-bench-webhook-secret";
/// Deliveries in flight at once (different sessions).
pub const CONCURRENCY: usize = 16;
/// How long the count must stand still before the backlog counts as drained.
const STILL: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Seen {
    count: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

/// The running receiver.
pub struct Receiver {
    pub url: String,
    seen: Arc<Seen>,
}

/// What the relays delivered in one world.
#[derive(Debug, Clone, Copy)]
pub struct EventsFigures {
    /// Events received in all.
    pub delivered: u64,
    /// Events received while the phases ran, and for how long they ran.
    pub during: (u64, Duration),
    /// Events received after the phases ended (the backlog), and how long they took to arrive.
    pub drained: (u64, Duration),
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the webhook receiver")?;
        let url = format!("http://{}/vigil", listener.local_addr()?);
        let seen = Arc::new(Seen::default());
        let kept = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, kept.clone()));
            }
        });
        Ok(Self { url, seen })
    }

    pub fn count(&self) -> u64 {
        self.seen.count.load(Ordering::Relaxed)
    }

    /// After the phases (which began at `began` with `before` events already in): waits until the
    /// count stands still for a few seconds, or `patience` passes.
    pub async fn drain(&self, began: Instant, before: u64, patience: Duration) -> EventsFigures {
        let phases_ended = Instant::now();
        let at_end = self.count();
        let mut last = (at_end, Instant::now());
        while phases_ended.elapsed() < patience {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.count();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= STILL {
                break;
            }
        }
        let delivered = self.count();
        let last_arrival = self.seen.last.lock().expect("times").unwrap_or(phases_ended);
        EventsFigures {
            delivered,
            during: (at_end - before, phases_ended.duration_since(began)),
            drained: (delivered - at_end, last_arrival.saturating_duration_since(phases_ended)),
        }
    }
}

/// Answers every request on a kept-alive connection with 204.
async fn serve(mut stream: TcpStream, seen: Arc<Seen>) {
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // A whole request in the buffer: its head, and as many body bytes as it says.
        let complete = buffer.windows(4).position(|w| w == b"\r\n\r\n").and_then(|head| {
            let text = String::from_utf8_lossy(&buffer[..head]).to_ascii_lowercase();
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            (buffer.len() >= head + 4 + length).then_some(head + 4 + length)
        });
        if let Some(end) = complete {
            buffer.drain(..end);
            let now = Instant::now();
            seen.first.lock().expect("times").get_or_insert(now);
            *seen.last.lock().expect("times") = Some(now);
            seen.count.fetch_add(1, Ordering::Relaxed);
            if stream
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}
