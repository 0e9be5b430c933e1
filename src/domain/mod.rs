//! Plain types and rules of the governance domain: ids, connections, connection-test
//! reports, inventory snapshots, sync runs, the changes between snapshots, access paths and
//! role permissions. Imports nothing else of ours (no axum, no sqlx, no HTTP client).

pub mod access;
pub mod audit;
pub mod changes;
pub mod connection;
pub mod connection_test;
pub mod grants;
pub mod ids;
pub mod inventory;
pub mod offboarding;
pub mod permissions;
pub mod person;
pub mod policy;

pub use changes::{
    Change, ChangeEvent, ChangeId, ChangeKind, ChangeQuery, EventVerb, ExpectedChange, event_verb,
};
pub use connection::{AdminKey, Connection, LearnedRate, SealedSecret, ValidationError};
pub use connection_test::{
    Capability, CapabilityCheck, CheckStatus, Feature, FeatureCheck, FeatureStatus, OverallStatus,
    ProbeResult, TestReport,
};
pub use ids::{ConnectionId, GrantId};
pub use inventory::{
    AuditMark, DataText, Item, ItemKind, ItemPage, ItemQuery, Replaced, SyncId, SyncMode, SyncRun,
    SyncStats, SyncStatus, SyncTime,
};
pub use person::{Email, UserId};
