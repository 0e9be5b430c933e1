//! Inventory: start and follow syncs (`/v1/connections/{id}/syncs`, `/v1/syncs/{id}`) and
//! read a connection's current snapshot (`/v1/connections/{id}/inventory/{kind}`). Thin
//! handlers over [`InventoryService`](crate::service::InventoryService).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    Discriminator, KnownFormat, ObjectBuilder, OneOfBuilder, RefBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Path, Query};
use crate::auth::Principal;
use crate::domain::{
    ConnectionId, DataText, Item, ItemKind, ItemQuery, SyncId, SyncRun, SyncStats, SyncStatus,
};
use crate::error::{AppError, ErrorCode};
use crate::service::inventory::MAX_PAGE;

pub fn connection_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sync, list_syncs))
        .routes(routes!(list_inventory))
}

pub fn sync_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_sync))
}

/// A sync run as served.
#[derive(Serialize, ToSchema)]
pub struct SyncOut {
    /// Identifier (UUID); also names the snapshot it produced.
    #[schema(value_type = String, format = Uuid)]
    pub id: SyncId,
    /// The connection synced.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// `running`, `succeeded` (its snapshot is what readers see) or `failed` (readers still
    /// see the previous snapshot).
    pub status: SyncStatus,
    /// Who started it (JWT `sub`).
    pub requested_by: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Items per kind, OpenAI requests made, 429s met, parts skipped (and why).
    pub stats: SyncStats,
    /// Why it failed (OpenAI's message and request id when OpenAI failed).
    pub error: Option<String>,
}

impl From<SyncRun> for SyncOut {
    fn from(r: SyncRun) -> Self {
        Self {
            id: r.id,
            connection_id: r.connection_id,
            status: r.status,
            requested_by: r.requested_by,
            started_at: r.started_at,
            finished_at: r.finished_at,
            stats: r.stats,
            error: r.error,
        }
    }
}

/// A page of sync runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct SyncList {
    /// Runs, newest first.
    pub data: Vec<SyncOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `before` to get the next (older) page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<SyncId>,
}

/// One inventory object. Documented per kind (see [`ItemOut`]'s `ToSchema`): `data` is the
/// kind's OpenAI model as our sync stored it.
#[derive(Serialize)]
pub struct ItemOut {
    /// What it is.
    pub kind: ItemKind,
    /// Unique among the snapshot's items of this kind: the object's id, or
    /// `<project or group id>/<member id>` for memberships.
    pub key: String,
    /// The project (memberships, service accounts, API keys, costs) or group (members).
    pub parent_id: Option<String>,
    /// The user, group or service account it is about.
    pub subject_id: Option<String>,
    /// The person's email, lower-cased.
    pub email: Option<String>,
    /// Role name.
    pub role: Option<String>,
    /// Project status, invite status, API key `owner_project_access`, or role level.
    pub status: Option<String>,
    /// The object as OpenAI returned it at the last sync.
    pub data: DataText,
}

/// A schema and the components it refers to, as [`ToSchema::schemas`] collects them.
type Components = Vec<(String, RefOr<Schema>)>;

/// How one kind is documented: what it is, and its `data` component (name, schema and
/// the components that one refers to).
struct KindDoc {
    description: &'static str,
    data_name: String,
    data: RefOr<Schema>,
    nested: Components,
}

impl KindDoc {
    /// `data` is `T` (one of the OpenAI models), serialized.
    fn model<T: ToSchema>(description: &'static str) -> Self {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        Self {
            description,
            data_name: T::name().into_owned(),
            data: T::schema(),
            nested,
        }
    }

    /// Every kind's documentation. `data` is what `service::sync::items` stores.
    fn of(kind: ItemKind) -> Self {
        use crate::openai::{
            AdminApiKey, AssignedRole, Group, GroupUser, Invite, OrgUser, Project, ProjectApiKey,
            ProjectGroup, ProjectUser, Role, ServiceAccount,
        };
        match kind {
            ItemKind::User => Self::model::<OrgUser>(
                "An organization member (`organization.user`); `subject_id` = its id.",
            ),
            ItemKind::Invite => {
                Self::model::<Invite>("An invite, with the projects it will grant.")
            }
            ItemKind::Project => Self::model::<Project>(
                "A project, archived ones included (`status` `active` / `archived`).",
            ),
            ItemKind::ProjectMember => Self::model::<ProjectUser>(
                "A user's membership of a project; `parent_id` = project, `subject_id` = user.",
            ),
            ItemKind::ProjectGroup => Self::model::<ProjectGroup>(
                "A group's access to a project; `parent_id` = project, `subject_id` = group.",
            ),
            ItemKind::ServiceAccount => {
                Self::model::<ServiceAccount>("A project service account; `parent_id` = project.")
            }
            ItemKind::ApiKey => Self::model::<ProjectApiKey>(
                "A project API key; `parent_id` = project, `subject_id` = owner (user or service \
                 account), `status` = `owner_project_access`.",
            ),
            ItemKind::Group => Self::model::<Group>("An RBAC group."),
            ItemKind::GroupMember => Self::model::<GroupUser>(
                "A user's membership of a group; `parent_id` = group, `subject_id` = user.",
            ),
            ItemKind::Role => Self::model::<Role>(
                "An RBAC role: organization roles keyed by id; project roles keyed \
                 `project/id` with `parent_id` = project. `subject_id` = role id, `role` = \
                 name, `status` = resource type.",
            ),
            ItemKind::RoleAssignment => Self::model::<AssignedRole>(
                "A role assigned to a group or user, keyed \
                 `scope/principal_type/principal/role_id` (scope `organization` or a project \
                 id); `parent_id` = project (none at organization level), `subject_id` = the \
                 group or user, `role` = role name, `status` = `group` / `user`.",
            ),
            ItemKind::AdminKey => Self::model::<AdminApiKey>("An admin API key (redacted)."),
            ItemKind::Cost => Self::cost(),
        }
    }

    /// A cost item's `data`: the cost result with its day bucket's bounds added.
    fn cost() -> Self {
        let mut doc = Self::model::<crate::openai::CostResult>(
            "One day's cost of one project and line item; `parent_id` = project.",
        );
        doc.data_name = "OpenAiCostItemData".into();
        if let RefOr::T(Schema::Object(result)) = &mut doc.data {
            result.description = Some(
                "One cost result (`organization.costs.result`) of one day bucket, with the \
                 bucket's bounds. The grouping fields are set only when grouped by them."
                    .into(),
            );
            for (field, description) in [
                ("start_time", "Start of the bucket (Unix seconds)."),
                ("end_time", "End of the bucket (Unix seconds, exclusive)."),
            ] {
                let bound = ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .description(Some(description));
                result.properties.insert(field.into(), bound.into());
            }
        }
        doc
    }
}

/// `<Kind>Item`: `project_member` → `ProjectMemberItem`.
fn item_component(kind: ItemKind) -> String {
    kind_component(kind, "Item")
}

/// The kind's name in UpperCamelCase, then `suffix`: (`project_member`, `Change`) →
/// `ProjectMemberChange`.
pub(super) fn kind_component(kind: ItemKind, suffix: &str) -> String {
    let mut name: String = kind
        .as_str()
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str(suffix);
    name
}

/// The component holding a `kind` item's `data` (`OpenAiOrgUser`, ...), which the changes
/// feed's `before` and `after` hold too.
pub(super) fn data_component(kind: ItemKind) -> String {
    KindDoc::of(kind).data_name
}

/// The OpenAI models derive their schemas as they read (`#[serde(default)]`: every field
/// optional, with a default); they are served as serialized, which writes every field.
fn as_serialized(mut schema: RefOr<Schema>) -> RefOr<Schema> {
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.required = object.properties.keys().cloned().collect();
        for property in object.properties.values_mut() {
            match property {
                RefOr::Ref(r) => r.default = None,
                RefOr::T(Schema::Object(o)) => o.default = None,
                RefOr::T(Schema::Array(a)) => a.default = None,
                RefOr::T(Schema::OneOf(o)) => o.default = None,
                RefOr::T(Schema::AllOf(o)) => o.default = None,
                RefOr::T(Schema::AnyOf(o)) => o.default = None,
                RefOr::T(_) => {}
            }
        }
    }
    schema
}

/// The item of `kind` whose `data` is the component `data_name`.
fn item_schema(kind: ItemKind, doc: &KindDoc) -> Schema {
    let string = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let nullable = |description: &str| {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(description))
    };
    ObjectBuilder::new()
        .description(Some(format!(
            "One inventory object of kind `{}`: {}",
            kind.as_str(),
            doc.description
        )))
        .property(
            "kind",
            string("What it is.").enum_values(Some([kind.as_str()])),
        )
        .required("kind")
        .property(
            "key",
            string(
                "Unique among the snapshot's items of this kind: the object's id, or\n\
                 `<project or group id>/<member id>` for memberships.",
            ),
        )
        .required("key")
        .property(
            "parent_id",
            nullable(
                "The project (memberships, service accounts, API keys, costs) or group (members).",
            ),
        )
        .property(
            "subject_id",
            nullable("The user, group or service account it is about."),
        )
        .property("email", nullable("The person's email, lower-cased."))
        .property("role", nullable("Role name."))
        .property(
            "status",
            nullable(
                "Project status, invite status, API key `owner_project_access`, or role level.",
            ),
        )
        .property(
            "data",
            RefBuilder::new()
                .ref_location_from_schema_name(&doc.data_name)
                .description(Some("The object as OpenAI returned it at the last sync.")),
        )
        .required("data")
        .into()
}

/// `oneOf` the kinds' items, told apart by `kind`.
impl PartialSchema for ItemOut {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "One inventory object; `kind` says which, and so what `data` holds.",
        ));
        let mut mapping = Vec::new();
        for kind in ItemKind::ALL {
            let component = item_component(kind);
            one_of = one_of.item(Ref::from_schema_name(&component));
            mapping.push((kind.as_str(), format!("#/components/schemas/{component}")));
        }
        one_of
            .discriminator(Some(Discriminator::with_mapping("kind", mapping)))
            .into()
    }
}

impl ToSchema for ItemOut {
    fn schemas(schemas: &mut Components) {
        for kind in ItemKind::ALL {
            let doc = KindDoc::of(kind);
            schemas.push((item_component(kind), item_schema(kind, &doc).into()));
            schemas.push((doc.data_name, as_serialized(doc.data)));
            schemas.extend(
                doc.nested
                    .into_iter()
                    .map(|(name, schema)| (name, as_serialized(schema))),
            );
        }
    }
}

impl From<Item<DataText>> for ItemOut {
    fn from(i: Item<DataText>) -> Self {
        Self {
            kind: i.kind,
            key: i.key,
            parent_id: i.parent_id,
            subject_id: i.subject_id,
            email: i.email,
            role: i.role,
            status: i.status,
            data: i.data,
        }
    }
}

/// A page of a connection's inventory, from its last successful sync.
#[derive(Serialize, ToSchema)]
pub struct ItemList {
    /// Items ordered by `key`.
    pub data: Vec<ItemOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    pub next_cursor: Option<String>,
    /// The sync the data comes from; `null` before the first successful sync.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sync_id: Option<SyncId>,
    /// When that sync finished: how fresh the data is.
    pub synced_at: Option<DateTime<Utc>>,
}

/// How to sync.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartSyncParams {
    /// Read everything even when an incremental sync (only what the audit log says changed)
    /// is possible. Default `false`.
    #[serde(default)]
    pub full: bool,
}

/// Paging of sync runs.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncListParams {
    /// Page size, 1–500 (default 20).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page (a sync id).
    #[param(format = Uuid)]
    pub before: Option<String>,
}

/// Filters and paging of inventory items.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemParams {
    /// Only items of this project or group (e.g. the members of one project).
    pub parent_id: Option<String>,
    /// Only items about this user, group or service account (e.g. one user's memberships).
    pub subject_id: Option<String>,
    /// Only items of this email (case-insensitive).
    pub email: Option<String>,
    /// Only items with this role.
    pub role: Option<String>,
    /// Only items with this status (`archived` projects, `pending` invites, `inactive` keys...).
    pub status: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page.
    pub after: Option<String>,
}

fn limit(raw: Option<u32>, default: u32) -> Result<u32, AppError> {
    let limit = raw.unwrap_or(default);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

fn item_kind(raw: &str) -> Result<ItemKind, AppError> {
    raw.parse().map_err(|_| {
        let kinds: Vec<&str> = ItemKind::ALL.iter().map(|k| k.as_str()).collect();
        AppError::new(
            ErrorCode::NotFound,
            format!(
                "`{}` is not an inventory kind; use one of: {}",
                raw.chars().take(64).collect::<String>(),
                kinds.join(", ")
            ),
        )
    })
}

/// Start a sync of a connection's inventory.
///
/// Returns at once with the `running` sync; poll `Location` until it has finished. Readers
/// keep seeing the previous snapshot until the new one is complete. When the previous sync
/// read the audit log, this one reads only what changed since (`stats.mode: incremental`),
/// unless `full=true` or a periodic full sync is due.
#[utoipa::path(
    post, path = "/{connection_id}/syncs", operation_id = "start_sync", tag = "inventory",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), StartSyncParams),
    responses(
        (status = 202, description = "Started", body = SyncOut),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn start_sync(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<StartSyncParams>,
) -> Result<impl IntoResponse, AppError> {
    let run = state.inventory.start_sync(&who, id, params.full).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{}", run.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(SyncOut::from(run))))
}

/// List a connection's syncs, newest first.
#[utoipa::path(
    get, path = "/{connection_id}/syncs", operation_id = "list_syncs", tag = "inventory",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), SyncListParams),
    responses(
        (status = 200, body = SyncList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_syncs(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<SyncListParams>,
) -> Result<Json<SyncList>, AppError> {
    let before = params.before.as_deref().map(SyncId::parse).transpose()?;
    let limit = limit(params.limit, 20)?;
    let mut runs = state
        .inventory
        .list_syncs(&who, id, before, limit + 1)
        .await?;
    let has_more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_cursor = if has_more {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(SyncList {
        data: runs.into_iter().map(SyncOut::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// Get a sync: its status, counts and error.
#[utoipa::path(
    get, path = "/{sync_id}", operation_id = "get_sync", tag = "inventory",
    params(("sync_id" = String, Path, format = Uuid, description = "Sync id (UUID)")),
    responses(
        (status = 200, body = SyncOut),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn get_sync(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<SyncId>,
) -> Result<Json<SyncOut>, AppError> {
    Ok(Json(state.inventory.get_sync(&who, id).await?.into()))
}

/// Read a connection's inventory, one kind at a time, from its last successful sync.
///
/// Kinds: `user`, `invite`, `project`, `project_member`, `project_group`, `service_account`,
/// `api_key`, `group`, `group_member`, `role`, `admin_key`, `cost`. Answered from our store,
/// never by calling OpenAI; `synced_at` says how fresh it is.
#[utoipa::path(
    get, path = "/{connection_id}/inventory/{kind}", operation_id = "list_inventory", tag = "inventory",
    params(
        ("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"),
        ("kind" = ItemKind, Path, description = "What to list"),
        ItemParams,
    ),
    responses(
        (status = 200, body = ItemList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_inventory(
    State(state): State<AppState>,
    who: Principal,
    Path((id, kind)): Path<(ConnectionId, String)>,
    Query(params): Query<ItemParams>,
) -> Result<Json<ItemList>, AppError> {
    let kind = item_kind(&kind)?;
    let limit = limit(params.limit, 100)?;
    let query = ItemQuery {
        kind,
        parent_id: params.parent_id,
        subject_id: params.subject_id,
        email: params.email,
        role: params.role,
        status: params.status,
        after: params.after,
        limit: limit + 1,
    };
    let mut page = state.inventory.list_items(&who, id, query).await?;
    let has_more = page.items.len() > limit as usize;
    page.items.truncate(limit as usize);
    let next_cursor = if has_more {
        page.items.last().map(|i| i.key.clone())
    } else {
        None
    };
    Ok(Json(ItemList {
        data: page.items.into_iter().map(ItemOut::from).collect(),
        has_more,
        next_cursor,
        sync_id: page.sync_id,
        synced_at: page.synced_at,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::openai::{
        AdminApiKey, AssignedRole, CostResult, Group, GroupUser, Invite, OrgUser, Project,
        ProjectApiKey, ProjectGroup, ProjectUser, Role, ServiceAccount,
    };

    fn keys(v: &Value) -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn components() -> BTreeMap<String, Value> {
        let mut schemas = Vec::new();
        ItemOut::schemas(&mut schemas);
        schemas
            .into_iter()
            .map(|(name, s)| (name, serde_json::to_value(s).unwrap()))
            .collect()
    }

    /// What the sync stores as `data` for each kind (`service::sync::items`), at its default.
    fn stored(kind: ItemKind) -> Value {
        fn json<T: Default + Serialize>() -> Value {
            serde_json::to_value(T::default()).unwrap()
        }
        match kind {
            ItemKind::User => json::<OrgUser>(),
            ItemKind::Invite => json::<Invite>(),
            ItemKind::Project => json::<Project>(),
            ItemKind::ProjectMember => json::<ProjectUser>(),
            ItemKind::ProjectGroup => json::<ProjectGroup>(),
            ItemKind::ServiceAccount => json::<ServiceAccount>(),
            ItemKind::ApiKey => json::<ProjectApiKey>(),
            ItemKind::Group => json::<Group>(),
            ItemKind::GroupMember => json::<GroupUser>(),
            ItemKind::Role => json::<Role>(),
            ItemKind::RoleAssignment => json::<AssignedRole>(),
            ItemKind::AdminKey => json::<AdminApiKey>(),
            ItemKind::Cost => {
                let mut data = json::<CostResult>();
                data["start_time"] = json!(0);
                data["end_time"] = json!(86400);
                data
            }
        }
    }

    #[test]
    fn each_kind_documents_the_item_and_the_data_as_served() {
        let components = components();
        for kind in ItemKind::ALL {
            let data = stored(kind);
            let item = ItemOut::from(Item {
                kind,
                key: "k".into(),
                parent_id: None,
                subject_id: None,
                email: None,
                role: None,
                status: None,
                data: serde_json::value::to_raw_value(&data).unwrap(),
            });
            let item = serde_json::to_value(item).unwrap();
            let schema = &components[&item_component(kind)];
            assert_eq!(keys(&schema["properties"]), keys(&item), "{kind:?}");
            assert_eq!(schema["properties"]["kind"]["enum"], json!([kind.as_str()]));
            let data_ref = schema["properties"]["data"]["$ref"].as_str().unwrap();
            let data_name = data_ref.trim_start_matches("#/components/schemas/");
            let data_schema = &components[data_name];
            // Every field written is documented, and required: nothing is skipped.
            assert_eq!(keys(&data_schema["properties"]), keys(&data), "{kind:?}");
            let mut required: Vec<String> =
                serde_json::from_value(data_schema["required"].clone()).unwrap();
            required.sort();
            assert_eq!(required, keys(&data), "{kind:?}");
        }
    }

    #[test]
    fn item_out_is_one_of_the_kinds_by_kind_and_every_reference_is_registered() {
        let schema = serde_json::to_value(ItemOut::schema()).unwrap();
        let components = components();
        assert_eq!(
            schema["oneOf"].as_array().unwrap().len(),
            ItemKind::ALL.len()
        );
        assert_eq!(schema["discriminator"]["propertyName"], "kind");
        assert_eq!(
            schema["discriminator"]["mapping"]["project_member"],
            "#/components/schemas/ProjectMemberItem"
        );
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.trim_start_matches("#/components/schemas/").to_owned());
                    }
                    map.values().for_each(|c| refs(c, out));
                }
                Value::Array(items) => items.iter().for_each(|c| refs(c, out)),
                _ => {}
            }
        }
        let mut referenced = Vec::new();
        refs(&schema, &mut referenced);
        components.values().for_each(|c| refs(c, &mut referenced));
        for name in referenced {
            assert!(components.contains_key(&name), "{name} is not registered");
        }
        // Open enums are strings listing the known values, never a closed `enum`.
        let status = &components["OpenAiInviteStatus"];
        assert_eq!(status["type"], "string");
        assert!(status.get("enum").is_none());
        assert_eq!(
            status["examples"],
            json!(["pending", "accepted", "expired"])
        );
    }
}
