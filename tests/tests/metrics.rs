//! Metrics after a scripted scenario, read the way Prometheus reads them: by scraping the
//! `GET /metrics` endpoint `telemetry.prometheus_listen` opens. A gateway link admits three
//! sessions and refuses one, one session is killed and the kill acknowledged, the policy sweeper
//! runs, and the link closes; every metric then has exactly the value the scenario implies.
//!
//! One test in this binary: the meter provider is global.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_proto::v1 as pb;
use vigil_proto::v1::agent_message::Message as Up;
use vigil_proto::v1::controller_message::Message as Down;
use vigil_proto::v1::{CommandOutcome, EndReason, ResourceType};
use vigil_runtime::telemetry::{LogConfig, LogFormat, TelemetryConfig, init_telemetry};
use vigil_tests::*;

/// The scrape endpoint's text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n")
        .await
        .expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the one sample of `name` whose labels include `labels`; `None` when there is none.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = labels
                .iter()
                .all(|(key, value)| label_text.split(',').any(|pair| pair == format!("{key}=\"{value}\"")));
            (metric == name && wanted).then(|| value.parse().expect("a number"))
        })
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {labels:?} matches {} samples:\n{text}",
        matching.len()
    );
    matching.first().copied()
}

fn session_opened(request_id: &str, start: pb::SessionStart) -> Up {
    Up::SessionOpened(pb::SessionOpened {
        request_id: request_id.into(),
        start: Some(start),
    })
}

#[tokio::test]
async fn a_scripted_scenario_leaves_exact_metric_values() {
    let log = LogConfig {
        format: LogFormat::Text,
        filter: "warn".into(),
    };
    let config = TelemetryConfig {
        prometheus_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..TelemetryConfig::default()
    };
    let telemetry = init_telemetry(&log, &config, "vigil-tests").expect("telemetry");
    let metrics = telemetry.prometheus_addr().expect("the scrape endpoint is served");

    let schema = TestSchema::new().await;
    let settings = vigil_registry::RegistrySettings {
        metrics_refresh_interval: Duration::from_millis(50),
        ..test_settings("r1")
    };
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), settings).await;

    let mut link = RawLink::open(&registry, "gw-metrics", Vec::new()).await.expect("link");
    let admitted = admit_three_and_refuse_one(&mut link).await;
    kill_and_acknowledge(&registry, &mut link, &admitted[0]).await;
    let sweeper = start_sweeper(&schema, &registry).await;

    // Acknowledgements are handled asynchronously, and the live count is re-read periodically.
    let text = eventually(
        "the kill's acknowledgement and the live count in the metrics",
        || async move {
            let text = scrape(metrics).await;
            let acknowledged = sample(&text, "vigil_kills_acknowledged_total", &[("outcome", "done")]);
            let active = sample(&text, "vigil_sessions_live", &[("status", "active")]);
            (acknowledged == Some(1.0) && active == Some(2.0)).then_some(text)
        },
    )
    .await;
    assert_scenario_counted(&text);

    // Every sweep counted once: the counter catches up with the sweeper's own tally.
    eventually("the sweeper's runs in the metrics", || {
        let sweeps = sweeper.status().sweeps;
        async move {
            let text = scrape(metrics).await;
            let counted = sample(&text, "vigil_sweeper_runs_total", &[("outcome", "completed")]);
            (sweeps >= 2 && counted == Some(sweeps as f64) && no_sweep_went_wrong(&text)).then_some(())
        }
    })
    .await;
    sweeper.stop().await;

    // The link closes: no stream open any more.
    drop(link);
    eventually("the closed link to leave the stream gauge", || async move {
        let text = scrape(metrics).await;
        (sample(&text, "vigil_agent_streams", &[]) == Some(0.0)).then_some(())
    })
    .await;

    registry.stop().await;
}

/// No sweep failed or lost its lease.
fn no_sweep_went_wrong(text: &str) -> bool {
    sample(text, "vigil_sweeper_runs_total", &[("outcome", "failed")]).is_none()
        && sample(text, "vigil_sweeper_runs_total", &[("outcome", "lost_leadership")]).is_none()
}

/// Three admissions and one refusal (a start without a resource type is invalid); returns the ids of the
/// admitted sessions.
async fn admit_three_and_refuse_one(link: &mut RawLink) -> Vec<String> {
    for (request, user) in [("r1", "ann"), ("r2", "ben"), ("r3", "cat")] {
        link.send(session_opened(
            request,
            start(user, "db", ResourceType::Ssh, "10.1.0.1"),
        ))
        .await;
    }
    let mut invalid = start("dan", "db", ResourceType::Ssh, "10.1.0.1");
    invalid.resource_type = ResourceType::Unspecified as i32;
    link.send(session_opened("r4", invalid)).await;
    let mut admitted = Vec::new();
    for _ in 0..4 {
        match link.next().await {
            Some(Down::Admission(decision)) if decision.allowed => admitted.push(decision.session_id),
            Some(Down::Admission(decision)) => assert_eq!(decision.request_id, "r4", "{decision:?}"),
            other => panic!("expected an admission decision, got {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 3);
    admitted
}

/// One kill of `session_id`, acknowledged by the gateway on `link`.
async fn kill_and_acknowledge(registry: &TestRegistry, link: &mut RawLink, session_id: &str) {
    let mut termination = registry.termination_client().await;
    termination
        .terminate(pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                    ids: vec![session_id.to_owned()],
                })),
            }),
            reason: EndReason::Admin as i32,
            ..Default::default()
        })
        .await
        .expect("terminate");
    let command = match link.next().await {
        Some(Down::Terminate(command)) => command,
        other => panic!("expected the terminate command, got {other:?}"),
    };
    assert_eq!(command.session_id, session_id);
    link.send(Up::CommandAck(pb::CommandAck {
        command_id: command.command_id.clone(),
        session_id: command.session_id.clone(),
        outcome: CommandOutcome::Done as i32,
        detail: String::new(),
    }))
    .await;
}

/// The policy sweeper, leading alone; with no policies its sweeps end nothing.
async fn start_sweeper(schema: &TestSchema, registry: &TestRegistry) -> vigil_policy::SweeperHandle {
    vigil_policy::Sweeper::new(
        schema.policy_store().await,
        Arc::new(registry.registry.clone()),
        Arc::new(registry.terminator.clone().expect("termination")),
        registry.registry.bus().clone(),
        Arc::new(vigil_policy::SystemClock),
        vigil_policy::PolicySettings {
            replica: "p1".into(),
            sweep_interval: Duration::from_millis(50),
            lease_ttl: Duration::from_millis(900),
            ..vigil_policy::PolicySettings::default()
        },
    )
    .start(registry.shutdown.child_token())
}

/// What the scenario implies, once the kill's acknowledgement is counted: three admissions and one
/// refusal, one kill acknowledged, two sessions live, one stream open.
fn assert_scenario_counted(text: &str) {
    assert_eq!(
        sample(text, "vigil_admissions_total", &[("outcome", "allowed")]),
        Some(3.0)
    );
    assert_eq!(
        sample(text, "vigil_admissions_total", &[("outcome", "denied")]),
        Some(1.0)
    );
    assert_eq!(sample(text, "vigil_admissions_total", &[("outcome", "error")]), None);
    assert_eq!(sample(text, "vigil_kills_issued_total", &[]), Some(1.0));
    assert_eq!(
        sample(text, "vigil_kills_acknowledged_total", &[("outcome", "failed")]),
        None
    );
    assert_eq!(sample(text, "vigil_kill_latency_seconds_count", &[]), Some(1.0));
    let latency = sample(text, "vigil_kill_latency_seconds_sum", &[]).expect("a latency");
    assert!((0.0..PATIENCE.as_secs_f64()).contains(&latency), "{latency}");
    assert_eq!(
        sample(text, "vigil_kill_latency_seconds_bucket", &[("le", "+Inf")]),
        Some(1.0)
    );
    assert_eq!(sample(text, "vigil_sessions_live", &[("status", "idle")]), Some(0.0));
    assert_eq!(sample(text, "vigil_agent_streams", &[]), Some(1.0));
    assert!(text.contains("service_name=\"vigil-tests\""), "{text}");
}
