//! `events sinks` and `events test`: the requests and what is printed.

use std::io::Write;

use chrono::Local;
use tonic::Code;
use vigil_proto::v1::SinkStatus;

use super::{TestSinkArgs, json, render};
use crate::client::Events;
use crate::error::CliError;
use crate::output::{Data, Grid, Printer};

/// Every sink of every relay the servers run. The all-in-one answers for its three relays at one
/// address; split services each for their own. A row is one (service, sink), never twice.
pub(crate) async fn list_sinks(servers: &[Events], p: &mut Printer<'_>) -> Result<(), CliError> {
    let mut sinks: Vec<SinkStatus> = Vec::new();
    for server in servers {
        for sink in server.list_sinks().await? {
            if !sinks
                .iter()
                .any(|known| known.service == sink.service && known.name == sink.name)
            {
                sinks.push(sink);
            }
        }
    }
    sinks.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    if p.is_human() {
        let table = render::sinks_table(&sinks, p.is_wide(), &Local::now());
        let table = crate::color::rows(&table, p.color, |row| {
            crate::color::failure_style(
                sinks
                    .get(row)
                    .is_some_and(|sink| sink.backlog > 0 && !sink.last_error.is_empty()),
            )
        });
        p.table(&table)?;
        p.note(&render::sinks_footer(&sinks))?;
        return Ok(());
    }
    // A sink name, once: the all-in-one's relays share their sinks.
    let mut names: Vec<String> = sinks.iter().map(|sink| format!("sink/{}", sink.name)).collect();
    names.sort_unstable();
    names.dedup();
    p.data(
        Data {
            json: &json::sinks(&sinks),
            names,
            csv: Some(sinks_grid(&sinks)),
        },
        "a sink list",
    )
}

fn sinks_grid(sinks: &[SinkStatus]) -> Grid {
    let mut grid = Grid::new(&[
        "service",
        "name",
        "kind",
        "target",
        "types",
        "min_risk",
        "delivered",
        "failed",
        "backlog",
        "oldest_pending_at",
        "last_error",
        "last_error_at",
        "last_delivered_at",
    ]);
    let time = |ts: Option<&prost_types::Timestamp>| crate::json::timestamp(ts).as_str().unwrap_or_default().to_owned();
    for sink in sinks {
        grid.rows.push(vec![
            sink.service.clone(),
            sink.name.clone(),
            sink.kind.clone(),
            sink.target.clone(),
            sink.types.join(" "),
            sink.min_risk.map(|min| min.to_string()).unwrap_or_default(),
            sink.delivered.to_string(),
            sink.failed.to_string(),
            sink.backlog.to_string(),
            time(sink.oldest_pending_at.as_ref()),
            sink.last_error.clone(),
            time(sink.last_error_at.as_ref()),
            time(sink.last_delivered_at.as_ref()),
        ]);
    }
    grid
}

/// Sends the test event through the first server whose relays have the sink (split services may
/// configure different sinks; the all-in-one's relays share theirs, so it is sent once).
pub(crate) async fn test_sink(servers: &[Events], args: &TestSinkArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let mut not_found = None;
    for server in servers {
        match server.test_sink(args.sink.clone()).await {
            Ok(answer) => {
                if p.is_human() {
                    write!(p, "{}", render::tested(&args.sink, &answer))?;
                    return Ok(());
                }
                return p.data(
                    Data {
                        json: &json::tested(&args.sink, &answer),
                        names: vec![format!("sink/{}", args.sink)],
                        csv: None,
                    },
                    "`events test`",
                );
            }
            Err(error) if error.server_code() == Some(Code::NotFound) => not_found = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(not_found.unwrap_or_else(|| CliError::Usage("no server to send the test event through".to_owned())))
}
