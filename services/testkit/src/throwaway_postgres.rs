//! A PostgreSQL cluster of a test's own, for tests that crash and restart the server (the shared
//! one must never be stopped).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throwaway PostgreSQL cluster in a directory of its own (initdb, `fsync=off`, a free port on
/// 127.0.0.1), stopped and removed when dropped.
pub struct ThrowawayPostgres {
    dir: PathBuf,
    port: u16,
}

impl ThrowawayPostgres {
    /// Creates the cluster (not started); `label` names its directory under the temp dir.
    pub fn init(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-{label}-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status();
        let out = as_postgres(&format!("initdb -D {} -U postgres -A trust --no-sync", dir.display()));
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        Self { dir, port: free_port() }
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let dir = self.dir.display();
        let out = as_postgres(&format!(
            "pg_ctl -D {dir} -l {dir}/log -o '-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off' -w start",
            self.port
        ));
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server as a crash does: every process quits at once, without a checkpoint.
    pub fn crash(&self) {
        let out = as_postgres(&format!("pg_ctl -D {} -m immediate -w stop", self.dir.display()));
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's directory (its log is `log` there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("pg_ctl -D {} -m immediate stop", self.dir.display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on: bind port 0, note the port, release it.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `command` as the `postgres` user when this test runs as root (initdb refuses root).
fn as_postgres(command: &str) -> Output {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout == b"0\n")
        .unwrap_or(false);
    let output = if root {
        Command::new("su").args(["postgres", "-c", command]).output()
    } else {
        Command::new("sh").args(["-c", command]).output()
    };
    output.unwrap_or_else(|error| panic!("cannot run {command}: {error}"))
}
