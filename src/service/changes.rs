//! The changes feed: read what successive syncs found different, and announce changes
//! openai-governor is about to make so that they are not reported as drift. The changes
//! themselves are recorded by the store when a sync publishes (see `Store::finish_sync`).

use std::sync::Arc;

use super::connections::not_found;
use super::inventory::MAX_PAGE;
use crate::auth::{Principal, Scope};
use crate::domain::policy::Action;
use crate::domain::{Change, ChangeQuery, ExpectedChange};
use crate::error::AppError;
use crate::service::policy::{Names, PolicyGate};
use crate::store::{ChangesStore, ConnectionStore, Store};

/// The changes feed use cases.
#[derive(Clone)]
pub struct ChangesService {
    store: Arc<dyn ChangesStore>,
    connections: Arc<dyn ConnectionStore>,
    policy: PolicyGate,
}

impl ChangesService {
    /// Wires the use cases to the store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            connections: store.clone(),
            store,
            policy: PolicyGate::open(),
        }
    }

    /// The same service under the operator's policy: readers see the changes of the
    /// connections they may read.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
    }

    /// Changes matching `query`, oldest first. `connection_not_found` if the query names a
    /// connection that does not exist. Requires `inventory:read`.
    pub async fn list(
        &self,
        who: &Principal,
        mut query: ChangeQuery,
    ) -> Result<Vec<Change>, AppError> {
        who.require(Scope::InventoryRead)?;
        query.limit = query.limit.clamp(1, MAX_PAGE + 1);
        if let Some(id) = query.connection_id {
            let c = self
                .connections
                .get_connection(id)
                .await
                .map_err(not_found(id))?;
            self.policy.require_on(who, Action::Read, &c)?;
        }
        if !self.policy.enforced() || query.connection_id.is_some() {
            return Ok(self.store.list_changes(&query).await?);
        }
        // Only the connections this caller may read; read on until the page is full.
        let mut names = Names::new(self.connections.clone());
        let mut out = Vec::new();
        loop {
            let page = self.store.list_changes(&query).await?;
            let end = page.len() < query.limit as usize;
            query.after = page.last().map(|c| c.id).or(query.after);
            for c in page {
                if names
                    .sees(&self.policy, who, Action::Read, c.connection_id)
                    .await
                {
                    out.push(c);
                }
            }
            if end || out.len() >= query.limit as usize {
                out.truncate(query.limit as usize);
                return Ok(out);
            }
        }
    }

    /// Announces a change openai-governor is about to make in an organization (for the grant
    /// and revoke use cases, which check their caller's scopes themselves): the sync that
    /// observes it records it `by_governor` instead of as drift.
    pub async fn expect(&self, expected: &ExpectedChange) -> Result<(), AppError> {
        let id = expected.connection_id;
        self.store
            .expect_change(expected)
            .await
            .map_err(not_found(id))
    }
}
