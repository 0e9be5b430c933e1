//! Idempotency keys of writes: the use cases behind the `Idempotency-Key` header (recording a
//! first request, waiting for one in progress, replaying or forgetting an answer). The HTTP
//! side (headers, the stored response's shape) is `crate::http::idempotency`; this knows only
//! subjects, keys, fingerprints and answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{AppError, ErrorCode};
use crate::store::IdempotencyStore;

/// How often expired keys are purged (by whichever request comes first after that).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How long to wait between looks at a key whose first request is still running.
const POLL: Duration = Duration::from_millis(25);

/// Idempotency keys: their store, how long they are remembered and how long a request
/// waits for the first one with its key. Cheap to clone.
#[derive(Clone)]
pub struct IdempotencyService {
    store: Arc<dyn IdempotencyStore>,
    ttl: Duration,
    wait: Duration,
    abandoned_after: Duration,
    next_purge: Arc<Mutex<tokio::time::Instant>>,
}

/// What a request with a key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// It is the first with its key: run it, then [`IdempotencyService::finish`].
    Run,
    /// An earlier request with the same key and body answered this (status, stored answer).
    Replay(u16, String),
}

impl IdempotencyService {
    /// Keys remembered for `ttl`. A request waits up to `wait` for the first request with its
    /// key (`OG_GRANT_LOCK_WAIT`); a key in progress for longer than `wait + lease` was
    /// abandoned by a process that died, and runs again.
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        ttl: Duration,
        wait: Duration,
        lease: Duration,
    ) -> Self {
        Self {
            store,
            ttl,
            wait,
            // Longer than the first request can live: it waits at most `wait` for its access,
            // then writes within its lease.
            abandoned_after: wait + lease,
            next_purge: Arc::new(Mutex::new(tokio::time::Instant::now())),
        }
    }

    /// Answered keys created before this are forgotten.
    fn expired_before(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX)
    }

    /// Whether this request should purge expired keys (at most once per [`PURGE_EVERY`]).
    fn purge_due(&self) -> bool {
        let now = tokio::time::Instant::now();
        let mut next = self.next_purge.lock().unwrap_or_else(|e| e.into_inner());
        if now < *next {
            return false;
        }
        *next = now + PURGE_EVERY;
        true
    }

    /// Records `key` of `subject` for the request `operation` with body `fingerprint`, or
    /// finds the earlier request with it: replays its answer, waits while it runs, or refuses
    /// a different request under the same key (409 `idempotency_key_reused`, or
    /// `idempotency_key_in_progress` when the wait ran out).
    pub async fn begin(
        &self,
        subject: &str,
        key: &str,
        operation: &str,
        fingerprint: &str,
    ) -> Result<Begun, AppError> {
        if self.purge_due() {
            // In the background: the request does not wait for the sweep. Expired keys are
            // also forgotten one by one below, so a failed purge only costs space.
            let (store, before) = (self.store.clone(), self.expired_before());
            tokio::spawn(async move {
                if let Err(e) = store.idempotency_purge(before).await {
                    tracing::warn!(error = %e, "purging expired idempotency keys failed");
                }
            });
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        let abandoned =
            chrono::Duration::from_std(self.abandoned_after).unwrap_or(chrono::Duration::MAX);
        loop {
            let rec = self
                .store
                .idempotency_begin(
                    subject,
                    key,
                    operation,
                    fingerprint,
                    Utc::now(),
                    self.expired_before(),
                )
                .await?;
            if rec.fresh {
                return Ok(Begun::Run);
            }
            if rec.operation != operation || rec.fingerprint != fingerprint {
                return Err(AppError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this Idempotency-Key was used before with a different request; use a new \
                     key for a new request",
                ));
            }
            if let Some((status, raw)) = rec.answer {
                return Ok(Begun::Replay(status, raw));
            }
            if rec.created_at < Utc::now() - abandoned {
                // The first request's process died: let this one run.
                self.store.idempotency_finish(subject, key, None).await?;
                continue;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AppError::new(
                    ErrorCode::IdempotencyKeyInProgress,
                    "the first request with this Idempotency-Key is still running; retry shortly",
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stores the first request's answer (status, stored form), or with `None` forgets the
    /// key so that a retry runs.
    pub async fn finish(
        &self,
        subject: &str,
        key: &str,
        answer: Option<(u16, &str)>,
    ) -> Result<(), AppError> {
        self.store.idempotency_finish(subject, key, answer).await?;
        Ok(())
    }

    /// Forgets the key of a request that was interrupted (its future dropped: the client
    /// went away, the request timed out), in the background, so that a retry runs.
    pub fn release(&self, subject: String, key: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        runtime.spawn(async move {
            if let Err(e) = store.idempotency_finish(&subject, &key, None).await {
                tracing::warn!(error = %e, "releasing an interrupted idempotency key failed");
            }
        });
    }
}
