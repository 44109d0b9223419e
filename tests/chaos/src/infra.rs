//! The suite's own PostgreSQL and Redis: throwaway instances on free ports, crashed and restarted by
//! the scenarios (never the shared ones).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::process::{Proc, Spec, free_port, run, wait_until};

/// A PostgreSQL cluster of the suite's own, run as the `postgres` user.
pub struct Postgres {
    pub proc: Proc,
    pub port: u16,
}

impl Postgres {
    /// `initdb` into `root/pg` (as user postgres: initdb refuses root) and starts the postmaster.
    pub async fn start(root: &Path) -> anyhow::Result<Self> {
        let uid: u32 = run("id", &["-u", "postgres"], None)
            .context("PostgreSQL needs a `postgres` user")?
            .trim()
            .parse()?;
        let gid: u32 = run("id", &["-g", "postgres"], None)?.trim().parse()?;
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir)?;
        run("chown", &["postgres:postgres", &dir.display().to_string()], None)?;
        let initdb = which("initdb")?;
        run(
            "su",
            &[
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "{initdb} -D {} -U postgres -A trust --no-sync >/dev/null",
                    dir.display()
                ),
            ],
            Some(Path::new("/")),
        )?;
        let port = free_port()?;
        let dir_text = dir.display().to_string();
        let spec = Spec {
            name: "postgres".into(),
            program: which("postgres")?.into(),
            args: [
                "-D",
                &dir_text,
                "-p",
                &port.to_string(),
                "-k",
                &dir_text,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: Vec::new(),
            uid_gid: Some((uid, gid)),
            log: root.join("postgres.log"),
        };
        let postgres = Self {
            proc: Proc::start(spec)?,
            port,
        };
        postgres.wait_ready().await?;
        Ok(postgres)
    }

    /// The URL services connect with.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Waits until it accepts connections.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let port = self.port.to_string();
        wait_until("PostgreSQL", Duration::from_secs(30), || {
            let ready = run("pg_isready", &["-q", "-h", "127.0.0.1", "-p", &port], None).is_ok();
            async move { ready }
        })
        .await
    }

    /// One query's rows, `|`-separated, through psql.
    pub fn query(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let out = run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-c",
                sql,
            ],
            None,
        )?;
        Ok(out.lines().map(str::to_owned).collect())
    }
}

/// A Redis of the suite's own, without persistence.
pub struct Redis {
    pub proc: Proc,
    pub port: u16,
}

impl Redis {
    /// Starts `redis-server` on a free port.
    pub async fn start(root: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let spec = Spec {
            name: "redis".into(),
            program: which("redis-server")?.into(),
            args: [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: Vec::new(),
            uid_gid: None,
            log: root.join("redis.log"),
        };
        let redis = Self {
            proc: Proc::start(spec)?,
            port,
        };
        redis.wait_ready().await?;
        Ok(redis)
    }

    /// The URL services connect with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until it answers PING.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let port = self.port.to_string();
        wait_until("Redis", Duration::from_secs(10), || {
            let ready =
                run("redis-cli", &["-h", "127.0.0.1", "-p", &port, "ping"], None).is_ok_and(|out| out.contains("PONG"));
            async move { ready }
        })
        .await
    }
}

/// The full path of a program on PATH (or in PostgreSQL's usual directories).
fn which(program: &str) -> anyhow::Result<String> {
    if let Ok(path) = run("sh", &["-c", &format!("command -v {program}")], None) {
        let path = path.trim();
        if !path.is_empty() {
            return Ok(path.to_owned());
        }
    }
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|version| version.join("bin").join(program))
        .find(|path| path.exists())
        .map(|path| path.display().to_string())
        .with_context(|| format!("{program} not found (install it: apt-get install -y postgresql redis-server)"))
}
