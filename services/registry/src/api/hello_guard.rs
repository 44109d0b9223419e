//! A per-peer budget of failed gateway hellos: credential guessing on the link costs a peer its
//! access for a while. A hello that fails (not sent in time, malformed, or not authenticated)
//! counts against the peer's address; once a peer has failed [`MAX_FAILED_HELLOS`] times within
//! [`FAILURE_WINDOW`], its links are refused with `RESOURCE_EXHAUSTED` before their hello is read
//! (so it cannot make the replica buffer a large message either) until the window ends.
//!
//! IPv6 peers are counted by their /64, which one host usually holds whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_runtime::{ServiceError, ServiceResult};

/// Failed hellos one peer may have within [`FAILURE_WINDOW`].
pub const MAX_FAILED_HELLOS: u32 = 10;
/// How long a peer's failures count.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Peers tracked before expired entries are swept (bounds the map under a spread-out attack).
const SWEEP_ABOVE: usize = 10_000;

/// Failures per peer.
#[derive(Default)]
pub(crate) struct HelloGuard {
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    since: Instant,
}

impl HelloGuard {
    /// Refuses a peer that used up its failures; lets everyone else (and unknown peers) try.
    pub(crate) fn admit(&self, peer: Option<IpAddr>) -> ServiceResult<()> {
        let Some(peer) = peer.map(key) else { return Ok(()) };
        let peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match peers.get(&peer) {
            Some(failures) if failures.count >= MAX_FAILED_HELLOS && failures.since.elapsed() < FAILURE_WINDOW => {
                let wait = FAILURE_WINDOW.saturating_sub(failures.since.elapsed());
                Err(ServiceError::ResourceExhausted(format!(
                    "too many failed gateway hellos from this address ({MAX_FAILED_HELLOS} within {}s); try again in {}s",
                    FAILURE_WINDOW.as_secs(),
                    wait.as_secs().max(1)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed hello against its peer.
    pub(crate) fn failed(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer.map(key) else { return };
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if peers.len() >= SWEEP_ABOVE {
            peers.retain(|_, failures| failures.since.elapsed() < FAILURE_WINDOW);
        }
        let failures = peers.entry(peer).or_insert_with(|| Failures {
            count: 0,
            since: Instant::now(),
        });
        if failures.since.elapsed() >= FAILURE_WINDOW {
            *failures = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        failures.count = failures.count.saturating_add(1);
    }
}

/// The address a peer is counted by: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6
/// by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_refused_after_its_failures_and_others_are_not() {
        let guard = HelloGuard::default();
        let guesser: IpAddr = "203.0.113.7".parse().expect("ip");
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        for _ in 0..MAX_FAILED_HELLOS {
            guard.admit(Some(guesser)).expect("still within its budget");
            guard.failed(Some(guesser));
        }
        assert!(matches!(
            guard.admit(Some(guesser)),
            Err(ServiceError::ResourceExhausted(_))
        ));
        guard.admit(Some(other)).expect("another peer");
        guard.admit(None).expect("a peer without an address");
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let guard = HelloGuard::default();
        for host in 0..MAX_FAILED_HELLOS {
            guard.failed(Some(format!("2001:db8:1:2::{host:x}").parse().expect("ip")));
        }
        let neighbour: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert!(guard.admit(Some(neighbour)).is_err());
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        guard.admit(Some(elsewhere)).expect("another /64");
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().expect("ip");
        assert_eq!(key(mapped), "198.51.100.1".parse::<IpAddr>().expect("ip"));
    }
}
