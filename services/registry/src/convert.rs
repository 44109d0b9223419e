//! Domain values → protobuf messages (and the few protobuf values the domain keeps as they are).

use vigil_proto::timestamp_from_millis;
use vigil_proto::v1 as pb;

use crate::domain::{EpochMillis, GatewayRecord, GeoLocation, RiskAssessment, RiskFlag, SessionRecord, SessionStats};

/// A session as the API shows it; `now` gives live sessions their duration.
pub fn session_to_proto(session: &SessionRecord, now: EpochMillis) -> pb::Session {
    pb::Session {
        id: session.id.clone(),
        user: session.user.clone(),
        gateway_id: session.gateway_id.clone(),
        resource_name: session.resource_name.clone(),
        resource_type: session.resource_type as i32,
        device: session.device.clone(),
        client_ip: session.client_ip.clone(),
        location: Some(location_to_proto(&session.location)),
        started_at: Some(timestamp_from_millis(session.started_at)),
        last_activity_at: Some(timestamp_from_millis(session.last_activity_at)),
        status: session.status as i32,
        ended_at: session.ended_at.map(timestamp_from_millis),
        end_reason: session.end_reason.map_or(0, |reason| reason as i32),
        end_detail: session.end_detail.clone(),
        risk: Some(risk_to_proto(&session.risk)),
        bytes_in: session.bytes_in,
        bytes_out: session.bytes_out,
        user_groups: session.user_groups.clone(),
        duration_seconds: session.duration_seconds(now),
    }
}

pub fn location_to_proto(location: &GeoLocation) -> pb::Location {
    let (latitude, longitude) = location.coordinates.unwrap_or_default();
    pb::Location {
        city: location.city.clone(),
        region: location.region.clone(),
        country_code: location.country_code.clone(),
        country_name: location.country_name.clone(),
        latitude,
        longitude,
        has_coordinates: location.coordinates.is_some(),
        accuracy_radius_km: location.accuracy_radius_km,
        time_zone: location.time_zone.clone(),
        asn: location.asn,
        asn_organization: location.asn_organization.clone(),
        kind: location.kind,
    }
}

pub fn location_from_proto(location: &pb::Location) -> GeoLocation {
    GeoLocation {
        kind: location.kind,
        city: location.city.clone(),
        region: location.region.clone(),
        country_code: location.country_code.clone(),
        country_name: location.country_name.clone(),
        coordinates: location
            .has_coordinates
            .then_some((location.latitude, location.longitude)),
        accuracy_radius_km: location.accuracy_radius_km,
        time_zone: location.time_zone.clone(),
        asn: location.asn,
        asn_organization: location.asn_organization.clone(),
    }
}

pub fn risk_to_proto(risk: &RiskAssessment) -> pb::Risk {
    pb::Risk {
        score: risk.score,
        assessed: risk.assessed,
        flags: risk
            .flags
            .iter()
            .map(|flag| pb::RiskFlag {
                code: flag.code.clone(),
                points: flag.points,
                explanation: flag.explanation.clone(),
            })
            .collect(),
    }
}

pub fn risk_from_proto(risk: &pb::Risk) -> RiskAssessment {
    RiskAssessment {
        assessed: risk.assessed,
        score: risk.score.min(100),
        flags: risk
            .flags
            .iter()
            .map(|flag| RiskFlag {
                code: flag.code.clone(),
                points: flag.points,
                explanation: flag.explanation.clone(),
            })
            .collect(),
    }
}

pub fn gateway_to_proto(gateway: &GatewayRecord) -> pb::Gateway {
    pb::Gateway {
        id: gateway.id.clone(),
        connected: gateway.connected,
        connected_at: Some(timestamp_from_millis(gateway.connected_at)),
        last_seen_at: Some(timestamp_from_millis(gateway.last_seen_at)),
        agent_version: gateway.agent_version.clone(),
        live_sessions: gateway.live_sessions,
        replica: gateway.replica.clone().unwrap_or_default(),
    }
}

pub fn stats_to_proto(stats: &SessionStats, now: EpochMillis) -> pb::SessionStats {
    pb::SessionStats {
        active: stats.active,
        idle: stats.idle,
        total_live_duration_seconds: stats.total_live_duration_seconds,
        by_type: stats
            .by_type
            .iter()
            .map(|(resource_type, live)| pb::TypeCount {
                resource_type: *resource_type as i32,
                live: *live,
            })
            .collect(),
        gateways_connected: stats.gateways_connected,
        ended_last_24h: stats.ended_since,
        flagged: stats.flagged,
        computed_at: Some(timestamp_from_millis(now)),
    }
}
