//! Child processes the suite starts, signals and restarts: each in a process group of its own, so a
//! fault reaches the whole of it (PostgreSQL's backends with its postmaster), and logging to a file.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How to start one program, again and again.
#[derive(Debug, Clone)]
pub struct Spec {
    /// A name for logs and the report.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run as this user and group (PostgreSQL refuses to run as root).
    pub uid_gid: Option<(u32, u32)>,
    /// Where stdout and stderr go (appended: one file over every restart).
    pub log: PathBuf,
}

/// A running (or killed) child.
pub struct Proc {
    pub spec: Spec,
    child: Option<Child>,
}

impl Proc {
    /// Starts `spec`.
    pub fn start(spec: Spec) -> anyhow::Result<Self> {
        let mut proc = Self { spec, child: None };
        proc.restart()?;
        Ok(proc)
    }

    /// Starts the program again (after [`Proc::kill`]); a no-op while it runs.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .with_context(|| format!("opening {}", self.spec.log.display()))?;
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some((uid, gid)) = self.spec.uid_gid {
            command.uid(uid).gid(gid);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} ({})", self.spec.name, self.spec.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether the child is alive (a stopped child counts as alive).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id (also its process group's).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to the whole process group, and reaps the child.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`stop = true`) or SIGCONT to the whole process group.
    pub fn freeze(&self, stop: bool) {
        if let Some(pid) = self.pid() {
            signal_group(pid, if stop { "STOP" } else { "CONT" });
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (a name: KILL, STOP, CONT) to process group `pgid`.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A free loopback port (bound then released; the child binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Loopback address of `port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `ready` holds, checking every 50 ms, at most `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if ready().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a program to completion; fails with its output when it fails.
pub fn run(program: &str, args: &[&str], dir: Option<&Path>) -> anyhow::Result<String> {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
