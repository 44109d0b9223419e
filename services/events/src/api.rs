//! `vigil.v1.EventsService` over gRPC: a thin adapter around [`Relays`]. The auth layer has
//! already checked the method's rule (`events:read` to list, `events:test` to send).

use tonic::{Request, Response, Status};
use vigil_proto::timestamp_from_millis;
use vigil_proto::v1 as pb;
use vigil_proto::v1::events_service_server::{EventsService, EventsServiceServer};

use crate::status::{Relays, SinkStatus};

/// The gRPC service, over every relay of the process.
pub struct EventsApi {
    relays: Relays,
}

impl EventsApi {
    pub fn server(relays: Relays) -> EventsServiceServer<Self> {
        EventsServiceServer::new(Self { relays })
    }
}

#[tonic::async_trait]
impl EventsService for EventsApi {
    async fn list_sinks(&self, _: Request<pb::ListSinksRequest>) -> Result<Response<pb::ListSinksResponse>, Status> {
        let sinks = self.relays.sinks().await?.into_iter().map(sink_to_proto).collect();
        Ok(Response::new(pb::ListSinksResponse { sinks }))
    }

    async fn test_sink(&self, request: Request<pb::TestSinkRequest>) -> Result<Response<pb::TestSinkResponse>, Status> {
        let delivery = self.relays.test(&request.get_ref().sink).await?;
        Ok(Response::new(pb::TestSinkResponse {
            service: delivery.service,
            event_id: delivery.event_id,
            elapsed_ms: delivery.elapsed_ms,
        }))
    }
}

fn sink_to_proto(sink: SinkStatus) -> pb::SinkStatus {
    pb::SinkStatus {
        service: sink.service,
        name: sink.name,
        kind: sink.kind.to_owned(),
        target: sink.target,
        types: sink.types,
        min_risk: sink.min_risk,
        delivered: sink.delivered,
        failed: sink.failed,
        backlog: sink.backlog,
        oldest_pending_at: sink.oldest_pending_at.map(timestamp_from_millis),
        last_error: sink.last_error,
        last_error_at: sink.last_error_at.map(timestamp_from_millis),
        last_delivered_at: sink.last_delivered_at.map(timestamp_from_millis),
        holder: sink.holder,
        lease_until: sink.lease_until.map(timestamp_from_millis),
    }
}
