//! How many change feeds (`WatchSessions` streams) are open, per caller and in all, so one caller
//! cannot hold the replica's memory, bus fan-out and (for snapshots) database pool hostage: a slot
//! is taken before the snapshot is read and given back when the stream ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vigil_runtime::{ServiceError, ServiceResult};

/// Open feeds, per caller and in all.
pub(crate) struct WatchLimits {
    per_caller: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_caller: HashMap<String, usize>,
}

/// One open feed; dropping it gives the slot back.
pub(crate) struct WatchSlot {
    limits: Arc<WatchLimits>,
    caller: String,
}

impl WatchLimits {
    pub(crate) fn new(per_caller: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_caller,
            total,
            open: Mutex::default(),
        })
    }

    /// A slot for `caller`'s new feed, or RESOURCE_EXHAUSTED saying which limit was hit.
    pub(crate) fn acquire(self: &Arc<Self>, caller: &str) -> ServiceResult<WatchSlot> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mine = open.by_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.per_caller {
            return Err(ServiceError::ResourceExhausted(format!(
                "you have {mine} change feeds (WatchSessions) open on this replica, the most one caller may \
                 (registry.watch_streams_per_caller); close one before watching again"
            )));
        }
        if open.total >= self.total {
            return Err(ServiceError::ResourceExhausted(format!(
                "this replica serves {} change feeds (WatchSessions), its most (registry.watch_streams_total); \
                 try again later or another replica",
                open.total
            )));
        }
        open.total += 1;
        *open.by_caller.entry(caller.to_owned()).or_default() += 1;
        Ok(WatchSlot {
            limits: self.clone(),
            caller: caller.to_owned(),
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_caller.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_caller.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_are_bounded_per_caller_and_in_all_and_slots_come_back() {
        let limits = WatchLimits::new(2, 3);
        let a1 = limits.acquire("a").expect("a's first");
        let _a2 = limits.acquire("a").expect("a's second");
        let refused = limits.acquire("a").err().expect("a's third");
        assert!(refused.to_string().contains("watch_streams_per_caller"), "{refused}");
        let _b1 = limits.acquire("b").expect("b's first");
        let refused = limits.acquire("c").err().expect("over the total");
        assert!(refused.to_string().contains("watch_streams_total"), "{refused}");
        drop(a1);
        let _c1 = limits.acquire("c").expect("a slot came back");
    }
}
