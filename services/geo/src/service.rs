//! The geo service's logic, transport-agnostic: the gRPC API and the all-in-one binary both call
//! [`Geo`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::address;
use crate::anomaly::{self, Start};
use crate::config::{AnomalyThresholds, GeoConfig};
use crate::domain::Sighting;
use crate::locator::Locator;
use crate::now_millis;
use crate::recording::Recorder;
use crate::store::HistoryStore;

/// Longest user name, device name and session id accepted.
const MAX_USER_LEN: usize = 512;
const MAX_DEVICE_LEN: usize = 256;
const MAX_SESSION_ID_LEN: usize = 128;
/// Most concurrent locations accepted in one request.
const MAX_CONCURRENT: usize = 10_000;

/// Locates addresses and scores session starts. Cheap to clone.
#[derive(Clone)]
pub struct Geo {
    locator: Locator,
    store: Arc<dyn HistoryStore>,
    thresholds: Arc<AnomalyThresholds>,
    recorder: Arc<Recorder>,
}

impl Geo {
    /// Opens the configured databases and watches them for replacement until `shutdown` (a task
    /// on the current tokio runtime). Fails on an invalid configuration or a database file that
    /// cannot be opened.
    pub fn open(config: &GeoConfig, store: Arc<dyn HistoryStore>, shutdown: CancellationToken) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let locator = Locator::open(&config.city_db, &config.asn_db)?;
        locator.watch(config.reload_interval, shutdown);
        Ok(Self::new(locator, store, config.thresholds.clone()))
    }

    /// A service on `locator` (whose watching, if any, the caller arranged).
    pub fn new(locator: Locator, store: Arc<dyn HistoryStore>, thresholds: AnomalyThresholds) -> Self {
        Self {
            locator,
            store,
            thresholds: Arc::new(thresholds),
            recorder: Arc::default(),
        }
    }

    pub fn locator(&self) -> &Locator {
        &self.locator
    }

    pub fn store(&self) -> &Arc<dyn HistoryStore> {
        &self.store
    }

    /// Waits until every sighting of `user` this service was asked to record is in the store
    /// (writes happen after `assess` answers).
    pub async fn settled(&self, user: &str) {
        self.recorder.settled(user).await;
    }

    /// Where `ip` is: see [`Locator::locate`].
    pub fn locate(&self, ip: &str) -> ServiceResult<pb::Location> {
        self.locator.locate(ip)
    }

    /// Locates a session start's address, scores the start against the user's history, and —
    /// when the request names the session — records it in that history (which keeps the user's
    /// newest `history_per_user` starts). Asking again about a recorded session scores it against
    /// the rest of the history and records nothing new.
    ///
    /// The recording is written after the answer, off the caller's path (see
    /// [`Geo::settled`]): one read of the history is all an assessment waits for.
    pub async fn assess(&self, request: &pb::AssessRequest) -> ServiceResult<pb::AssessResponse> {
        let user = text("user", &request.user, MAX_USER_LEN)?;
        if user.is_empty() {
            return Err(ServiceError::invalid("user is required"));
        }
        let address = address::parse("ip", &request.ip)?;
        let device = text("device", &request.device, MAX_DEVICE_LEN)?;
        let session_id = text("session_id", &request.session_id, MAX_SESSION_ID_LEN)?;
        check_concurrent(&request.concurrent_locations)?;
        let at = match &request.at {
            Some(at) => {
                vigil_proto::millis_from_timestamp(at).ok_or_else(|| ServiceError::invalid("at is not a valid time"))?
            }
            None => now_millis(),
        };

        let location = self.locator.locate_ip(address);
        let limit = u64::from(self.thresholds.history_per_user);
        // This user's previous start, if still being written, is part of the history.
        self.recorder.settled(user).await;
        let mut history = self.store.recent(user, limit).await?;
        history.retain(|sighting| session_id.is_empty() || sighting.session_id != session_id);
        let ip = address.to_string();
        let start = Start {
            at,
            ip: &ip,
            device,
            location: &location,
            concurrent: &request.concurrent_locations,
        };
        let risk = anomaly::assess(&start, &history, &self.thresholds, self.locator.can_locate());

        if !session_id.is_empty() {
            let sighting = Sighting {
                user: user.to_owned(),
                session_id: session_id.to_owned(),
                at,
                ip,
                device: device.to_owned(),
                location: location.clone(),
            };
            self.recorder.record(self.store.clone(), sighting, limit).await;
        }
        Ok(pb::AssessResponse {
            location: Some(location),
            risk: Some(risk),
        })
    }
}

/// `value` trimmed, at most `max` bytes long.
fn text<'a>(field: &str, value: &'a str, max: usize) -> ServiceResult<&'a str> {
    let value = value.trim();
    if value.len() > max {
        return Err(ServiceError::invalid(format!("{field} is longer than {max} bytes")));
    }
    Ok(value)
}

fn check_concurrent(locations: &[pb::Location]) -> ServiceResult<()> {
    if locations.len() > MAX_CONCURRENT {
        return Err(ServiceError::invalid(format!(
            "concurrent_locations holds more than {MAX_CONCURRENT} locations"
        )));
    }
    for (index, location) in locations.iter().enumerate() {
        if location.has_coordinates
            && !((-90.0..=90.0).contains(&location.latitude) && (-180.0..=180.0).contains(&location.longitude))
        {
            return Err(ServiceError::invalid(format!(
                "concurrent_locations[{index}] has coordinates off the globe ({}, {})",
                location.latitude, location.longitude
            )));
        }
    }
    Ok(())
}
