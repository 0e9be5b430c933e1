//! Offboarding requests' SQL, shared by both backends (`?N` placeholders, turned into `$N`
//! for Postgres by [`dialect`](super::inventory_sql::dialect)).

/// Records a new request.
pub(super) const INSERT_OFFBOARDING: &str = "INSERT INTO offboardings \
     (offboarding_id, status, created_at, data) VALUES (?1, ?2, ?3, ?4)";
/// Rewrites a request's record.
pub(super) const SAVE_OFFBOARDING: &str =
    "UPDATE offboardings SET status = ?2, data = ?3 WHERE offboarding_id = ?1";
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
            ) -> Result<(), super::StoreError> {
                use super::inventory_sql::dialect;
                use super::offboarding_sql::*;
                sqlx::query(sqlx::AssertSqlSafe(dialect(INSERT_OFFBOARDING, $pg)))
                    .bind(&run.id)
                    .bind(status(run))
                    .bind(run.created_at)
                    .bind(sqlx::types::Json(run))
                    .execute(&self.pool)
                    .await?;
                Ok(())
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
