//! Leadership among policy replicas: a lease row in the database, taken and renewed with one
//! conditional UPSERT (see `store::sql::lease`).
//!
//! Expiry is judged by the database's clock, so replicas need not agree on the time. A holder
//! counts its own term on the local monotonic clock from the moment it *sent* the renewal: the
//! database set the expiry later than that, so the holder's idea of its term ends before the
//! database's does. It renews every third of the TTL and considers itself leader for two thirds
//! after each successful renewal, leaving a third of the TTL as margin for an action in flight.
//! A renewal that fails or is refused ends the term at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_runtime::backoff::Backoff;

use crate::store::PolicyStore;

/// The name of the sweeper's lease row.
pub const SWEEPER_LEASE: &str = "sweeper";

/// A period of uninterrupted leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// Counts from 1 for each time this holder gained the lease.
    pub number: u64,
    /// Leadership is certain until then (local monotonic clock).
    pub valid_until: Instant,
}

/// Whether this holder leads now; cheap to clone and ask.
#[derive(Debug, Clone)]
pub struct Leadership {
    term: watch::Receiver<Option<Term>>,
}

impl Leadership {
    /// The term in force, if any.
    pub fn current(&self) -> Option<Term> {
        (*self.term.borrow()).filter(|term| Instant::now() < term.valid_until)
    }

    /// Whether term `number` is still in force.
    pub fn holds(&self, number: u64) -> bool {
        self.current().is_some_and(|term| term.number == number)
    }

    /// Waits until a term in force is not term `known`: leadership gained (or gained again), so
    /// the work of a leader starts at once rather than at its next tick.
    pub async fn new_term(&mut self, known: Option<u64>) {
        let fresh = |term: &Option<Term>| {
            term.is_some_and(|term| Some(term.number) != known && Instant::now() < term.valid_until)
        };
        if self.term.wait_for(fresh).await.is_err() {
            // The keeper has stopped: no term will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Takes and keeps a lease for one holder.
pub struct LeaseKeeper {
    store: Arc<dyn PolicyStore>,
    name: String,
    holder: String,
    ttl: Duration,
}

impl LeaseKeeper {
    pub fn new(store: Arc<dyn PolicyStore>, name: impl Into<String>, holder: impl Into<String>, ttl: Duration) -> Self {
        Self {
            store,
            name: name.into(),
            holder: holder.into(),
            ttl,
        }
    }

    /// The leadership this keeper will maintain once [`LeaseKeeper::run`] runs.
    pub fn leadership(&self) -> (watch::Sender<Option<Term>>, Leadership) {
        let (sender, receiver) = watch::channel(None);
        (sender, Leadership { term: receiver })
    }

    /// Tries to take the lease, then keeps renewing it, every third of the TTL until `stop`; then
    /// gives it up, so a successor need not wait for it to expire. Not holding it, tries again
    /// every tenth of the TTL or so (jittered, so standbys do not ask in step): a dead holder's
    /// lease is taken within about a tenth of the TTL of its expiry, not a third.
    pub async fn run(self, term: watch::Sender<Option<Term>>, stop: CancellationToken) {
        let every = self.ttl / 3;
        let mut standby = Backoff::new(self.ttl / 10, self.ttl / 10);
        let mut number = 0;
        let mut held = false;
        loop {
            let sent_at = Instant::now();
            match self.store.acquire_lease(&self.name, &self.holder, self.ttl).await {
                Ok(true) => {
                    if !held {
                        number += 1;
                        held = true;
                        tracing::info!(lease = %self.name, holder = %self.holder, term = number, "leading");
                    }
                    term.send_replace(Some(Term {
                        number,
                        valid_until: sent_at + self.ttl - every,
                    }));
                }
                Ok(false) => {
                    if held {
                        tracing::warn!(lease = %self.name, holder = %self.holder, "lease taken over; no longer leading");
                    }
                    held = false;
                    term.send_replace(None);
                }
                Err(error) => {
                    if held {
                        tracing::warn!(lease = %self.name, holder = %self.holder, %error, "could not renew the lease; stepping down");
                    } else {
                        tracing::debug!(lease = %self.name, %error, "could not try the lease");
                    }
                    held = false;
                    term.send_replace(None);
                }
            }
            let wait = if held { every } else { standby.fail() };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        term.send_replace(None);
        if held {
            match self.store.release_lease(&self.name, &self.holder).await {
                Ok(()) => tracing::info!(lease = %self.name, holder = %self.holder, "lease released"),
                Err(error) => {
                    tracing::warn!(lease = %self.name, %error, "could not release the lease; it will expire")
                }
            }
        }
    }
}
