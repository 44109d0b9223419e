//! `gateways list`: the gateways the registry knows, with their connection state.

use chrono::{DateTime, Local, TimeZone};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vigil_proto::v1::{Gateway, ListGatewaysRequest};

use crate::args::GlobalArgs;
use crate::client::Registry;
use crate::error::CliError;
use crate::format;
use crate::json::timestamp;
use crate::output::{Data, Grid, Printer};
use crate::render::table;

#[derive(Debug, Subcommand)]
pub enum GatewaysCommand {
    /// List gateways with their connection state.
    List(GatewaysListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct GatewaysListArgs {
    /// Only gateways with an open link.
    #[arg(long)]
    pub connected: bool,
}

impl GatewaysListArgs {
    pub fn to_request(&self) -> ListGatewaysRequest {
        ListGatewaysRequest {
            connected_only: self.connected,
        }
    }
}

pub(crate) async fn list_gateways(
    registry: &Registry,
    args: &GatewaysListArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let gateways = registry.list_gateways(args.to_request()).await?.gateways;
    if p.is_human() {
        let table = gateways_table(&gateways, &Local::now());
        let table = crate::color::rows(&table, p.color, |row| {
            crate::color::failure_style(gateways.get(row).is_some_and(|g| !g.connected))
        });
        p.table(&table)?;
        p.note(&gateways_footer(&gateways))?;
    } else {
        let mut grid = Grid::new(&[
            "id",
            "connected",
            "live_sessions",
            "last_seen_at",
            "agent_version",
            "replica",
        ]);
        for g in &gateways {
            grid.rows.push(vec![
                g.id.clone(),
                g.connected.to_string(),
                g.live_sessions.to_string(),
                timestamp(g.last_seen_at.as_ref())
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                g.agent_version.clone(),
                g.replica.clone(),
            ]);
        }
        p.data(
            Data {
                json: &gateways_json(&gateways),
                names: gateways.iter().map(|g| format!("gateway/{}", g.id)).collect(),
                csv: Some(grid),
            },
            "a gateway list",
        )?;
    }
    Ok(())
}

/// The gateways table; its first line is the header, empty when there are none.
pub fn gateways_table<Tz: TimeZone>(gateways: &[Gateway], now: &DateTime<Tz>) -> String {
    if gateways.is_empty() {
        return String::new();
    }
    let mut table = table(&["GATEWAY", "CONNECTED", "SESSIONS", "LAST SEEN", "AGENT", "REPLICA"]);
    for gateway in gateways {
        let last_seen = if gateway.last_seen_at.is_some() {
            format::ago(gateway.last_seen_at.as_ref(), now)
        } else {
            "never".to_owned()
        };
        table.add_row(vec![
            format::or_none(&gateway.id).to_owned(),
            if gateway.connected { "yes" } else { "no" }.to_owned(),
            gateway.live_sessions.to_string(),
            last_seen,
            format::or_none(&gateway.agent_version).to_owned(),
            format::or_none(&gateway.replica).to_owned(),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// How many gateways there are and how many are connected: for stderr.
pub fn gateways_footer(gateways: &[Gateway]) -> String {
    let connected = gateways.iter().filter(|g| g.connected).count();
    let noun = if gateways.len() == 1 { "gateway" } else { "gateways" };
    let none = if gateways.is_empty() {
        "No gateways known to the registry.\n"
    } else {
        ""
    };
    format!("{none}{} {noun}, {connected} connected\n", gateways.len())
}

pub fn gateway_json(g: &Gateway) -> Value {
    json!({
        "id": g.id,
        "connected": g.connected,
        "connected_at": timestamp(g.connected_at.as_ref()),
        "last_seen_at": timestamp(g.last_seen_at.as_ref()),
        "agent_version": g.agent_version,
        "live_sessions": g.live_sessions,
        "replica": g.replica,
    })
}

pub fn gateways_json(gateways: &[Gateway]) -> Value {
    json!({ "gateways": gateways.iter().map(gateway_json).collect::<Vec<_>>() })
}

/// Runs one `gateways` subcommand against the registry.
pub(crate) async fn run(command: &GatewaysCommand, global: &GlobalArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    match command {
        GatewaysCommand::List(args) => list_gateways(&Registry::connect(global).await?, args, p).await,
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::Gateway;

    use super::*;
    use crate::testing::*;

    #[test]
    fn gateways_table_shows_state_and_counts() {
        let gateways = [
            Gateway {
                id: "gw-eu-1".into(),
                connected: true,
                connected_at: at("2025-03-04T08:00:00+01:00"),
                last_seen_at: at("2025-03-04T11:58:00+01:00"),
                agent_version: "0.1.0".into(),
                live_sessions: 4,
                replica: "registry-0".into(),
            },
            Gateway {
                id: "gw-ap-1".into(),
                ..Gateway::default()
            },
        ];
        let text = gateways_table(&gateways, &now());
        let row = line_containing(&text, "gw-eu-1");
        for cell in ["yes", "4", "2m ago", "0.1.0", "registry-0"] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        let row = line_containing(&text, "gw-ap-1");
        assert!(row.contains("no") && row.contains("never"), "{row:?}");
        assert_eq!(gateways_footer(&gateways), "2 gateways, 1 connected\n");

        assert_eq!(gateways_table(&[], &now()), "");
        assert_eq!(
            gateways_footer(&[]),
            "No gateways known to the registry.\n0 gateways, 0 connected\n"
        );
    }
}
