//! The embedded default: a SQLite file (WAL mode, `secure_delete` so a deleted key's
//! ciphertext is overwritten in the file, not just unlinked).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The same database with `synchronous = NORMAL`: commits that need not wait for the
    /// disk flush (see [`super::GrantStore`]).
    lazy: SqlitePool,
    model: std::sync::Arc<super::read_model::ReadModel>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file a `sqlite:` URL names.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("secure_delete", "ON");
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // A file on this machine does not go stale: skip a round trip per query.
            .test_before_acquire(false)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        // The safety level cannot change inside a transaction, hence a pool of its own.
        let lazy = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Self {
            pool,
            lazy,
            model: Default::default(),
        })
    }
}

backend!(SqliteStore, sqlx::Sqlite, sqlx::SqliteConnection, postgres: false);
