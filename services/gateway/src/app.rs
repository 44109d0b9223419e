//! Starting a gateway from its configuration: keys, users, the agent, the SSH listener and the web
//! proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_agent::{Agent, AgentConfig, FailMode, LinkState};
use vigil_runtime::server::Server;

use crate::config::{FailModeSetting, GatewayConfig};
use crate::keys;
use crate::live::{Commands, Live};
use crate::ssh::{self, Bastion};
use crate::users::Users;
use crate::web::WebProxy;
use crate::web::sessions::WebSessions;
use crate::web::settings::WebSettings;

/// A running gateway.
pub struct Gateway {
    /// Where the SSH listener is (the port is chosen by the system when the configuration says 0).
    pub ssh_addr: SocketAddr,
    /// Where `grpc.health.v1` answers.
    pub health_addr: SocketAddr,
    /// Where the web proxy listens, when `web.enabled`.
    pub web_addr: Option<SocketAddr>,
    /// The web proxy, when `web.enabled`.
    pub web: Option<Arc<WebProxy>>,
    pub agent: Agent,
    pub bastion: Arc<Bastion>,
    pub commands: Arc<Commands>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

impl Gateway {
    /// Loads (or creates) the keys, reads the users file, starts the agent, the SSH listener and (when
    /// `web.enabled`) the web proxy. Returns once the listeners are bound; the agent connects in the
    /// background.
    pub async fn start(config: &GatewayConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        config.ssh.validate().map_err(anyhow::Error::msg)?;
        WebSettings::new(&config.web).map_err(anyhow::Error::msg)?;
        let host_key = keys::load_or_create(&config.ssh.host_key, "vigil-gateway host key")?;
        let client_key = keys::load_or_create(&config.ssh.client_key, "vigil-gateway")?;
        let users = Users::load(&config.ssh.users_file)?;
        let mut ssh_config = config.ssh.clone();
        if ssh_config.demo_target {
            ssh_config.targets.push(demo_target(&client_key, &shutdown).await?);
        }
        let live = Arc::new(Live::default());
        let web_sessions = Arc::new(WebSessions::default());
        let commands = Arc::new(Commands::new(Arc::clone(&live), Arc::clone(&web_sessions)));
        let agent = Agent::start(agent_config(config), commands.clone());
        let listener = tokio::net::TcpListener::bind(config.ssh.listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {} for SSH: {error}", config.ssh.listen))?;
        let ssh_addr = listener.local_addr()?;
        let bastion = Arc::new(Bastion::new(
            ssh_config,
            users.clone(),
            agent.clone(),
            live,
            host_key,
            client_key,
        ));
        let (health_addr, mut tasks) = serve_health(config, &agent, &shutdown).await?;
        tasks.push(tokio::spawn(ssh::serve(
            Arc::clone(&bastion),
            listener,
            shutdown.clone(),
        )));
        tasks.push(users.watch(config.ssh.users_reload_interval, shutdown.clone()));
        let (web_addr, web) = match start_web(config, &users, &agent, web_sessions, &shutdown).await? {
            Some((addr, proxy, task)) => {
                tasks.push(task);
                (Some(addr), Some(proxy))
            }
            None => (None, None),
        };
        tracing::info!(%ssh_addr, gateway_id = %config.registry.gateway_id, registry = %config.registry.url, "SSH gateway listening");
        Ok(Self {
            ssh_addr,
            health_addr,
            web_addr,
            web,
            agent,
            bastion,
            commands,
            tasks,
            shutdown,
        })
    }

    /// The public key targets must accept (a line for their `authorized_keys`).
    pub fn client_public_key(&self) -> String {
        keys::openssh_public(self.bastion.client_key.public_key())
    }

    /// Stops listening, ends the live sessions (telling their users), and leaves the registry cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.agent.shutdown().await;
    }
}

fn agent_config(config: &GatewayConfig) -> AgentConfig {
    let mut agent_config = AgentConfig::new(config.registry.url.clone(), config.registry.gateway_id.clone())
        .with_credential(config.registry.credential.clone());
    agent_config.fail_mode = match config.registry.fail_mode {
        FailModeSetting::BestEffort => FailMode::BestEffort,
        FailModeSetting::Strict => FailMode::Strict,
    };
    agent_config.link_grace = config.registry.link_grace;
    agent_config.admission_timeout = config.registry.admission_timeout;
    agent_config.agent_version = format!("vigil-gateway/{}", env!("CARGO_PKG_VERSION"));
    agent_config
}

/// The built-in toy shell (`ssh.demo_target`), started, as a target.
async fn demo_target(
    client_key: &russh::keys::PrivateKey,
    shutdown: &CancellationToken,
) -> anyhow::Result<crate::config::TargetConfig> {
    let target = crate::demo::target::start(
        "127.0.0.1:0".parse()?,
        client_key.public_key().clone(),
        shutdown.clone(),
    )
    .await?;
    Ok(crate::config::TargetConfig {
        name: crate::demo::target::DEMO_RESOURCE.into(),
        address: target.addr.to_string(),
        user: crate::demo::target::DEMO_USER.into(),
        host_key: target.host_key,
        groups: Vec::new(),
    })
}

/// `grpc.health.v1`, SERVING while the link to the registry is up (admissions need it): where it
/// listens, and its tasks.
async fn serve_health(
    config: &GatewayConfig,
    agent: &Agent,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let health = Server::new(config.server.clone());
    let readiness = health.readiness();
    let health_listener = vigil_runtime::server::bind(config.server.listen).await?;
    let health_addr = health_listener.local_addr()?;
    let health_shutdown = shutdown.clone();
    let mut link_states = agent.state();
    let readiness_shutdown = shutdown.clone();
    let tasks = vec![
        tokio::spawn(async move {
            if let Err(error) = health.serve(health_listener, health_shutdown).await {
                tracing::error!(%error, "the health server stopped");
            }
        }),
        tokio::spawn(async move {
            loop {
                let up = matches!(*link_states.borrow_and_update(), LinkState::Connected { .. });
                readiness.set_all(up).await;
                tokio::select! {
                    () = readiness_shutdown.cancelled() => return,
                    changed = link_states.changed() => if changed.is_err() { return },
                }
            }
        }),
    ];
    Ok((health_addr, tasks))
}

/// The web proxy, when `web.enabled` (with the demo application as a resource when `web.demo_app`):
/// where it listens, the proxy, and its task.
async fn start_web(
    config: &GatewayConfig,
    users: &Users,
    agent: &Agent,
    sessions: Arc<WebSessions>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<(SocketAddr, Arc<WebProxy>, JoinHandle<()>)>> {
    if !config.web.enabled {
        return Ok(None);
    }
    let mut web = config.web.clone();
    if web.demo_app {
        let headers = (web.upstream_user_header.clone(), web.upstream_groups_header.clone());
        let app = crate::web::demo_app::start("127.0.0.1:0".parse()?, headers, shutdown.clone()).await?;
        web.resources.push(crate::config::WebResourceConfig {
            name: crate::web::demo_app::DEMO_WEB_RESOURCE.into(),
            upstream: format!("http://{app}"),
            hosts: vec![format!("{}.localhost", crate::web::demo_app::DEMO_WEB_RESOURCE)],
            groups: Vec::new(),
        });
        if web.default_resource.is_empty() {
            web.default_resource = crate::web::demo_app::DEMO_WEB_RESOURCE.into();
        }
    }
    let settings = WebSettings::new(&web).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(web.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {} for the web proxy: {error}", web.listen))?;
    let addr = listener.local_addr()?;
    if !web.dev_password.is_empty() {
        tracing::warn!("web.dev_password is set: HTTP basic auth with a shared password is for development only");
    }
    let proxy = Arc::new(WebProxy::new(settings, users.clone(), agent.clone(), sessions));
    let task = tokio::spawn(crate::web::serve(Arc::clone(&proxy), listener, shutdown.clone()));
    tracing::info!(%addr, resources = web.resources.len(), "web proxy listening");
    Ok(Some((addr, proxy, task)))
}
