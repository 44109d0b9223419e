//! What `vigil run` adds around the composition: keys and tokens made on first start, the simulated
//! gateways, the demo SSH gateway, and the welcome it prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil::config::{SimulationSettings, VigilConfig};
use vigil::{local_auth, use_demo_geoip};
use vigil_agent::simulate::{self, SimulationConfig};
use vigil_console::{SignInCodes, SignInIssuer};
use vigil_gateway::demo::DemoGateway;
use vigil_runtime::auth::AuthMode;

/// Where the all-in-one keeps its data (the SQLite default, the demo GeoIP databases, its secret and
/// administrator token).
const DATA_DIR: &str = "vigil-data";

/// Where the all-in-one keeps the demo GeoIP databases it writes.
const DEMO_GEOIP_DIR: &str = "vigil-data/geoip";

/// What `vigil run` made so that it works with zero set-up.
pub struct LocalSetup {
    /// The administrator token's file, when this process wrote one.
    pub admin_token: Option<PathBuf>,
    /// The simulated gateways' credentials (empty when authentication is off or they are off).
    pub gateway_credentials: BTreeMap<String, String>,
    /// The demo SSH gateway's credential (empty when authentication is off or it is off).
    pub demo_gateway_credential: String,
    /// The console's one-time sign-in links (enabled when this process made the keys).
    pub sign_in: Arc<SignInCodes>,
}

impl LocalSetup {
    /// Keys, tokens, credentials and demo GeoIP databases where the configuration names none.
    pub fn provision(config: &mut VigilConfig) -> anyhow::Result<Self> {
        let data_dir = Path::new(DATA_DIR);
        let admin_token = local_auth::provision(&mut config.auth, data_dir)?;
        local_auth::provision_page_token_key(&mut config.registry.page_token_key, data_dir)?;
        use_demo_geoip(&mut config.geo, Path::new(DEMO_GEOIP_DIR))?;
        let authenticating = config.auth.mode == AuthMode::Required;
        let gateway_ids: Vec<String> = (0..config.simulation.gateways)
            .map(simulate::data::gateway_id)
            .collect();
        let gateway_credentials = if config.simulation.enabled && authenticating {
            local_auth::simulated_gateway_credentials(&mut config.auth, &gateway_ids)
        } else {
            BTreeMap::new()
        };
        // The demo SSH gateway presents a credential of its own, made like the simulated gateways'.
        let demo_gateway_credential = if config.demo_gateway.enabled && authenticating {
            let id = &config.demo_gateway.gateway_id;
            local_auth::simulated_gateway_credentials(&mut config.auth, std::slice::from_ref(id))
                .remove(id)
                .unwrap_or_default()
        } else {
            String::new()
        };
        // The console signs people in with codes only when this process made the keys (a
        // configured deployment signs people in with its own tokens).
        let issuer = admin_token.as_ref().and_then(|_| {
            config.auth.hs256_secret.clone().map(|secret| SignInIssuer {
                secret,
                subject: local_auth::ADMIN_SUBJECT.to_owned(),
                roles: vec!["admin".to_owned()],
                token_ttl: local_auth::CONSOLE_TOKEN_TTL,
            })
        });
        Ok(Self {
            admin_token,
            gateway_credentials,
            demo_gateway_credential,
            sign_in: Arc::new(SignInCodes::new(issuer)),
        })
    }
}

/// The simulated gateways and the demo SSH gateway, when enabled.
pub struct Demos {
    simulation: Option<simulate::SimulationHandle>,
    demo_gateway: Option<DemoGateway>,
}

impl Demos {
    /// Starts what the configuration enables, against the all-in-one at `url`.
    pub async fn start(
        config: &VigilConfig,
        url: &str,
        local: &LocalSetup,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let simulation = if config.simulation.enabled {
            Some(start_simulation(config, url, local, shutdown.clone()).await?)
        } else {
            None
        };
        let demo_gateway = if config.demo_gateway.enabled {
            start_demo_gateway(config, url, local, shutdown).await
        } else {
            None
        };
        Ok(Self {
            simulation,
            demo_gateway,
        })
    }

    /// Stops the demo gateway and waits for the simulated gateways (stopped by the shutdown).
    pub async fn stop(self) {
        if let Some(demo) = self.demo_gateway {
            demo.gateway.stop().await;
        }
        if let Some(simulation) = self.simulation {
            simulation.wait().await;
        }
    }
}

/// The simulated gateways: real agents on real gRPC streams to this very server.
async fn start_simulation(
    config: &VigilConfig,
    url: &str,
    local: &LocalSetup,
    shutdown: CancellationToken,
) -> anyhow::Result<simulate::SimulationHandle> {
    let mut simulation_config = simulation_config(url, &config.simulation, local.gateway_credentials.clone());
    // Over TLS, the simulated gateways trust the CA of `tls.ca`.
    simulation_config.tls = config.tls.client_config()?;
    let simulation = simulate::run(simulation_config, shutdown).await?;
    tracing::info!(
        gateways = config.simulation.gateways,
        sessions_per_gateway = config.simulation.sessions_per_gateway,
        "simulated gateways started (set simulation.enabled = false to turn them off)"
    );
    Ok(simulation)
}

/// The demo SSH gateway; `None` (with a warning) when it cannot start: a taken port must not keep
/// the rest of Vigil from running.
async fn start_demo_gateway(
    config: &VigilConfig,
    url: &str,
    local: &LocalSetup,
    shutdown: CancellationToken,
) -> Option<DemoGateway> {
    let settings = &config.demo_gateway;
    let started = vigil_gateway::demo::start_demo_gateway(
        &settings.dir,
        settings.listen,
        settings.web_enabled.then_some(settings.web_listen),
        url,
        &settings.gateway_id,
        &local.demo_gateway_credential,
        shutdown,
    )
    .await;
    match started {
        Ok(demo) => Some(demo),
        Err(error) => {
            tracing::warn!(%error, "the demo SSH gateway did not start (demo_gateway.enabled = false turns it off)");
            None
        }
    }
}

/// What `vigil run` prints once everything is up: where it runs, how to authenticate, how to sign
/// in to the console.
pub fn print_welcome(config: &VigilConfig, url: &str, local: &LocalSetup, demos: &Demos) {
    println!("Vigil is running at {url} (database: {}).", config.database);
    if let Some(demo) = &demos.demo_gateway {
        println!("A real SSH session through the demo gateway (a toy shell; see it in sessionctl sessions list):");
        println!("  {}", demo.ssh_command);
        if let Some(web) = &demo.web {
            println!(
                "A web session through its web proxy (user demo, password {}): {}  or: {}",
                web.password, web.url, web.curl_command
            );
        }
    }
    match (&local.admin_token, config.auth.mode) {
        (Some(token_file), _) => {
            println!(
                "Callers authenticate. An admin token ({}) is in {}; sessionctl run from this directory uses it.",
                local_auth::ADMIN_SUBJECT,
                token_file.display()
            );
            println!(
                "For other tools: export VIGIL_TOKEN=$(cat {})  (grpcurl: -H \"authorization: Bearer $VIGIL_TOKEN\")",
                token_file.display()
            );
        }
        (None, AuthMode::Required) => println!("Callers authenticate with the keys and tokens configured in [auth]."),
        (None, AuthMode::Off) => {
            println!("Authentication is off (auth.mode = \"off\"): every caller may do everything.")
        }
    }
    println!("Console: {url}/");
    if local.sign_in.enabled() {
        let code = local.sign_in.issue(local_auth::SIGN_IN_CODE_TTL);
        println!("Sign in to the console (this link works once, within 24 h): {url}/#signin={code}");
    }
    println!("In another shell: cargo run --bin sessionctl -- sessions list");
}

/// The simulator's configuration for a registry at `registry_url`.
pub fn simulation_config(
    registry_url: &str,
    settings: &SimulationSettings,
    credentials: BTreeMap<String, String>,
) -> SimulationConfig {
    let mut config = SimulationConfig::new(registry_url);
    config.credential = Arc::new(move |gateway_id: &str| credentials.get(gateway_id).cloned().unwrap_or_default());
    config.gateways = settings.gateways;
    config.sessions_per_gateway = settings.sessions_per_gateway;
    config.idle_fraction = settings.idle_fraction;
    config.activity_interval = settings.activity_interval;
    config.churn = settings.churn;
    config.seed = settings.seed;
    config
}
