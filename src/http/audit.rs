//! The audit trail (`/v1/audit`, `/v1/audit/export`): read-only, filtered, cursor-paged, and
//! exported as NDJSON for SIEMs. Thin handlers over
//! [`AuditService`](crate::service::AuditService). No route changes or deletes an entry.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::stream::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Query};
use crate::auth::Principal;
use crate::domain::audit::{AuditAction, AuditEvent, AuditId, AuditQuery};
use crate::domain::{ConnectionId, GrantId};
use crate::error::{AppError, ErrorCode};
use crate::service::audit::MAX_PAGE;

const NDJSON: &str = "application/x-ndjson";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(export_audit))
}

/// A page of audit entries, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Entries in the order they were appended.
    pub data: Vec<AuditEvent>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page. To follow the trail, keep the last `id` seen and
    /// ask again with it later.
    pub next_cursor: Option<AuditId>,
}

/// Filters of the audit trail, shared by the list and the export.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries about this connection (UUID).
    #[param(format = Uuid)]
    pub connection_id: Option<String>,
    /// Only entries by this actor (a JWT subject, or `openai-governor` for the service's
    /// own work such as scheduled syncs).
    #[param(
        min_length = 1,
        max_length = 320,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub actor: Option<String>,
    /// Only entries about this person, by email (case-insensitive).
    #[param(
        min_length = 1,
        max_length = 320,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub email: Option<String>,
    /// Only entries about this person, by OpenAI user id.
    #[param(
        min_length = 1,
        max_length = 320,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub user_id: Option<String>,
    /// Only entries about this project.
    #[param(
        min_length = 1,
        max_length = 320,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub project_id: Option<String>,
    /// Only entries about this grant (UUID).
    #[param(format = Uuid)]
    pub grant_id: Option<String>,
    /// Only this action, e.g. `connection.created`, `connection.key_replaced`,
    /// `sync.finished`.
    #[param(value_type = Option<AuditAction>)]
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339). With `until` not after it, nothing.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// Paging of the audit list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Page size, 1–500 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Cursor: the `next_cursor` of the previous page, or the last `id` seen.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
}

/// The list's query: the filters and the paging (documented as those two).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(flatten)]
    filter: AuditFilter,
    #[serde(flatten)]
    page: AuditPage,
}

fn invalid(message: String) -> AppError {
    AppError::new(ErrorCode::InvalidParameter, message)
}

/// At most 64 characters of a caller's value, for a message.
fn shown(raw: &str) -> String {
    raw.chars().take(64).collect()
}

/// A free-text filter: at most 320 characters, not blank; trimmed.
fn text(name: &str, raw: Option<String>) -> Result<Option<String>, AppError> {
    raw.map(|v| {
        let too_long = v.chars().count() > 320;
        let v = v.trim().to_owned();
        if v.is_empty() || too_long {
            Err(invalid(format!(
                "{name} must be between 1 and 320 characters"
            )))
        } else {
            Ok(v)
        }
    })
    .transpose()
}

fn time(name: &str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    raw.map(|s| {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                invalid(format!(
                    "{name} `{}` is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)",
                    shown(&s)
                ))
            })
    })
    .transpose()
}

/// Builds the store query from the filters, naming the parameter that is wrong.
fn filters(p: AuditFilter) -> Result<AuditQuery, AppError> {
    let connection = p
        .connection_id
        .map(|c| {
            ConnectionId::parse(c.trim()).map_err(|_| {
                invalid(format!(
                    "connection_id `{}` is not a connection id (UUID)",
                    shown(&c)
                ))
            })
        })
        .transpose()?;
    let grant_id = p
        .grant_id
        .map(|g| {
            GrantId::parse(g.trim())
                .map_err(|_| invalid(format!("grant_id `{}` is not a grant id (UUID)", shown(&g))))
        })
        .transpose()?;
    let action = p
        .action
        .map(|a| {
            a.trim().parse::<AuditAction>().map_err(|_| {
                let all: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                invalid(format!(
                    "action `{}` is not an audit action; use one of: {}",
                    shown(&a),
                    all.join(", ")
                ))
            })
        })
        .transpose()?;
    let email = text("email", p.email)?.map(|e| e.to_lowercase());
    let since = time("since", p.since)?;
    let until = time("until", p.until)?;
    Ok(AuditQuery {
        connection_id: connection,
        actor: text("actor", p.actor)?,
        email,
        user_id: text("user_id", p.user_id)?,
        project_id: text("project_id", p.project_id)?,
        grant_id,
        action,
        since,
        until,
        after: None,
        limit: 0,
    })
}

/// List audit entries: every change openai-governor made or attempted, oldest first.
///
/// Connections created, updated, re-keyed, deleted and tested (with the caller's subject and
/// client), and every finished sync (by its requester, or `openai-governor` for scheduled
/// ones). Entries are append-only: no API changes or deletes them, and the database refuses
/// it too. Follow with `after`.
#[utoipa::path(
    get, path = "", operation_id = "list_audit", tag = "audit",
    params(AuditFilter, AuditPage),
    responses(
        (status = 200, body = AuditList),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn list_audit(
    State(state): State<AppState>,
    who: Principal,
    Query(AuditParams { filter, page }): Query<AuditParams>,
) -> Result<Json<AuditList>, AppError> {
    let limit = match page.limit.as_deref().map(str::trim) {
        None => 100,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(invalid(format!(
                    "limit must be a whole number between 1 and {MAX_PAGE}"
                )));
            }
        },
    };
    let after = page
        .after
        .as_deref()
        .map(|a| {
            a.trim()
                .parse::<AuditId>()
                .ok()
                .filter(|a| *a >= 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "after `{}` is not an entry id (a whole number)",
                        shown(a)
                    ))
                })
        })
        .transpose()?;
    let mut query = filters(filter)?;
    query.after = after;
    query.limit = limit + 1;
    let mut events = state.audit.list(&who, query).await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = if has_more {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditList {
        data: events,
        has_more,
        next_cursor,
    }))
}

/// Export audit entries as NDJSON, for SIEMs.
///
/// One JSON object per line (the same objects as the list's `data`), oldest first, every
/// entry matching the filters, streamed from the store a page at a time. If the store fails
/// midway the body is cut short: export again with `since`, or page the list from the last
/// `id` received.
#[utoipa::path(
    get, path = "/export", operation_id = "export_audit", tag = "audit",
    params(AuditFilter),
    responses(
        (status = 200, description = "One audit entry per line", body = AuditEvent, content_type = "application/x-ndjson"),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn export_audit(
    State(state): State<AppState>,
    who: Principal,
    Query(p): Query<AuditFilter>,
) -> Result<Response, AppError> {
    let query = filters(p)?;
    let pages = state.audit.export(&who, query)?;
    let body = pages.map(|page| match page {
        Ok(events) => {
            let mut buf = Vec::new();
            for event in &events {
                serde_json::to_writer(&mut buf, event).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
            Ok(buf)
        }
        Err(e) => {
            // Headers are sent: the only way to tell the client is to break the body.
            tracing::error!(error = %e.message, "audit export stopped");
            Err(std::io::Error::other(e.message))
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit.ndjson\""),
    );
    Ok(response)
}
