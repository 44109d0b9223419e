//! A small TCP balancer: each accepted connection goes to the next backend that accepts (round
//! robin, skipping dead ones), bytes copied both ways. It can also be taken offline — every
//! connection through it cut, new ones refused — to stand for a network partition.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long one backend may take to accept before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

struct Shared {
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
    online: AtomicBool,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
}

/// A listening balancer; stops when dropped.
pub struct Balancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free loopback port; the first connection goes to `backends[first]`.
    pub async fn start(backends: Vec<SocketAddr>, first: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            backends,
            next: AtomicUsize::new(first),
            online: AtomicBool::new(true),
            cut: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// `http://` URL of the balancer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Offline: every connection through it is cut and new ones are closed at once. Online again:
    /// connections pass.
    pub fn set_online(&self, online: bool) {
        self.shared.online.store(online, Ordering::SeqCst);
        if !online {
            self.shared.cut.send_modify(|generation| *generation += 1);
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.cut.send_modify(|generation| *generation += 1);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !shared.online.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        tokio::spawn(relay(inbound, Arc::clone(&shared)));
    }
}

/// Connects to the first backend that accepts, starting at the round-robin position.
async fn connect(shared: &Shared) -> Option<TcpStream> {
    let start = shared.next.fetch_add(1, Ordering::Relaxed);
    for offset in 0..shared.backends.len() {
        let backend = shared.backends[(start + offset) % shared.backends.len()];
        if let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend)).await {
            return Some(stream);
        }
    }
    None
}

async fn relay(mut inbound: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    let Some(mut outbound) = connect(&shared).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A backend that answers each connection with its own name.
    async fn named_backend(name: u8) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(&[name]).await;
            }
        });
        addr
    }

    async fn ask(balancer: &Balancer) -> Option<u8> {
        let mut stream = TcpStream::connect(balancer.addr).await.ok()?;
        let mut byte = [0u8];
        match stream.read(&mut byte).await {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    #[tokio::test]
    async fn round_robin_skips_dead_backends_and_offline_refuses() {
        let dead = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let backends = vec![named_backend(1).await, dead, named_backend(2).await];
        let balancer = Balancer::start(backends, 0).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(ask(&balancer).await);
        }
        // 0 → backend 1; 1 → the dead one, so backend 2; 2 → backend 2.
        assert_eq!(seen, vec![Some(1), Some(2), Some(2)]);
        balancer.set_online(false);
        assert_eq!(ask(&balancer).await, None);
        balancer.set_online(true);
        assert!(ask(&balancer).await.is_some());
    }
}
