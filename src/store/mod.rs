//! Persistence behind one interface: the [`Store`] trait, with a SQLite and a Postgres
//! implementation chosen by the URL scheme. Knows nothing of HTTP or of OpenAI.

mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use url::Url;

use crate::domain::{Connection, ConnectionId, SealedSecret, TestReport};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What can go wrong in the store, in terms the service can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the message names it for a person.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached (pool timeout, I/O).
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else.
    #[error("store failure")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                Self::Conflict("a connection with this name already exists".into())
            }
            other => Self::Other(other),
        }
    }
}

/// A connection about to be inserted.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// Identifier, chosen by the service (the sealed key is bound to it).
    pub id: ConnectionId,
    /// Unique name.
    pub name: String,
    /// OpenAI base URL.
    pub base_url: Url,
    /// Expected organization id.
    pub expected_organization_id: Option<String>,
    /// `sk-admin-…abcd`.
    pub key_hint: String,
    /// The admin key, sealed for this id.
    pub sealed_key: SealedSecret,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (JWT subject).
    pub by: String,
}

/// Changes to a connection; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChanges {
    /// New name.
    pub name: Option<String>,
    /// New base URL.
    pub base_url: Option<Url>,
    /// New expected organization (`Some(None)` clears it).
    pub expected_organization_id: Option<Option<String>>,
    /// Replacement key: hint and sealed key together.
    pub key: Option<(String, SealedSecret)>,
    /// Clear the stored test report (the key or URL changed, so it no longer applies).
    pub clear_last_test: bool,
}

/// The store's interface. Every implementation passes `tests/api/store_conformance.rs`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend (`sqlite`, `postgres`), for logs and readiness.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Cheap round-trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts a connection; `Conflict` if the name is taken.
    async fn insert_connection(&self, new: NewConnection) -> Result<Connection, StoreError>;
    /// One connection; `NotFound` if absent.
    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError>;
    /// Connections ordered by id (creation time), after the cursor, at most `limit`.
    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Applies changes at once (all or nothing); `NotFound` if absent, `Conflict` on name.
    async fn update_connection(
        &self,
        id: ConnectionId,
        changes: ConnectionChanges,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<Connection, StoreError>;
    /// Deletes the row and with it the sealed key; `NotFound` if absent.
    async fn delete_connection(&self, id: ConnectionId) -> Result<(), StoreError>;
    /// The sealed admin key of a connection; `NotFound` if absent.
    async fn sealed_key(&self, id: ConnectionId) -> Result<SealedSecret, StoreError>;
    /// Stores the last test report (does not touch `updated_at`: a test is not an edit).
    async fn save_test_report(
        &self,
        id: ConnectionId,
        report: &TestReport,
    ) -> Result<(), StoreError>;
    /// Ids and sealed keys not sealed under `version`, for `rekey`.
    async fn keys_not_under(
        &self,
        version: u32,
    ) -> Result<Vec<(ConnectionId, SealedSecret)>, StoreError>;
    /// Replaces a sealed key only if it is still `expected` (another writer may have replaced
    /// the key meanwhile); returns whether it did.
    async fn swap_sealed_key(
        &self,
        id: ConnectionId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError>;
}

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs: the embedded default.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs: production.
    Postgres,
}

impl Backend {
    /// Picks the backend from the URL scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }
}

/// Opens the store a URL names (creating a SQLite file and its directory if missing).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteStore::connect(url).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        None => Err(StoreError::Other(sqlx::Error::Configuration(
            "DATABASE_URL must start with sqlite: or postgres:".into(),
        ))),
    }
}
