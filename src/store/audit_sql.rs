//! The audit trail's SQL, shared by both backends (`?N` placeholders, turned into `$N` for
//! Postgres by [`dialect`]). Entries are only ever inserted: the tables' triggers refuse
//! updates and deletes, so not even a bug of ours can rewrite history.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::StoreError;
use super::changes_sql::Bind;
use super::inventory_sql::{corrupt, dialect};
use crate::domain::audit::{AuditEntry, AuditEvent, AuditQuery};

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

/// The page query for `q` and its binds in order (the limit is the last), like the changes
/// feed's: only the filters given are bound, entries in append order (by id).
pub(super) fn audit_page_sql(q: &AuditQuery, postgres: bool) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let mut push = |column: &str, op: &str, b: Bind| {
        binds.push(b);
        conditions.push(format!("{column} {op} ?{}", binds.len()));
    };
    if let Some(id) = q.connection_id {
        push("connection_id", "=", Bind::Text(id.to_string()));
    }
    if let Some(actor) = &q.actor {
        push("actor", "=", Bind::Text(actor.clone()));
    }
    // Emails are stored lower-cased (see `AuditBinds::of`), with Rust's lower-casing: the
    // filter uses the same, not SQL's `lower()`, which differs outside ASCII.
    if let Some(email) = &q.email {
        push("email", "=", Bind::Text(email.to_lowercase()));
    }
    if let Some(user) = &q.user_id {
        push("user_id", "=", Bind::Text(user.clone()));
    }
    if let Some(project) = &q.project_id {
        push("project_id", "=", Bind::Text(project.clone()));
    }
    if let Some(grant) = q.grant_id {
        push("grant_id", "=", Bind::Text(grant.to_string()));
    }
    if let Some(action) = q.action {
        push("action", "=", Bind::Text(action.as_str().to_owned()));
    }
    if let Some(since) = q.since {
        push("at", ">=", Bind::Time(since));
    }
    if let Some(until) = q.until {
        push("at", "<", Bind::Time(until));
    }
    if let Some(after) = q.after {
        push("event_id", ">", Bind::Int(after));
    }
    binds.push(Bind::Int(i64::from(q.limit)));
    let limit = binds.len();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT event_id, at, actor, client_id, action, outcome, connection_id, grant_id, \
         user_id, email, project_id, group_id, reason, ticket, upstream_request_id, \
         before_state, after_state, detail FROM audit_events {filter} \
         ORDER BY event_id LIMIT ?{limit}"
    );
    (dialect(&sql, postgres), binds)
}

/// One `audit_events` row.
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    event_id: i64,
    at: DateTime<Utc>,
    actor: String,
    client_id: Option<String>,
    action: String,
    outcome: String,
    connection_id: Option<String>,
    grant_id: Option<String>,
    user_id: Option<String>,
    email: Option<String>,
    project_id: Option<String>,
    group_id: Option<String>,
    reason: Option<String>,
    ticket: Option<String>,
    upstream_request_id: Option<String>,
    before_state: Option<Json<serde_json::Value>>,
    after_state: Option<Json<serde_json::Value>>,
    detail: Option<Json<serde_json::Value>>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: r.event_id,
            entry: AuditEntry {
                at: r.at,
                actor: r.actor,
                client_id: r.client_id,
                action: r.action.parse().map_err(|_| corrupt("audit action"))?,
                outcome: r.outcome.parse().map_err(|_| corrupt("audit outcome"))?,
                connection_id: r
                    .connection_id
                    .map(|c| c.parse())
                    .transpose()
                    .map_err(|_| corrupt("audit connection_id"))?,
                grant_id: r
                    .grant_id
                    .map(|g| g.parse())
                    .transpose()
                    .map_err(|_| corrupt("audit grant_id"))?,
                user_id: r.user_id,
                email: r.email,
                project_id: r.project_id,
                group_id: r.group_id,
                reason: r.reason,
                ticket: r.ticket,
                upstream_request_id: r.upstream_request_id,
                before: r.before_state.map(|j| j.0),
                after: r.after_state.map(|j| j.0),
                detail: r.detail.map(|j| j.0),
            },
        })
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

            async fn list_audit(
                &self,
                query: &crate::domain::audit::AuditQuery,
            ) -> Result<Vec<crate::domain::audit::AuditEvent>, super::StoreError> {
                use super::audit_sql::*;
                use super::changes_sql::Bind;
                let (sql, binds) = audit_page_sql(query, $pg);
                let mut q = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = match b {
                        Bind::Text(v) => q.bind(v),
                        Bind::Time(v) => q.bind(v),
                        Bind::Int(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }
    };
}
pub(super) use audit_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConnectionId;
    use crate::domain::audit::AuditAction;

    #[test]
    fn page_queries_bind_only_the_filters_given() {
        let q = AuditQuery {
            connection_id: Some(ConnectionId::new()),
            email: Some("Ann@Example.COM".into()),
            action: Some(AuditAction::ConnectionCreated),
            after: Some(7),
            limit: 10,
            ..AuditQuery::default()
        };
        let (sql, binds) = audit_page_sql(&q, true);
        assert_eq!(binds.len(), 5);
        assert!(
            sql.contains(
                "WHERE connection_id = $1 AND email = $2 AND action = $3 AND event_id > $4"
            ),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY event_id LIMIT $5"), "{sql}");
        assert!(matches!(&binds[1], Bind::Text(e) if e == "ann@example.com"));
        let (sql, binds) = audit_page_sql(&AuditQuery::default(), false);
        assert_eq!(binds.len(), 1);
        assert!(!sql.contains("WHERE"), "{sql}");
    }
}
