//! The state every handler can reach: the services, token verification and the limits. Built
//! by `crate::app`; handlers reach the store only through the services (readiness aside).

use std::sync::Arc;

use super::limits::Limits;
use crate::auth::JwtVerifier;
use crate::service::idempotency::IdempotencyService;
use crate::service::{
    AccessService, AuditService, ChangesService, ConnectionService, GrantService, InventoryService,
    OffboardingService,
};
use crate::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store (readiness).
    pub store: Arc<dyn Store>,
    /// Caller token verification.
    pub auth: Arc<JwtVerifier>,
    /// Connection use cases.
    pub connections: ConnectionService,
    /// Inventory syncs and reads.
    pub inventory: InventoryService,
    /// The changes feed.
    pub changes: ChangesService,
    /// Access questions over the synced inventory.
    pub access: AccessService,
    /// Grants and revocations.
    pub grants: GrantService,
    /// The audit trail.
    pub audit: AuditService,
    /// Offboarding people.
    pub offboarding: OffboardingService,
    /// Idempotency keys of writes.
    pub idempotency: IdempotencyService,
    /// Rate limits and caps on callers.
    pub limits: Arc<Limits>,
}
