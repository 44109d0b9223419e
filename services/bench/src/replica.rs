//! A second registry replica in a child process (`vigil-bench __replica …`), on the world's schema
//! and Redis namespace. Two uses: watchers on two replicas (a change made through one is seen on
//! the other through the bus), and memory figures — the child holds nothing but the registry, so
//! its resident set grows only with what the registry keeps per agent stream and per session.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio_util::sync::CancellationToken;
use vigil_runtime::bus::{ControlBus, RedisBus, RedisBusConfig};
use vigil_runtime::database::DatabaseConfig;
use vigil_runtime::server::{Server, ServerConfig};

use crate::world::registry_settings;

/// The argument that makes the bench binary a replica.
pub const REPLICA_COMMAND: &str = "__replica";
/// Pool size of the replica's store: it only registers hellos and serves watchers.
const REPLICA_DB_CONNECTIONS: u32 = 4;
/// How long the child may take to say where it listens.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Where a replica finds the world.
pub struct ReplicaSpec<'a> {
    pub database_url: &'a str,
    pub schema: &'a str,
    pub redis_url: &'a str,
    pub namespace: &'a str,
}

/// A running child replica; killed when dropped.
pub struct ChildReplica {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl ChildReplica {
    /// Starts the child and waits until it serves.
    pub async fn spawn(spec: &ReplicaSpec<'_>) -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("find the bench binary")?;
        let mut child = Command::new(program)
            .args([
                REPLICA_COMMAND,
                spec.database_url,
                spec.schema,
                spec.redis_url,
                spec.namespace,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start the replica process")?;
        let stdout = child.stdout.take().context("the replica's stdout")?;
        let first_line = tokio::task::spawn_blocking(move || read_line(stdout));
        let url = match tokio::time::timeout(START_PATIENCE, first_line).await {
            Ok(Ok(Ok(line))) => line,
            Ok(Ok(Err(error))) => {
                let _ = child.kill();
                return Err(error);
            }
            Ok(Err(error)) => {
                let _ = child.kill();
                bail!("reading the replica's address: {error}");
            }
            Err(_) => {
                let _ = child.kill();
                bail!("the replica did not start within {START_PATIENCE:?}");
            }
        };
        Ok(Self { child, url })
    }

    /// The child's resident set size, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn resident_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("read the replica's /proc status")?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no VmRSS in the replica's /proc status"))?;
        Ok(kib * 1024)
    }

    /// Closes the child's stdin (its signal to drain and stop) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let mut child = self.child;
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        if !status.success() {
            bail!("the replica exited with {status}");
        }
        Ok(())
    }
}

fn read_line(stdout: ChildStdout) -> anyhow::Result<String> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("read the replica's address")?;
    let url = line.trim();
    if !url.starts_with("http://") {
        bail!("the replica did not start (it printed {url:?})");
    }
    Ok(url.to_owned())
}

/// The child's side: `__replica <database url> <schema> <redis url> <namespace>`. Serves the
/// registry's link and sessions services, prints its URL, and stops when stdin closes.
pub async fn serve(args: &[String]) -> anyhow::Result<()> {
    let [database_url, schema, redis_url, namespace] = args else {
        bail!("usage: vigil-bench {REPLICA_COMMAND} <database url> <schema> <redis url> <namespace>");
    };
    let database = DatabaseConfig {
        url: database_url.clone(),
        schema: Some(schema.clone()),
        max_connections: REPLICA_DB_CONNECTIONS,
        ..DatabaseConfig::default()
    };
    let store = vigil_registry::app::open_store(&database, false)
        .await
        .context("open the registry's tables")?;
    let bus: Arc<dyn ControlBus> = Arc::new(
        RedisBus::connect(RedisBusConfig {
            url: redis_url.clone(),
            namespace: namespace.clone(),
            ..RedisBusConfig::default()
        })
        .await
        .context("connect the Redis bus")?,
    );
    let shutdown = CancellationToken::new();
    let registry = vigil_registry::Registry::start(registry_settings("bench-2"), store, bus, shutdown.clone())
        .await
        .context("start the registry")?;
    let server = Server::new(ServerConfig::default())
        .add_service(registry.sessions_service())
        .add_service(registry.link_service());
    server.readiness().set_all(true).await;
    let listener = vigil_runtime::server::bind(([127, 0, 0, 1], 0).into()).await?;
    let url = format!("http://{}", listener.local_addr()?);
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{url}")?;
        stdout.flush()?;
    }
    // The parent closes stdin (or dies): stop.
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|read| read > 0) {}
        stop.cancel();
    });
    server.serve(listener, shutdown).await?;
    registry.stopped().await;
    Ok(())
}
