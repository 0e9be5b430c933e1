//! Publishing a snapshot on this replica: a sync is reported finished here only once this
//! replica answers from its snapshot, so a caller who saw the run finished reads its data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::ReadModel;
use crate::domain::ConnectionId;

/// A publish under way, from [`ReadModel::publishing`].
pub(in crate::store) struct Publishing {
    model: Arc<ReadModel>,
    id: ConnectionId,
}

impl Drop for Publishing {
    fn drop(&mut self) {
        let mut pending = self.model.pending();
        if let Some(n) = pending.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.id);
            }
        }
        drop(pending);
        self.model.published.notify_waiters();
    }
}

impl ReadModel {
    /// Marks a publish of `id` under way until the guard is dropped (after the new head is
    /// loaded, or the publish failed).
    pub(in crate::store) fn publishing(self: &Arc<Self>, id: ConnectionId) -> Publishing {
        *self.pending().entry(id).or_default() += 1;
        Publishing {
            model: self.clone(),
            id,
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, usize>> {
        self.publishing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (up to `limit`) until no publish of `id` is under way on this replica.
    pub(in crate::store) async fn settled(&self, id: ConnectionId, limit: Duration) {
        let wait = async {
            loop {
                // Created before the check: a wake-up between the two is not lost.
                let woken = self.published.notified();
                if !self.pending().contains_key(&id) {
                    return;
                }
                woken.await;
            }
        };
        // A stuck load must not hang the caller: past the limit it reads what is committed.
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_finished_run_is_read_once_this_replica_holds_its_snapshot() {
        let model = Arc::new(ReadModel::default());
        let (id, other) = (ConnectionId::new(), ConnectionId::new());
        let t = Instant::now();
        model.settled(id, Duration::from_secs(5)).await;
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "nothing under way"
        );

        let guard = model.publishing(id);
        let second = model.publishing(id);
        let waiter = tokio::spawn({
            let model = model.clone();
            async move {
                let t = Instant::now();
                model.settled(id, Duration::from_secs(5)).await;
                t.elapsed()
            }
        });
        // Another connection's publish does not hold this one up.
        let t = Instant::now();
        model.settled(other, Duration::from_secs(5)).await;
        assert!(t.elapsed() < Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(guard);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "one of two publishes is still under way"
        );
        drop(second);
        let waited = waiter.await.unwrap();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");

        // A publish that never ends holds a reader only up to the limit.
        let _stuck = model.publishing(id);
        let t = Instant::now();
        model.settled(id, Duration::from_millis(30)).await;
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
