//! Idempotency keys' SQL and [`IdempotencyStore`] implementation, compiled for each backend
//! like `inventory_sql.rs`. Writes commit on the lazy pool (see the durability note on
//! [`crate::store::GrantStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::This;
use crate::store::{IdempotencyRecord, IdempotencyStore, StoreError};

/// Records an idempotency key as in progress, unless it exists.
pub(super) const INSERT_IDEMPOTENCY: &str = "INSERT INTO idempotency_keys (subject, idem_key, \
     operation, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (subject, idem_key) DO NOTHING";

/// The first request's fingerprint and answer.
pub(super) const GET_IDEMPOTENCY: &str = "SELECT operation, fingerprint, status_code, \
     response, created_at FROM idempotency_keys WHERE subject = $1 AND idem_key = $2";

pub(super) const FINISH_IDEMPOTENCY: &str = "UPDATE idempotency_keys SET status_code = $3, \
     response = $4 WHERE subject = $1 AND idem_key = $2";

/// Forgets the key if its answer is older than the TTL (an in-progress key is left to the
/// abandoned-request rule).
pub(super) const EXPIRE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys \
     WHERE subject = $1 AND idem_key = $2 AND created_at < $3 AND status_code IS NOT NULL";

/// Forgets every answered key older than the TTL.
pub(super) const PURGE_IDEMPOTENCY: &str =
    "DELETE FROM idempotency_keys WHERE created_at < $1 AND status_code IS NOT NULL";

/// Forgets a key whose request failed in a way worth retrying (5xx).
pub(super) const FORGET_IDEMPOTENCY: &str =
    "DELETE FROM idempotency_keys WHERE subject = $1 AND idem_key = $2";

#[async_trait]
impl IdempotencyStore for This {
    async fn idempotency_begin(
        &self,
        subject: &str,
        key: &str,
        operation: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<IdempotencyRecord, StoreError> {
        let mut tx = self.lazy.begin().await?;
        sqlx::query(EXPIRE_IDEMPOTENCY)
            .bind(subject)
            .bind(key)
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(INSERT_IDEMPOTENCY)
            .bind(subject)
            .bind(key)
            .bind(operation)
            .bind(fingerprint)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        tx.commit().await?;
        let (operation, fingerprint, status, response, created_at): (
            String,
            String,
            Option<i32>,
            Option<String>,
            DateTime<Utc>,
        ) = sqlx::query_as(GET_IDEMPOTENCY)
            .bind(subject)
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(IdempotencyRecord {
            fresh: inserted,
            operation,
            fingerprint,
            answer: status
                .zip(response)
                .and_then(|(s, r)| u16::try_from(s).ok().map(|s| (s, r))),
            created_at,
        })
    }

    async fn idempotency_purge(&self, expired_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.lazy.begin().await?;
        let purged = sqlx::query(PURGE_IDEMPOTENCY)
            .bind(expired_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(purged)
    }

    async fn idempotency_finish(
        &self,
        subject: &str,
        key: &str,
        answer: Option<(u16, &str)>,
    ) -> Result<(), StoreError> {
        let mut tx = self.lazy.begin().await?;
        match answer {
            Some((status, body)) => {
                sqlx::query(FINISH_IDEMPOTENCY)
                    .bind(subject)
                    .bind(key)
                    .bind(i32::from(status))
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(FORGET_IDEMPOTENCY)
                    .bind(subject)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
