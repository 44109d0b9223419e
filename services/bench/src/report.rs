//! What a run measured, and the table it prints.

use std::time::Duration;

use crate::costs::PhaseCost;
use crate::fleet::Connected;
use crate::stats::{Ms, Secs, Summary};

/// Kill p99 may be at most this many times raw Redis PUBLISH p99.
const KILL_TARGET_RATIO: f64 = 5.0;
/// Kinds of dropped links and of warnings shown per world.
const STRAIN_LINES: usize = 8;
/// End-all must reach every agent within this.
const END_ALL_TARGET: Duration = Duration::from_secs(2);
/// Admission p99 at the agent.
const ADMISSION_TARGET: Duration = Duration::from_millis(5);
/// Activity updates persisted per second, sustained.
const ACTIVITY_TARGET: f64 = 100_000.0;
/// A page of 50 out of 100k, p99, on every kind of page.
const LIST_TARGET: Duration = Duration::from_millis(10);
/// A change seen by every watcher, p99.
const WATCH_TARGET: Duration = Duration::from_millis(10);
/// Geo lookups per second on one core.
const GEO_TARGET: f64 = 1_000_000.0;

pub struct Report {
    /// Where PostgreSQL is (password redacted).
    pub database: String,
    /// Where Redis is (password redacted).
    pub redis: String,
    pub sessions: usize,
    pub kill_samples: usize,
    pub kill_pace: Duration,
    pub connections: usize,
    pub db_connections: u32,
    pub heartbeats: bool,
    /// `/proc/loadavg`'s first three figures when the run started (other work on the machine
    /// shows in every figure).
    pub load_at_start: String,
    pub yardsticks: Yardsticks,
    pub scales: Vec<Scale>,
    /// Geo `Locate` lookups per second on one thread.
    pub geo_lookups: Option<f64>,
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
    pub admission: Option<AdmissionFigures>,
    pub list: Option<ListFigures>,
    pub watch: Option<WatchFigures>,
    pub activity: Option<ActivityFigures>,
    pub memory: Option<MemoryFigures>,
    /// What each phase cost per operation.
    pub costs: Vec<PhaseCost>,
    /// `--events-webhook`: what the event relays delivered.
    pub events: Option<crate::webhook::EventsFigures>,
    /// Links the registry dropped (each re-opened by its agent), by reason.
    pub link_drops: Vec<(String, usize)>,
    /// Warnings and errors the services logged in this world, by message, most frequent first.
    pub warnings: Vec<(String, usize)>,
    /// Whether the bench stood in for the server's autovacuum (off on the server): see
    /// `maintenance.rs`.
    pub autovacuum_stand_in: bool,
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

pub struct AdmissionFigures {
    /// `SessionOpened` → decision at the agent.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// Starts asked for per second.
    pub per_second: f64,
}

pub struct ListFigures {
    /// Per kind of page, its latencies.
    pub by_query: Vec<(&'static str, Vec<Duration>)>,
}

impl ListFigures {
    /// Every page's latency, whatever its kind: the headline figure.
    pub fn all_pages(&self) -> Vec<Duration> {
        self.by_query
            .iter()
            .flat_map(|(_, samples)| samples.iter().copied())
            .collect()
    }

    /// The kind of page with the highest p99, and that p99: the target holds for every kind.
    pub fn slowest_kind(&self) -> Option<(&'static str, Duration)> {
        self.by_query
            .iter()
            .filter_map(|(kind, samples)| Summary::of(samples).map(|summary| (*kind, summary.p99)))
            .max_by_key(|(_, p99)| *p99)
    }
}

pub struct WatchFigures {
    /// Session closed by its agent → ENDED read by a watcher, every watcher and sample.
    pub latencies: Vec<Duration>,
    pub watchers: usize,
    pub replicas: usize,
}

pub struct ActivityFigures {
    /// Session reports the agents sent.
    pub offered: usize,
    /// Session updates the registry wrote.
    pub written: u64,
    pub elapsed: Duration,
    /// How long after the last round every session showed it; `None` when not within the wait.
    pub drained: Option<Duration>,
}

impl ActivityFigures {
    pub fn written_per_second(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn offered_per_second(&self) -> f64 {
        self.offered as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

pub struct MemoryFigures {
    pub agents: usize,
    pub per_agent: usize,
    /// The replica's resident set before any agent.
    pub baseline: u64,
    /// Bytes per agent stream and per live session.
    pub per_stream: f64,
    pub per_session: f64,
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
        self.print_header();
        self.print_yardsticks(raw);
        self.print_setup();
        self.print_kills();
        self.print_end_all();
        self.print_strain();
        self.print_phases();
        self.print_costs();
        self.print_summary(raw);
        println!();
    }

    fn print_header(&self) {
        println!();
        println!(
            "Vigil benchmark — {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        println!("machine   {} · load average at start {}", machine(), self.load_at_start);
        println!("postgres  {}", self.database);
        println!("redis     {}", self.redis);
        println!(
            "run       {} sessions · {} kill samples {} apart · agents' streams over {} HTTP/2 connections · DB pool {} per service · heartbeats {} · {} in all",
            self.sessions,
            self.kill_samples,
            Ms(self.kill_pace),
            self.connections,
            self.db_connections,
            if self.heartbeats { "on" } else { "off" },
            Secs(self.elapsed)
        );
    }

    fn print_yardsticks(&self, raw: Option<Summary>) {
        section("Yardstick: Redis PUBLISH → message (one at a time, paced)");
        println!(
            "  {:<34} {:>8} {:>11} {:>11} {:>11}",
            "path", "samples", "p50", "p99", "max"
        );
        let bus = Summary::of(&self.yardsticks.bus);
        let round_trips = self.scales.iter().map(|scale| {
            (
                format!("PostgreSQL round trip ({} agents)", scale.agents),
                Summary::of(&scale.db_round_trip),
            )
        });
        let rows = [
            ("raw redis crate  (ratio baseline)".to_owned(), raw),
            ("RedisBus (the services' path)".to_owned(), bus),
        ]
        .into_iter()
        .chain(round_trips);
        for (name, summary) in rows {
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
    }

    fn print_setup(&self) {
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
        for scale in self.scales.iter().filter(|scale| scale.autovacuum_stand_in) {
            println!(
                "  at {} agents: autovacuum is off on this server; in its place the bench ran ANALYZE every {} s while the agents connected, and VACUUM ANALYZE between phases",
                scale.agents,
                crate::maintenance::ANALYZE_EVERY.as_secs()
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
    }

    fn print_kills(&self) {
        section("Kill latency: Terminate(one session id) over gRPC → TerminateCommand read by its agent");
        println!(
            "  {:>7} {:>8} {:>11} {:>11} {:>11} {:>11} {:>13} {:>13}",
            "agents", "samples", "p50", "p99", "max", "mean", "RPC ret. p50", "RPC ret. p99"
        );
        for scale in &self.scales {
            let Some(kills) = &scale.kills else { continue };
            let Some(s) = Summary::of(&kills.latencies) else {
                continue;
            };
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

    fn print_end_all(&self) {
        section("End-all: Terminate(All) → every agent holds all its commands");
        println!(
            "  {:>7} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11} {:>12}",
            "agents", "sessions", "resolve†", "first cmd", "RPC ret.", "agents p50", "last agent", "all ended*"
        );
        for scale in &self.scales {
            let Some(end_all) = &scale.end_all else { continue };
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
        println!(
            "  † Terminate's first step timed alone just before: the registry resolving every live session in process"
        );
        println!("  * until the registry counted no live session: every acknowledgement applied");
        print_end_all_statements(&self.scales);
    }

    fn print_strain(&self) {
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
    }

    fn print_phases(&self) {
        for scale in &self.scales {
            print_admission(scale);
            print_list(scale);
            print_watch(scale);
            print_activity(scale);
            print_memory(scale);
            print_events(scale);
        }
        if let Some(rate) = self.geo_lookups {
            section("Geo: Locate on one thread, demo database, mixed addresses");
            println!("  {rate:.0} lookups/s");
        }
    }

    /// Per phase and operation: statements, Redis commands, CPU — the figures that do not move.
    fn print_costs(&self) {
        for scale in &self.scales {
            section(&format!(
                "Cost per operation at {} agents (counts, stable between runs; CPU of the service threads)",
                scale.agents
            ));
            println!(
                "  {:<14} {:<15} {:>8} {:>12} {:>11} {:>12} {:>11} {:>11}",
                "phase", "operation", "ops", "stmts req.*", "outbox req.", "stmts all", "Redis cmds", "CPU ms"
            );
            for cost in &scale.costs {
                println!(
                    "  {:<14} {:<15} {:>8} {:>12} {:>11} {:>12} {:>11} {:>11}",
                    cost.phase,
                    cost.unit,
                    cost.operations,
                    Count(cost.request_statements_per_op()),
                    Count(cost.outbox_statements_per_op()),
                    Count(cost.statements_per_op()),
                    Count(cost.redis_per_op()),
                    Count(cost.cpu_ms_per_op())
                );
            }
        }
        println!(
            "  * statements sent inside the request a caller waits for (an admission, a session's close, a unary gRPC call), of which \"outbox\" write events into an outbox in the same transaction; \"all\" adds background work (writers, acknowledgements). Statements of the child replica are not counted; Redis commands are the server's, other clients included."
        );
    }

    /// The one table the issue asks for: each figure, the target, met or not, and what one
    /// operation of it costs.
    fn print_summary(&self, raw: Option<Summary>) {
        section("Summary");
        let mut rows: Vec<Row> = Vec::new();
        if let Some(raw) = raw {
            rows.push(Row::new(
                "raw Redis PUBLISH → message p50 / p99".into(),
                format!("{} / {}", Ms(raw.p50), Ms(raw.p99)),
                "yardstick".into(),
                "",
            ));
        }
        for scale in &self.scales {
            scale_rows(scale, raw, &mut rows);
        }
        if let Some(rate) = self.geo_lookups {
            rows.push(Row::new(
                "geo Locate lookups/s, one core".into(),
                format!("{rate:.0}"),
                format!("≥ {GEO_TARGET:.0}"),
                verdict(rate >= GEO_TARGET),
            ));
        }
        print_rows(&rows);
        println!("  per op: statements in the request / in all · Redis commands · CPU of the services");
    }
}

/// One line of the summary.
struct Row {
    figure: String,
    value: String,
    target: String,
    met: &'static str,
    per_op: String,
}

impl Row {
    fn new(figure: String, value: String, target: String, met: &'static str) -> Self {
        Self {
            figure,
            value,
            target,
            met,
            per_op: String::new(),
        }
    }

    /// With the cost per operation of `phase`, if it was measured.
    fn costing(mut self, scale: &Scale, phase: &str) -> Self {
        if let Some(cost) = scale.costs.iter().find(|cost| cost.phase == phase) {
            self.per_op = per_op(cost);
        }
        self
    }
}

fn per_op(cost: &PhaseCost) -> String {
    format!(
        "{} / {} stmts · {} Redis · {} ms CPU per {}",
        Count(cost.request_statements_per_op()),
        Count(cost.statements_per_op()),
        Count(cost.redis_per_op()),
        Count(cost.cpu_ms_per_op()),
        cost.unit
    )
}

/// A figure per operation: two decimals, or three significant digits below 0.1 (an activity
/// flush's statement shared by thousands of updates).
struct Count(f64);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut decimals = 2;
        let mut scaled = self.0;
        while scaled > 0.0 && scaled < 0.1 && decimals < 9 {
            scaled *= 10.0;
            decimals += 1;
        }
        let text = format!("{:.*}", decimals, self.0);
        f.pad(&text)
    }
}

fn print_rows(rows: &[Row]) {
    let width = rows.iter().map(|row| row.figure.chars().count()).max().unwrap_or(0);
    let value_width = rows.iter().map(|row| row.value.chars().count()).max().unwrap_or(0);
    let target_width = rows.iter().map(|row| row.target.chars().count()).max().unwrap_or(0);
    println!(
        "  {:<width$}  {:<value_width$}  {:<target_width$}  {:<7}  per op",
        "figure", "value", "target", "met"
    );
    for row in rows {
        println!(
            "  {:<width$}  {:<value_width$}  {:<target_width$}  {:<7}  {}",
            row.figure, row.value, row.target, row.met, row.per_op
        );
    }
}

/// The summary's rows of one world.
fn scale_rows(scale: &Scale, raw: Option<Summary>, rows: &mut Vec<Row>) {
    let at = format!(
        "{} agents, {} sessions",
        thousands(scale.agents),
        thousands(scale.sessions)
    );
    if let (Some(kill), Some(raw)) = (scale.kills.as_ref().and_then(|k| Summary::of(&k.latencies)), raw) {
        let ratio = kill.p99.as_secs_f64() / raw.p99.as_secs_f64().max(f64::EPSILON);
        rows.push(
            Row::new(
                format!("kill p50 / p99 / max ({at})"),
                format!(
                    "{} / {} / {} ({ratio:.1}× raw p99)",
                    Ms(kill.p50),
                    Ms(kill.p99),
                    Ms(kill.max)
                ),
                format!("p99 ≤ {KILL_TARGET_RATIO:.0}× raw p99"),
                verdict(ratio <= KILL_TARGET_RATIO),
            )
            .costing(scale, "kill"),
        );
    }
    if let Some(end_all) = &scale.end_all
        && let Some(last) = end_all.per_agent.last()
    {
        rows.push(
            Row::new(
                format!("end-all of {} ({at})", thousands(end_all.sessions)),
                Secs(*last).to_string(),
                format!("< {}", Secs(END_ALL_TARGET)),
                verdict(*last < END_ALL_TARGET),
            )
            .costing(scale, "end-all"),
        );
    }
    if let Some(admission) = &scale.admission
        && let Some(s) = Summary::of(&admission.latencies)
    {
        rows.push(
            Row::new(
                format!("admission p50 / p99 ({at}, {:.0} starts/s)", admission.per_second),
                format!("{} / {}", Ms(s.p50), Ms(s.p99)),
                format!("p99 < {}", Ms(ADMISSION_TARGET)),
                verdict(s.p99 < ADMISSION_TARGET),
            )
            .costing(scale, "admission"),
        );
    }
    read_side_rows(scale, rows);
}

/// Activity, list, watch and memory rows of one world.
fn read_side_rows(scale: &Scale, rows: &mut Vec<Row>) {
    if let Some(activity) = &scale.activity {
        let rate = activity.written_per_second();
        rows.push(
            Row::new(
                format!("activity persisted, {} sustained", Secs(activity.elapsed)),
                format!("{rate:.0}/s"),
                format!("≥ {ACTIVITY_TARGET:.0}/s"),
                verdict(rate >= ACTIVITY_TARGET && activity.drained.is_some()),
            )
            .costing(scale, "activity"),
        );
    }
    if let Some(list) = &scale.list
        && let (Some(s), Some((slowest, slowest_p99))) = (Summary::of(&list.all_pages()), list.slowest_kind())
    {
        rows.push(
            Row::new(
                format!("list page of 50 p50 / p99 ({} live)", thousands(scale.sessions)),
                format!(
                    "{} / {}; slowest kind {slowest}: p99 {}",
                    Ms(s.p50),
                    Ms(s.p99),
                    Ms(slowest_p99)
                ),
                format!("p99 < {} on every kind", Ms(LIST_TARGET)),
                verdict(slowest_p99 < LIST_TARGET),
            )
            .costing(scale, "list"),
        );
    }
    if let Some(watch) = &scale.watch
        && let Some(s) = Summary::of(&watch.latencies)
    {
        rows.push(
            Row::new(
                format!(
                    "watch fan-out p99 ({} watchers, {} replicas)",
                    watch.watchers, watch.replicas
                ),
                Ms(s.p99).to_string(),
                format!("< {}", Ms(WATCH_TARGET)),
                verdict(s.p99 < WATCH_TARGET),
            )
            .costing(scale, "watch"),
        );
    }
    if let Some(memory) = &scale.memory {
        rows.push(Row::new(
            "memory per agent stream / per live session".into(),
            format!(
                "{:.1} KiB / {:.2} KiB",
                memory.per_stream / 1024.0,
                memory.per_session / 1024.0
            ),
            "report".into(),
            "",
        ));
    }
}

fn print_events(scale: &Scale) {
    let Some(events) = &scale.events else { return };
    section(&format!(
        "Events at {} agents: every event → one webhook on loopback (CloudEvents, signed; {} in flight)",
        scale.agents,
        crate::webhook::CONCURRENCY
    ));
    let rate = |(count, elapsed): (u64, Duration)| count as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "  {} delivered: {} while the phases ran ({}, {:.0}/s), {} after them (the backlog, in {}: {:.0}/s)",
        events.delivered,
        events.during.0,
        Secs(events.during.1),
        rate(events.during),
        events.drained.0,
        Secs(events.drained.1),
        rate(events.drained)
    );
}

fn print_admission(scale: &Scale) {
    let Some(admission) = &scale.admission else { return };
    let Some(s) = Summary::of(&admission.latencies) else {
        return;
    };
    section(&format!(
        "Admission at {} agents: SessionOpened → decision at the agent (geo + policy), {:.0} starts/s asked",
        scale.agents, admission.per_second
    ));
    println!(
        "  {} admitted in {} ({:.0}/s): p50 {}, p99 {}, max {}",
        s.count,
        Secs(admission.elapsed),
        s.count as f64 / admission.elapsed.as_secs_f64().max(f64::EPSILON),
        Ms(s.p50),
        Ms(s.p99),
        Ms(s.max)
    );
}

fn print_list(scale: &Scale) {
    let Some(list) = &scale.list else { return };
    section(&format!(
        "List at {} agents: ListSessions, a page of 50 out of {} live sessions",
        scale.agents, scale.sessions
    ));
    println!(
        "  {:<30} {:>8} {:>11} {:>11} {:>11}",
        "page", "samples", "p50", "p99", "max"
    );
    for (name, samples) in &list.by_query {
        if let Some(s) = Summary::of(samples) {
            println!(
                "  {name:<30} {:>8} {:>11} {:>11} {:>11}",
                s.count,
                Ms(s.p50),
                Ms(s.p99),
                Ms(s.max)
            );
        }
    }
}

fn print_watch(scale: &Scale) {
    let Some(watch) = &scale.watch else { return };
    let Some(s) = Summary::of(&watch.latencies) else {
        return;
    };
    section(&format!(
        "Watch fan-out at {} agents: a session closed by its agent → ENDED at each of {} watchers on {} replicas",
        scale.agents, watch.watchers, watch.replicas
    ));
    println!(
        "  {} sightings: p50 {}, p99 {}, max {}",
        s.count,
        Ms(s.p50),
        Ms(s.p99),
        Ms(s.max)
    );
}

fn print_activity(scale: &Scale) {
    let Some(activity) = &scale.activity else { return };
    section(&format!(
        "Activity at {} agents: every session reported each round, for {}",
        scale.agents,
        Secs(activity.elapsed)
    ));
    let drained = activity.drained.map_or(
        "the last round had NOT landed everywhere 30 s later".into(),
        |drained| {
            format!(
                "the last round landed on every session {} after it was sent",
                Secs(drained)
            )
        },
    );
    println!(
        "  offered {:.0} reports/s; written {:.0} session updates/s ({} in all); {drained}",
        activity.offered_per_second(),
        activity.written_per_second(),
        activity.written,
    );
}

fn print_memory(scale: &Scale) {
    let Some(memory) = &scale.memory else { return };
    section("Registry memory (a replica in a child process, resident set)");
    println!(
        "  baseline {:.1} MiB; {} agents × 1 session, then {} more × {} sessions: {:.1} KiB per agent stream, {:.2} KiB per live session",
        memory.baseline as f64 / 1_048_576.0,
        memory.agents,
        memory.agents,
        memory.per_agent,
        memory.per_stream / 1024.0,
        memory.per_session / 1024.0
    );
}

/// "10k" for round thousands, the number otherwise.
fn thousands(count: usize) -> String {
    if count >= 1000 && count.is_multiple_of(1000) {
        format!("{}k", count / 1000)
    } else {
        count.to_string()
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

/// An end-all's totals, not per session: whether they grow with its sessions or its gateways.
fn print_end_all_statements(scales: &[Scale]) {
    for scale in scales {
        let (Some(end_all), Some(cost)) = (&scale.end_all, scale.costs.iter().find(|cost| cost.phase == "end-all"))
        else {
            continue;
        };
        let gateways = scale.agents.max(1);
        println!(
            "  end-all of {} sessions over {} gateways: {} statements in Terminate, {} in all ({:.2} per gateway, \
             {:.4} per session), {} Redis commands",
            end_all.sessions,
            scale.agents,
            cost.cost.request_statements,
            cost.cost.statements,
            cost.cost.statements as f64 / gateways as f64,
            cost.cost.statements as f64 / end_all.sessions.max(1) as f64,
            cost.cost.redis_commands
        );
    }
}
