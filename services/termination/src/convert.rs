//! Domain values → protobuf messages.

use vigil_proto::timestamp_from_millis;
use vigil_proto::v1 as pb;

use crate::domain::{CommandRecord, DeliveryCounts, SelectorRecord, TerminationRecord};

pub fn command_to_proto(command: &CommandRecord) -> pb::TerminateCommand {
    pb::TerminateCommand {
        command_id: command.id.clone(),
        termination_id: command.termination_id.clone(),
        session_id: command.session_id.clone(),
        reason: command.reason as i32,
        user_message: command.user_message.clone(),
        issued_at: Some(timestamp_from_millis(command.created_at)),
    }
}

pub fn command_state_to_proto(command: &CommandRecord) -> pb::TerminationCommand {
    pb::TerminationCommand {
        command_id: command.id.clone(),
        session_id: command.session_id.clone(),
        gateway_id: command.gateway_id.clone(),
        user: command.user.clone(),
        state: command.state as i32,
        detail: command.detail.clone(),
        attempts: command.attempts,
        acknowledged_at: command.acknowledged_at.map(timestamp_from_millis),
    }
}

pub fn selector_to_proto(selector: &SelectorRecord) -> pb::SessionSelector {
    use pb::session_selector::Target;
    let target = match selector {
        SelectorRecord::Ids(ids) => Target::SessionIds(pb::SessionIds { ids: ids.clone() }),
        SelectorRecord::User(user) => Target::User(user.clone()),
        SelectorRecord::Gateway(gateway) => Target::GatewayId(gateway.clone()),
        SelectorRecord::Resource(resource) => Target::ResourceName(resource.clone()),
        SelectorRecord::All { idle_only } => Target::All(pb::AllSessions { idle_only: *idle_only }),
        SelectorRecord::Group(group) => Target::Group(group.clone()),
        SelectorRecord::Device(device) => Target::Device(device.clone()),
        SelectorRecord::Cidr(cidr) => Target::Cidr(cidr.clone()),
    };
    pb::SessionSelector { target: Some(target) }
}

pub fn termination_to_proto(
    termination: &TerminationRecord,
    counts: &DeliveryCounts,
    commands: &[CommandRecord],
) -> pb::Termination {
    pb::Termination {
        id: termination.id.clone(),
        actor: termination.actor.clone(),
        selector: Some(selector_to_proto(&termination.selector)),
        reason: termination.reason as i32,
        user_message: termination.user_message.clone(),
        note: termination.note.clone(),
        created_at: Some(timestamp_from_millis(termination.created_at)),
        session_count: counts.total(),
        pending: counts.pending,
        delivered: counts.delivered,
        acknowledged: counts.acknowledged,
        failed: counts.failed,
        already_ended: counts.already_ended,
        commands: commands.iter().map(command_state_to_proto).collect(),
    }
}

/// Counts of a set of commands by state.
pub fn count(commands: &[CommandRecord]) -> DeliveryCounts {
    use crate::domain::DeliveryState;
    let mut counts = DeliveryCounts::default();
    for command in commands {
        match command.state {
            DeliveryState::Pending | DeliveryState::Unspecified => counts.pending += 1,
            DeliveryState::Delivered => counts.delivered += 1,
            DeliveryState::Acknowledged => counts.acknowledged += 1,
            DeliveryState::Failed => counts.failed += 1,
            DeliveryState::AlreadyEnded => counts.already_ended += 1,
        }
    }
    counts
}
