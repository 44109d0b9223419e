//! The figures beyond killing: admission under load, activity ingestion, the list page, watch
//! fan-out over two replicas, registry memory per agent stream and per session, and geo lookups.
//! Each phase measures through the same paths a gateway or an operator uses (gRPC streams and
//! calls), except geo's lookups, which are timed in process on one thread as the issue asks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;

use crate::fleet::{Fleet, FleetSpec};
use crate::replica::ChildReplica;
use crate::report::{ActivityFigures, AdmissionFigures, ListFigures, MemoryFigures, WatchFigures};
use crate::world::{World, now_millis};

/// How long one watcher may take to see a change before the run fails.
const WATCH_PATIENCE: Duration = Duration::from_secs(10);
/// Pause between watch samples, so each measures one change, not a queue.
const WATCH_PACE: Duration = Duration::from_millis(10);
/// Page size of the list figure.
const PAGE_SIZE: i32 = 50;
/// How long the activity writer may take to drain what was reported before the check.
const ACTIVITY_DRAIN: Duration = Duration::from_secs(30);
/// How long geo's lookups are timed.
const GEO_FOR: Duration = Duration::from_secs(2);

/// `SessionOpened` → decision at the agent, with geo's assessment and policy's decision (the
/// global concurrency limit) in the path; `per_second` starts a second, spread over the agents,
/// while the fleet holds its sessions.
pub async fn admission(
    fleet: &mut Fleet,
    agents: usize,
    samples: usize,
    per_second: f64,
) -> anyhow::Result<AdmissionFigures> {
    // A multiplicative hash spreads the opens over agents (and so over users and addresses).
    let indices: Vec<usize> = (0..samples)
        .map(|sample| ((sample as u64 * 40_503 + 7) % agents as u64) as usize)
        .collect();
    let started = Instant::now();
    let latencies = fleet.open_at_rate(&indices, per_second).await?;
    Ok(AdmissionFigures {
        latencies,
        elapsed: started.elapsed(),
        per_second,
    })
}

/// One kind of page an operator asks for.
struct PageQuery {
    name: &'static str,
    filter: fn(usize, &str) -> pb::SessionFilter,
    order_by: pb::SessionOrderBy,
    ascending: bool,
}

/// The pages sampled: the console's default view, and the filters and sorts an operator uses.
const PAGE_QUERIES: &[PageQuery] = &[
    PageQuery {
        name: "all live, newest first",
        filter: |_, _| pb::SessionFilter::default(),
        order_by: pb::SessionOrderBy::StartedAt,
        ascending: false,
    },
    PageQuery {
        name: "active, by last activity",
        filter: |_, _| pb::SessionFilter {
            statuses: vec![pb::SessionStatus::Active as i32],
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::LastActivity,
        ascending: false,
    },
    PageQuery {
        name: "one user's",
        filter: |sample, _| pb::SessionFilter {
            user: format!("user{:04}@bench.example", (sample * 37) % 5_000),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::StartedAt,
        ascending: false,
    },
    PageQuery {
        name: "one resource's, by user",
        filter: |sample, _| pb::SessionFilter {
            resource_name: format!("srv-{:03}.bench.internal", (sample * 13) % 200),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::User,
        ascending: true,
    },
    PageQuery {
        name: "one gateway's",
        filter: |sample, prefix| pb::SessionFilter {
            gateway_id: format!("{prefix}-gw-{:05}", (sample * 97) % 1_000),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::StartedAt,
        ascending: false,
    },
    PageQuery {
        name: "country GB, riskiest first",
        filter: |_, _| pb::SessionFilter {
            country_code: "GB".into(),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::RiskScore,
        ascending: false,
    },
    // Free text in the console's search box: a term found in one session in 200 (its page is
    // collected from the trigram index), and one found in one in 20 (found among the newest).
    PageQuery {
        name: "free text \"srv-04N\" (0.5 %)",
        filter: |sample, _| pb::SessionFilter {
            query: format!("srv-0{}", 40 + sample % 10),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::StartedAt,
        ascending: false,
    },
    PageQuery {
        name: "free text \"srv-0N\" (5 %)",
        filter: |sample, _| pb::SessionFilter {
            query: format!("srv-0{}", sample % 10),
            ..Default::default()
        },
        order_by: pb::SessionOrderBy::StartedAt,
        ascending: false,
    },
];

/// `ListSessions` pages of 50, each kind of query in turn; every fifth sample also fetches the
/// next page through its token.
pub async fn list(world: &World, gateway_prefix: &str, samples: usize) -> anyhow::Result<ListFigures> {
    let channel = vigil_runtime::server::connect_channel(&world.url, Duration::from_secs(5)).await?;
    let mut client = SessionRegistryClient::new(channel);
    let mut by_query: Vec<(&'static str, Vec<Duration>)> =
        PAGE_QUERIES.iter().map(|query| (query.name, Vec::new())).collect();
    for sample in 0..samples + crate::yardstick::WARM_UP {
        let kind = sample % PAGE_QUERIES.len();
        let query = &PAGE_QUERIES[kind];
        let mut request = pb::ListSessionsRequest {
            filter: Some((query.filter)(sample, gateway_prefix)),
            order_by: query.order_by as i32,
            ascending: query.ascending,
            page_size: PAGE_SIZE,
            page_token: String::new(),
        };
        let sent = Instant::now();
        let page = client
            .list_sessions(request.clone())
            .await
            .with_context(|| format!("ListSessions ({})", query.name))?
            .into_inner();
        let elapsed = sent.elapsed();
        ensure!(
            page.sessions.len() <= PAGE_SIZE as usize,
            "ListSessions ({}) answered {} sessions for a page of {PAGE_SIZE}",
            query.name,
            page.sessions.len()
        );
        if sample < crate::yardstick::WARM_UP {
            continue;
        }
        by_query[kind].1.push(elapsed);
        if sample % 5 == 0 && !page.next_page_token.is_empty() {
            request.page_token = page.next_page_token;
            let sent = Instant::now();
            client
                .list_sessions(request)
                .await
                .with_context(|| format!("ListSessions ({}, next page)", query.name))?;
            by_query[kind].1.push(sent.elapsed());
        }
    }
    Ok(ListFigures { by_query })
}

/// What a watcher saw: which watcher, the session that ended, when.
type Sighting = (usize, String, Instant);

/// `watchers` `WatchSessions` streams, half on the world's replica and half on the child replica;
/// an agent (linked to the world's replica) closes a session; each watcher's receipt of the
/// ENDED event is timed from the close.
pub async fn watch_fan_out(
    fleet: &mut Fleet,
    world: &World,
    replica: &ChildReplica,
    watchers: usize,
    samples: usize,
) -> anyhow::Result<WatchFigures> {
    let urls = [world.url.as_str(), replica.url.as_str()];
    let mut channels = Vec::new();
    for url in urls {
        channels.push(vigil_runtime::server::connect_channel(url, Duration::from_secs(5)).await?);
    }
    let (sightings, mut seen) = mpsc::unbounded_channel::<Sighting>();
    let mut tasks = tokio::task::JoinSet::new();
    for watcher in 0..watchers {
        let channel = channels[watcher % channels.len()].clone();
        tasks.spawn(watch(watcher, channel, sightings.clone()));
    }
    drop(sightings);

    // A stream is known to be open only once it has delivered something: sessions are closed
    // until every watcher has seen one end (a watcher subscribed after a close never sees it).
    let mut index = 0;
    let mut ready = vec![false; watchers];
    let mut ready_count = 0;
    let warm_up_deadline = tokio::time::Instant::now() + WATCH_PATIENCE * 3;
    while ready_count < watchers {
        ensure!(
            tokio::time::Instant::now() < warm_up_deadline,
            "{ready_count} of {watchers} watchers saw a session end within {:?}",
            WATCH_PATIENCE * 3
        );
        close_next(fleet, &mut index).await?;
        let round = tokio::time::Instant::now() + WATCH_PACE * 10;
        while ready_count < watchers {
            let Ok(sighting) = tokio::time::timeout_at(round, seen.recv()).await else {
                break;
            };
            let Some((watcher, _, _)) = sighting else {
                bail!("every watcher's stream ended");
            };
            if !ready[watcher] {
                ready[watcher] = true;
                ready_count += 1;
            }
        }
    }

    let mut latencies = Vec::with_capacity(watchers * samples);
    for _ in 0..samples {
        let (session_id, closed) = close_next(fleet, &mut index).await?;
        let deadline = tokio::time::Instant::now() + WATCH_PATIENCE;
        let mut seen_by = vec![false; watchers];
        let mut count = 0;
        while count < watchers {
            // Sightings of the warm-up's closes may still arrive: only this session's count.
            let (watcher, ended, at) = match tokio::time::timeout_at(deadline, seen.recv()).await {
                Ok(Some(sighting)) => sighting,
                Ok(None) => bail!("every watcher's stream ended"),
                Err(_) => bail!(
                    "{} of {watchers} watchers saw session {session_id} end within {WATCH_PATIENCE:?}",
                    count
                ),
            };
            if ended == session_id && !seen_by[watcher] {
                seen_by[watcher] = true;
                count += 1;
                latencies.push(at.duration_since(closed));
            }
        }
        tokio::time::sleep(WATCH_PACE).await;
    }
    tasks.abort_all();
    Ok(WatchFigures {
        latencies,
        watchers,
        replicas: urls.len(),
    })
}

/// Closes the next session an agent still holds, from agent `index` on: its id and when.
async fn close_next(fleet: &mut Fleet, index: &mut usize) -> anyhow::Result<(String, Instant)> {
    loop {
        ensure!(*index < fleet.agents(), "no agent holds a session left to close");
        let closed = fleet.close_one(*index).await?;
        *index += 1;
        if let Some(closed) = closed {
            return Ok(closed);
        }
    }
}

/// One watcher: forwards every ENDED event it reads.
async fn watch(watcher: usize, channel: Channel, sightings: mpsc::UnboundedSender<Sighting>) {
    let mut client = SessionRegistryClient::new(channel);
    let request = pb::WatchSessionsRequest {
        filter: None,
        include_snapshot: false,
    };
    let Ok(response) = client.watch_sessions(request).await else {
        return;
    };
    let mut events = response.into_inner();
    while let Some(Ok(event)) = events.next().await {
        let at = Instant::now();
        if event.kind == pb::SessionEventKind::Ended as i32
            && let Some(session) = event.session
            && sightings.send((watcher, session.id, at)).is_err()
        {
            return;
        }
    }
}

/// Every agent reports activity for all its sessions every `interval` for `duration`; the
/// figure is what the registry wrote per second (reports for one session merged before a flush
/// count once). Afterwards the oldest last activity among live sessions is checked to be the last
/// round's: every session's update really landed.
pub async fn activity(
    fleet: &Fleet,
    world: &World,
    duration: Duration,
    interval: Duration,
) -> anyhow::Result<ActivityFigures> {
    let written_before = world.registry.activity_written();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    let mut offered = 0;
    let mut last_round = 0;
    while started.elapsed() < duration {
        ticker.tick().await;
        // Strictly increasing, so every round moves every session forward.
        last_round = now_millis().max(last_round + 1);
        offered += fleet.report_activity(last_round);
    }
    let elapsed = started.elapsed();
    let written = world.registry.activity_written() - written_before;

    // Drain: wait until the last round is in the database.
    let channel = vigil_runtime::server::connect_channel(&world.url, Duration::from_secs(5)).await?;
    let mut client = SessionRegistryClient::new(channel);
    let drain_started = Instant::now();
    let landed = loop {
        let oldest = client
            .list_sessions(pb::ListSessionsRequest {
                filter: None,
                order_by: pb::SessionOrderBy::LastActivity as i32,
                ascending: true,
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .context("ListSessions (oldest activity)")?
            .into_inner();
        let oldest = oldest
            .sessions
            .first()
            .and_then(|session| session.last_activity_at.as_ref())
            .and_then(vigil_proto::millis_from_timestamp);
        if oldest.is_some_and(|at| at >= last_round) {
            break true;
        }
        if drain_started.elapsed() > ACTIVITY_DRAIN {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(ActivityFigures {
        offered,
        written,
        elapsed,
        drained: landed.then(|| drain_started.elapsed()),
    })
}

/// The child replica's resident set: before any agent, after `agents` agents holding one session
/// each, and after as many more holding `per_agent` each. Two unknowns (per stream, per session),
/// two steps: the second step adds the same streams with `per_agent - 1` more sessions each.
pub async fn memory(
    replica: &ChildReplica,
    prefix: &str,
    agents: usize,
    per_agent: usize,
    connections: usize,
) -> anyhow::Result<MemoryFigures> {
    ensure!(per_agent >= 2, "--memory-sessions-per-agent must be at least 2");
    let settle = || tokio::time::sleep(Duration::from_secs(1));
    settle().await;
    let baseline = replica.resident_bytes()?;
    let spec = |name: &str, sessions: usize| FleetSpec {
        url: replica.url.clone(),
        prefix: format!("{prefix}-{name}"),
        agents,
        sessions,
        connections,
        heartbeats: false,
    };
    let (one_each, _) = Fleet::connect(&spec("mem1", agents))
        .await
        .context("connect the first memory fleet")?;
    settle().await;
    let after_one = replica.resident_bytes()?;
    let (many_each, _) = Fleet::connect(&spec("memn", agents * per_agent))
        .await
        .context("connect the second memory fleet")?;
    settle().await;
    let after_many = replica.resident_bytes()?;
    one_each.check()?;
    many_each.check()?;
    one_each.close().await;
    many_each.close().await;

    let first = after_one.saturating_sub(baseline) as f64;
    let second = after_many.saturating_sub(after_one) as f64;
    let per_session = ((second - first) / (agents * (per_agent - 1)) as f64).max(0.0);
    let per_stream = (first / agents as f64 - per_session).max(0.0);
    Ok(MemoryFigures {
        agents,
        per_agent,
        baseline,
        per_stream,
        per_session,
    })
}

/// Geo's `Locate` on one thread for a while, over addresses in every demo network (IPv4 and IPv6)
/// plus private and unknown ones. Returns lookups per second.
pub async fn geo_lookups() -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(|| {
        let dir = std::env::temp_dir().join(format!("vigil-bench-geo-{}", uuid::Uuid::new_v4().simple()));
        let (city, asn) = vigil_geo::write_demo_databases(&dir)?;
        let locator = vigil_geo::Locator::open(&[city], &[asn]).context("open the demo GeoIP databases")?;
        let _ = std::fs::remove_dir_all(&dir);
        let mut addresses = Vec::new();
        for (index, entry) in vigil_geo::demo::DEMO_CITIES.iter().cycle().take(896).enumerate() {
            let base: IpAddr = entry
                .network
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .context("a demo network")?;
            addresses.push(match base {
                IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + (index % 7) as u32)),
                IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) + index as u128 * 7_919)),
            });
        }
        for index in 0..128_u32 {
            addresses.push(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + index * 65_537)));
        }
        let started = Instant::now();
        let mut lookups: u64 = 0;
        let mut found = 0_u64;
        while started.elapsed() < GEO_FOR {
            for address in &addresses {
                let location = std::hint::black_box(locator.locate_ip(*address));
                found += u64::from(!location.country_code.is_empty());
            }
            lookups += addresses.len() as u64;
        }
        ensure!(found > 0, "geo located none of the demo addresses");
        Ok(lookups as f64 / started.elapsed().as_secs_f64())
    })
    .await?
}
