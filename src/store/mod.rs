//! Persistence behind one interface: the [`Store`] trait, with a SQLite and a Postgres
//! implementation chosen by the URL scheme. Knows nothing of HTTP or of OpenAI.
//!
//! The statements and their binding are written once, in the `*_sql.rs` files, with `$N`
//! placeholders (which SQLite accepts like Postgres); each backend module compiles those
//! files for its own sqlx database (`#[path]` modules naming it `Db`, see `sqlite.rs`), so
//! the logic is plain Rust that rustfmt and the compiler see. Not generic functions over
//! `sqlx::Database`: Rust does not carry a helper trait's where-clauses to its users, so
//! every function would repeat the bounds of each type it binds or decodes. What really
//! differs by backend is chosen on the `POSTGRES` constant.

/// Compiles the shared statement files (`*_sql.rs`) into a backend's module, with the names
/// they are written against: `This` (the store they implement the traits for), `Db`, `Conn`,
/// `Query`, `QueryAs` and `POSTGRES` (the few statements that really differ). One text for
/// both backends, type-checked against each (hence `duplicate_mod` allowed).
macro_rules! backend {
    ($store:ty, $db:ty, $conn:ty, postgres: $pg:expr) => {
        #[allow(clippy::duplicate_mod)]
        #[path = "access_sql.rs"]
        mod access_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "audit_sql.rs"]
        mod audit_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "changes_sql.rs"]
        mod changes_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "connections_sql.rs"]
        mod connections_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "database_sql.rs"]
        mod database_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "grants_sql.rs"]
        mod grants_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "idempotency_sql.rs"]
        mod idempotency_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "inventory_sql.rs"]
        mod inventory_sql;
        #[allow(clippy::duplicate_mod)]
        #[path = "offboarding_sql.rs"]
        mod offboarding_sql;

        type This = $store;
        type Db = $db;
        /// Inside a transaction a statement must join the caller's connection.
        type Conn = $conn;
        type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>;
        type QueryAs<'q, O> = sqlx::query::QueryAs<'q, Db, O, <Db as sqlx::Database>::Arguments>;
        const POSTGRES: bool = $pg;
    };
}

mod grant_record;
mod postgres;
mod read_model;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use url::Url;

use crate::domain::{
    Change, ChangeQuery, Connection, ConnectionId, DataText, ExpectedChange, Item, ItemPage,
    ItemQuery, LearnedRate, Replaced, SealedSecret, SyncId, SyncRun, TestReport,
};

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
    /// Another write on the same access (membership) is in flight; try again when it ends.
    #[error("locked: another write on this access is in flight")]
    Locked,
    /// The database cannot be reached (pool timeout, I/O).
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
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

/// A grant write that would take an access lock held by another write is `Locked`; a
/// grant naming a missing connection is `NotFound`.
fn grant_write_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Locked,
        other => not_found_on_foreign_key(other),
    }
}

/// A row referring to a connection that does not exist (foreign key) is a `NotFound`.
fn not_found_on_foreign_key(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(ref db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => other.into(),
    }
}

/// A connection about to be inserted.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// Identifier, chosen by the service (the sealed key is bound to it).
    pub id: ConnectionId,
    pub name: String,
    pub base_url: Url,
    pub expected_organization_id: Option<String>,
    /// `sk-admin-…abcd`.
    pub key_hint: String,
    /// The admin key, sealed for this id.
    pub sealed_key: SealedSecret,
    pub at: DateTime<Utc>,
    pub by: String,
}

/// Changes to a connection; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConnectionChanges {
    pub name: Option<String>,
    pub base_url: Option<Url>,
    /// New expected organization (`Some(None)` clears it).
    pub expected_organization_id: Option<Option<String>>,
    /// Replacement key: hint and sealed key together.
    pub key: Option<(String, SealedSecret)>,
    /// Clear the stored test report and require a new test before the connection is used
    /// (the key or URL changed, so neither the report nor the organization check applies).
    pub clear_last_test: bool,
}

/// A sealed admin key as stored, with what it is bound to (read in one statement, so the
/// base URL is the one the key was sealed for).
#[derive(Debug, Clone)]
pub struct SealedKey {
    pub id: ConnectionId,
    /// Where the key may be sent.
    pub base_url: Url,
    pub sealed: SealedSecret,
}

/// What deleting a connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionDelete {
    /// Deleted; its grants' records stay.
    Deleted,
    /// Refused: these grants are live (pending, active or invited) on it.
    LiveGrants(Vec<crate::domain::GrantId>),
}

/// Whether a sync could start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// The run is recorded and holds the connection's lease.
    Started,
    /// Another run holds a live lease on the connection.
    Busy(SyncId),
}

/// The whole store: every part's trait, and what concerns the database itself. Services
/// take the part they use (`Arc<dyn GrantStore>`, ...); an `Arc<dyn Store>` coerces to any
/// of them. Every implementation passes `tests/api/store_conformance.rs`.
#[async_trait]
pub trait Store:
    ConnectionStore
    + InventoryStore
    + ChangesStore
    + AccessStore
    + AuditStore
    + GrantStore
    + IdempotencyStore
    + OffboardingStore
    + Send
    + Sync
    + 'static
{
    /// Which backend (`sqlite`, `postgres`), for logs and readiness.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Cheap round-trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Connections: their settings, sealed admin keys and last test reports.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
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
    /// Deletes the row and with it the sealed key and snapshots, unless grants on it are
    /// live (checked and deleted atomically: a grant inserted meanwhile either is seen or
    /// fails on the missing connection); grant records are kept. `NotFound` if absent.
    async fn delete_connection(&self, id: ConnectionId) -> Result<ConnectionDelete, StoreError>;
    /// The sealed admin key of a connection and its base URL; `NotFound` if absent.
    async fn sealed_key(&self, id: ConnectionId) -> Result<SealedKey, StoreError>;
    /// Pins the connection to `organization_id` if it is not pinned yet, and with `tested`
    /// clears `test_required`; does nothing if it is pinned to another organization.
    /// Returns whether the connection is now pinned to `organization_id`.
    async fn pin_organization(
        &self,
        id: ConnectionId,
        organization_id: &str,
        tested: bool,
    ) -> Result<bool, StoreError>;
    /// Stores the last test report (does not touch `updated_at`: a test is not an edit).
    async fn save_test_report(
        &self,
        id: ConnectionId,
        report: &TestReport,
    ) -> Result<(), StoreError>;
    /// Sealed keys not sealed under `version` with `binding`, for `rekey`.
    async fn keys_to_reseal(
        &self,
        version: u32,
        binding: u32,
    ) -> Result<Vec<SealedKey>, StoreError>;
    /// Replaces a sealed key only if it is still `expected` (another writer may have replaced
    /// the key meanwhile); returns whether it did.
    async fn swap_sealed_key(
        &self,
        id: ConnectionId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError>;
    /// The rates the connection's OpenAI budget learned (any order).
    async fn learned_rates(&self, id: ConnectionId) -> Result<Vec<LearnedRate>, StoreError>;
    /// Keeps `rates`, each replacing the stored one of its scope only if newer; `NotFound`
    /// if the connection is gone.
    async fn save_learned_rates(
        &self,
        id: ConnectionId,
        rates: &[LearnedRate],
    ) -> Result<(), StoreError>;
}

/// Inventory snapshots and the sync runs that make them.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Records `run` and gives it the connection's sync lease until `lease_until_ms` (Unix
    /// ms), unless a lease that has not expired by `now_ms` is held by another run. Runs whose
    /// lease expired (their process died) are marked failed and their items dropped.
    async fn start_sync(
        &self,
        run: &SyncRun,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<SyncStart, StoreError>;
    /// Extends the lease of a running sync; `false` if it was lost (taken over after expiry).
    async fn renew_sync_lease(&self, run: &SyncRun, until_ms: i64) -> Result<bool, StoreError>;
    /// Adds items to a running sync's snapshot (invisible to readers until published).
    async fn insert_items(&self, sync_id: SyncId, items: &[Item]) -> Result<(), StoreError>;
    /// Ends a run in one transaction: on `Succeeded` its snapshot replaces the connection's
    /// current one (whose items are dropped, after the changes between the two are recorded),
    /// on `Failed` its own items are dropped; the lease is released. Returns `false`, recording
    /// the run as failed, if the lease had been lost. The audit entry `audit(run as recorded,
    /// published)` commits in the same transaction: whoever sees the run finished finds it in
    /// the audit trail too.
    async fn finish_sync(&self, run: &SyncRun, audit: SyncAudit<'_>) -> Result<bool, StoreError>;
    /// One run; `NotFound` if absent.
    async fn get_sync(&self, id: SyncId) -> Result<SyncRun, StoreError>;
    /// A connection's runs, newest first, before the cursor, at most `limit`.
    async fn list_syncs(
        &self,
        connection_id: ConnectionId,
        before: Option<SyncId>,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError>;
    /// The run whose snapshot readers see (`None` before the first successful sync).
    async fn head_sync(&self, connection_id: ConnectionId) -> Result<Option<SyncRun>, StoreError>;
    /// Copies the items of snapshot `from` into running sync `to`, except the `replaced`
    /// ones (an incremental sync carries over what did not change); returns how many.
    async fn copy_items(
        &self,
        from: SyncId,
        to: SyncId,
        replaced: &[Replaced],
    ) -> Result<u64, StoreError>;
    /// A page of the connection's current snapshot (empty with no `sync_id` before the
    /// first successful sync), each item's `data` as the stored text.
    async fn list_items(
        &self,
        connection_id: ConnectionId,
        query: &ItemQuery,
    ) -> Result<ItemPage<DataText>, StoreError>;
}

/// Builds the audit entry of a finished run from the run as recorded and whether it was
/// published.
pub type SyncAudit<'a> =
    &'a (dyn Fn(&SyncRun, bool) -> crate::domain::audit::AuditEntry + Send + Sync);

/// The changes feed (`finish_sync` records the diff of the snapshot it publishes).
#[async_trait]
pub trait ChangesStore: Send + Sync {
    /// Recorded changes matching `query`, in the order they were recorded (by id), after the
    /// cursor, at most `limit`.
    async fn list_changes(&self, query: &ChangeQuery) -> Result<Vec<Change>, StoreError>;
    /// Records a change openai-governor is about to make, so that the sync observing it marks
    /// it `by_governor`; `NotFound` if the connection does not exist.
    async fn expect_change(&self, expected: &ExpectedChange) -> Result<(), StoreError>;
}

/// The append-only audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry; returns its id.
    async fn append_audit(
        &self,
        entry: &crate::domain::audit::AuditEntry,
    ) -> Result<crate::domain::audit::AuditId, StoreError>;
    /// Entries matching `query`, in append order (by id), after the cursor, at most `limit`.
    async fn list_audit(
        &self,
        query: &crate::domain::audit::AuditQuery,
    ) -> Result<Vec<crate::domain::audit::AuditEvent>, StoreError>;
    /// The hash chain's head.
    async fn audit_chain_head(&self) -> Result<crate::domain::audit::ChainHead, StoreError>;
    /// Chained entries after `after_seq`, in seq order, at most `limit`, each with its hash
    /// recomputed from the stored columns.
    async fn audit_chain_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<crate::domain::audit::ChainLink>, StoreError>;
    /// How many entries predate the chain (ids up to `legacy_through`), and the first entry
    /// after them that carries no seq (written around the chain), if any.
    async fn audit_unchained(
        &self,
        legacy_through: crate::domain::audit::AuditId,
    ) -> Result<(u64, Option<crate::domain::audit::AuditId>), StoreError>;
}

/// What commits with a grant's new state: its audit entry, the change it announces (so the
/// next sync marks it `by_governor`), and the write-through to the current snapshot. One
/// transaction, one commit: the grant's state, its record and what readers see never
/// disagree.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrantSaveExtras<'a> {
    /// The audit entry of the change.
    pub audit: Option<&'a crate::domain::audit::AuditEntry>,
    /// The change about to be made.
    pub expect: Option<&'a ExpectedChange>,
    /// Items to put in the connection's current snapshot.
    pub upserts: &'a [Item],
    /// Items to drop from it.
    pub removals: &'a [(crate::domain::ItemKind, String)],
    /// Commit without waiting for the disk flush (see [`GrantStore`]): for an outcome, whose
    /// loss in a power cut the reconciler recovers by reading OpenAI again.
    pub lazy_commit: bool,
}

/// Grants and the write-through to the current snapshot.
///
/// Durability: only the record of a write about to be sent to OpenAI (a save with an
/// `expect`ed change or without `lazy_commit`) waits for the disk flush. Inserts, claims,
/// idempotency records (see [`IdempotencyStore`]) and lazy saves commit at once and reach the disk with the next
/// flushed commit (Postgres `synchronous_commit = off`; SQLite `synchronous = NORMAL` in WAL
/// mode): visible to every reader at once and safe from a process crash; a power cut can
/// lose them only when nothing was written to OpenAI after them, or when reading OpenAI
/// again (the reconciler) recovers them.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Inserts a new grant holding the lock on its access and a lease for `owner` until
    /// `until`; `Locked` if another write on the access is in flight (a lock whose lease ran
    /// out by `now` is dropped first), `NotFound` if the connection does not exist.
    async fn insert_grant(
        &self,
        grant: &crate::domain::grants::Grant,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// One grant; `NotFound` if absent.
    async fn get_grant(
        &self,
        id: crate::domain::GrantId,
    ) -> Result<crate::domain::grants::Grant, StoreError>;
    /// Grants matching the query, oldest first, after the cursor.
    async fn list_grants(
        &self,
        query: &crate::domain::grants::GrantQuery,
    ) -> Result<Vec<crate::domain::grants::Grant>, StoreError>;
    /// Takes a lease on a grant (and with `lock` the lock on its access) if its status is one
    /// of `statuses` and no one else's lease is live at `now`; returns it as stored, `None` if
    /// not claimable, `Locked` if another write holds the access, `NotFound` if absent.
    async fn claim_grant(
        &self,
        id: crate::domain::GrantId,
        statuses: &[crate::domain::grants::GrantStatus],
        lock: bool,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<crate::domain::grants::Grant>, StoreError>;
    /// Saves a grant `owner` holds the lease of, with `extras` in the same transaction;
    /// `release` ends the lease and the lock. `false` (nothing saved) if the lease was lost.
    async fn save_grant(
        &self,
        grant: &crate::domain::grants::Grant,
        owner: &str,
        release: bool,
        extras: GrantSaveExtras<'_>,
    ) -> Result<bool, StoreError>;
    /// Grants with no live lease at `now` that need work: pending (interrupted), due for
    /// expiry, or invited (to poll).
    async fn grants_needing_work(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::domain::grants::Grant>, StoreError>;
    /// Write-through: replaces items in the connection's current snapshot (no-op before the
    /// first sync), so reads show a change the service just made.
    async fn patch_head(
        &self,
        connection_id: ConnectionId,
        upserts: &[Item],
        removals: &[(crate::domain::ItemKind, String)],
    ) -> Result<(), StoreError>;
}

/// An idempotency key as stored: the first request's operation, fingerprint and, once it
/// finished, its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// This call recorded the key: the request is the first with it.
    pub fresh: bool,
    /// `POST /v1/grants`, ...
    pub operation: String,
    /// Hash of the first request's body.
    pub fingerprint: String,
    /// Status and body of the first answer; `None` while it is in progress.
    pub answer: Option<(u16, String)>,
    /// When the first request began (an in-progress key this old was abandoned by a crash).
    pub created_at: DateTime<Utc>,
}

/// The idempotency keys of writes (`Idempotency-Key`); committed without waiting for the
/// disk flush, like a grant's insert (see [`GrantStore`]).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records `key` for `subject` as in progress unless it exists (an answered key created
    /// before `expired_before` is forgotten first); returns the record.
    async fn idempotency_begin(
        &self,
        subject: &str,
        key: &str,
        operation: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
    ) -> Result<IdempotencyRecord, StoreError>;
    /// Forgets every answered key created before `expired_before`; returns how many.
    async fn idempotency_purge(&self, expired_before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Stores the answer of the first request, or with `None` forgets the key (the request
    /// failed in a way worth retrying).
    async fn idempotency_finish(
        &self,
        subject: &str,
        key: &str,
        answer: Option<(u16, &str)>,
    ) -> Result<(), StoreError>;
}

/// Offboarding requests: recorded before any write, finished by the task that runs them.
#[async_trait]
pub trait OffboardingStore: Send + Sync {
    /// Records a new request, leased to `owner` until `until`.
    async fn insert_offboarding(
        &self,
        run: &crate::domain::offboarding::OffboardingRun,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Renews `owner`'s lease on a running request, or takes one that ran out by `now`;
    /// `false` if the request ended or someone else's lease is live.
    async fn claim_offboarding(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Running requests whose lease ran out by `now` (their process died), oldest first.
    async fn interrupted_offboardings(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::domain::offboarding::OffboardingRun>, StoreError>;
    /// Rewrites a request's record (an ended one drops its lease); `NotFound` if absent.
    async fn save_offboarding(
        &self,
        run: &crate::domain::offboarding::OffboardingRun,
    ) -> Result<(), StoreError>;
    /// One request; `NotFound` if absent.
    async fn get_offboarding(
        &self,
        id: &str,
    ) -> Result<crate::domain::offboarding::OffboardingRun, StoreError>;
}

/// Read-side questions over the current snapshots (see `access_sql.rs`); each answer is read
/// in one or two statements, never one per item.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Everything the current snapshots of all connections say about a person: their user
    /// item, project and group memberships, their groups' project accesses and the groups,
    /// their API keys, pending invites, the projects those name, and each snapshot's roles.
    async fn person_items(
        &self,
        person: &crate::domain::access::Person,
    ) -> Result<Vec<crate::domain::access::SnapshotItem>, StoreError>;
    /// What the connection's current snapshot holds about a project (members, groups and
    /// their members, service accounts, invites that may name it, roles, the owners among
    /// those people) and the organization owners `page` needs (see
    /// [`ProjectItems::owners`](crate::domain::access::ProjectItems::owners)); `None`
    /// without a snapshot or when the project is not in it.
    async fn project_items(
        &self,
        connection_id: ConnectionId,
        project_id: &str,
        page: &crate::domain::access::ReachPage,
    ) -> Result<Option<crate::domain::access::ProjectItems>, StoreError>;
    /// A page of the connection's organization owners ordered by user id, after `after`,
    /// with the organization's roles; `None` without a snapshot.
    async fn owner_items(
        &self,
        connection_id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<crate::domain::access::OwnerItems>, StoreError>;
    /// The connections with a snapshot, ordered by id, with their names.
    async fn snapshot_heads(&self) -> Result<Vec<(ConnectionId, String)>, StoreError>;
    /// The name of the connection whose snapshot is held, `None` without one.
    async fn snapshot_name(
        &self,
        connection_id: ConnectionId,
    ) -> Result<Option<String>, StoreError>;
    /// The organization-level role objects of a connection's snapshot.
    async fn org_role_items(&self, connection_id: ConnectionId) -> Result<Vec<Item>, StoreError>;
    /// Up to `limit` users of a connection's snapshot whose organization role is one of
    /// `roles`, ordered by user id, after `after`.
    async fn users_with_roles(
        &self,
        connection_id: ConnectionId,
        roles: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;
    /// Up to `limit` project ids of a connection's snapshot, in order, after `after`.
    async fn project_ids(
        &self,
        connection_id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// A project's name in the connection's snapshot (`None` when it is not there).
    async fn project_name(
        &self,
        connection_id: ConnectionId,
        project_id: &str,
    ) -> Result<Option<String>, StoreError>;
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
