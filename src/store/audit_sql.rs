//! The audit trail's SQL, rows and [`AuditStore`] implementation, compiled for each backend
//! like `inventory_sql.rs`. Entries are only ever inserted: the tables' triggers refuse
//! updates and deletes, so not even a bug of ours can rewrite history. Each entry is chained
//! to the one before by a hash over its stored columns, so that whoever bypasses the triggers
//! (the table's owner) leaves a trace `audit verify` finds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use super::changes_sql::Bind;
use super::inventory_sql::corrupt;
use super::{Conn, POSTGRES, This};
use crate::domain::audit::{AuditEntry, AuditEvent, AuditId, AuditQuery, ChainHead, ChainLink};
use crate::store::{AuditStore, StoreError};

/// The entry's columns (`$1`..`$17`), for [`INSERT_AUDIT`] and [`APPEND_PG`].
macro_rules! audit_columns {
    () => {
        "at, actor, client_id, action, outcome, connection_id, grant_id, user_id, email, \
         project_id, group_id, reason, ticket, upstream_request_id, before_state, after_state, \
         detail"
    };
}

/// SQLite: appends one entry with its place in the chain (`$18` seq, `$19` prev_hash, `$20`
/// hash), after [`CLAIM_HEAD`].
pub(super) const INSERT_AUDIT: &str = concat!(
    "INSERT INTO audit_events (",
    audit_columns!(),
    ", seq, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17, $18, $19, $20) RETURNING event_id"
);

/// SQLite: advances the chain head and returns the new entry's seq and the previous hash.
/// Being a write, it takes the database's write lock first (if the caller's transaction does
/// not hold it yet), which serializes appenders until that transaction ends.
pub(super) const CLAIM_HEAD: &str = "UPDATE audit_chain_head SET seq = seq + 1, \
     prev_hash = hash WHERE id = 1 RETURNING seq, hash";

/// SQLite: records the new entry's hash (`$1`) in the head.
pub(super) const SET_HEAD_HASH: &str = "UPDATE audit_chain_head SET hash = $1 WHERE id = 1";

/// Postgres: the whole append in one statement (one round trip under the head's row lock,
/// which the update takes and holds until the caller's transaction ends). The link hash is
/// computed by Postgres from the entry's content hash (`$18`, computed in Rust) exactly as
/// [`link_hash`] does; the update's right-hand sides read the head's previous values.
pub(super) const APPEND_PG: &str = concat!(
    "WITH head AS (UPDATE audit_chain_head SET seq = seq + 1, prev_hash = hash, \
     hash = encode(sha256(convert_to((seq + 1)::text || ':' || hash || ':' || $18, 'UTF8')), \
     'hex') WHERE id = 1 RETURNING seq, prev_hash, hash) \
     INSERT INTO audit_events (",
    audit_columns!(),
    ", seq, prev_hash, hash) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14, $15, $16, $17, seq, prev_hash, hash FROM head RETURNING event_id"
);

pub(super) const READ_HEAD: &str =
    "SELECT seq, hash, legacy_through FROM audit_chain_head WHERE id = 1";

/// Chained entries after seq `$1`, in seq order, at most `$2`.
pub(super) const CHAIN_PAGE: &str = "SELECT event_id, at, actor, client_id, action, outcome, \
     connection_id, grant_id, user_id, email, project_id, group_id, reason, ticket, \
     upstream_request_id, before_state, after_state, detail, seq, prev_hash, hash \
     FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2";

/// How many entries from before the chain (`$1` = `legacy_through`) there are.
pub(super) const COUNT_LEGACY: &str =
    "SELECT COUNT(*) FROM audit_events WHERE seq IS NULL AND event_id <= $1";

/// The first entry without a seq appended after the chain began.
pub(super) const FIRST_STRAY: &str = "SELECT event_id FROM audit_events \
     WHERE seq IS NULL AND event_id > $1 ORDER BY event_id LIMIT 1";

/// SHA-256 (hex) over a canonical encoding of every stored column of `b`. The encoding is a
/// JSON array (unambiguous: strings are quoted and escaped), the time at microseconds (what
/// both backends keep) and JSON values with their keys sorted (Postgres' JSONB reorders
/// them).
pub(super) fn content_hash(b: &AuditBinds) -> String {
    use serde_json::Value;
    let mut fields = vec![
        Value::from("openai-governor audit v1"),
        Value::from(b.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    ];
    fields.extend(
        b.texts
            .iter()
            .map(|t| t.clone().map_or(Value::Null, Value::from)),
    );
    fields.extend(
        b.json
            .iter()
            .map(|j| j.as_ref().map_or(Value::Null, |j| canonical(&j.0))),
    );
    hex(&Sha256::digest(Value::Array(fields).to_string().as_bytes()))
}

/// The chain's hash of the entry at `seq` with content hash `content`, following
/// `prev_hash`: SHA-256 (hex) of `seq:prev_hash:content` (both hashes are hex, so `:` cannot
/// occur in them). [`APPEND_PG`] computes the same in SQL.
pub(super) fn link_hash(seq: i64, prev_hash: &str, content: &str) -> String {
    hex(&Sha256::digest(
        format!("{seq}:{prev_hash}:{content}").as_bytes(),
    ))
}

/// `v` with every object's keys in sorted order, whatever map the JSON library uses.
fn canonical(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

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
pub(super) fn audit_page_sql(q: &AuditQuery) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let mut push = |column: &str, op: &str, b: Bind| {
        binds.push(b);
        conditions.push(format!("{column} {op} ${}", binds.len()));
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
         before_state, after_state, detail, seq, prev_hash, hash FROM audit_events {filter} \
         ORDER BY event_id LIMIT ${limit}"
    );
    (sql, binds)
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

impl AuditRow {
    /// The row's columns as they were bound (the hash is over these, not the parsed entry,
    /// so an edit that makes a column unparsable is still reported as an edit).
    fn binds(&self) -> AuditBinds {
        AuditBinds {
            at: self.at,
            texts: [
                Some(self.actor.clone()),
                self.client_id.clone(),
                Some(self.action.clone()),
                Some(self.outcome.clone()),
                self.connection_id.clone(),
                self.grant_id.clone(),
                self.user_id.clone(),
                self.email.clone(),
                self.project_id.clone(),
                self.group_id.clone(),
                self.reason.clone(),
                self.ticket.clone(),
                self.upstream_request_id.clone(),
            ],
            json: [
                self.before_state.clone(),
                self.after_state.clone(),
                self.detail.clone(),
            ],
        }
    }
}

/// One `audit_events` row with its place in the chain (none for entries from before it).
#[derive(sqlx::FromRow)]
pub(super) struct ChainRow {
    #[sqlx(flatten)]
    row: AuditRow,
    seq: Option<i64>,
    prev_hash: Option<String>,
    hash: Option<String>,
}

impl TryFrom<ChainRow> for ChainLink {
    type Error = StoreError;
    fn try_from(r: ChainRow) -> Result<Self, StoreError> {
        // The chain's page selects `seq > n`: a row without one is not in it.
        let seq = r.seq.ok_or_else(|| corrupt("audit seq"))?;
        let prev_hash = r.prev_hash.unwrap_or_default();
        Ok(ChainLink {
            seq,
            event_id: r.row.event_id,
            computed: link_hash(seq, &prev_hash, &content_hash(&r.row.binds())),
            prev_hash,
            hash: r.hash.unwrap_or_default(),
        })
    }
}

impl TryFrom<ChainRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(listed: ChainRow) -> Result<Self, StoreError> {
        let r = listed.row;
        Ok(AuditEvent {
            id: r.event_id,
            seq: listed.seq,
            prev_hash: listed.prev_hash,
            hash: listed.hash,
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

/// Appends `entry` on `conn`, which must be in a transaction (the caller's: a grant's outcome
/// and its audit entry commit together): the chain head's advance and the entry commit
/// together.
pub(super) async fn insert_audit(conn: &mut Conn, entry: &AuditEntry) -> Result<i64, StoreError> {
    let b = AuditBinds::of(entry);
    let content = content_hash(&b);
    // SQLite: the link hash is computed here, between claiming the head and the insert;
    // Postgres computes it in the one statement of `APPEND_PG`.
    let chained = if POSTGRES {
        None
    } else {
        let (seq, prev_hash): (i64, String) =
            sqlx::query_as(CLAIM_HEAD).fetch_one(&mut *conn).await?;
        let hash = link_hash(seq, &prev_hash, &content);
        Some((seq, prev_hash, hash))
    };
    let sql = if POSTGRES { APPEND_PG } else { INSERT_AUDIT };
    let mut q = sqlx::query_as::<_, (i64,)>(sql).bind(b.at);
    for t in b.texts {
        q = q.bind(t);
    }
    for j in b.json {
        q = q.bind(j);
    }
    let (id,) = match &chained {
        None => q.bind(&content),
        Some((seq, prev_hash, hash)) => q.bind(*seq).bind(prev_hash).bind(hash),
    }
    .fetch_one(&mut *conn)
    .await?;
    if let Some((_, _, hash)) = chained {
        sqlx::query(SET_HEAD_HASH)
            .bind(hash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

#[async_trait]
impl AuditStore for This {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditId, StoreError> {
        // A transaction of its own: the head's advance and the entry commit together.
        let mut tx = self.pool.begin().await?;
        let id = insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn audit_chain_head(&self) -> Result<ChainHead, StoreError> {
        let (seq, hash, legacy_through): (i64, String, i64) =
            sqlx::query_as(READ_HEAD).fetch_one(&self.pool).await?;
        Ok(ChainHead {
            seq,
            hash,
            legacy_through,
        })
    }

    async fn audit_chain_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChainLink>, StoreError> {
        let rows: Vec<ChainRow> = sqlx::query_as(CHAIN_PAGE)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn audit_unchained(
        &self,
        legacy_through: AuditId,
    ) -> Result<(u64, Option<AuditId>), StoreError> {
        let (legacy,): (i64,) = sqlx::query_as(COUNT_LEGACY)
            .bind(legacy_through)
            .fetch_one(&self.pool)
            .await?;
        let stray: Option<(i64,)> = sqlx::query_as(FIRST_STRAY)
            .bind(legacy_through)
            .fetch_optional(&self.pool)
            .await?;
        Ok((u64::try_from(legacy).unwrap_or(0), stray.map(|(id,)| id)))
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let (sql, binds) = audit_page_sql(query);
        let mut q = sqlx::query_as::<_, ChainRow>(AssertSqlSafe(sql));
        for b in binds {
            q = b.bind(q);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

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
        let (sql, binds) = audit_page_sql(&q);
        assert_eq!(binds.len(), 5);
        assert!(
            sql.contains(
                "WHERE connection_id = $1 AND email = $2 AND action = $3 AND event_id > $4"
            ),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY event_id LIMIT $5"), "{sql}");
        assert!(matches!(&binds[1], Bind::Text(e) if e == "ann@example.com"));
        let (sql, binds) = audit_page_sql(&AuditQuery::default());
        assert_eq!(binds.len(), 1);
        assert!(!sql.contains("WHERE"), "{sql}");
    }
}
