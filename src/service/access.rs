//! Access questions answered from the synced snapshots, never by calling OpenAI: a person's
//! access across every connection, who can reach a project (optionally only those holding a
//! permission), and a streamed export of a connection's whole snapshot. All need
//! `inventory:read`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};

use super::connections::not_found;
use crate::auth::{Principal, Scope};
use crate::domain::access::{
    self, HolderCursor, Holders, Owners, Person, PersonCursor, PersonPage, ProjectReach,
    ReachCursor, ReachPage,
};
use crate::domain::policy::Action;
use crate::domain::{Connection, ConnectionId, DataText, Item, ItemKind, ItemQuery, SyncId};
use crate::error::{AppError, ErrorCode};
use crate::service::policy::PolicyGate;
use crate::store::{AccessStore, ConnectionStore, InventoryStore, Store};

/// Items read per query while exporting.
pub const EXPORT_CHUNK: u32 = 1000;

#[derive(Clone)]
pub struct AccessService {
    store: Arc<dyn AccessStore>,
    connections: Arc<dyn ConnectionStore>,
    inventory: Arc<dyn InventoryStore>,
    policy: PolicyGate,
}

/// A page of an export: items of one kind, in key order.
pub type ExportPage = (ItemKind, Vec<Item<DataText>>);

/// An export under way: which snapshot, and its pages (every kind at least once, possibly
/// empty, kinds in [`ItemKind::ALL`] order). The stream fails if another sync publishes
/// while it is read: the export would otherwise mix two snapshots.
pub struct Export {
    pub connection: Connection,
    /// The snapshot (`None` before the first successful sync: every kind is then empty).
    pub sync_id: Option<SyncId>,
    pub synced_at: Option<DateTime<Utc>>,
    pub pages: BoxStream<'static, Result<ExportPage, AppError>>,
}

struct ExportCursor {
    store: Arc<dyn InventoryStore>,
    id: ConnectionId,
    expect: Option<SyncId>,
    kind: usize,
    after: Option<String>,
    first: Option<Vec<Item<DataText>>>,
}

impl AccessService {
    /// Wires the use cases to the store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            connections: store.clone(),
            inventory: store.clone(),
            store,
            policy: PolicyGate::open(),
        }
    }

    /// The same service under the operator's policy.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
    }

    /// The connection `id`, if the policy lets `who` read it.
    async fn readable(&self, who: &Principal, id: ConnectionId) -> Result<Connection, AppError> {
        let c = self
            .connections
            .get_connection(id)
            .await
            .map_err(not_found(id))?;
        self.policy.require_on(who, Action::Read, &c)?;
        Ok(c)
    }

    async fn may_read(&self, who: &Principal, id: ConnectionId) -> Result<(), AppError> {
        self.policy
            .require_read(who, id, &*self.store, &*self.connections)
            .await
    }

    /// What every connection's snapshot says about a person: connections where they are a
    /// user or have a pending invite, at most `limit` projects a page. Unknown people get an
    /// empty list.
    pub async fn person_access(
        &self,
        who: &Principal,
        person: &Person,
        after: Option<&PersonCursor>,
        limit: usize,
    ) -> Result<PersonPage, AppError> {
        who.require(Scope::InventoryRead)?;
        let items = self.store.person_items(person).await?;
        // Only the organizations the policy lets this caller read.
        let mut all = access::person_access(items);
        all.retain(|c| {
            self.policy
                .sees(who, Action::Read, c.connection_id, &c.connection_name)
        });
        Ok(access::person_page(all, after, limit))
    }

    /// Everyone who can reach a project of a connection, with each path; with `permission`,
    /// only the paths granting it. `project_not_found` when the project is not in the
    /// current snapshot (or there is none yet).
    pub async fn project_reach(
        &self,
        who: &Principal,
        id: ConnectionId,
        project_id: &str,
        permission: Option<&str>,
        page: &ReachPage,
    ) -> Result<ProjectReach, AppError> {
        who.require(Scope::InventoryRead)?;
        self.may_read(who, id).await?;
        let Some(found) = self.store.project_items(id, project_id, page).await? else {
            return Err(AppError::new(
                ErrorCode::ProjectNotFound,
                format!(
                    "project `{}` is not in this connection's last synced inventory; sync the \
                     connection if it is new",
                    project_id.chars().take(64).collect::<String>()
                ),
            ));
        };
        Ok(access::project_reach(&found, permission, page))
    }

    /// A page of a connection's organization owners (empty before its first sync).
    pub async fn owners(
        &self,
        who: &Principal,
        id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Owners, AppError> {
        who.require(Scope::InventoryRead)?;
        self.may_read(who, id).await?;
        Ok(match self.store.owner_items(id, after, limit).await? {
            Some(found) => access::owners(&found),
            None => Owners::none(),
        })
    }

    /// A page of everyone holding `permission` anywhere: per connection (by id), through
    /// their organization role (by user id), then in each project (by id) through the paths
    /// granting it. Requires `inventory:read`.
    pub async fn holders(
        &self,
        who: &Principal,
        permission: &str,
        after: Option<HolderCursor>,
        limit: usize,
    ) -> Result<Holders, AppError> {
        who.require(Scope::InventoryRead)?;
        let want = limit + 1;
        let mut out = Vec::new();
        for (conn, name) in self.store.snapshot_heads().await? {
            if out.len() >= want {
                break;
            }
            if !self.policy.sees(who, Action::Read, conn, &name) {
                continue;
            }
            if after.as_ref().is_some_and(|a| conn < a.connection_id) {
                continue;
            }
            let here = (conn, name.as_str());
            let resume = after.as_ref().filter(|a| a.connection_id == conn);
            if resume.is_none_or(|c| c.project_id.is_none()) {
                let roles = self.store.org_role_items(conn).await?;
                let roles = access::org_roles_granting(&roles, permission);
                if !roles.is_empty() {
                    let after_user = resume.and_then(|c| c.user_id.as_deref());
                    let users = self
                        .store
                        .users_with_roles(conn, &roles, after_user, want - out.len())
                        .await?;
                    out.extend(access::org_holders(here, &users));
                }
            }
            // Resuming inside a project: that project again (after the cursor's person),
            // then the ones after it.
            let mut skip = resume
                .filter(|c| c.project_id.is_some())
                .map(|c| ReachCursor {
                    email: c.email.clone(),
                    user_id: c.user_id.clone(),
                });
            let mut again = resume.and_then(|c| c.project_id.clone());
            let mut after_project = again.clone();
            while out.len() < want {
                let ids = match again.take() {
                    Some(p) => vec![p],
                    None => {
                        self.store
                            .project_ids(conn, after_project.as_deref(), 64)
                            .await?
                    }
                };
                if ids.is_empty() {
                    break;
                }
                for p in ids {
                    after_project = Some(p.clone());
                    let page = ReachPage {
                        after: skip.take(),
                        limit: want - out.len(),
                    };
                    let Some(found) = self.store.project_items(conn, &p, &page).await? else {
                        continue;
                    };
                    let reach = access::project_reach(&found, Some(permission), &page);
                    out.extend(access::project_holders(here, reach));
                    if out.len() >= want {
                        break;
                    }
                }
            }
        }
        let has_more = out.len() > limit;
        out.truncate(limit);
        Ok(Holders {
            permission: permission.to_owned(),
            next_cursor: has_more
                .then(|| out.last().map(|h| HolderCursor::of(h).encode()))
                .flatten(),
            has_more,
            data: out,
        })
    }

    /// Starts an export of a connection's current snapshot: reads the first page now (so the
    /// snapshot is known before anything is sent) and the rest as the stream is polled.
    pub async fn export(&self, who: &Principal, id: ConnectionId) -> Result<Export, AppError> {
        who.require(Scope::InventoryRead)?;
        let connection = self.readable(who, id).await?;
        let first = self
            .inventory
            .list_items(id, &ItemQuery::all(ItemKind::ALL[0], EXPORT_CHUNK))
            .await?;
        let cursor = ExportCursor {
            store: self.inventory.clone(),
            id,
            expect: first.sync_id,
            kind: 0,
            after: None,
            first: Some(first.items),
        };
        let pages = stream::try_unfold(cursor, next_page).boxed();
        Ok(Export {
            connection,
            sync_id: first.sync_id,
            synced_at: first.synced_at,
            pages,
        })
    }
}

/// The next page of an export, or the end.
async fn next_page(mut c: ExportCursor) -> Result<Option<(ExportPage, ExportCursor)>, AppError> {
    let Some(&kind) = ItemKind::ALL.get(c.kind) else {
        return Ok(None);
    };
    let items = match c.first.take() {
        Some(items) => items,
        None => {
            let mut q = ItemQuery::all(kind, EXPORT_CHUNK);
            q.after = c.after.take();
            let page = c.store.list_items(c.id, &q).await?;
            if page.sync_id != c.expect {
                return Err(AppError::new(
                    ErrorCode::Internal,
                    "a sync published a new snapshot during the export; export again",
                ));
            }
            page.items
        }
    };
    if items.len() < EXPORT_CHUNK as usize {
        c.kind += 1;
        c.after = None;
    } else {
        c.after = items.last().map(|i| i.key.clone());
    }
    Ok(Some(((kind, items), c)))
}
