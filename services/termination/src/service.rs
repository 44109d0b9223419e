//! The termination service's domain logic, transport-agnostic: the gRPC API and the all-in-one
//! binary both call [`Terminator`].

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use vigil_clients::SessionDirectory;
use vigil_core::validate;
use vigil_proto::v1 as pb;
use vigil_runtime::bus::ControlBus;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::convert::{command_to_proto, count, termination_to_proto};
use crate::domain::{CommandOutcome, CommandReport, DeliveryState, EndReason, TerminationQuery};
use crate::now_millis;
use crate::order::Order;
use crate::routes::SessionRoutes;
use crate::settings::TerminationSettings;
use crate::store::TerminationStore;

/// The detail recorded for a command its gateway answered NOT_FOUND without saying more.
pub const NOT_HELD: &str = "NOT_FOUND: the gateway no longer held the session (it had ended)";
/// Most reports accepted in one call.
const MAX_REPORTS: usize = 100_000;

/// Ends sessions and keeps the record.
#[derive(Clone)]
pub struct Terminator {
    store: Arc<dyn TerminationStore>,
    directory: Arc<dyn SessionDirectory>,
    bus: Arc<dyn ControlBus>,
    settings: TerminationSettings,
    /// Where live sessions are, followed from the registry's announcements (see `routes`).
    routes: Arc<SessionRoutes>,
}

impl Terminator {
    pub fn new(
        store: Arc<dyn TerminationStore>,
        directory: Arc<dyn SessionDirectory>,
        bus: Arc<dyn ControlBus>,
        settings: TerminationSettings,
    ) -> Self {
        Self {
            store,
            directory,
            bus,
            settings,
            routes: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn TerminationStore> {
        &self.store
    }

    pub fn bus(&self) -> &Arc<dyn ControlBus> {
        &self.bus
    }

    /// Where selectors are resolved (the registry).
    pub fn directory(&self) -> &Arc<dyn SessionDirectory> {
        &self.directory
    }

    pub fn settings(&self) -> &TerminationSettings {
        &self.settings
    }

    /// The in-memory route of live sessions; kept by [`crate::routes::follow`], which
    /// `app::start_redelivery` starts.
    pub fn routes(&self) -> &Arc<SessionRoutes> {
        &self.routes
    }

    /// Ends the sessions `request.selector` covers, on behalf of `actor` (see `issue` for how).
    pub async fn terminate(&self, actor: &str, request: &pb::TerminateRequest) -> ServiceResult<pb::Termination> {
        let order = Order::new(actor, request)?;
        let commands = self.issue(&order).await?;
        let termination = &order.termination;
        crate::metrics::kills_issued(
            commands
                .iter()
                .filter(|command| command.state == DeliveryState::Pending)
                .count(),
        );
        tracing::info!(
            termination = %termination.id,
            actor,
            reason = ?termination.reason,
            sessions = commands.len(),
            "termination issued"
        );
        Ok(termination_to_proto(termination, &count(&commands), &commands))
    }

    /// One termination with the delivery state of each command.
    pub async fn get(&self, id: &str) -> ServiceResult<pb::Termination> {
        let id = uuid_text("id", id)?;
        let (termination, commands) = self
            .store
            .get(&id)
            .await?
            .ok_or_else(|| ServiceError::not_found("termination", id))?;
        Ok(termination_to_proto(&termination, &count(&commands), &commands))
    }

    /// The audit trail.
    pub async fn list(&self, request: &pb::ListTerminationsRequest) -> ServiceResult<pb::ListTerminationsResponse> {
        let reason = match EndReason::try_from(request.reason) {
            Ok(EndReason::Unspecified) => None,
            Ok(reason) => Some(reason),
            Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "reason {} is not a known end reason",
                    request.reason
                )));
            }
        };
        let session_id = match request.session_id.as_str() {
            "" => None,
            id => Some(validate::session_id("session_id", id)?),
        };
        let query = TerminationQuery {
            actor: validate::optional_name("actor", &request.actor)?,
            reason,
            session_id,
            since: validate::optional_timestamp("since", request.since.as_ref())?,
            limit: validate::page_size(request.page_size)?,
            before: match request.page_token.as_str() {
                "" => None,
                token => Some(decode_page_token(token)?),
            },
        };
        let page = self.store.list(&query).await?;
        Ok(pb::ListTerminationsResponse {
            terminations: page
                .terminations
                .iter()
                .map(|(termination, counts)| termination_to_proto(termination, counts, &[]))
                .collect(),
            next_page_token: page.next.map(|(at, id)| encode_page_token(at, &id)).unwrap_or_default(),
        })
    }

    /// Commands a gateway has yet to acknowledge.
    pub async fn pending_for_gateway(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>> {
        let gateway_id = validate::gateway_id("gateway_id", gateway_id)?;
        let commands = self.store.open_commands_for_gateway(&gateway_id).await?;
        Ok(commands.iter().map(command_to_proto).collect())
    }

    /// What registry replicas saw happen to commands.
    pub async fn apply_reports(&self, reports: &[pb::CommandReport]) -> ServiceResult<u64> {
        if reports.len() > MAX_REPORTS {
            return Err(ServiceError::invalid(format!(
                "{} reports in one call; at most {MAX_REPORTS} are allowed",
                reports.len()
            )));
        }
        let now = now_millis();
        let reports = reports
            .iter()
            .enumerate()
            .map(|(index, report)| {
                let field = |name: &str| format!("reports[{index}].{name}");
                let state = match DeliveryState::try_from(report.state) {
                    Ok(state @ (DeliveryState::Delivered | DeliveryState::Acknowledged)) => state,
                    _ => {
                        return Err(ServiceError::invalid(format!(
                            "{} must be DELIVERED or ACKNOWLEDGED",
                            field("state")
                        )));
                    }
                };
                let outcome = CommandOutcome::try_from(report.outcome).map_err(|_| {
                    ServiceError::invalid(format!(
                        "{} {} is not a known outcome",
                        field("outcome"),
                        report.outcome
                    ))
                })?;
                if state == DeliveryState::Acknowledged && outcome == CommandOutcome::Unspecified {
                    return Err(ServiceError::invalid(format!(
                        "{} is required with ACKNOWLEDGED",
                        field("outcome")
                    )));
                }
                let mut detail = validate::optional_name(&field("detail"), &report.detail)?.unwrap_or_default();
                if outcome == CommandOutcome::NotFound && detail.is_empty() {
                    // A kill that found its session gone: it had ended (a stale route, or a race).
                    detail = NOT_HELD.to_owned();
                }
                Ok(CommandReport {
                    command_id: uuid_text(&field("command_id"), &report.command_id)?,
                    gateway_id: validate::gateway_id(&field("gateway_id"), &report.gateway_id)?,
                    state,
                    outcome,
                    detail,
                    at: validate::optional_timestamp(&field("at"), report.at.as_ref())?.map_or(now, |at| at.min(now)),
                })
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        self.store.apply_reports(&reports).await
    }
}

fn uuid_text(field: &str, value: &str) -> ServiceResult<String> {
    if value.is_empty() {
        return Err(ServiceError::invalid(format!("{field} must not be empty")));
    }
    uuid::Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ServiceError::invalid(format!("{field} is not an id (a UUID)")))
}

fn encode_page_token(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// The (created_at, id) cursor of a `ListTerminations` page token; what is not one is `InvalidArgument`.
pub fn decode_page_token(token: &str) -> ServiceResult<(i64, String)> {
    let invalid = || ServiceError::invalid("page_token was not issued by this server; start again without it");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse().map_err(|_| invalid())?;
    let id = uuid::Uuid::parse_str(id)
        .map_err(|_| invalid())?
        .hyphenated()
        .to_string();
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(decode_page_token(&encode_page_token(42, &id)).unwrap(), (42, id));
        for garbage in ["", "xyz", "MTI6bm90LWEtdXVpZA"] {
            assert!(matches!(
                decode_page_token(garbage),
                Err(ServiceError::InvalidArgument(_))
            ));
        }
    }
}
