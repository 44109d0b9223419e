//! `vigil-chaos`: the fault suite. Starts the service binaries (two registry replicas behind a TCP
//! balancer, termination, two policy replicas, geo) as separate processes on a PostgreSQL and a
//! Redis of its own, runs simulated gateways in this process, strikes each fault (SIGKILL / SIGSTOP,
//! a cut network), and after it heals checks the invariants and times convergence. Prints one table;
//! exits non-zero when an invariant broke or convergence exceeded the bound.

mod balancer;
mod check;
mod cluster;
mod gateways;
mod infra;
mod process;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::cluster::Cluster;
use crate::report::Row;
use crate::scenarios::{Load, Scenario};

#[derive(Parser)]
#[command(about = "Vigil's fault suite: separate processes, real PostgreSQL and Redis, faults by SIGKILL and SIGSTOP")]
struct Cli {
    /// Repetitions of each scenario.
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Longest convergence (fault healed → everything converged) that passes, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    bound: Duration,
    /// Longest a service may keep answering SERVING once the database is gone.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    health_bound: Duration,
    /// Only these scenarios (repeatable); all by default.
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
    /// Simulated gateways per repetition.
    #[arg(long, default_value_t = 8)]
    gateways: usize,
    /// Sessions per gateway.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Where vigil-registry, vigil-termination, vigil-policy and vigil-geo are (default: beside
    /// this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the binary has no directory")?
            .to_owned(),
    };
    let scenarios = if cli.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        cli.scenario.clone()
    };
    let root = std::env::temp_dir().join(format!("vigil-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    // PostgreSQL (run as its own user) must reach its directory inside.
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    eprintln!("vigil-chaos: services and logs in {}", root.display());
    // The simulated gateways' agents log to gateways.log (RUST_LOG, default info).
    let agent_log = std::fs::File::create(root.join("gateways.log"))?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::sync::Mutex::new(agent_log))
        .with_ansi(false)
        .init();
    let mut cluster = Cluster::start(&root, &bin_dir).await?;
    let load = Load {
        gateways: cli.gateways,
        sessions: cli.sessions,
        health_bound: cli.health_bound,
    };
    let mut rows = Vec::new();
    for scenario in scenarios {
        let mut row = Row::new(scenario.name());
        for rep in 0..cli.reps {
            let outcome = scenarios::run(scenario, &mut cluster, rep, load)
                .await
                .with_context(|| format!("{}, repetition {}", scenario.name(), rep + 1))?;
            eprintln!(
                "  {} #{}: converged after {} (gateways {}, registry {}, termination {}{}){}",
                scenario.name(),
                rep + 1,
                outcome.convergence.map_or("never".into(), report::millis),
                report::millis(outcome.parts[0]),
                report::millis(outcome.parts[1]),
                report::millis(outcome.parts[2]),
                outcome.recovery.map_or(String::new(), |recovery| format!(
                    "; accepting connections after {}",
                    report::millis(recovery)
                )),
                if outcome.broken.is_empty() {
                    String::new()
                } else {
                    format!("; broken: {}", outcome.broken.join("; "))
                }
            );
            row.add(outcome);
        }
        rows.push(row);
    }
    drop(cluster);
    let table = report::table(&rows, cli.bound, load);
    println!("{table}");
    let failed = rows.iter().any(|row| !row.passed(cli.bound));
    if failed {
        eprintln!("vigil-chaos: FAILED (logs kept in {})", root.display());
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
