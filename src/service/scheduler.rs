//! Scheduled syncs: every connection is synced again once its last sync is older than the
//! interval plus a per-connection jitter (so connections added together do not all sync at
//! once, and every replica computes the same due time). Replicas sharing one database may all
//! run the scheduler: the sync lease lets only one of them start each sync.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::InventoryService;
use crate::domain::ConnectionId;
use crate::error::ErrorCode;

/// The subject recorded on syncs the scheduler starts.
pub const SCHEDULER: &str = "scheduler";

/// When the scheduler looks and how often connections are synced.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Time between two syncs of a connection (before jitter).
    pub interval: Duration,
    /// How often due connections are looked for.
    pub tick: Duration,
}

/// Up to a tenth of the interval, fixed per connection (from its id).
pub fn jitter(id: ConnectionId, interval: Duration) -> Duration {
    let spread = interval.as_millis() / 10;
    if spread == 0 {
        return Duration::ZERO;
    }
    let bits = id.0.as_u128();
    let folded = (bits as u64) ^ ((bits >> 64) as u64);
    Duration::from_millis(u64::try_from(u128::from(folded) % spread).unwrap_or(0))
}

/// Whether a connection whose last sync started at `last` (if ever) is due at `now`.
pub fn is_due(
    id: ConnectionId,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: Duration,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    let wait = interval + jitter(id, interval);
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    now >= last + wait
}

impl InventoryService {
    /// Starts the syncs that are due; returns how many it started. Errors are logged, not
    /// returned: one broken connection must not stop the others.
    pub async fn start_due_syncs(&self, interval: Duration) -> usize {
        let mut started = 0;
        let mut after = None;
        loop {
            let page = match self.connections().list_connections(after, 200).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler: listing connections failed");
                    return started;
                }
            };
            for c in &page {
                let last = match self.store().list_syncs(c.id, None, 1).await {
                    Ok(runs) => runs.first().map(|r| r.started_at),
                    Err(e) => {
                        tracing::warn!(connection_id = %c.id, error = %e, "scheduler: reading syncs failed");
                        continue;
                    }
                };
                if !is_due(c.id, last, Utc::now(), interval) {
                    continue;
                }
                match self.start(c.id, SCHEDULER, false).await {
                    Ok(_) => started += 1,
                    // Another replica (or a caller) got there first.
                    Err(e) if e.code == ErrorCode::SyncInProgress => {}
                    Err(e) => {
                        tracing::warn!(connection_id = %c.id, error = %e.message, "scheduler: sync not started");
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == 200 => after = Some(last.id),
                _ => return started,
            }
        }
    }

    /// Runs the scheduler until the task is dropped (the server's shutdown drops it).
    pub async fn run_schedule(self, schedule: Schedule) {
        let mut tick = tokio::time::interval(schedule.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.start_due_syncs(schedule.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_connections_within_a_tenth_of_the_interval() {
        let hour = Duration::from_secs(3600);
        let jitters: Vec<_> = (0..50).map(|_| jitter(ConnectionId::new(), hour)).collect();
        assert!(jitters.iter().all(|j| *j < hour / 10));
        let distinct: std::collections::BTreeSet<_> = jitters.iter().collect();
        assert!(distinct.len() > 40, "spread out: {distinct:?}");
        let id = ConnectionId::new();
        assert_eq!(
            jitter(id, hour),
            jitter(id, hour),
            "the same for every replica"
        );
    }

    #[test]
    fn a_connection_is_due_after_its_interval_and_jitter() {
        let id = ConnectionId::new();
        let hour = Duration::from_secs(3600);
        let now = Utc::now();
        assert!(is_due(id, None, now, hour), "never synced");
        assert!(!is_due(
            id,
            Some(now - chrono::Duration::minutes(59)),
            now,
            hour
        ));
        assert!(is_due(
            id,
            Some(now - chrono::Duration::minutes(67)),
            now,
            hour
        ));
    }
}
