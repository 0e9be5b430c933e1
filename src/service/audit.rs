//! The audit trail's use cases: append an entry (for the other use cases, which check their
//! caller's scopes themselves) and read entries back (`audit:read`). There is deliberately no
//! use case that changes or deletes an entry; the store's tables refuse it too.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};

use crate::auth::{Principal, Scope};
use crate::domain::audit::{
    AuditEntry, AuditEvent, AuditId, AuditQuery, ChainProblem, ChainReport, ChainWalk,
};
use crate::error::AppError;
use crate::store::{AuditStore, StoreError};

/// Largest page of entries a caller can ask for.
pub const MAX_PAGE: u32 = 500;

/// Entries read from the store at a time by an export.
const EXPORT_CHUNK: u32 = 500;

/// The audit trail use cases.
#[derive(Clone)]
pub struct AuditService {
    store: Arc<dyn AuditStore>,
}

impl AuditService {
    /// Wires the use cases to the store.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self { store }
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
        Ok(self.store.list_audit(&query).await?)
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
        let start = Some(AuditQuery {
            limit: EXPORT_CHUNK,
            ..query
        });
        Ok(stream::unfold(start, move |next| {
            let store = store.clone();
            async move {
                let mut query = next?;
                match store.list_audit(&query).await {
                    Ok(page) if page.is_empty() => None,
                    Ok(page) => {
                        let more = page.len() == EXPORT_CHUNK as usize;
                        query.after = page.last().map(|e| e.id);
                        Some((Ok(page), more.then_some(query)))
                    }
                    Err(e) => Some((Err(e.into()), None)),
                }
            }
        })
        .boxed())
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
