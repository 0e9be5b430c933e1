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
    /// For readiness (`/readyz`) only: handlers reach the store through the services.
    pub store: Arc<dyn Store>,
    pub auth: Arc<JwtVerifier>,
    pub connections: ConnectionService,
    pub inventory: InventoryService,
    pub changes: ChangesService,
    pub access: AccessService,
    pub grants: GrantService,
    pub audit: AuditService,
    pub offboarding: OffboardingService,
    pub idempotency: IdempotencyService,
    pub limits: Arc<Limits>,
    /// The operator's policy (for `/readyz`; the services enforce it).
    pub policy: crate::service::policy::PolicyGate,
}
