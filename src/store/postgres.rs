//! The production store: Postgres (native TIMESTAMPTZ/BYTEA/JSONB columns), running the
//! same statements as `sqlite.rs` (the shared `*_sql.rs` files).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Sessions with `synchronous_commit = off`: commits that need not wait for the disk
    /// flush (see [`super::GrantStore`]).
    lazy: PgPool,
    model: std::sync::Arc<super::read_model::ReadModel>,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        // No ping before each use: it doubles the round trips of a short query, and a
        // connection that died fails its query once and is then replaced.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let lazy = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options.options([("synchronous_commit", "off")]))
            .await?;
        Ok(Self {
            pool,
            lazy,
            model: Default::default(),
        })
    }
}

backend!(PostgresStore, sqlx::Postgres, sqlx::PgConnection, postgres: true);
