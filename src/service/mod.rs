//! Use cases: what a caller can do, each taking the [`Principal`](crate::auth::Principal)
//! that asks. Calls the domain, the store and the OpenAI client; knows nothing of axum.

pub mod access;
pub mod audit;
pub mod changes;
pub mod clients;
pub mod connection_test;
pub mod connections;
pub mod grants;
pub mod idempotency;
pub mod inventory;
pub mod offboarding;
pub mod policy;
pub mod problems;
pub mod rekey;
pub mod scheduler;
pub mod sync;

pub use access::AccessService;
pub use audit::AuditService;
pub use changes::ChangesService;
pub use clients::OpenAiClients;
pub use connection_test::Prober;
pub use connections::{ConnectionPatchInput, ConnectionService, KeyTestInput, NewConnectionInput};
pub use grants::{GrantService, GrantSettings};
pub use inventory::{InventoryService, SyncSettings};
pub use offboarding::OffboardingService;
pub use scheduler::Schedule;
