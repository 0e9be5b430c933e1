//! The audit trail's use cases: append an entry (for the other use cases, which check their
//! caller's scopes themselves) and read entries back (`audit:read`). There is deliberately no
//! use case that changes or deletes an entry; the store's tables refuse it too.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use crate::auth::{Principal, Scope};
use crate::domain::audit::{
    AuditEntry, AuditEvent, AuditId, AuditQuery, ChainProblem, ChainReport, ChainWalk,
};
use crate::domain::policy::Action;
use crate::error::AppError;
use crate::service::policy::{Names, PolicyGate};
use crate::store::{AuditStore, ConnectionStore, StoreError};

/// Largest page of entries a caller can ask for.
pub const MAX_PAGE: u32 = 500;

/// Entries read from the store at a time by an export.
const EXPORT_CHUNK: u32 = 500;

/// The audit trail use cases.
#[derive(Clone)]
pub struct AuditService {
    store: Arc<dyn AuditStore>,
    /// The policy, and where connection names come from (rules name connections by name).
    policy: Option<(PolicyGate, Arc<dyn ConnectionStore>)>,
}

impl AuditService {
    /// Wires the use cases to the store.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self {
            store,
            policy: None,
        }
    }

    /// The same service under the operator's policy: readers see the entries of the
    /// connections they may `audit`, and entries naming none only if they may audit all.
    pub fn with_policy(self, policy: PolicyGate, connections: Arc<dyn ConnectionStore>) -> Self {
        Self {
            policy: Some((policy, connections)),
            ..self
        }
    }

    /// A filter keeping what `who` may read, or `None` when it may read everything.
    fn scope_for(&self, who: &Principal) -> Option<Visible> {
        let (policy, connections) = self.policy.as_ref()?;
        (policy.enforced() && !policy.allows_everywhere(who, Action::Audit)).then(|| Visible {
            who: who.clone(),
            policy: policy.clone(),
            names: Names::new(connections.clone()),
        })
    }

    /// Appends `entry`. A failure is logged (what was being recorded, never the entry's
    /// `before`/`after`/`detail` payloads) and returned: the caller decides whether the
    /// change it made may stand unaudited.
    pub async fn record(&self, entry: &AuditEntry) -> Result<AuditId, StoreError> {
        self.store.append_audit(entry).await.inspect_err(|e| {
            tracing::error!(
                action = entry.action.as_str(),
                outcome = entry.outcome.as_str(),
                actor = %entry.actor,
                connection_id = ?entry.connection_id,
                grant_id = ?entry.grant_id,
                error = %e,
                "appending to the audit trail failed"
            );
        })
    }

    /// Entries matching `query`, oldest first; `query.limit` is clamped to
    /// 1..=[`MAX_PAGE`]` + 1` (the handler asks for one more to know whether a page follows).
    /// Requires `audit:read`.
    pub async fn list(
        &self,
        who: &Principal,
        mut query: AuditQuery,
    ) -> Result<Vec<AuditEvent>, AppError> {
        who.require(Scope::AuditRead)?;
        query.limit = query.limit.clamp(1, MAX_PAGE + 1);
        let Some(mut visible) = self.scope_for(who) else {
            return Ok(self.store.list_audit(&query).await?);
        };
        // Read on until the page is full or the trail ends: the cursor stays the entry id.
        let mut out = Vec::new();
        loop {
            let page = self.store.list_audit(&query).await?;
            let end = page.len() < query.limit as usize;
            query.after = page.last().map(|e| e.id).or(query.after);
            for e in page {
                if visible.keeps(&e).await {
                    out.push(e);
                }
            }
            if end || out.len() >= query.limit as usize {
                out.truncate(query.limit as usize);
                return Ok(out);
            }
        }
    }

    /// Every entry matching `query` (its `after` is where to start, its `limit` ignored), as
    /// pages read from the store one at a time while the stream is consumed: memory stays
    /// flat however long the trail. Entries appended while the export runs are included if
    /// they match. Requires `audit:read` (checked before the first page).
    pub fn export(
        &self,
        who: &Principal,
        query: AuditQuery,
    ) -> Result<BoxStream<'static, Result<Vec<AuditEvent>, AppError>>, AppError> {
        who.require(Scope::AuditRead)?;
        let store = self.store.clone();
        let start = Some((
            AuditQuery {
                limit: EXPORT_CHUNK,
                ..query
            },
            self.scope_for(who),
        ));
        Ok(stream::unfold(start, move |next| {
            let store = store.clone();
            async move {
                let (mut query, mut visible) = next?;
                match store.list_audit(&query).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let more = page.len() == EXPORT_CHUNK as usize;
                        query.after = page.last().map(|e| e.id);
                        let mut kept = Vec::with_capacity(page.len());
                        for e in page {
                            let keep = match visible.as_mut() {
                                Some(v) => v.keeps(&e).await,
                                None => true,
                            };
                            if keep {
                                kept.push(e);
                            }
                        }
                        Some((Ok(kept), more.then_some((query, visible))))
                    }
                    Err(e) => Some((Err(e.into()), None)),
                }
            }
        })
        .boxed())
    }
}

/// What a caller whose policy limits its audit reads may see, with the connection names
/// looked up once per read.
struct Visible {
    who: Principal,
    policy: PolicyGate,
    names: Names,
}

impl Visible {
    async fn keeps(&mut self, e: &AuditEvent) -> bool {
        let Some(id) = e.entry.connection_id else {
            return false;
        };
        self.names
            .sees(&self.policy, &self.who, Action::Audit, id)
            .await
    }
}

/// Chained entries read from the store at a time by [`verify_chain`].
const VERIFY_CHUNK: u32 = 1000;

/// Walks the whole hash chain in seq order and reports the first gap, edited entry, broken
/// link or entry written around the chain. For operators (`openai-governor audit verify`),
/// so it takes no principal. Entries from before the chain began are counted, not checked.
pub async fn verify_chain<S: AuditStore + ?Sized>(store: &S) -> Result<ChainReport, StoreError> {
    // The head first: entries appended during the walk are beyond it and not awaited.
    let head = store.audit_chain_head().await?;
    let (legacy, stray) = store.audit_unchained(head.legacy_through).await?;
    let mut walk = ChainWalk::default();
    let mut after = 0;
    'pages: while after < head.seq {
        let page = store.audit_chain_page(after, VERIFY_CHUNK).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for link in page.iter().filter(|l| l.seq <= head.seq) {
            if !walk.push(link) {
                break 'pages;
            }
        }
    }
    let verified = walk.verified();
    let problem = walk
        .finish(&head)
        .or(stray.map(|event_id| ChainProblem::Unchained { event_id }));
    Ok(ChainReport {
        head,
        verified,
        legacy,
        problem,
    })
}
