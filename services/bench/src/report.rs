//! What a run measured, and the table it prints.

use std::time::Duration;

use crate::fleet::Connected;
use crate::stats::{Ms, Secs, Summary};

/// Kill p99 may be at most this many times raw Redis PUBLISH p99.
const KILL_TARGET_RATIO: f64 = 5.0;
/// Kinds of dropped links and of warnings shown per world.
const STRAIN_LINES: usize = 8;
/// End-all must reach every agent within this.
const END_ALL_TARGET: Duration = Duration::from_secs(2);

pub struct Report {
    /// Where PostgreSQL is (password redacted).
    pub database: String,
    /// Where Redis is (password redacted).
    pub redis: String,
    pub sessions: usize,
    pub kill_samples: usize,
    pub connections: usize,
    pub db_connections: u32,
    pub heartbeats: bool,
    /// `/proc/loadavg`'s first three figures when the run started (other work on the machine
    /// shows in every figure).
    pub load_at_start: String,
    pub yardsticks: Yardsticks,
    pub scales: Vec<Scale>,
    pub elapsed: Duration,
}

pub struct Yardsticks {
    /// PUBLISH → message through the `redis` crate.
    pub raw: Vec<Duration>,
    /// PUBLISH → message through `RedisBus`.
    pub bus: Vec<Duration>,
}

/// Everything measured at one agent count.
pub struct Scale {
    pub agents: usize,
    pub sessions: usize,
    /// Schema, migrations, services up.
    pub world_start: Duration,
    pub connected: Connected,
    /// Counting the live sessions once (the registry's stats query).
    pub count_query: Duration,
    pub db_round_trip: Vec<Duration>,
    pub kills: Option<Kills>,
    pub repopulation: Option<Repopulation>,
    pub end_all: Option<EndAll>,
    /// Links the registry dropped (each re-opened by its agent), by reason.
    pub link_drops: Vec<(String, usize)>,
    /// Warnings and errors the services logged in this world, by message, most frequent first.
    pub warnings: Vec<(String, usize)>,
    /// Agents leaving, services stopping, schema dropped.
    pub teardown: Duration,
    pub elapsed: Duration,
}

#[derive(Default)]
pub struct Kills {
    /// Terminate called → command read by the agent.
    pub latencies: Vec<Duration>,
    /// Terminate called → Terminate answered.
    pub rpc: Vec<Duration>,
    /// The agent of every session killed (warm-up included), for re-population.
    pub killed: Vec<usize>,
}

pub struct Repopulation {
    pub elapsed: Duration,
    /// SessionOpened → AdmissionDecision, per session.
    pub latencies: Vec<Duration>,
    /// After the last admission, until the registry counted every session live again.
    pub settled: Duration,
}

pub struct EndAll {
    pub sessions: usize,
    /// The registry resolving every live session, in process, just before (Terminate's first step).
    pub resolve: Duration,
    /// Terminate(All) answered.
    pub returned: Duration,
    /// The first command read by an agent.
    pub first_command: Duration,
    /// Per agent, when it had read all its commands (sorted).
    pub per_agent: Vec<Duration>,
    /// When the registry counted no live session (every acknowledgement applied); `None` if that
    /// did not happen in time.
    pub all_ended: Option<Duration>,
}

impl Report {
    pub fn print(&self) {
        let raw = Summary::of(&self.yardsticks.raw);
        let bus = Summary::of(&self.yardsticks.bus);
        println!();
        println!(
            "Vigil benchmark — {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        println!("machine   {} · load average at start {}", machine(), self.load_at_start);
        println!("postgres  {}", self.database);
        println!("redis     {}", self.redis);
        println!(
            "run       {} sessions · {} kill samples · agents' streams over {} HTTP/2 connections · DB pool {} per service · heartbeats {} · {} in all",
            self.sessions,
            self.kill_samples,
            self.connections,
            self.db_connections,
            if self.heartbeats { "on" } else { "off" },
            Secs(self.elapsed)
        );

        section("Yardstick: Redis PUBLISH → message (one at a time, paced)");
        println!(
            "  {:<34} {:>8} {:>11} {:>11} {:>11}",
            "path", "samples", "p50", "p99", "max"
        );
        for (name, summary) in [
            ("raw redis crate  (ratio baseline)", raw),
            ("RedisBus (the services' path)", bus),
        ] {
            if let Some(s) = summary {
                println!(
                    "  {name:<34} {:>8} {:>11} {:>11} {:>11}",
                    s.count,
                    Ms(s.p50),
                    Ms(s.p99),
                    Ms(s.max)
                );
            }
        }
        for scale in &self.scales {
            if let Some(s) = Summary::of(&scale.db_round_trip) {
                println!(
                    "  {:<34} {:>8} {:>11} {:>11} {:>11}",
                    format!("PostgreSQL round trip ({} agents)", scale.agents),
                    s.count,
                    Ms(s.p50),
                    Ms(s.p99),
                    Ms(s.max)
                );
            }
        }

        section("Setup (per world)");
        println!(
            "  {:>7} {:>9} {:>10} {:>14} {:>12} {:>11} {:>11} {:>11} {:>10}",
            "agents",
            "sessions",
            "services",
            "hellos (reg.)",
            "sessions/s",
            "hello p50",
            "hello p99",
            "count live",
            "teardown"
        );
        for scale in &self.scales {
            let hello = Summary::of(&scale.connected.hello_latencies);
            let rate = scale.sessions as f64 / scale.connected.elapsed.as_secs_f64().max(f64::EPSILON);
            println!(
                "  {:>7} {:>9} {:>10} {:>14} {:>12.0} {:>11} {:>11} {:>11} {:>10}",
                scale.agents,
                scale.sessions,
                Secs(scale.world_start),
                Secs(scale.connected.elapsed),
                rate,
                hello.map_or("-".into(), |s| Ms(s.p50).to_string()),
                hello.map_or("-".into(), |s| Ms(s.p99).to_string()),
                Ms(scale.count_query),
                Secs(scale.teardown)
            );
        }
        for scale in &self.scales {
            if let Some(repopulation) = &scale.repopulation
                && let Some(s) = Summary::of(&repopulation.latencies)
            {
                println!(
                    "  re-population at {} agents: {} sessions admitted one by one in {} (p50 {}, p99 {}); registry settled {} later",
                    scale.agents,
                    s.count,
                    Secs(repopulation.elapsed),
                    Ms(s.p50),
                    Ms(s.p99),
                    Secs(repopulation.settled)
                );
            }
        }

        section("Kill latency: Terminate(one session id) over gRPC → TerminateCommand read by its agent");
        println!(
            "  {:>7} {:>8} {:>11} {:>11} {:>11} {:>11} {:>13} {:>13}",
            "agents", "samples", "p50", "p99", "max", "mean", "RPC ret. p50", "RPC ret. p99"
        );
        for scale in &self.scales {
            if let (Some(kills), Some(s)) = (
                &scale.kills,
                scale.kills.as_ref().and_then(|k| Summary::of(&k.latencies)),
            ) {
                let rpc = Summary::of(&kills.rpc);
                println!(
                    "  {:>7} {:>8} {:>11} {:>11} {:>11} {:>11} {:>13} {:>13}",
                    scale.agents,
                    s.count,
                    Ms(s.p50),
                    Ms(s.p99),
                    Ms(s.max),
                    Ms(s.mean),
                    rpc.map_or("-".into(), |r| Ms(r.p50).to_string()),
                    rpc.map_or("-".into(), |r| Ms(r.p99).to_string())
                );
            }
        }

        section("End-all: Terminate(All) → every agent holds all its commands");
        println!(
            "  {:>7} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>12}",
            "agents", "sessions", "resolve†", "first cmd", "RPC ret.", "agents p50", "last agent", "all ended*"
        );
        for scale in &self.scales {
            if let Some(end_all) = &scale.end_all {
                let agents = Summary::of(&end_all.per_agent);
                println!(
                    "  {:>7} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>12}",
                    scale.agents,
                    end_all.sessions,
                    Secs(end_all.resolve),
                    Secs(end_all.first_command),
                    Secs(end_all.returned),
                    agents.map_or("-".into(), |s| Secs(s.p50).to_string()),
                    agents.map_or("-".into(), |s| Secs(s.max).to_string()),
                    end_all
                        .all_ended
                        .map_or("not in time".into(), |ended| Secs(ended).to_string())
                );
            }
        }
        println!(
            "  † Terminate's first step timed alone just before: the registry resolving every live session in process"
        );
        println!("  * until the registry counted no live session: every acknowledgement applied");

        section("Strain: links the registry dropped (agents re-opened them) and warnings the services logged");
        for scale in &self.scales {
            if scale.link_drops.is_empty() && scale.warnings.is_empty() {
                println!("  {:>6} agents: none", scale.agents);
                continue;
            }
            for (reason, count) in scale.link_drops.iter().take(STRAIN_LINES) {
                println!("  {:>6} agents: {count:>6}× link dropped: {reason}", scale.agents);
            }
            for (warning, count) in scale.warnings.iter().take(STRAIN_LINES) {
                println!("  {:>6} agents: {count:>6}× {warning}", scale.agents);
            }
            let more =
                scale.link_drops.len().saturating_sub(STRAIN_LINES) + scale.warnings.len().saturating_sub(STRAIN_LINES);
            if more > 0 {
                println!(
                    "  {:>6} agents: … and {more} other kinds (RUST_LOG=warn prints them all)",
                    scale.agents
                );
            }
        }

        section("Targets");
        for scale in &self.scales {
            let kill = scale.kills.as_ref().and_then(|kills| Summary::of(&kills.latencies));
            if let (Some(kill), Some(raw)) = (kill, raw) {
                let ratio = kill.p99.as_secs_f64() / raw.p99.as_secs_f64().max(f64::EPSILON);
                let versus_bus = bus.map_or(String::new(), |bus| {
                    format!(
                        "; {:.1}× RedisBus p99",
                        kill.p99.as_secs_f64() / bus.p99.as_secs_f64().max(f64::EPSILON)
                    )
                });
                println!(
                    "  kill p99 / raw PUBLISH p99 ≤ {KILL_TARGET_RATIO:.0}    {:>6} agents: {} / {} = {ratio:.1}×  {}{versus_bus}",
                    scale.agents,
                    Ms(kill.p99),
                    Ms(raw.p99),
                    verdict(ratio <= KILL_TARGET_RATIO)
                );
            }
        }
        for scale in &self.scales {
            if let Some(end_all) = &scale.end_all
                && let Some(last) = end_all.per_agent.last()
            {
                println!(
                    "  end-all < {}                      {:>6} agents: {} for {} sessions  {}",
                    Secs(END_ALL_TARGET),
                    scale.agents,
                    Secs(*last),
                    end_all.sessions,
                    verdict(*last < END_ALL_TARGET)
                );
            }
        }
        println!();
    }
}

fn section(title: &str) {
    println!();
    println!("{title}");
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// "2 × AMD EPYC" from nproc and /proc/cpuinfo's model name.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("nproc {cpus} · {model} · {}", std::env::consts::ARCH)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A URL with its password replaced by `***`.
pub fn redact(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}
