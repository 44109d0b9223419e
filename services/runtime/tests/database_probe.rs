//! The readiness probe of a database notices an outage within a second, on a throwaway
//! PostgreSQL that the test starts and crashes (`pg_ctl stop -m immediate`: every server process
//! quits at once, without a checkpoint, as in a crash).

use std::time::{Duration, Instant};

use vigil_runtime::database::{DatabaseConfig, PROBE_INTERVAL, PROBE_TIMEOUT, Probe};
use vigil_testkit::ThrowawayPostgres;

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
    let postgres = ThrowawayPostgres::init("probe");
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
