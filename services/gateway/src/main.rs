//! `vigil-gateway`: the SSH bastion on the Vigil agent SDK.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_gateway::app::Gateway;
use vigil_gateway::config::GatewayConfig;

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil gateway: an SSH bastion and a web proxy whose every connection or browser session is a Vigil session"
)]
struct Cli {
    /// TOML configuration file; `VIGIL_*` environment variables override it (`VIGIL_SSH__LISTEN`).
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Print the effective configuration and exit.
    PrintConfig,
    /// Print the public key targets must accept (creating the key when missing) and exit.
    ClientKey,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: GatewayConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::PrintConfig => {
            print!("{}", vigil_runtime::config::describe(&config)?);
            Ok(())
        }
        Command::ClientKey => {
            let key = vigil_gateway::keys::load_or_create(&config.ssh.client_key, "vigil-gateway")?;
            println!("{}", vigil_gateway::keys::openssh_public(key.public_key()));
            Ok(())
        }
        Command::Serve => {
            let _telemetry = vigil_runtime::telemetry::init_telemetry(&config.log, &config.telemetry, "vigil-gateway")?;
            let shutdown = vigil_runtime::shutdown::shutdown_on_signal();
            let gateway = Gateway::start(&config, shutdown.clone()).await?;
            println!("vigil-gateway: SSH on {} (log in as user+target)", gateway.ssh_addr);
            if let Some(web_addr) = gateway.web_addr {
                println!("vigil-gateway: web proxy on http://{web_addr}/");
            }
            shutdown.cancelled().await;
            gateway.stop().await;
            Ok(())
        }
    }
}
