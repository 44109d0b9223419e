//! The all-in-one's demo gateway: a [`Gateway`] with the toy shell ([`super::target`]) as its one target,
//! and, when asked, the demo web application behind the web proxy.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::target::{DEMO_RESOURCE, DEMO_USER, DemoTarget, start};
use crate::app::Gateway;
use crate::config::{GatewayConfig, TargetConfig};
use crate::keys;

/// A gateway with the toy shell as its one target, and a demo user whose key is written to disk:
/// what `vigil run` starts so a newcomer can open a real SSH session at once.
pub struct DemoGateway {
    pub gateway: Gateway,
    pub target: DemoTarget,
    /// The exact command that opens a session.
    pub ssh_command: String,
    /// The demo web application behind the web proxy, when it was asked for.
    pub web: Option<DemoWeb>,
}

/// The demo web application as a newcomer reaches it.
pub struct DemoWeb {
    /// Where to point a browser (`http://127.0.0.1:2280/`).
    pub url: String,
    /// The demo user's development password (basic auth; `dir/web_password`).
    pub password: String,
    /// The exact `curl` command that fetches the page.
    pub curl_command: String,
}

/// Starts the toy shell and a gateway in front of it, keeping keys and the users file in `dir`
/// (the demo user's key is `dir/demo_user_key`; the users file is written only when missing, so
/// users added to it stay). With `web_listen`, also the demo web application behind the web proxy
/// there (basic auth as the demo user with the password in `dir/web_password`).
pub async fn start_demo_gateway(
    dir: &std::path::Path,
    listen: SocketAddr,
    web_listen: Option<SocketAddr>,
    registry_url: &str,
    gateway_id: &str,
    credential: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<DemoGateway> {
    std::fs::create_dir_all(dir)?;
    let user_key_path = dir.join("demo_user_key");
    let user_key = keys::load_or_create(&user_key_path, "vigil demo user")?;
    let users_file = dir.join("users.toml");
    if !users_file.exists() {
        std::fs::write(
            &users_file,
            format!(
                "# Who may sign in to the demo gateway: name, groups, OpenSSH public keys. Re-read when it changes.\n\
                 [[user]]\nname = \"{DEMO_USER}\"\ngroups = [\"demo\"]\nkeys = [\"{}\"]\n",
                keys::openssh_public(user_key.public_key())
            ),
        )?;
    }
    let mut config = GatewayConfig::default();
    config.registry.url = registry_url.to_owned();
    config.registry.gateway_id = gateway_id.to_owned();
    config.registry.credential = credential.to_owned();
    config.ssh.listen = listen;
    // The all-in-one has its own health; the demo gateway's goes on any free port.
    config.server.listen = "127.0.0.1:0".parse()?;
    config.ssh.host_key = dir.join("host_key");
    config.ssh.client_key = dir.join("client_key");
    config.ssh.users_file = users_file;
    let client_key = keys::load_or_create(&config.ssh.client_key, "vigil-gateway")?;
    let target = start(
        "127.0.0.1:0".parse()?,
        client_key.public_key().clone(),
        shutdown.clone(),
    )
    .await?;
    config.ssh.targets = vec![TargetConfig {
        name: DEMO_RESOURCE.into(),
        address: target.addr.to_string(),
        user: DEMO_USER.into(),
        host_key: target.host_key.clone(),
        groups: Vec::new(),
    }];
    let web_password = match web_listen {
        Some(web_listen) => Some(demo_web(&mut config, dir, web_listen)?),
        None => None,
    };
    let gateway = Gateway::start(&config, shutdown).await?;
    let ssh_command = format!(
        "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {DEMO_USER}+{DEMO_RESOURCE}@{}",
        gateway.ssh_addr.port(),
        user_key_path.display(),
        gateway.ssh_addr.ip(),
    );
    let web = gateway.web_addr.zip(web_password).map(|(addr, password)| DemoWeb {
        url: format!("http://{addr}/"),
        curl_command: format!("curl -u {DEMO_USER}:{password} http://{addr}/"),
        password,
    });
    Ok(DemoGateway {
        gateway,
        target,
        ssh_command,
        web,
    })
}

/// Configures the web proxy with the demo web application; returns the demo user's development
/// password (kept in `dir/web_password`, made on first use).
fn demo_web(config: &mut GatewayConfig, dir: &std::path::Path, listen: SocketAddr) -> anyhow::Result<String> {
    let password_file = dir.join("web_password");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(password) if !password.trim().is_empty() => password.trim().to_owned(),
        _ => {
            let password = keys::random_password();
            keys::write_secret(&password_file, &format!("{password}\n"))?;
            password
        }
    };
    config.web.enabled = true;
    config.web.listen = listen;
    config.web.dev_password = password.clone();
    config.web.demo_app = true;
    Ok(password)
}
