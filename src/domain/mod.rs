//! Plain types and rules of the governance domain: ids, connections, connection-test
//! reports, inventory snapshots and sync runs, access paths and role permissions. Imports nothing else of ours (no axum, no sqlx, no HTTP client).

pub mod access;
pub mod connection;
pub mod connection_test;
pub mod ids;
pub mod inventory;
pub mod permissions;

pub use connection::{AdminKey, Connection, SealedSecret, ValidationError};
pub use connection_test::{
    Capability, CapabilityCheck, CheckStatus, OverallStatus, ProbeResult, TestReport,
};
pub use ids::ConnectionId;
pub use inventory::{Item, ItemKind, ItemPage, ItemQuery, SyncId, SyncRun, SyncStats, SyncStatus};
