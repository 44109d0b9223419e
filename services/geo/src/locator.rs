//! [`Locator`]: an address in, a [`pb::Location`] out, from the GeoIP databases in use, which a
//! watcher replaces when their files are replaced on disk.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::{self as pb, LocationKind};
use vigil_runtime::ServiceResult;

use crate::address;
use crate::databases::{Databases, OpenError};

/// Locates addresses. Cheap to clone; clones share the databases (and see reloads).
#[derive(Clone, Debug)]
pub struct Locator {
    databases: Arc<ArcSwap<Databases>>,
}

impl Locator {
    /// Opens the city and ASN databases at these paths (either list may be empty). Without a city
    /// database every public address is "unknown location"; that is said once, here, in the log.
    pub fn open(city: &[PathBuf], asn: &[PathBuf]) -> Result<Self, OpenError> {
        let databases = Databases::open(city, asn)?;
        if !databases.has_city() {
            tracing::warn!(
                "no GeoIP city database configured (geo.city_db): public addresses will be \"unknown location\"; \
                 `make geoip` fetches one"
            );
        }
        Ok(Self {
            databases: Arc::new(ArcSwap::from_pointee(databases)),
        })
    }

    /// Where `ip` is. A malformed address is `InvalidArgument`; private and reserved addresses
    /// answer with kind PRIVATE, addresses the database does not know with kind UNKNOWN.
    pub fn locate(&self, ip: &str) -> ServiceResult<pb::Location> {
        Ok(self.locate_ip(address::parse("ip", ip)?))
    }

    /// Where `address` is; see [`Locator::locate`].
    pub fn locate_ip(&self, address: IpAddr) -> pb::Location {
        let address = address.to_canonical();
        if address::is_special(address) {
            return pb::Location {
                kind: LocationKind::Private as i32,
                ..pb::Location::default()
            };
        }
        self.databases.load().locate(address)
    }

    /// Whether a city database is loaded.
    pub fn can_locate(&self) -> bool {
        self.databases.load().has_city()
    }

    /// Reopens every database file replaced on disk since it was opened, now. Returns whether
    /// anything was reopened. (The watcher calls this every `reload_interval`.)
    pub fn reload(&self) -> bool {
        match self.databases.load().refreshed() {
            Some(refreshed) => {
                self.databases.store(Arc::new(refreshed));
                true
            }
            None => false,
        }
    }

    /// Checks for replaced database files every `interval` until `shutdown`.
    pub fn watch(&self, interval: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let locator = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                // A few `stat` calls, and an `mmap` when a file changed: short enough for a
                // runtime thread, but not an async operation, so off the reactor all the same.
                let reloading = locator.clone();
                if let Err(error) = tokio::task::spawn_blocking(move || reloading.reload()).await {
                    tracing::warn!(%error, "GeoIP reload check failed");
                }
            }
        })
    }
}
