//! The bench's command line (`make bench`'s flags) and its progress lines: what the phases read,
//! kept apart from `main` so that `measure` and the phases depend on them, not on `main`.

use std::time::{Duration, Instant};

use clap::Parser;

/// Measures kill latency and end-all time against real PostgreSQL and Redis.
#[derive(Debug, Parser)]
#[command(name = "vigil-bench", version)]
pub struct Args {
    /// Connected agents, one world per count (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub agents: Vec<usize>,
    /// Live sessions, spread evenly over the agents.
    #[arg(long, default_value_t = 100_000)]
    pub sessions: usize,
    /// Single-session kills measured per world.
    #[arg(long, default_value_t = 500)]
    pub kill_samples: usize,
    /// Pause after each kill's command arrived before the next kill, in milliseconds. Longer
    /// pauses let each kill's aftermath (the acknowledgement, the session's end, its events: ~6
    /// statements, ~2.7 ms of service CPU) finish first; alternating runs at 5 and 25 ms showed no
    /// difference in the kill's p99 (README, Benchmarks), so the figures stay comparable at 5.
    #[arg(long, default_value_t = 5)]
    pub kill_pace_ms: u64,
    /// PUBLISH → message samples per Redis yardstick.
    #[arg(long, default_value_t = 2_000)]
    pub publish_samples: usize,
    /// Skip the end-all phase.
    #[arg(long)]
    pub skip_end_all: bool,
    /// Sessions opened through admission under load (0 skips the phase).
    #[arg(long, default_value_t = 2_000)]
    pub admission_samples: usize,
    /// Session starts per second during the admission phase (an open loop, as users arrive).
    #[arg(long, default_value_t = 200.0)]
    pub admission_rate: f64,
    /// ListSessions pages sampled (0 skips the phase).
    #[arg(long, default_value_t = 800)]
    pub list_samples: usize,
    /// WatchSessions streams, spread over two registry replicas (0 skips the phase).
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Changes timed at every watcher.
    #[arg(long, default_value_t = 200)]
    pub watch_samples: usize,
    /// How long every session reports activity, in seconds (0 skips the phase).
    #[arg(long, default_value_t = 60)]
    pub activity_secs: u64,
    /// How often every session reports, in milliseconds. 800 offers 125,000 reports/s at 100,000
    /// sessions: a throughput is measured by offering more than its target (100,000/s), or the
    /// figure is the offered rate less whatever one late flush merged.
    #[arg(long, default_value_t = 800)]
    pub activity_interval_ms: u64,
    /// Agents connected to the child replica for the memory figure (0 skips the phase).
    #[arg(long, default_value_t = 2_000)]
    pub memory_agents: usize,
    /// Sessions per agent in the memory figure's second step.
    #[arg(long, default_value_t = 20)]
    pub memory_sessions_per_agent: usize,
    /// HTTP/2 connections the agents' streams are multiplexed over.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Connection pool size of each service's store [default: the services' default, 8].
    #[arg(long)]
    pub db_connections: Option<u32>,
    /// Agents send heartbeats at the interval the registry asks for (10 s by default), as real
    /// agents do; off by default so the figures measure the kill path alone.
    #[arg(long)]
    pub heartbeats: bool,
    /// Deliver every event to a webhook receiver on loopback (the relays' one sink) and report
    /// events per second; compare the other figures with a run without it.
    #[arg(long)]
    pub events_webhook: bool,
    /// PostgreSQL (a fresh schema is made and dropped).
    #[arg(
        long,
        env = "VIGIL_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Redis (a fresh channel namespace is used).
    #[arg(
        long,
        env = "VIGIL_BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
}

impl Args {
    /// `--kill-pace-ms` as a duration.
    pub fn kill_pace(&self) -> Duration {
        Duration::from_millis(self.kill_pace_ms)
    }
}

/// Progress lines on stderr, stamped with the time since the start.
pub struct Progress(pub Instant);

impl Progress {
    pub fn say(&self, what: &str) {
        eprintln!("[{:>7.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}
