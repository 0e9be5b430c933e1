//! The changes feed (`/v1/changes`, `/v1/connections/{id}/changes`): what each sync found
//! added, removed or changed since the previous one, drift or made by openai-governor. Thin
//! handlers over [`ChangesService`](crate::service::ChangesService).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Path, Query};
use crate::auth::Principal;
use crate::domain::{
    Change, ChangeEvent, ChangeId, ChangeKind, ChangeQuery, ConnectionId, EventVerb, ItemKind,
    SyncId,
};
use crate::error::{AppError, ErrorCode};
use crate::service::inventory::MAX_PAGE;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_changes))
}

pub fn connection_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_connection_changes))
}

/// One change between two successive snapshots of an organization.
#[derive(Serialize, ToSchema)]
pub struct ChangeOut {
    /// Its place in the feed (pass as `after` to read on). Ids are handed out in commit
    /// order and without holes: once a reader sees id N, every change below N is readable
    /// too, so polling with `after` never skips one.
    pub id: ChangeId,
    /// The id of the previous change of the same connection (`null` for its first): a reader
    /// following one connection checks each change's `previous_id` is the last id it kept.
    /// (Ids are dense across connections except where a deleted connection's changes went
    /// with it.)
    pub previous_id: Option<ChangeId>,
    /// What happened, `<kind>.<verb>`: `user.added`, `user.removed`, `project.archived`,
    /// `project_member.role_changed`, `invite.status_changed`, `api_key.removed`, ...
    /// Verbs: `added`, `removed`, `archived`, `unarchived` (projects), `role_changed`,
    /// `status_changed`, `updated` (email, parent or subject).
    pub event: String,
    /// The organization.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// The sync that saw it.
    #[schema(value_type = String, format = Uuid)]
    pub sync_id: SyncId,
    /// When that sync finished: the change happened between the previous sync and then.
    pub seen_at: DateTime<Utc>,
    /// The kind of item.
    pub kind: ItemKind,
    /// The item's key, as in the inventory.
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: ChangeKind,
    /// The item's project or group.
    pub parent_id: Option<String>,
    /// The user, group or service account it is about.
    pub subject_id: Option<String>,
    /// The person's email, lower-cased.
    pub email: Option<String>,
    /// Role before (`null` when added).
    pub role_before: Option<String>,
    /// Role after (`null` when removed).
    pub role_after: Option<String>,
    /// Status before.
    pub status_before: Option<String>,
    /// Status after.
    pub status_after: Option<String>,
    /// The object as the previous sync saw it (`null` when added).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// The object as this sync saw it (`null` when removed).
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// Made through openai-governor.
    pub by_governor: bool,
    /// Made elsewhere (the dashboard, another tool): the opposite of `by_governor`.
    pub drift: bool,
}

impl From<Change> for ChangeOut {
    fn from(c: Change) -> Self {
        Self {
            id: c.id,
            previous_id: c.previous_id,
            event: c.event().to_string(),
            connection_id: c.connection_id,
            sync_id: c.sync_id,
            seen_at: c.seen_at,
            kind: c.kind,
            key: c.key,
            change: c.change,
            parent_id: c.parent_id,
            subject_id: c.subject_id,
            email: c.email,
            role_before: c.role_before,
            role_after: c.role_after,
            status_before: c.status_before,
            status_after: c.status_after,
            before: c.before,
            after: c.after,
            by_governor: c.by_governor,
            drift: !c.by_governor,
        }
    }
}

/// A page of changes, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ChangeList {
    /// Changes in the order they were recorded.
    pub data: Vec<ChangeOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page. To follow the feed, keep the last `id` seen and
    /// ask again with it later.
    pub next_cursor: Option<ChangeId>,
}

/// Filters and paging of changes.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeParams {
    /// Only this connection's changes (UUID).
    #[param(format = Uuid)]
    pub connection_id: Option<String>,
    /// Only changes to items of this kind (`user`, `project_member`, `api_key`, ...).
    #[param(value_type = Option<ItemKind>)]
    pub kind: Option<String>,
    /// Only this event, e.g. `project_member.role_changed` or `project.archived`.
    #[param(value_type = Option<EventName>)]
    pub event: Option<String>,
    /// Only changes seen at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// `true`: only drift (changes not made through openai-governor); `false`: only changes
    /// made through openai-governor.
    pub drift: Option<bool>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page, or the last `id` seen.
    pub after: Option<ChangeId>,
}

/// The same, for one connection's changes.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionChangeParams {
    /// Only changes to items of this kind (`user`, `project_member`, `api_key`, ...).
    #[param(value_type = Option<ItemKind>)]
    pub kind: Option<String>,
    /// Only this event, e.g. `project_member.role_changed` or `project.archived`.
    #[param(value_type = Option<EventName>)]
    pub event: Option<String>,
    /// Only changes seen at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// `true`: only drift; `false`: only changes made through openai-governor.
    pub drift: Option<bool>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page, or the last `id` seen.
    pub after: Option<ChangeId>,
}

/// An event name, `<kind>.<verb>`: the schema lists every one [`ChangeEvent`] parses.
pub struct EventName;

impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names: Vec<String> = ItemKind::ALL
            .iter()
            .flat_map(|k| {
                EventVerb::ALL
                    .iter()
                    .map(move |v| format!("{}.{}", k.as_str(), v.as_str()))
            })
            .filter(|name| name.parse::<ChangeEvent>().is_ok())
            .collect();
        super::problems::string_enum(names)
    }
}

impl ToSchema for EventName {}

fn invalid(message: String) -> AppError {
    AppError::new(ErrorCode::InvalidParameter, message)
}

fn shown(raw: &str) -> String {
    raw.chars().take(64).collect()
}

/// Builds the store query from raw parameters, naming the one that is wrong.
fn query(
    connection: Option<ConnectionId>,
    kind: Option<String>,
    event: Option<String>,
    since: Option<String>,
    drift: Option<bool>,
    limit: Option<u32>,
    after: Option<ChangeId>,
) -> Result<(ChangeQuery, u32), AppError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(invalid(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let kind = kind
        .map(|k| {
            k.parse::<ItemKind>().map_err(|_| {
                let kinds: Vec<&str> = ItemKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(format!(
                    "kind `{}` is not an inventory kind; use one of: {}",
                    shown(&k),
                    kinds.join(", ")
                ))
            })
        })
        .transpose()?;
    let event = event
        .map(|e| {
            e.parse::<ChangeEvent>().map_err(|_| {
                invalid(format!(
                    "event `{}` is not an event: use `<kind>.<verb>` with verb added, removed, \
                     role_changed, status_changed, updated (or archived, unarchived for \
                     project), e.g. `project_member.role_changed`",
                    shown(&e)
                ))
            })
        })
        .transpose()?;
    let since = since
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    invalid(format!(
                        "since `{}` is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)",
                        shown(&s)
                    ))
                })
        })
        .transpose()?;
    Ok((
        ChangeQuery {
            connection_id: connection,
            kind,
            event,
            since,
            drift,
            after,
            limit: limit + 1,
        },
        limit,
    ))
}

async fn page(
    state: &AppState,
    who: &Principal,
    query: ChangeQuery,
    limit: u32,
) -> Result<Json<ChangeList>, AppError> {
    let mut changes = state.changes.list(who, query).await?;
    let has_more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    let next_cursor = if has_more {
        changes.last().map(|c| c.id)
    } else {
        None
    };
    Ok(Json(ChangeList {
        data: changes.into_iter().map(ChangeOut::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// List changes across connections: what each sync found different from the previous one.
///
/// A connection's first sync is its baseline and records no changes. Changes made in the
/// dashboard or by another tool are drift (`drift: true`); those made through
/// openai-governor are marked `by_governor`. Oldest first; follow with `after`.
#[utoipa::path(
    get, path = "/", operation_id = "list_changes", tag = "changes",
    params(ChangeParams),
    responses(
        (status = 200, body = ChangeList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_changes(
    State(state): State<AppState>,
    who: Principal,
    Query(p): Query<ChangeParams>,
) -> Result<Json<ChangeList>, AppError> {
    let connection = p
        .connection_id
        .as_deref()
        .map(ConnectionId::parse)
        .transpose()?;
    let (q, limit) = query(
        connection, p.kind, p.event, p.since, p.drift, p.limit, p.after,
    )?;
    page(&state, &who, q, limit).await
}

/// List one connection's changes (the same as `/v1/changes?connection_id=`).
#[utoipa::path(
    get, path = "/{connection_id}/changes", operation_id = "list_connection_changes", tag = "changes",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), ConnectionChangeParams),
    responses(
        (status = 200, body = ChangeList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_connection_changes(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(p): Query<ConnectionChangeParams>,
) -> Result<Json<ChangeList>, AppError> {
    let (q, limit) = query(
        Some(id),
        p.kind,
        p.event,
        p.since,
        p.drift,
        p.limit,
        p.after,
    )?;
    page(&state, &who, q, limit).await
}

/// Types the feed in the document: `ChangeOut` as derived says `before`/`after` are any
/// object; what they hold is the `data` of an item of the change's `kind`. So `ChangeOut`
/// becomes a `oneOf` of one `<Kind>Change` per kind (told apart by `kind`, as `ItemOut`), each
/// the derived schema with `kind` fixed and `before`/`after` that kind's data or `null`.
pub(super) fn typed_changes(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{
        Discriminator, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
    };
    use utoipa::openapi::{Ref, RefOr};

    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(derived))) = components.schemas.get("ChangeOut").cloned()
    else {
        return;
    };
    let mut one_of = OneOfBuilder::new().description(Some(
        "One change; `kind` says which kind of item, and so what `before` and `after` hold.",
    ));
    let mut mapping = Vec::new();
    for kind in ItemKind::ALL {
        let data = super::inventory::data_component(kind);
        let mut change = derived.clone();
        change.description = Some(format!(
            "A change to an item of kind `{}`; `before` and `after` are its `{data}`.",
            kind.as_str()
        ));
        change.properties.insert(
            "kind".into(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([kind.as_str()]))
                .description(Some("The kind of item."))
                .into(),
        );
        for (field, description) in [
            (
                "before",
                "The object as the previous sync saw it (`null` when added).",
            ),
            (
                "after",
                "The object as this sync saw it (`null` when removed).",
            ),
        ] {
            let either = OneOfBuilder::new()
                .item(Ref::from_schema_name(&data))
                .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
                .description(Some(description));
            change.properties.insert(field.into(), either.into());
        }
        let name = super::inventory::kind_component(kind, "Change");
        mapping.push((kind.as_str(), format!("#/components/schemas/{name}")));
        one_of = one_of.item(Ref::from_schema_name(&name));
        components
            .schemas
            .insert(name, RefOr::T(Schema::Object(change)));
    }
    let typed = one_of.discriminator(Some(Discriminator::with_mapping("kind", mapping)));
    components
        .schemas
        .insert("ChangeOut".into(), RefOr::T(typed.into()));
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::ItemKind;

    #[test]
    fn changes_are_typed_per_kind() {
        let doc: Value = serde_json::to_value(super::super::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let change = &schemas["ChangeOut"];
        assert_eq!(
            change["oneOf"].as_array().unwrap().len(),
            ItemKind::ALL.len()
        );
        assert_eq!(change["discriminator"]["propertyName"], "kind");
        let member = &schemas["ProjectMemberChange"];
        assert_eq!(
            change["discriminator"]["mapping"]["project_member"],
            "#/components/schemas/ProjectMemberChange"
        );
        assert_eq!(member["properties"]["kind"]["enum"][0], "project_member");
        for field in ["before", "after"] {
            let either = &member["properties"][field]["oneOf"];
            assert_eq!(either[0]["$ref"], "#/components/schemas/OpenAiProjectUser");
            assert_eq!(either[1]["type"], "null");
        }
        // The rest of the derived schema is kept.
        assert_eq!(member["properties"]["by_governor"]["type"], "boolean");
        assert!(
            member["required"]
                .as_array()
                .unwrap()
                .contains(&"seen_at".into())
        );
    }
}
