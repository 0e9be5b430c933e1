//! Inventory: run syncs (one per connection at a time, across replicas) and read the
//! current snapshot. A sync writes a new snapshot beside the current one and publishes it in
//! one transaction when it is complete; a failed sync publishes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::audit::AuditService;
use super::clients::OpenAiClients;
use super::connections::not_found;
use super::problems::upstream_message as upstream;
use super::scheduler::SCHEDULER;
use super::sync::{Changes, FetchPlan, NotIncremental, audit_mark, fetch, fetch_changes};
use crate::auth::{Principal, Scope};
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome, SYSTEM_ACTOR};
use crate::domain::policy::Action;
use crate::domain::{
    AuditMark, ConnectionId, DataText, Item, ItemPage, ItemQuery, SyncId, SyncMode, SyncRun,
    SyncStats, SyncStatus, SyncTime,
};
use crate::error::{AppError, ErrorCode};
use crate::openai::{Client, ClientConfig, Meter};
use crate::service::policy::PolicyGate;
use crate::store::{AccessStore, ConnectionStore, InventoryStore, Store, StoreError, SyncStart};

/// Largest page of inventory items or syncs a caller can ask for.
pub const MAX_PAGE: u32 = 500;

/// How syncs run.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Days of daily costs each sync fetches.
    pub cost_days: u32,
    /// Per-project and per-group lists in flight at once.
    pub concurrency: usize,
    /// How long a sync's lease lasts without renewal (a dead worker's sync is taken over after).
    pub lease: Duration,
    /// Client settings for OpenAI calls.
    pub client: ClientConfig,
    /// Longest time between two full syncs (incremental ones in between); zero = every
    /// sync is full.
    pub full_every: Duration,
    /// More audit-log events than this since the last sync: a full sync instead.
    pub max_audit_events: usize,
    /// Also list every user's organization role assignments (one request per user).
    pub user_roles: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            cost_days: 30,
            concurrency: 16,
            lease: Duration::from_secs(120),
            client: ClientConfig::default(),
            full_every: Duration::from_secs(24 * 3600),
            max_audit_events: 1000,
            user_roles: false,
        }
    }
}

/// The inventory use cases.
#[derive(Clone)]
pub struct InventoryService {
    store: Arc<dyn InventoryStore>,
    connections: Arc<dyn ConnectionStore>,
    /// The read model's heads, for read checks.
    access: Arc<dyn AccessStore>,
    settings: Arc<SyncSettings>,
    /// One OpenAI client per connection, shared with grants.
    clients: OpenAiClients,
    audit: AuditService,
    policy: PolicyGate,
}

fn sync_not_found(id: SyncId) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => {
            AppError::new(ErrorCode::SyncNotFound, format!("no sync has id {id}"))
        }
        other => other.into(),
    }
}

/// A store failure as a sync error (the details go to the log, not to the caller).
fn store_failed(run: &SyncRun, e: &StoreError) -> String {
    tracing::error!(sync_id = %run.id, error = %e, "the store failed during a sync");
    "the store failed while writing the snapshot".to_owned()
}

/// The audit entry of a finished run: requested by a caller (its subject), or by the
/// scheduler (the service itself, [`SYSTEM_ACTOR`]).
fn sync_finished(run: &SyncRun, client_id: Option<String>, published: bool) -> AuditEntry {
    let actor = if run.requested_by.is_empty() || run.requested_by == SCHEDULER {
        SYSTEM_ACTOR
    } else {
        run.requested_by.as_str()
    };
    let outcome = match (run.status, published) {
        (SyncStatus::Succeeded, true) => AuditOutcome::Succeeded,
        _ => AuditOutcome::Failed,
    };
    let mut entry = AuditEntry::new(
        run.finished_at.unwrap_or_else(Utc::now),
        actor,
        client_id,
        AuditAction::SyncFinished,
        outcome,
    );
    entry.connection_id = Some(run.connection_id);
    entry.detail = Some(serde_json::json!({
        "sync_id": run.id,
        "status": run.status.as_str(),
        "mode": run.stats.mode,
        "full_reason": run.stats.full_reason,
        "counts": run.stats.counts,
        "skipped": run.stats.skipped,
        "upstream_requests": run.stats.upstream_requests,
        "rate_limited": run.stats.rate_limited,
        "published": published,
        "message": run.error,
    }));
    entry
}

fn millis(t: chrono::DateTime<Utc>, plus: Duration) -> i64 {
    t.timestamp_millis()
        .saturating_add(i64::try_from(plus.as_millis()).unwrap_or(i64::MAX))
}

impl InventoryService {
    /// Wires the use cases to their dependencies.
    pub fn new(store: Arc<dyn Store>, clients: OpenAiClients, settings: SyncSettings) -> Self {
        Self {
            audit: AuditService::new(store.clone()),
            connections: store.clone(),
            access: store.clone(),
            store,
            settings: Arc::new(settings),
            clients,
            policy: PolicyGate::open(),
        }
    }

    /// The same service under the operator's policy.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
    }

    /// The connection `id`, if `who` may do `action` on it.
    async fn allowed(
        &self,
        who: &Principal,
        id: ConnectionId,
        action: Action,
    ) -> Result<(), AppError> {
        let c = self
            .connections
            .get_connection(id)
            .await
            .map_err(not_found(id))?;
        self.policy.require_on(who, action, &c)?;
        Ok(())
    }

    /// The inventory store (for the scheduler).
    pub(super) fn store(&self) -> &Arc<dyn InventoryStore> {
        &self.store
    }

    /// The connections (for the scheduler).
    pub(super) fn connections(&self) -> &Arc<dyn ConnectionStore> {
        &self.connections
    }

    /// Starts a sync of a connection in the background and returns it (`running`).
    /// `sync_in_progress` if one is already running. Requires `connections:write`.
    pub async fn start_sync(
        &self,
        who: &Principal,
        id: ConnectionId,
        full: bool,
    ) -> Result<SyncRun, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        if self.policy.enforced() {
            self.allowed(who, id, Action::Manage).await?;
        }
        self.start_for(id, &who.subject, who.client_id.clone(), full)
            .await
    }

    /// Starts a sync on behalf of `requested_by` (a caller, or the scheduler); `full` forces
    /// a full sync even when an incremental one is possible.
    pub async fn start(
        &self,
        id: ConnectionId,
        requested_by: &str,
        full: bool,
    ) -> Result<SyncRun, AppError> {
        self.start_for(id, requested_by, None, full).await
    }

    /// [`Self::start`], with the requesting caller's OAuth client for the audit trail.
    async fn start_for(
        &self,
        id: ConnectionId,
        requested_by: &str,
        client_id: Option<String>,
        full: bool,
    ) -> Result<SyncRun, AppError> {
        let connection = self
            .connections
            .get_connection(id)
            .await
            .map_err(not_found(id))?;
        let client = self.clients.client(&connection).await?;
        let now = Utc::now();
        let run = SyncRun::start(id, requested_by, now);
        let lease_until = millis(now, self.settings.lease);
        match self
            .store
            .start_sync(&run, lease_until, now.timestamp_millis())
            .await
            .map_err(not_found(id))?
        {
            SyncStart::Started => {}
            SyncStart::Busy(running) => {
                return Err(AppError::new(
                    ErrorCode::SyncInProgress,
                    format!(
                        "sync {running} of this connection is still running; poll \
                         /v1/syncs/{running} and start another when it has finished"
                    ),
                ));
            }
        }
        tracing::info!(connection_id = %id, sync_id = %run.id, by = %requested_by, "sync started");
        let service = self.clone();
        let started = run.clone();
        tokio::spawn(async move { service.run(started, client, full, client_id).await });
        Ok(run)
    }

    /// Syncs, then publishes (or fails) one run. Never panics the task on an error: every
    /// outcome is recorded on the run.
    async fn run(
        self,
        mut run: SyncRun,
        client: Client,
        force_full: bool,
        client_id: Option<String>,
    ) {
        // The client is shared with grants and other syncs: this run counts its own requests,
        // waits behind interactive work, and starts from what any replica learned.
        let meter = Arc::new(Meter::default());
        let client = client.background().metered(meter.clone());
        self.clients.recall(run.connection_id, &client).await;
        let writing = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let outcome = {
            let renew = self.renew_lease(&run);
            let work = self.sync(&run, &client, force_full, &writing);
            tokio::pin!(work);
            tokio::select! {
                outcome = &mut work => outcome,
                lost = renew => Err((lost, SyncStats::default())),
            }
        };
        let mut stats = match outcome {
            Ok(stats) => {
                run.status = SyncStatus::Succeeded;
                stats
            }
            Err((why, stats)) => {
                run.status = SyncStatus::Failed;
                run.error = Some(why);
                stats
            }
        };
        let spent = meter.reading();
        stats.upstream_requests = spent.requests;
        stats.rate_limited = spent.throttled;
        stats.time = Some(SyncTime::new(
            started.elapsed(),
            spent.budget_wait,
            spent.slot_wait,
            spent.upstream,
            Duration::from_micros(writing.load(Ordering::Relaxed)),
        ));
        self.clients.remember(run.connection_id, &client).await;
        run.stats = stats;
        run.finished_at = Some(Utc::now());
        let entry =
            |recorded: &SyncRun, published| sync_finished(recorded, client_id.clone(), published);
        match self.store.finish_sync(&run, &entry).await {
            Ok(true) => {
                tracing::info!(
                    connection_id = %run.connection_id, sync_id = %run.id,
                    status = run.status.as_str(), mode = ?run.stats.mode,
                    requests = run.stats.upstream_requests,
                    error = run.error.as_deref().unwrap_or(""), "sync finished"
                );
            }
            Ok(false) => {
                tracing::warn!(sync_id = %run.id, "sync lost its lease; nothing published");
            }
            Err(e) => {
                tracing::error!(sync_id = %run.id, error = %e, "recording the end of a sync failed");
                run.status = SyncStatus::Failed;
                run.error = Some("the store failed while recording the end of the sync".into());
                // Nobody waits on this task: a failed append is logged by `record` and goes no
                // further.
                let _ = self.audit.record(&entry(&run, false)).await;
            }
        }
    }

    /// Why this run must read everything, or `None` when it may read only what the audit
    /// log says changed since the previous snapshot.
    fn full_reason(
        &self,
        previous: Option<&SyncRun>,
        force_full: bool,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let Some(previous) = previous else {
            return Some("first sync of this connection".into());
        };
        if force_full {
            return Some("a full sync was requested".into());
        }
        if self.settings.full_every.is_zero() {
            return Some("incremental syncs are off (OG_SYNC_FULL_EVERY=0s)".into());
        }
        if previous.stats.audit_mark.is_none() {
            return Some("the audit log could not be read at the previous sync".into());
        }
        let every =
            chrono::Duration::from_std(self.settings.full_every).unwrap_or(chrono::Duration::MAX);
        match previous.stats.last_full_at {
            Some(last) if now < last + every => None,
            _ => Some(format!(
                "periodic full sync (every {})",
                humantime::format_duration(self.settings.full_every)
            )),
        }
    }

    /// The sync itself: incremental when possible, full otherwise. `Err` carries why it
    /// failed and what was counted so far.
    async fn sync(
        &self,
        run: &SyncRun,
        client: &Client,
        force_full: bool,
        writing: &Arc<AtomicU64>,
    ) -> Result<SyncStats, (String, SyncStats)> {
        let plan = FetchPlan {
            cost_days: self.settings.cost_days,
            now: run.started_at.timestamp(),
            concurrency: self.settings.concurrency,
            user_roles: self.settings.user_roles,
        };
        let previous = self
            .store
            .head_sync(run.connection_id)
            .await
            .map_err(|e| (store_failed(run, &e), SyncStats::default()))?;
        let mut reason = self.full_reason(previous.as_ref(), force_full, run.started_at);
        if let (None, Some(previous), Some(mark)) = (
            &reason,
            &previous,
            previous.as_ref().and_then(|p| p.stats.audit_mark.as_ref()),
        ) {
            match fetch_changes(client, &plan, mark, self.settings.max_audit_events).await {
                Ok(changes) => return self.apply(run, previous, changes, writing).await,
                Err(NotIncremental::Fallback(why)) => reason = Some(why),
                Err(NotIncremental::Failed(e)) => return Err((upstream(&e), SyncStats::default())),
            }
        }
        self.full(run, client, &plan, reason, writing).await
    }

    /// An incremental sync: the previous snapshot carried over but for what was fetched again.
    async fn apply(
        &self,
        run: &SyncRun,
        previous: &SyncRun,
        changes: Changes,
        writing: &AtomicU64,
    ) -> Result<SyncStats, (String, SyncStats)> {
        let mut stats = SyncStats {
            mode: SyncMode::Incremental,
            audit_events: changes.events,
            audit_mark: Some(changes.mark),
            last_full_at: previous.stats.last_full_at,
            skipped: changes.skipped,
            ..SyncStats::default()
        };
        for item in &changes.items {
            *stats.counts.entry(item.kind).or_insert(0) += 1;
        }
        let started = Instant::now();
        let written = async {
            self.store
                .copy_items(previous.id, run.id, &changes.replaced)
                .await?;
            self.store.insert_items(run.id, &changes.items).await
        }
        .await;
        add_micros(writing, started.elapsed());
        match written {
            Ok(()) => Ok(stats),
            Err(e) => Err((store_failed(run, &e), stats)),
        }
    }

    /// A full sync: every list, written while it is fetched.
    async fn full(
        &self,
        run: &SyncRun,
        client: &Client,
        plan: &FetchPlan,
        reason: Option<String>,
        writing: &Arc<AtomicU64>,
    ) -> Result<SyncStats, (String, SyncStats)> {
        let mut stats = SyncStats {
            mode: SyncMode::Full,
            full_reason: reason,
            last_full_at: Some(run.started_at),
            ..SyncStats::default()
        };
        // The mark is read first: events during the fetch are replayed next time (harmless:
        // a refresh is idempotent), none is missed. No readable audit log: no mark, and the
        // next sync is full again.
        stats.audit_mark = match audit_mark(client).await {
            Ok(mark) => Some(mark.unwrap_or(AuditMark {
                effective_at: run.started_at.timestamp(),
                ids: Vec::new(),
            })),
            Err(why) => {
                tracing::info!(sync_id = %run.id, %why, "no incremental syncs for this connection");
                None
            }
        };
        let (tx, mut rx) = mpsc::channel::<Vec<Item>>(16);
        let store = self.store.clone();
        let sync_id = run.id;
        let writing = writing.clone();
        // The writer: stores batches while the fetch goes on, counting items per kind.
        let writer = tokio::spawn(async move {
            let mut counts = BTreeMap::new();
            while let Some(batch) = rx.recv().await {
                for item in &batch {
                    *counts.entry(item.kind).or_insert(0u64) += 1;
                }
                let started = Instant::now();
                let written = store.insert_items(sync_id, &batch).await;
                add_micros(&writing, started.elapsed());
                written?;
            }
            Ok::<_, StoreError>(counts)
        });
        let fetched = fetch(client, plan, tx).await.map_err(|e| upstream(&e));
        let written = match writer.await {
            Ok(Ok(counts)) => Ok(counts),
            Ok(Err(e)) => Err(store_failed(run, &e)),
            Err(_) => Err("the snapshot writer stopped unexpectedly".to_owned()),
        };
        match (fetched, written) {
            (Ok(skipped), Ok(counts)) => {
                stats.counts = counts;
                stats.skipped = skipped;
                Ok(stats)
            }
            // What was fetched before the failure, for the record; none of it is published.
            (Err(why), written) => {
                stats.counts = written.unwrap_or_default();
                Err((why, stats))
            }
            (Ok(_), Err(why)) => Err((why, stats)),
        }
    }

    /// Renews the run's lease until it is lost (returns why) or the store fails repeatedly.
    async fn renew_lease(&self, run: &SyncRun) -> String {
        let every = self.settings.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .renew_sync_lease(run, millis(Utc::now(), self.settings.lease))
                .await
            {
                Ok(true) => {}
                Ok(false) => return "the sync lost its lease to another run".to_owned(),
                Err(e) => {
                    tracing::warn!(sync_id = %run.id, error = %e, "renewing the sync lease failed");
                }
            }
        }
    }

    /// One run. Requires `inventory:read`.
    pub async fn get_sync(&self, who: &Principal, id: SyncId) -> Result<SyncRun, AppError> {
        who.require(Scope::InventoryRead)?;
        let run = self.store.get_sync(id).await.map_err(sync_not_found(id))?;
        self.allowed(who, run.connection_id, Action::Read).await?;
        Ok(run)
    }

    /// A connection's runs, newest first. Requires `inventory:read`.
    pub async fn list_syncs(
        &self,
        who: &Principal,
        id: ConnectionId,
        before: Option<SyncId>,
        limit: u32,
    ) -> Result<Vec<SyncRun>, AppError> {
        who.require(Scope::InventoryRead)?;
        self.allowed(who, id, Action::Read).await?;
        Ok(self
            .store
            .list_syncs(id, before, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// A page of a connection's current snapshot. Requires `inventory:read`.
    pub async fn list_items(
        &self,
        who: &Principal,
        id: ConnectionId,
        mut query: ItemQuery,
    ) -> Result<ItemPage<DataText>, AppError> {
        who.require(Scope::InventoryRead)?;
        query.limit = query.limit.clamp(1, MAX_PAGE);
        self.policy
            .require_read(who, id, &*self.access, &*self.connections)
            .await?;
        Ok(self.store.list_items(id, &query).await?)
    }
}

fn add_micros(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}
