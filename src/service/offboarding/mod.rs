//! Offboarding: remove a person from one organization, or from every connected one, with
//! their project memberships, their pending invites and (when asked) their project API keys,
//! and leave one record of what was removed: the answer, and one `user.offboarded` audit
//! entry per organization.
//!
//! Per organization it reads first (who they are there, what they hold), refuses before any
//! write when they are the last organization owner (OpenAI refuses it too), then writes:
//! pending invites, the keys (before the user: once someone has left, OpenAI's key listing no
//! longer names them as the owner, so a retry could not find the keys again), and finally
//! `DELETE /organization/users/{id}`, which removes every membership at once. Running it again
//! finds nothing and says so (`not_a_member`). Live grants of the person on that connection
//! are then revoked through [`GrantService`], which finds the access gone and only records it.
//!
//! A request is recorded (`offboardings` row and an `offboarding.started` audit entry) before
//! anything is sent to OpenAI, and runs in a task of its own: a caller that times out or
//! disconnects does not cancel it half-way. The caller waits for it a while
//! (`OG_OFFBOARDING_WAIT`), then gets a `202` and polls `GET /v1/offboardings/{id}`.
//!
//! The request's life (record, lease, wait, resume) is in `runs`, the request's checks in
//! `validate`; this module holds the offboarding itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::service::policy::PolicyGate;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use super::audit::AuditService;
use super::clients::OpenAiClients;
use super::connections::not_found;
use super::grants::{EndInput, Finished, GrantService};
use super::problems::upstream_message;
use crate::auth::Principal;
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome};
use crate::domain::grants::{GrantQuery, GrantStatus};
use crate::domain::offboarding::{
    ConnectionOffboarding, HeldKey, HeldProject, OffboardError, OffboardStatus, Offboarding,
};
use crate::domain::{
    ChangeKind, Connection, ConnectionId, ExpectedChange, Item, ItemKind, ItemQuery,
};
use crate::error::{AppError, ErrorCode};
use crate::openai::{
    Client, ErrorKind, InviteStatus, ListProjectApiKeysParams, OpenAiError, OrgUser,
    OwnerAccessFilter,
};
use crate::store::{
    ChangesStore, ConnectionStore, GrantStore, InventoryStore, OffboardingStore, Store,
};
use validate::{Valid, validate};

mod preview;
mod runs;
mod validate;
pub use preview::{ConnectionPreview, OffboardingPreview};
pub use runs::Started;

/// An offboarding to do.
#[derive(Debug, Clone, Default)]
pub struct OffboardInput {
    /// The person's email.
    pub email: Option<String>,
    /// Or their OpenAI user id.
    pub user_id: Option<String>,
    pub connection_id: Option<ConnectionId>,
    /// …or every connected one.
    pub all_connections: bool,
    /// Also delete the project API keys they own.
    pub delete_api_keys: bool,
    pub reason: String,
    pub ticket: Option<String>,
}

/// The offboarding use case.
#[derive(Clone)]
pub struct OffboardingService {
    offboardings: Arc<dyn OffboardingStore>,
    connections: Arc<dyn ConnectionStore>,
    inventory: Arc<dyn InventoryStore>,
    changes: Arc<dyn ChangesStore>,
    /// Grants are read here (which ones to revoke) but changed through `grants`.
    grant_records: Arc<dyn GrantStore>,
    clients: OpenAiClients,
    grants: GrantService,
    audit: AuditService,
    /// Asked once, for the whole offboarding: the grants it revokes are part of it.
    policy: PolicyGate,
    wait: std::time::Duration,
    /// This process's name on the leases it takes.
    instance: Arc<str>,
}

/// Who asks and under which offboarding, for the audit entries.
struct Ctx<'a> {
    who: &'a Principal,
    v: &'a Valid,
    offboarding_id: &'a str,
}

/// What a failed step leaves in the record.
struct Failure {
    code: ErrorCode,
    message: String,
}

impl Failure {
    fn read(e: &OpenAiError) -> Self {
        Self {
            code: ErrorCode::UpstreamUnavailable,
            message: upstream_message(e),
        }
    }

    fn write(e: &OpenAiError) -> Self {
        let code = if e.is_transient() || matches!(e.kind, ErrorKind::InvalidResponse) {
            ErrorCode::UpstreamUnavailable
        } else {
            ErrorCode::UpstreamRefused
        };
        Self {
            code,
            message: upstream_message(e),
        }
    }
}

/// What the person holds in one organization, read before any write.
#[derive(Default)]
struct Held {
    user: Option<OrgUser>,
    email: Option<String>,
    invites: Vec<String>,
    projects: Vec<HeldProject>,
    keys: Vec<HeldKey>,
}

impl OffboardingService {
    /// Wires the use case to its dependencies (grants are revoked through their service).
    /// `wait` is how long a caller waits for the end before it is answered `202`.
    pub fn new(
        store: Arc<dyn Store>,
        clients: OpenAiClients,
        grants: GrantService,
        audit: AuditService,
        wait: std::time::Duration,
    ) -> Self {
        Self {
            offboardings: store.clone(),
            connections: store.clone(),
            inventory: store.clone(),
            changes: store.clone(),
            grant_records: store,
            clients,
            grants,
            audit,
            policy: PolicyGate::open(),
            wait,
            instance: uuid::Uuid::now_v7().to_string().into(),
        }
    }

    /// The same service under the operator's policy.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
    }

    /// The offboarding itself, organization by organization.
    async fn run(
        &self,
        who: &Principal,
        v: &Valid,
        id: &str,
        connections: &[Connection],
    ) -> Result<Offboarding, AppError> {
        let ctx = Ctx {
            who,
            v,
            offboarding_id: id,
        };
        let mut results = Vec::with_capacity(connections.len());
        let (mut email, mut user_id) = (v.email.clone(), v.user_id.clone());
        for c in connections {
            let (rec, found) = self.offboard_one(&ctx, c).await?;
            if let Some(u) = found {
                user_id.get_or_insert(u.id);
                if let Some(m) = u.email {
                    email.get_or_insert(m.to_lowercase());
                }
            }
            results.push(rec);
        }
        if v.connection_id.is_some()
            && let Some(ConnectionOffboarding {
                error: Some(e),
                status,
                ..
            }) = results.first()
        {
            let code = match (status, e.code.as_str()) {
                (OffboardStatus::Refused, _) => ErrorCode::LastOwner,
                (_, "upstream_refused") => ErrorCode::UpstreamRefused,
                (_, "encryption_key_unavailable") => ErrorCode::EncryptionKeyUnavailable,
                _ => ErrorCode::UpstreamUnavailable,
            };
            return Err(AppError::new(code, e.message.clone()));
        }
        Ok(Offboarding {
            id: id.to_owned(),
            email,
            user_id,
            delete_api_keys: v.delete_api_keys,
            reason: v.reason.clone(),
            ticket: v.ticket.clone(),
            requested_by: who.subject.clone(),
            at: Utc::now(),
            connections: results,
        })
    }

    async fn all_connections(&self) -> Result<Vec<Connection>, AppError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.connections.list_connections(after, 100).await?;
            let done = page.len() < 100;
            after = page.last().map(|c| c.id);
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// One organization: read, refuse or write, revoke grants, write through, audit.
    async fn offboard_one(
        &self,
        ctx: &Ctx<'_>,
        connection: &Connection,
    ) -> Result<(ConnectionOffboarding, Option<OrgUser>), AppError> {
        let mut rec = ConnectionOffboarding {
            connection_id: connection.id,
            connection_name: connection.name.clone(),
            status: OffboardStatus::NotAMember,
            user_id: None,
            org_role: None,
            projects: Vec::new(),
            api_keys_deleted: Vec::new(),
            api_keys_kept: Vec::new(),
            invites_deleted: Vec::new(),
            grants_revoked: Vec::new(),
            upstream_request_ids: Vec::new(),
            error: None,
        };
        let client = match self.clients.client(connection).await {
            Ok(c) => c,
            Err(e) => {
                rec.status = OffboardStatus::Failed;
                rec.error = Some(OffboardError {
                    code: e.code.as_str().to_owned(),
                    message: e.message,
                });
                self.record(ctx, &rec, &Held::default()).await?;
                return Ok((rec, None));
            }
        };
        let held = match self.read_held(&client, ctx.v).await {
            Ok(h) => h,
            Err(f) => {
                self.failed(&mut rec, f);
                self.record(ctx, &rec, &Held::default()).await?;
                return Ok((rec, None));
            }
        };
        rec.user_id = held.user.as_ref().map(|u| u.id.clone());
        rec.org_role = held.user.as_ref().and_then(|u| u.role.clone());
        rec.projects = held.projects.clone();
        if let Some(user) = &held.user
            && user.role.as_deref() == Some("owner")
        {
            match self.owner_count(&client).await {
                Ok(n) if n <= 1 => {
                    rec.status = OffboardStatus::Refused;
                    rec.error = Some(OffboardError {
                        code: ErrorCode::LastOwner.as_str().to_owned(),
                        message: format!(
                            "{} is the last owner of organization {}: OpenAI refuses to remove \
                             the last owner; make someone else an owner first",
                            user.email.as_deref().unwrap_or(&user.id),
                            connection.name
                        ),
                    });
                    self.record(ctx, &rec, &held).await?;
                    return Ok((rec, held.user));
                }
                Ok(_) => {}
                Err(e) => {
                    self.failed(&mut rec, Failure::read(&e));
                    self.record(ctx, &rec, &held).await?;
                    return Ok((rec, held.user));
                }
            }
        }
        // What our snapshot still says about them: for someone OpenAI no longer knows (removed
        // through another connection to the same organization, or by hand) it is stale.
        let snapshot_user = match &held.user {
            Some(u) => Some(u.id.clone()),
            None => self.snapshot_user(connection.id, ctx.v).await,
        };
        let snapshot = match &snapshot_user {
            Some(uid) => self.snapshot_items(connection.id, uid).await,
            None => Vec::new(),
        };
        self.announce(connection.id, &held, &snapshot, ctx.v.delete_api_keys)
            .await?;
        if let Err(f) = self.write(&client, ctx.v, &held, &mut rec).await {
            self.failed(&mut rec, f);
        } else if held.user.is_some() {
            rec.status = OffboardStatus::Removed;
        }
        if rec.status != OffboardStatus::Failed {
            rec.api_keys_kept = held
                .keys
                .iter()
                .filter(|k| !rec.api_keys_deleted.contains(k))
                .cloned()
                .collect();
            self.revoke_grants(ctx, connection.id, held.email.as_deref(), &mut rec)
                .await;
        }
        self.write_through(connection.id, &rec, &snapshot).await;
        self.record(ctx, &rec, &held).await?;
        Ok((rec, held.user))
    }

    fn failed(&self, rec: &mut ConnectionOffboarding, f: Failure) {
        rec.status = OffboardStatus::Failed;
        rec.error = Some(OffboardError {
            code: f.code.as_str().to_owned(),
            message: f.message,
        });
    }

    /// Who the person is in this organization and what they hold there.
    async fn read_held(&self, client: &Client, v: &Valid) -> Result<Held, Failure> {
        let user = client
            .find_user(v.user_id.as_deref(), v.email.as_deref())
            .await
            .map_err(|e| Failure::read(&e))?;
        let email = user
            .as_ref()
            .and_then(|u| u.email.as_ref().map(|e| e.to_lowercase()))
            .or_else(|| v.email.clone());
        let mut held = Held {
            user,
            email,
            ..Held::default()
        };
        if let Some(email) = &held.email {
            held.invites = client
                .invites(&Default::default())
                .try_filter(|i| {
                    let hit =
                        i.status == InviteStatus::Pending && i.email.eq_ignore_ascii_case(email);
                    async move { hit }
                })
                .map_ok(|i| i.id)
                .try_collect()
                .await
                .map_err(|e| Failure::read(&e))?;
        }
        let Some(uid) = held.user.as_ref().map(|u| u.id.clone()) else {
            return Ok(held);
        };
        // Active projects only: archived ones have no members to remove (OpenAI answers 400).
        let projects: Vec<_> = client
            .projects(&Default::default())
            .try_collect()
            .await
            .map_err(|e| Failure::read(&e))?;
        for p in projects {
            match client.get_project_user(&p.id, &uid).await {
                Ok(r) => held.projects.push(HeldProject {
                    project_id: p.id.clone(),
                    name: p.name.clone(),
                    role: r.data.role,
                }),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::read(&e)),
            }
            // `any`: a key whose owner already left a project is theirs too.
            let params = ListProjectApiKeysParams {
                owner_project_access: OwnerAccessFilter::Any,
                ..Default::default()
            };
            let mut keys = Box::pin(client.project_api_keys(&p.id, &params));
            while let Some(k) = keys.next().await {
                let k = k.map_err(|e| Failure::read(&e))?;
                if k.owner.user.as_ref().is_some_and(|u| u.id == uid) {
                    held.keys.push(HeldKey {
                        project_id: p.id.clone(),
                        key_id: k.id,
                        name: k.name,
                        redacted_value: k.redacted_value,
                    });
                }
            }
        }
        Ok(held)
    }

    async fn owner_count(&self, client: &Client) -> Result<usize, OpenAiError> {
        client
            .users(&Default::default())
            .try_fold(0usize, |n, u| async move {
                Ok(n + usize::from(u.role.as_deref() == Some("owner")))
            })
            .await
    }

    /// The writes, in an order a retry can finish: invites, keys, then the user.
    async fn write(
        &self,
        client: &Client,
        v: &Valid,
        held: &Held,
        rec: &mut ConnectionOffboarding,
    ) -> Result<(), Failure> {
        for invite in &held.invites {
            match client.delete_invite(invite).await {
                Ok(r) => rec.upstream_request_ids.extend(r.meta.request_id),
                // Gone meanwhile (accepted, expired or deleted): nothing left to delete.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::write(&e)),
            }
            rec.invites_deleted.push(invite.clone());
        }
        if v.delete_api_keys {
            for key in &held.keys {
                match client
                    .delete_project_api_key(&key.project_id, &key.key_id)
                    .await
                {
                    Ok(r) => rec.upstream_request_ids.extend(r.meta.request_id),
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(Failure::write(&e)),
                }
                rec.api_keys_deleted.push(key.clone());
            }
        }
        if let Some(user) = &held.user {
            match client.delete_user(&user.id).await {
                Ok(r) => rec.upstream_request_ids.extend(r.meta.request_id),
                // Removed meanwhile by someone else: the outcome is the same.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::write(&e)),
            }
        }
        Ok(())
    }

    /// The user id our snapshot of the connection knows the person by, if any.
    async fn snapshot_user(&self, connection_id: ConnectionId, v: &Valid) -> Option<String> {
        if let Some(uid) = &v.user_id {
            return Some(uid.clone());
        }
        let mut q = ItemQuery::all(ItemKind::User, 1);
        q.email = v.email.clone();
        let page = self.inventory.list_items(connection_id, &q).await.ok()?;
        page.items.into_iter().next().map(|i| i.key)
    }

    /// The current snapshot's items about the user that leave with them.
    async fn snapshot_items(&self, connection_id: ConnectionId, user_id: &str) -> Vec<Item> {
        let kinds = [
            ItemKind::User,
            ItemKind::ProjectMember,
            ItemKind::GroupMember,
            ItemKind::RoleAssignment,
            ItemKind::ApiKey,
        ];
        let mut items = Vec::new();
        for kind in kinds {
            let mut q = ItemQuery::all(kind, 500);
            q.subject_id = Some(user_id.to_owned());
            loop {
                match self.inventory.list_items(connection_id, &q).await {
                    Ok(page) => {
                        let more = page.items.len() == 500;
                        q.after = page.items.last().map(|i| i.key.clone());
                        items.extend(page.items.into_iter().map(Item::parsed));
                        if !more {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%connection_id, error = %e, "reading the snapshot for offboarding failed; the next sync shows the change");
                        break;
                    }
                }
            }
        }
        items
    }

    /// Announces the changes about to be made, so the next sync marks them `by_governor`.
    async fn announce(
        &self,
        connection_id: ConnectionId,
        held: &Held,
        snapshot: &[Item],
        delete_keys: bool,
    ) -> Result<(), AppError> {
        // Item → the change and the status it will have.
        let mut expected: BTreeMap<(ItemKind, String), (ChangeKind, Option<String>)> =
            BTreeMap::new();
        let removed = (ChangeKind::Removed, None);
        for i in &held.invites {
            expected.insert((ItemKind::Invite, i.clone()), removed.clone());
        }
        if let Some(u) = &held.user {
            expected.insert((ItemKind::User, u.id.clone()), removed.clone());
            for p in &held.projects {
                let key = format!("{}/{}", p.project_id, u.id);
                expected.insert((ItemKind::ProjectMember, key), removed.clone());
            }
            for i in snapshot {
                if i.kind != ItemKind::ApiKey {
                    expected.insert((i.kind, i.key.clone()), removed.clone());
                }
            }
            for k in &held.keys {
                let change = if delete_keys {
                    removed.clone()
                } else {
                    (ChangeKind::Changed, Some("inactive".to_owned()))
                };
                expected.insert((ItemKind::ApiKey, k.key_id.clone()), change);
            }
        }
        let until = Utc::now() + chrono::Duration::days(2);
        for ((kind, key), (change, status)) in expected {
            let e = ExpectedChange {
                connection_id,
                kind,
                key,
                change,
                role: None,
                status,
                until,
            };
            self.changes
                .expect_change(&e)
                .await
                .map_err(not_found(connection_id))?;
        }
        Ok(())
    }

    /// Marks the person's live grants on the connection revoked (best effort: the access is
    /// already gone, so each revoke only records it; a failure is logged and left to a later
    /// revoke or the expiry worker).
    async fn revoke_grants(
        &self,
        ctx: &Ctx<'_>,
        connection_id: ConnectionId,
        email: Option<&str>,
        rec: &mut ConnectionOffboarding,
    ) {
        let Some(email) = email else {
            return;
        };
        for status in [GrantStatus::Active, GrantStatus::Invited] {
            let q = GrantQuery {
                connection_id: Some(connection_id),
                status: Some(status),
                email: Some(email.to_owned()),
                project_id: None,
                after: None,
                limit: 200,
            };
            let grants = match self.grant_records.list_grants(&q).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(%connection_id, error = %e, "listing grants to revoke after offboarding failed");
                    return;
                }
            };
            for g in grants {
                let input = EndInput {
                    reason: Some(format!("offboarded: {}", ctx.v.reason)),
                    ticket: ctx.v.ticket.clone(),
                };
                match self.grants.revoke(ctx.who, g.id, input).await {
                    Ok(Finished::Done(g)) if g.status() == GrantStatus::Revoked => {
                        rec.grants_revoked.push(g.id);
                    }
                    Ok(_) => {
                        tracing::warn!(grant_id = %g.id, "a grant of an offboarded person is not revoked yet; the worker will finish it");
                    }
                    Err(e) => {
                        tracing::warn!(grant_id = %g.id, error = %e.message, "revoking a grant of an offboarded person failed");
                    }
                }
            }
        }
    }

    /// Removes what left from the connection's current snapshot (best effort: a failure only
    /// delays it to the next sync).
    async fn write_through(
        &self,
        connection_id: ConnectionId,
        rec: &ConnectionOffboarding,
        snapshot: &[Item],
    ) {
        let mut removals: Vec<(ItemKind, String)> = rec
            .invites_deleted
            .iter()
            .map(|i| (ItemKind::Invite, i.clone()))
            .collect();
        removals.extend(
            rec.api_keys_deleted
                .iter()
                .map(|k| (ItemKind::ApiKey, k.key_id.clone())),
        );
        let mut upserts = Vec::new();
        if matches!(
            rec.status,
            OffboardStatus::Removed | OffboardStatus::NotAMember
        ) {
            for i in snapshot {
                if i.kind != ItemKind::ApiKey {
                    removals.push((i.kind, i.key.clone()));
                } else if !rec.api_keys_deleted.iter().any(|k| k.key_id == i.key) {
                    // A kept key stays, but its owner is gone from the project.
                    let mut kept = i.clone();
                    kept.status = Some("inactive".to_owned());
                    if let Some(data) = kept.data.as_object_mut() {
                        data.insert("owner_project_access".to_owned(), "inactive".into());
                    }
                    upserts.push(kept);
                }
            }
        }
        if removals.is_empty() && upserts.is_empty() {
            return;
        }
        if let Err(e) = self
            .grant_records
            .patch_head(connection_id, &upserts, &removals)
            .await
        {
            tracing::warn!(%connection_id, error = %e, "write-through of an offboarding failed; the next sync shows the change");
        }
    }

    /// The organization's `user.offboarded` entry: what they held before, what remains after.
    async fn record(
        &self,
        ctx: &Ctx<'_>,
        rec: &ConnectionOffboarding,
        held: &Held,
    ) -> Result<(), AppError> {
        let outcome = match rec.status {
            OffboardStatus::Removed => AuditOutcome::Succeeded,
            OffboardStatus::NotAMember if rec.invites_deleted.is_empty() => AuditOutcome::Unchanged,
            OffboardStatus::NotAMember => AuditOutcome::Succeeded,
            OffboardStatus::Refused | OffboardStatus::Failed => AuditOutcome::Failed,
        };
        let mut e = AuditEntry::new(
            Utc::now(),
            ctx.who.subject.clone(),
            ctx.who.client_id.clone(),
            AuditAction::UserOffboarded,
            outcome,
        );
        e.connection_id = Some(rec.connection_id);
        e.user_id = rec.user_id.clone().or_else(|| ctx.v.user_id.clone());
        e.email = held.email.clone().or_else(|| ctx.v.email.clone());
        e.reason = Some(ctx.v.reason.clone());
        e.ticket = ctx.v.ticket.clone();
        e.upstream_request_id = rec.upstream_request_ids.last().cloned();
        let key_ids = |keys: &[HeldKey]| keys.iter().map(|k| k.key_id.clone()).collect::<Vec<_>>();
        let projects = |ps: &[HeldProject]| {
            ps.iter()
                .map(|p| serde_json::json!({ "project_id": p.project_id, "role": p.role }))
                .collect::<Vec<_>>()
        };
        e.before = Some(serde_json::json!({
            "org_role": rec.org_role,
            "projects": projects(&held.projects),
            "api_keys": key_ids(&held.keys),
            "invites": held.invites,
        }));
        let removed = rec.status == OffboardStatus::Removed;
        let remaining_keys: Vec<String> = held
            .keys
            .iter()
            .filter(|k| !rec.api_keys_deleted.contains(k))
            .map(|k| k.key_id.clone())
            .collect();
        let remaining_invites: Vec<&String> = held
            .invites
            .iter()
            .filter(|i| !rec.invites_deleted.contains(i))
            .collect();
        e.after = Some(serde_json::json!({
            "org_role": if removed { None } else { rec.org_role.clone() },
            "projects": if removed { Vec::new() } else { projects(&held.projects) },
            "api_keys": remaining_keys,
            "invites": remaining_invites,
        }));
        e.detail = Some(serde_json::json!({
            "offboarding_id": ctx.offboarding_id,
            "status": rec.status.as_str(),
            "delete_api_keys": ctx.v.delete_api_keys,
            "api_keys_deleted": key_ids(&rec.api_keys_deleted),
            "invites_deleted": rec.invites_deleted,
            "grants_revoked": rec.grants_revoked,
            "upstream_request_ids": rec.upstream_request_ids,
            "error": rec.error,
        }));
        self.audit.record(&e).await?;
        Ok(())
    }
}
