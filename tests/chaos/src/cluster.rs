//! The system under test: two registry replicas behind a balancer, termination, two policy replicas
//! behind a balancer, geo — each the real binary in a process of its own — on the suite's own
//! PostgreSQL and Redis.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::balancer::Balancer;
use crate::infra::{Postgres, Redis};
use crate::process::{Proc, Spec, free_port, local, wait_until};

/// Settings the suite gives the services beyond their defaults (the README's fault-suite section
/// lists them).
const POLICY_SETTINGS: &[(&str, &str)] = &[
    // A dead sweeper leader is replaced within about a second.
    ("VIGIL_POLICY__LEASE_TTL", "1s"),
    ("VIGIL_POLICY__SWEEP_INTERVAL", "250ms"),
    // Small pages, so a sweep of a few hundred sessions takes several steps to kill the leader in.
    ("VIGIL_POLICY__PAGE_SIZE", "100"),
];

/// One service process and its gRPC port.
pub struct Service {
    pub proc: Proc,
    pub port: u16,
}

impl Service {
    fn addr(&self) -> SocketAddr {
        local(self.port)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Its `grpc.health.v1` status, or `None` when it does not answer within 300 ms.
    pub async fn health(&self) -> Option<ServingStatus> {
        let ask = async {
            let channel = Endpoint::from_shared(self.url()).ok()?.connect().await.ok()?;
            let response = HealthClient::new(channel)
                .check(HealthCheckRequest { service: String::new() })
                .await
                .ok()?;
            ServingStatus::try_from(response.into_inner().status).ok()
        };
        tokio::time::timeout(Duration::from_millis(300), ask)
            .await
            .ok()
            .flatten()
    }

    /// Waits until it answers SERVING.
    pub async fn wait_serving(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_until(&self.proc.spec.name, timeout, || async {
            self.health().await == Some(ServingStatus::Serving)
        })
        .await
    }
}

/// Everything a scenario acts on.
pub struct Cluster {
    pub postgres: Postgres,
    pub redis: Redis,
    pub registries: [Service; 2],
    pub termination: Service,
    pub policies: [Service; 2],
    pub geo: Service,
    /// In front of both registries: termination, policy and the suite's own queries use it.
    pub registry_lb: Balancer,
    /// In front of both policy replicas: the registries' admissions use it.
    _policy_lb: Balancer,
}

impl Cluster {
    /// Starts PostgreSQL, Redis, migrates, and starts every service (binaries from `bin_dir`).
    pub async fn start(root: &Path, bin_dir: &Path) -> anyhow::Result<Self> {
        let postgres = Postgres::start(root).await?;
        let redis = Redis::start(root).await?;
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect::<Result<_, _>>()?;
        let registry_addrs = vec![local(ports[0]), local(ports[1])];
        let registry_lb = Balancer::start(registry_addrs.clone(), 0).await?;
        let policy_lb = Balancer::start(vec![local(ports[3]), local(ports[4])], 0).await?;
        let common = vec![
            ("VIGIL_DATABASE__URL".to_owned(), postgres.url()),
            ("VIGIL_BUS__KIND".to_owned(), "redis".to_owned()),
            ("VIGIL_BUS__REDIS__URL".to_owned(), redis.url()),
            ("VIGIL_BUS__REDIS__NAMESPACE".to_owned(), "chaos".to_owned()),
            ("VIGIL_LOG__FILTER".to_owned(), "info".to_owned()),
        ];
        for bin in ["vigil-registry", "vigil-termination", "vigil-policy", "vigil-geo"] {
            migrate(bin_dir, bin, &common)?;
        }
        let service = |name: &str, bin: &str, port: u16, extra: Vec<(String, String)>| -> anyhow::Result<Service> {
            let mut env = common.clone();
            env.push(("VIGIL_SERVER__LISTEN".into(), local(port).to_string()));
            env.extend(extra);
            let spec = Spec {
                name: name.to_owned(),
                program: bin_dir.join(bin),
                args: Vec::new(),
                env,
                uid_gid: None,
                log: root.join(format!("{name}.log")),
            };
            Ok(Service {
                proc: Proc::start(spec)?,
                port,
            })
        };
        let pairs = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
        };
        let registry = |replica: &str, port: u16| {
            service(
                replica,
                "vigil-registry",
                port,
                pairs(&[
                    ("VIGIL_REGISTRY__REPLICA", replica.to_owned()),
                    ("VIGIL_TERMINATION_URL", format!("http://{}", local(ports[2]))),
                    ("VIGIL_POLICY_URL", policy_lb.url()),
                    ("VIGIL_GEO_URL", format!("http://{}", local(ports[5]))),
                ]),
            )
        };
        let policy = |replica: &str, port: u16| {
            let mut env = pairs(&[
                ("VIGIL_POLICY__REPLICA", replica.to_owned()),
                ("VIGIL_REGISTRY_URL", registry_lb.url()),
                ("VIGIL_TERMINATION_URL", format!("http://{}", local(ports[2]))),
            ]);
            env.extend(POLICY_SETTINGS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            service(replica, "vigil-policy", port, env)
        };
        let cluster = Self {
            registries: [registry("registry-a", ports[0])?, registry("registry-b", ports[1])?],
            termination: service(
                "termination",
                "vigil-termination",
                ports[2],
                pairs(&[("VIGIL_REGISTRY_URL", registry_lb.url())]),
            )?,
            policies: [policy("policy-a", ports[3])?, policy("policy-b", ports[4])?],
            geo: service("geo", "vigil-geo", ports[5], Vec::new())?,
            postgres,
            redis,
            registry_lb,
            _policy_lb: policy_lb,
        };
        cluster.wait_serving().await?;
        Ok(cluster)
    }

    /// Every service process.
    pub fn services(&self) -> [&Service; 6] {
        [
            &self.registries[0],
            &self.registries[1],
            &self.termination,
            &self.policies[0],
            &self.policies[1],
            &self.geo,
        ]
    }

    fn services_mut(&mut self) -> [&mut Service; 6] {
        let [registry_a, registry_b] = &mut self.registries;
        let [policy_a, policy_b] = &mut self.policies;
        [
            registry_a,
            registry_b,
            &mut self.termination,
            policy_a,
            policy_b,
            &mut self.geo,
        ]
    }

    /// The registry replicas' addresses (gateways reach them through balancers of their own).
    pub fn registry_addrs(&self) -> Vec<SocketAddr> {
        self.registries.iter().map(Service::addr).collect()
    }

    /// A channel to the registries through their balancer.
    pub fn registry_channel(&self) -> Channel {
        Endpoint::from_shared(self.registry_lb.url())
            .expect("a balancer URL is valid")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    /// A channel to termination.
    pub fn termination_channel(&self) -> Channel {
        Endpoint::from_shared(self.termination.url())
            .expect("a loopback URL is valid")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .connect_lazy()
    }

    /// A channel to the policy replica `index`.
    pub fn policy_channel(&self, index: usize) -> Channel {
        Endpoint::from_shared(self.policies[index].url())
            .expect("a loopback URL is valid")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    /// Waits until every service answers SERVING.
    pub async fn wait_serving(&self) -> anyhow::Result<()> {
        for service in self.services() {
            service.wait_serving(Duration::from_secs(60)).await.with_context(|| {
                format!(
                    "{} did not become ready (log: {})",
                    service.proc.spec.name,
                    service.proc.spec.log.display()
                )
            })?;
        }
        Ok(())
    }

    /// Brings back whatever a scenario killed or stopped, and waits until all serve.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        if !self.postgres.proc.is_running() {
            self.postgres.proc.restart()?;
        }
        self.postgres.wait_ready().await?;
        if !self.redis.proc.is_running() {
            self.redis.proc.restart()?;
        }
        self.redis.proc.freeze(false);
        self.redis.wait_ready().await?;
        for service in self.services_mut() {
            service.proc.freeze(false);
            service.proc.restart()?;
        }
        self.wait_serving().await
    }
}

/// `bin migrate` against the suite's database.
fn migrate(bin_dir: &Path, bin: &str, env: &[(String, String)]) -> anyhow::Result<()> {
    let program = bin_dir.join(bin);
    anyhow::ensure!(
        program.exists(),
        "{} is missing: build the services first (cargo build --bins)",
        program.display()
    );
    let status = std::process::Command::new(&program)
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "{bin} migrate failed");
    Ok(())
}
