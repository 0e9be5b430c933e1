//! The audit trail's SQL, shared by both backends (`?N` placeholders, turned into `$N` for
//! Postgres by [`dialect`]). Entries are only ever inserted: the tables' triggers refuse
//! updates and deletes, so not even a bug of ours can rewrite history.

use sqlx::types::Json;

use crate::domain::audit::AuditEntry;

/// Appends one entry.
pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, actor, client_id, action, \
     outcome, connection_id, grant_id, user_id, email, project_id, group_id, reason, ticket, \
     upstream_request_id, before_state, after_state, detail) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// The entry's columns in `INSERT_AUDIT` order, as owned values (so a statement can be bound
/// in either backend's transaction).
#[allow(clippy::type_complexity)]
pub(super) struct AuditBinds {
    pub at: chrono::DateTime<chrono::Utc>,
    pub texts: [Option<String>; 13],
    pub json: [Option<Json<serde_json::Value>>; 3],
}

impl AuditBinds {
    pub(super) fn of(e: &AuditEntry) -> Self {
        Self {
            at: e.at,
            texts: [
                Some(e.actor.clone()),
                e.client_id.clone(),
                Some(e.action.as_str().to_owned()),
                Some(e.outcome.as_str().to_owned()),
                e.connection_id.map(|c| c.to_string()),
                e.grant_id.map(|g| g.to_string()),
                e.user_id.clone(),
                e.email.as_ref().map(|m| m.to_lowercase()),
                e.project_id.clone(),
                e.group_id.clone(),
                e.reason.clone(),
                e.ticket.clone(),
                e.upstream_request_id.clone(),
            ],
            json: [
                e.before.clone().map(Json),
                e.after.clone().map(Json),
                e.detail.clone().map(Json),
            ],
        }
    }
}

/// [`super::AuditStore`] for a backend, and `audit_insert` for other statements' transactions
/// (a grant's outcome and its audit entry commit together). `$db` is the sqlx database, `$pg`
/// the dialect.
macro_rules! audit_store {
    ($store:ty, $db:ty, $pg:expr) => {
        impl $store {
            /// Appends `entry` on `conn` (a transaction of the caller's, or a pooled connection).
            pub(super) async fn audit_insert(
                conn: &mut <$db as sqlx::Database>::Connection,
                entry: &crate::domain::audit::AuditEntry,
            ) -> Result<i64, super::StoreError> {
                use super::audit_sql::*;
                use super::inventory_sql::dialect;
                let b = AuditBinds::of(entry);
                let sql = format!("{} RETURNING event_id", dialect(INSERT_AUDIT, $pg));
                let mut q = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(b.at);
                for t in b.texts {
                    q = q.bind(t);
                }
                for j in b.json {
                    q = q.bind(j);
                }
                let (id,) = q.fetch_one(&mut *conn).await?;
                Ok(id)
            }
        }

        #[async_trait::async_trait]
        impl super::AuditStore for $store {
            async fn append_audit(
                &self,
                entry: &crate::domain::audit::AuditEntry,
            ) -> Result<i64, super::StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::audit_insert(&mut conn, entry).await
            }
        }
    };
}
pub(super) use audit_store;
