//! Offboarding requests' SQL, shared by both backends (`?N` placeholders, turned into `$N`
//! for Postgres by [`dialect`](super::inventory_sql::dialect)).

/// Records a new request with its runner's lease.
pub(super) const INSERT_OFFBOARDING: &str = "INSERT INTO offboardings \
     (offboarding_id, status, created_at, data, lease_owner, lease_until) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Rewrites a request's record; a finished one drops its lease.
pub(super) const SAVE_OFFBOARDING: &str = "UPDATE offboardings SET status = ?2, data = ?3, \
     lease_owner = CASE WHEN ?2 = 'running' THEN lease_owner ELSE NULL END, \
     lease_until = CASE WHEN ?2 = 'running' THEN lease_until ELSE NULL END \
     WHERE offboarding_id = ?1";
/// Takes (or renews) the lease of a running request: one's own, or one that ran out.
pub(super) const CLAIM_OFFBOARDING: &str = "UPDATE offboardings SET lease_owner = ?2, \
     lease_until = ?4 WHERE offboarding_id = ?1 AND status = 'running' \
     AND (lease_owner = ?2 OR lease_until IS NULL OR lease_until < ?3)";
/// Running requests whose lease ran out.
pub(super) const INTERRUPTED_OFFBOARDINGS: &str = "SELECT data FROM offboardings \
     WHERE status = 'running' AND (lease_until IS NULL OR lease_until < ?1) \
     ORDER BY created_at LIMIT ?2";
/// One request.
pub(super) const GET_OFFBOARDING: &str = "SELECT data FROM offboardings WHERE offboarding_id = ?1";

/// The wire name of a status, as stored in the `status` column.
pub(super) fn status(run: &crate::domain::offboarding::OffboardingRun) -> &'static str {
    use crate::domain::offboarding::RunStatus;
    match run.status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    }
}

/// [`super::OffboardingStore`] for a backend; `$pg` is the dialect.
macro_rules! offboarding_store {
    ($store:ty, $pg:expr) => {
        #[async_trait::async_trait]
        impl super::OffboardingStore for $store {
            async fn insert_offboarding(
                &self,
                run: &crate::domain::offboarding::OffboardingRun,
                owner: &str,
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                sqlx::query(sqlx::AssertSqlSafe(dialect(INSERT_OFFBOARDING, $pg)))
                    .bind(&run.id)
                    .bind(status(run))
                    .bind(run.created_at)
                    .bind(sqlx::types::Json(run))
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
                now: chrono::DateTime<chrono::Utc>,
                until: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                let done = sqlx::query(sqlx::AssertSqlSafe(dialect(CLAIM_OFFBOARDING, $pg)))
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
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<crate::domain::offboarding::OffboardingRun>, super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                let rows: Vec<(sqlx::types::Json<crate::domain::offboarding::OffboardingRun>,)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(dialect(INTERRUPTED_OFFBOARDINGS, $pg)))
                        .bind(now)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(|(r,)| r.0).collect())
            }

            async fn save_offboarding(
                &self,
                run: &crate::domain::offboarding::OffboardingRun,
            ) -> Result<(), super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                let done = sqlx::query(sqlx::AssertSqlSafe(dialect(SAVE_OFFBOARDING, $pg)))
                    .bind(&run.id)
                    .bind(status(run))
                    .bind(sqlx::types::Json(run))
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(super::StoreError::NotFound);
                }
                Ok(())
            }

            async fn get_offboarding(
                &self,
                id: &str,
            ) -> Result<crate::domain::offboarding::OffboardingRun, super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                let (data,): (sqlx::types::Json<crate::domain::offboarding::OffboardingRun>,) =
                    sqlx::query_as(sqlx::AssertSqlSafe(dialect(GET_OFFBOARDING, $pg)))
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(data.0)
            }
        }
    };
}
pub(super) use offboarding_store;
