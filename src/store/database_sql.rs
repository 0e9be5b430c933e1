//! What concerns the database itself (its name, migrations, readiness): the [`Store`] part
//! that is not a table's, compiled for each backend like `inventory_sql.rs`.

use async_trait::async_trait;

use super::{MIGRATOR, POSTGRES, This};
use crate::store::{Store, StoreError};

#[async_trait]
impl Store for This {
    fn backend(&self) -> &'static str {
        if POSTGRES { "postgres" } else { "sqlite" }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
