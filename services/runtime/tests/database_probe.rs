//! The readiness probe of a database notices an outage within a second, on a throwaway
//! PostgreSQL that the test starts and crashes (`pg_ctl stop -m immediate`: every server process
//! quits at once, without a checkpoint, as in a crash).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_runtime::database::{DatabaseConfig, PROBE_INTERVAL, PROBE_TIMEOUT, Probe};

/// A port nothing listens on: bind port 0, note the port, release it.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `command` as the `postgres` user when this test runs as root (initdb refuses root).
fn as_postgres(command: &str) -> std::process::Output {
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

/// A throwaway PostgreSQL cluster in a directory of its own, removed when dropped.
struct ThrowawayPostgres {
    dir: PathBuf,
    port: u16,
}

impl ThrowawayPostgres {
    fn init() -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-probe-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status();
        let out = as_postgres(&format!("initdb -D {} -U postgres -A trust --no-sync", dir.display()));
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        Self { dir, port: free_port() }
    }

    fn start(&self) {
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

    fn crash(&self) {
        let out = as_postgres(&format!("pg_ctl -D {} -m immediate -w stop", self.dir.display()));
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("pg_ctl -D {} -m immediate stop", self.dir().display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long `probe` takes to report `up`, checking as often as the services do; at most `limit`.
async fn time_until(probe: &Probe, up: bool, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe.check().await == up {
            return Some(started.elapsed());
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    None
}

#[tokio::test]
async fn a_crashed_database_is_noticed_within_a_second_and_its_return_too() {
    let postgres = ThrowawayPostgres::init();
    postgres.start();
    let config = DatabaseConfig {
        url: postgres.url(),
        // The service pool's timeout stays long: the probe must not depend on it.
        connect_timeout: Duration::from_secs(5),
        ..DatabaseConfig::default()
    };
    let probe = Probe::new(&config, PROBE_TIMEOUT).await.expect("probe");
    assert!(probe.check().await, "the probe sees the running database");

    for round in 0..2 {
        postgres.crash();
        let down = time_until(&probe, false, Duration::from_secs(3)).await;
        let down = down.unwrap_or_else(|| panic!("round {round}: the outage went unnoticed for 3 s"));
        assert!(down < Duration::from_secs(1), "round {round}: noticed after {down:?}");
        eprintln!("round {round}: outage noticed after {down:?}");

        postgres.start();
        let up = time_until(&probe, true, Duration::from_secs(3)).await;
        let up = up.unwrap_or_else(|| panic!("round {round}: the return went unnoticed for 3 s"));
        assert!(
            up < Duration::from_secs(1),
            "round {round}: return noticed after {up:?}"
        );
        eprintln!("round {round}: return noticed after {up:?}");
    }
}

#[tokio::test]
async fn a_database_that_never_answers_is_down_within_the_probe_timeout() {
    // A listener that accepts and never speaks: a hung server, not a refused connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = DatabaseConfig {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        ..DatabaseConfig::default()
    };
    let probe = Probe::new(&config, PROBE_TIMEOUT).await.expect("probe");
    let started = Instant::now();
    assert!(!probe.check().await);
    assert!(
        started.elapsed() < PROBE_TIMEOUT + Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}
