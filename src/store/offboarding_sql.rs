//! Offboarding requests' SQL and [`OffboardingStore`] implementation, compiled for each
//! backend like `inventory_sql.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::This;
use crate::domain::offboarding::{OffboardingRun, RunStatus};
use crate::store::{OffboardingStore, StoreError};

/// Records a new request with its runner's lease.
pub(super) const INSERT_OFFBOARDING: &str = "INSERT INTO offboardings \
     (offboarding_id, status, created_at, data, lease_owner, lease_until) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// Rewrites a request's record; a finished one drops its lease.
pub(super) const SAVE_OFFBOARDING: &str = "UPDATE offboardings SET status = $2, data = $3, \
     lease_owner = CASE WHEN $2 = 'running' THEN lease_owner ELSE NULL END, \
     lease_until = CASE WHEN $2 = 'running' THEN lease_until ELSE NULL END \
     WHERE offboarding_id = $1";
/// Takes (or renews) the lease of a running request: one's own, or one that ran out.
pub(super) const CLAIM_OFFBOARDING: &str = "UPDATE offboardings SET lease_owner = $2, \
     lease_until = $4 WHERE offboarding_id = $1 AND status = 'running' \
     AND (lease_owner = $2 OR lease_until IS NULL OR lease_until < $3)";
/// Running requests whose lease ran out.
pub(super) const INTERRUPTED_OFFBOARDINGS: &str = "SELECT data FROM offboardings \
     WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $1) \
     ORDER BY created_at LIMIT $2";
pub(super) const GET_OFFBOARDING: &str = "SELECT data FROM offboardings WHERE offboarding_id = $1";

/// The wire name of a status, as stored in the `status` column.
pub(super) fn status(run: &OffboardingRun) -> &'static str {
    match run.status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    }
}

#[async_trait]
impl OffboardingStore for This {
    async fn insert_offboarding(
        &self,
        run: &OffboardingRun,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(INSERT_OFFBOARDING)
            .bind(&run.id)
            .bind(status(run))
            .bind(run.created_at)
            .bind(Json(run))
            .bind(owner)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_offboarding(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(CLAIM_OFFBOARDING)
            .bind(id)
            .bind(owner)
            .bind(now)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn interrupted_offboardings(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OffboardingRun>, StoreError> {
        let rows: Vec<(Json<OffboardingRun>,)> = sqlx::query_as(INTERRUPTED_OFFBOARDINGS)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(r,)| r.0).collect())
    }

    async fn save_offboarding(&self, run: &OffboardingRun) -> Result<(), StoreError> {
        let done = sqlx::query(SAVE_OFFBOARDING)
            .bind(&run.id)
            .bind(status(run))
            .bind(Json(run))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_offboarding(&self, id: &str) -> Result<OffboardingRun, StoreError> {
        let (data,): (Json<OffboardingRun>,) = sqlx::query_as(GET_OFFBOARDING)
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(data.0)
    }
}
