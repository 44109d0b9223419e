//! `vigil-geo`: one replica of the geo service, and the GeoIP database tools around it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_geo::Locator;
use vigil_geo::app::{self, GeoServiceConfig};
use vigil_runtime::service::{ServiceArgs, ServiceCommand, service_main};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil geo service: locates client addresses and scores session starts against each user's history"
)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Service(ServiceCommand),
    /// Locate addresses with the configured databases and print what they say.
    Locate {
        #[arg(required = true)]
        ips: Vec<String>,
    },
    /// Write the demo city and ASN databases (a few networks in real cities) into a directory.
    DemoDatabases {
        #[arg(long, default_value = "vigil-data/geoip")]
        dir: PathBuf,
    },
    /// Build an ASN database from ip-location-db ASN CSV files (`make geoip` uses this).
    ImportAsn {
        /// The database to write (replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
        /// `asn-ipv4.csv`, `asn-ipv6.csv`: `first,last,number,organization` per line.
        #[arg(required = true)]
        csv: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Service(ServiceCommand::Serve));
    // The database tools need no configuration (and must not trip over a broken one).
    match command {
        Command::DemoDatabases { dir } => {
            let (city, asn) = vigil_geo::write_demo_databases(&dir)?;
            println!(
                "city_db = {:?}\nasn_db = {:?}",
                city.display().to_string(),
                asn.display().to_string()
            );
            Ok(())
        }
        Command::ImportAsn { out, csv } => {
            let summary = vigil_geo::writer::import_asn_csv(&csv, &out)?;
            println!(
                "{}: {} ranges ({} in IPv4-alias networks left to the IPv4 records), {} bytes",
                out.display(),
                summary.ranges,
                summary.skipped,
                summary.bytes
            );
            Ok(())
        }
        Command::Locate { ips } => {
            let config: GeoServiceConfig = vigil_runtime::config::load(cli.service.config.as_deref(), "VIGIL_")?;
            let _logs = vigil_runtime::telemetry::init_logs(&config.log)?;
            let locator = Locator::open(&config.geo.city_db, &config.geo.asn_db)?;
            for ip in ips {
                match locator.locate(&ip) {
                    Ok(location) => println!("{ip}: {location:?}"),
                    Err(error) => println!("{ip}: {error}"),
                }
            }
            Ok(())
        }
        Command::Service(command) => {
            service_main(
                "vigil-geo",
                &cli.service,
                command,
                app::run,
                |config: GeoServiceConfig| async move { app::open_store(&config.database, true).await.map(drop) },
            )
            .await
        }
    }
}
