//! What each phase costs per operation, in figures that do not move with the machine's load:
//! database statements (those a caller waited for, and all), Redis commands, and the services'
//! CPU time.
//!
//! - **Statements** are counted in process from `sqlx`'s own per-statement event (target
//!   `sqlx::query`, which the services' pools emit at debug, or at warn when slow): one event per
//!   statement sent, `BEGIN` and `COMMIT` included. A statement is *in the request* when it ran
//!   inside the span of the work a caller waits for — an admission (`registry.admission`), a
//!   session's close (`registry.session_closed`), or a unary gRPC call (`Terminate`,
//!   `ListSessions`); the rest (background writers, acknowledgements, redelivery) count only in
//!   *all*. Of those in the request, the writes into an event outbox (`*_event_outbox`: the
//!   events written with the change) are counted apart as well. Statements of the bench's own observer (inside [`OBSERVER_SPAN`]) are not counted,
//!   nor those of the child replica (another process).
//! - **Redis commands** are the server's `INFO commandstats` calls, before and after; on a shared
//!   Redis other clients' commands count too (run against a Redis of its own for exact figures).
//! - **CPU** is the time on CPU of this process's service threads: the services run on a runtime
//!   of their own whose threads are named [`SERVICE_THREAD`] (`/proc/self/task/*/schedstat`), so
//!   the fake agents' work is not in it. PostgreSQL's and Redis's CPU are not included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The name of the threads the services run on.
pub const SERVICE_THREAD: &str = "vigil-svc";
/// The span the bench's own queries run in (not counted).
pub const OBSERVER_SPAN: &str = "bench.observer";
/// The spans of work a caller waits for, besides unary gRPC calls.
const REQUEST_SPANS: &[&str] = &["registry.admission", "registry.session_closed"];
/// gRPC methods that are streams: their span covers a whole link or feed, not one request.
const STREAM_METHODS: &[&str] = &["/Connect", "/WatchSessions"];

static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static REQUEST_STATEMENTS: AtomicU64 = AtomicU64::new(0);
static OUTBOX_REQUEST_STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// How a span counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Request,
    Observer,
}

/// Counts the `sqlx::query` events, attributing each to the request span it ran in, if any.
pub struct StatementCounter;

impl StatementCounter {
    /// Whether this layer wants `metadata`: statements, and the spans that attribute them.
    pub fn wants(metadata: &Metadata<'_>) -> bool {
        if metadata.is_span() {
            *metadata.level() <= tracing::Level::INFO
        } else {
            metadata.target().starts_with("sqlx::query")
        }
    }
}

impl<S> Layer<S> for StatementCounter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: LayerContext<'_, S>) {
        let name = attributes.metadata().name();
        let mark = if name == OBSERVER_SPAN {
            Some(Mark::Observer)
        } else if REQUEST_SPANS.contains(&name) {
            Some(Mark::Request)
        } else if name == "grpc" {
            let mut method = MethodName::default();
            attributes.record(&mut method);
            (!method.0.is_empty() && !STREAM_METHODS.iter().any(|stream| method.0.ends_with(stream)))
                .then_some(Mark::Request)
        } else {
            None
        };
        if let (Some(mark), Some(span)) = (mark, context.span(id)) {
            let mut extensions = span.extensions_mut();
            extensions.insert(mark);
            if mark == Mark::Request && breakdown_wanted() {
                extensions.insert(SpanTiming {
                    opened: std::time::Instant::now(),
                    in_statements: Duration::ZERO,
                });
            }
        }
    }

    fn on_close(&self, id: Id, context: LayerContext<'_, S>) {
        if !breakdown_wanted() {
            return;
        }
        let Some(span) = context.span(&id) else { return };
        let Some(timing) = span.extensions().get::<SpanTiming>().cloned() else {
            return;
        };
        TIMINGS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(span.name())
            .or_default()
            .push((timing.opened.elapsed(), timing.in_statements));
    }

    fn on_event(&self, event: &Event<'_>, context: LayerContext<'_, S>) {
        if !event.metadata().target().starts_with("sqlx::query") {
            return;
        }
        // The statement's time, read once: only the breakdown uses it.
        let elapsed = breakdown_wanted().then(|| {
            let mut elapsed = Elapsed::default();
            event.record(&mut elapsed);
            elapsed.0
        });
        let mut mark = None;
        if let Some(scope) = context.event_scope(event) {
            for span in scope {
                let found = span.extensions().get::<Mark>().copied();
                if let Some(found) = found {
                    mark = Some(found);
                    if let (Some(timing), Some(elapsed)) = (span.extensions_mut().get_mut::<SpanTiming>(), elapsed) {
                        timing.in_statements += Duration::from_secs_f64(elapsed);
                    }
                    break;
                }
            }
        }
        match mark {
            Some(Mark::Observer) => return,
            Some(Mark::Request) => {
                REQUEST_STATEMENTS.fetch_add(1, Ordering::Relaxed);
                let mut text = StatementText::default();
                event.record(&mut text);
                if text.0 {
                    OUTBOX_REQUEST_STATEMENTS.fetch_add(1, Ordering::Relaxed);
                }
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(elapsed) = elapsed {
            let mut summary = Summary::default();
            event.record(&mut summary);
            let mut kinds = KINDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let counts = kinds.entry(summary.0.clone()).or_default();
            counts.0 += 1;
            if mark == Some(Mark::Request) {
                counts.1 += 1;
            }
            drop(kinds);
            KIND_TIMES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(summary.0)
                .or_default()
                .push(elapsed);
        }
    }
}

/// Each statement's time by kind (sqlx's `elapsed_secs`), since the last print. Kept only when
/// [`BREAKDOWN_VARIABLE`] is set.
static KIND_TIMES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// When a request span opened, and how long its statements took (sqlx's `elapsed_secs`).
#[derive(Clone)]
struct SpanTiming {
    opened: std::time::Instant,
    in_statements: Duration,
}

/// Request spans' durations by span name: (open to close, in statements). Kept only when
/// [`BREAKDOWN_VARIABLE`] is set.
static TIMINGS: Mutex<BTreeMap<&'static str, Vec<(Duration, Duration)>>> = Mutex::new(BTreeMap::new());

/// The `elapsed_secs` field of a `sqlx::query` event.
#[derive(Default)]
struct Elapsed(f64);

impl Visit for Elapsed {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.0 = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// Prints, per request span, where its time went (open to close, and in statements), and empties
/// the record: the median, the 99th percentile, and the mean of the slowest 1 %.
fn print_timings(phase: &str) {
    let timings = std::mem::take(&mut *TIMINGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    for (name, mut spans) in timings {
        spans.sort_by_key(|(total, _)| *total);
        let at = |quantile: f64| spans[((spans.len() - 1) as f64 * quantile) as usize];
        let slowest = &spans[spans.len() - spans.len().div_ceil(100)..];
        let mean = |pick: fn(&(Duration, Duration)) -> Duration| {
            ms(slowest.iter().map(pick).sum::<Duration>()) / slowest.len() as f64
        };
        let (p50, p99) = (at(0.5), at(0.99));
        eprintln!(
            "  spans of {phase}: {name} ×{}: p50 {:.3} ms ({:.3} in statements), p99 {:.3} ms ({:.3}), slowest 1 %: {:.3} ms ({:.3})",
            spans.len(),
            ms(p50.0),
            ms(p50.1),
            ms(p99.0),
            ms(p99.1),
            mean(|span| span.0),
            mean(|span| span.1),
        );
    }
}

/// Statements by kind (sqlx's `summary`, the statement's first words): (in all, in a request).
/// Kept only when [`BREAKDOWN_VARIABLE`] is set.
static KINDS: Mutex<BTreeMap<String, (u64, u64)>> = Mutex::new(BTreeMap::new());

/// Set (to anything) to have each phase's statements printed by kind on stderr.
pub const BREAKDOWN_VARIABLE: &str = "VIGIL_BENCH_STATEMENTS";

fn breakdown_wanted() -> bool {
    static WANTED: OnceLock<bool> = OnceLock::new();
    *WANTED.get_or_init(|| std::env::var_os(BREAKDOWN_VARIABLE).is_some())
}

/// The `summary` field of a `sqlx::query` event.
#[derive(Default)]
struct Summary(String);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Prints the statements by kind sent since `before` (a snapshot of [`KINDS`]), most first.
fn print_breakdown(phase: &str, before: &BTreeMap<String, (u64, u64)>) {
    let now = KINDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut kinds: Vec<(u64, u64, &String)> = now
        .iter()
        .map(|(kind, (all, request))| {
            let (all_before, request_before) = before.get(kind).copied().unwrap_or_default();
            (all - all_before, request - request_before, kind)
        })
        .filter(|(all, _, _)| *all > 0)
        .collect();
    kinds.sort_by_key(|kind| std::cmp::Reverse(kind.0));
    let mut times = std::mem::take(&mut *KIND_TIMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    for (all, request, kind) in kinds {
        let mut elapsed = times.remove(kind).unwrap_or_default();
        elapsed.sort_by(f64::total_cmp);
        let at = |quantile: f64| {
            elapsed
                .get(((elapsed.len().max(1) - 1) as f64 * quantile) as usize)
                .copied()
                .unwrap_or(0.0)
                * 1000.0
        };
        eprintln!(
            "  statements of {phase}: {all:>8} in all, {request:>6} in requests, p50 {:.3} / p99 {:.3} ms: {kind}",
            at(0.5),
            at(0.99)
        );
    }
}

/// Whether a statement's text (sqlx's `summary` or `db.statement`) writes an event outbox.
#[derive(Default)]
struct StatementText(bool);

impl Visit for StatementText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "summary" | "db.statement") && value.contains("_event_outbox") {
            self.0 = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "summary" | "db.statement") && format!("{value:?}").contains("_event_outbox") {
            self.0 = true;
        }
    }
}

/// The `otel.name` field of a `grpc` span (`vigil.v1.Service/Method`).
#[derive(Default)]
struct MethodName(String);

impl Visit for MethodName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "otel.name" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "otel.name" {
            self.0 = format!("{value:?}");
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    kinds: BTreeMap<String, (u64, u64)>,
    statements: u64,
    request_statements: u64,
    outbox_request_statements: u64,
    redis_commands: u64,
    cpu: Duration,
}

/// What a phase cost, in all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub statements: u64,
    pub request_statements: u64,
    /// Of `request_statements`, those writing an event outbox.
    pub outbox_request_statements: u64,
    pub redis_commands: u64,
    pub cpu: Duration,
}

/// A phase's cost and the operations it did.
#[derive(Debug, Clone)]
pub struct PhaseCost {
    pub phase: &'static str,
    /// What one operation is ("admission", "page", …).
    pub unit: &'static str,
    pub operations: usize,
    pub cost: Cost,
}

impl PhaseCost {
    fn per(&self, total: u64) -> f64 {
        total as f64 / self.operations.max(1) as f64
    }

    pub fn request_statements_per_op(&self) -> f64 {
        self.per(self.cost.request_statements)
    }

    pub fn outbox_statements_per_op(&self) -> f64 {
        self.per(self.cost.outbox_request_statements)
    }

    pub fn statements_per_op(&self) -> f64 {
        self.per(self.cost.statements)
    }

    pub fn redis_per_op(&self) -> f64 {
        self.per(self.cost.redis_commands)
    }

    pub fn cpu_ms_per_op(&self) -> f64 {
        self.cost.cpu.as_secs_f64() * 1000.0 / self.operations.max(1) as f64
    }
}

/// Reads the counters: statements here, commands at Redis, CPU of the service threads.
pub struct Meter {
    redis: redis::aio::MultiplexedConnection,
}

impl Meter {
    pub async fn connect(redis_url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url).context("parse the Redis URL")?;
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .context("connect to Redis for its command counts")?;
        Ok(Self { redis })
    }

    pub async fn read(&self) -> anyhow::Result<Reading> {
        let redis_commands = self.redis_commands().await?;
        let kinds = if breakdown_wanted() {
            KINDS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        } else {
            BTreeMap::new()
        };
        Ok(Reading {
            kinds,
            statements: STATEMENTS.load(Ordering::Relaxed),
            request_statements: REQUEST_STATEMENTS.load(Ordering::Relaxed),
            outbox_request_statements: OUTBOX_REQUEST_STATEMENTS.load(Ordering::Relaxed),
            redis_commands,
            cpu: service_cpu(),
        })
    }

    /// The cost since `before`, as a phase's figures.
    pub async fn since(
        &self,
        before: Reading,
        phase: &'static str,
        unit: &'static str,
        operations: usize,
    ) -> anyhow::Result<PhaseCost> {
        let after = self.read().await?;
        if breakdown_wanted() {
            print_breakdown(phase, &before.kinds);
            print_timings(phase);
        }
        Ok(PhaseCost {
            phase,
            unit,
            operations,
            cost: Cost {
                statements: after.statements - before.statements,
                request_statements: after.request_statements - before.request_statements,
                outbox_request_statements: after.outbox_request_statements - before.outbox_request_statements,
                // The INFO of the reading itself is not counted (see `redis_commands`).
                redis_commands: after.redis_commands.saturating_sub(before.redis_commands),
                cpu: after.cpu.saturating_sub(before.cpu),
            },
        })
    }

    /// Commands the server has executed, `INFO` excluded (the meter's own).
    async fn redis_commands(&self) -> anyhow::Result<u64> {
        let mut redis = self.redis.clone();
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut redis)
            .await
            .context("Redis INFO commandstats")?;
        Ok(sum_calls(&info))
    }
}

/// The `calls=` of every `cmdstat_*` line but INFO's.
fn sum_calls(info: &str) -> u64 {
    info.lines()
        .filter(|line| line.starts_with("cmdstat_") && !line.starts_with("cmdstat_info:"))
        .filter_map(|line| {
            let (_, stats) = line.split_once(':')?;
            stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|calls| calls.parse::<u64>().ok())
        })
        .sum()
}

/// Time on CPU of this process's service threads, from each thread's schedstat (nanoseconds).
fn service_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.starts_with(SERVICE_THREAD))
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::sum_calls;

    #[test]
    fn sums_the_calls_of_every_command_but_info() {
        let info = "# Commandstats\r\ncmdstat_publish:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_info:calls=5,usec=100\r\ncmdstat_subscribe:calls=3,usec=9\r\n";
        assert_eq!(sum_calls(info), 15);
    }
}
