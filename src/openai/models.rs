//! Typed, lenient models of OpenAI admin API objects (requests and responses).
//!
//! Lenient on purpose: unknown fields are ignored, missing fields default, roles are open
//! strings and closed-looking enums keep unknown values (`Unknown(String)`), so a field or
//! value OpenAI adds next month does not break a sync. Secrets returned once are
//! `SecretString`. Plain data: depends on nothing else of ours.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

/// Deserialises `null` as the type's default (OpenAI sends `null` for some documented arrays).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Declares a string enum that keeps unknown values in `Unknown(String)`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know yet, kept as sent.
            Unknown(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Unknown(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// Status of an invite.
    InviteStatus {
        /// Not yet answered.
        Pending = "pending",
        /// Accepted: the person is a member.
        Accepted = "accepted",
        /// Expired unanswered.
        Expired = "expired",
    }
}

impl Default for InviteStatus {
    fn default() -> Self {
        InviteStatus::Unknown(String::new())
    }
}

open_enum! {
    /// Status of a project.
    ProjectStatus {
        /// In use.
        Active = "active",
        /// Archived: read-only, hidden from lists unless asked.
        Archived = "archived",
    }
}

open_enum! {
    /// Whether an API key's owner still has access to its project.
    OwnerProjectAccess {
        /// The owner is still a member.
        Active = "active",
        /// The owner left; the key stays listed.
        Inactive = "inactive",
    }
}

open_enum! {
    /// Who owns a project API key.
    ApiKeyOwnerType {
        /// A person.
        User = "user",
        /// A project service account.
        ServiceAccount = "service_account",
    }
}

open_enum! {
    /// Kind of group.
    GroupType {
        /// An ordinary group.
        Group = "group",
        /// A tenant group.
        TenantGroup = "tenant_group",
    }
}

open_enum! {
    /// Who acted in an audit-log event.
    AuditActorType {
        /// A person in the dashboard.
        Session = "session",
        /// An API key.
        ApiKey = "api_key",
    }
}

/// A member of the organization (`organization.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgUser {
    /// `organization.user`.
    pub object: String,
    /// `user-...`.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Organization role: `owner`, `reader` or a custom value (open string).
    pub role: Option<String>,
    /// When the user joined (Unix seconds).
    pub added_at: i64,
    /// Whether this is a service-account user.
    pub is_service_account: Option<bool>,
    /// Whether the user is managed by SCIM.
    pub is_scim_managed: Option<bool>,
    /// Last use of one of the user's API keys (Unix seconds).
    pub api_key_last_used_at: Option<i64>,
}

/// A project membership named in an invite.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InviteProject {
    /// Project id.
    pub id: String,
    /// Project role: `member`, `owner` or a custom value.
    pub role: String,
}

/// An invitation to the organization (`organization.invite`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Invite {
    /// `organization.invite`.
    pub object: String,
    /// `invite-...`.
    pub id: String,
    /// Invited address.
    pub email: String,
    /// Organization role offered (`reader`, `owner`, ...).
    pub role: String,
    /// Pending, accepted, expired.
    pub status: InviteStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub accepted_at: Option<i64>,
    /// Memberships granted on acceptance.
    #[serde(deserialize_with = "null_as_default")]
    pub projects: Vec<InviteProject>,
}

/// Body of `POST /organization/invites`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateInvite {
    /// Address to invite.
    pub email: String,
    /// Organization role: `reader` or `owner`.
    pub role: String,
    /// Project memberships granted on acceptance. `None` omits the field, which OpenAI reads
    /// as "the default project"; `Some(vec![])` grants none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<InviteProject>>,
}

/// Body of `POST /organization/users/{user_id}`: a legacy role or a custom role id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModifyUser {
    /// Legacy role (`owner`, `reader`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Custom role id (`role_...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
}

/// A project (`organization.project`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    /// `organization.project`.
    pub object: String,
    /// `proj_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, when archived.
    pub archived_at: Option<i64>,
    /// `active`, `archived` or a new value.
    pub status: Option<ProjectStatus>,
    /// Customer-managed encryption key id.
    pub external_key_id: Option<String>,
    /// Data residency (open string: GLOBAL, US_STORAGE_PROCESSING, ...).
    pub residency: Option<String>,
}

/// Body of `POST /organization/projects`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateProject {
    /// Name.
    pub name: String,
    /// Data residency, if not the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<String>,
    /// Customer-managed encryption key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_key_id: Option<String>,
}

/// Body of `POST /organization/projects/{p}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModifyProject {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New encryption key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_key_id: Option<String>,
}

/// A member of a project (`organization.project.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectUser {
    /// `organization.project.user`.
    pub object: String,
    /// User id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Project role: `owner`, `member`, `viewer` or custom (open string).
    pub role: String,
    /// Unix seconds.
    pub added_at: i64,
}

/// A project service account (`organization.project.service_account`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceAccount {
    /// `organization.project.service_account`.
    pub object: String,
    /// `svc_acct_...`.
    pub id: String,
    /// Name.
    pub name: String,
    /// `owner`, `member`, `none` or another value (open string).
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Body of `POST /organization/projects/{p}/service_accounts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateServiceAccount {
    /// Name.
    pub name: String,
    /// Create the account without a key (role `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_service_account_only: Option<bool>,
}

/// Body of `POST /organization/projects/{p}/service_accounts/{sa}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateServiceAccount {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New role (`member`, `owner`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Body of `POST .../service_accounts/{sa}/api_keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateServiceAccountApiKey {
    /// Key name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Key scopes, if restricted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A service-account API key as returned once, with its unredacted value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceAccountApiKey {
    /// `organization.project.service_account.api_key`.
    pub object: String,
    /// `key_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// The secret key; shown once, never logged.
    pub value: Option<SecretString>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Answer to a service-account creation: the account and (unless asked otherwise) its key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedServiceAccount {
    /// `organization.project.service_account`.
    pub object: String,
    /// `svc_acct_...`.
    pub id: String,
    /// Name.
    pub name: String,
    /// `member` or `none` (open string).
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The first key, returned once; `None` with `create_service_account_only`.
    pub api_key: Option<ServiceAccountApiKey>,
}

/// The person who owns a project API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyOwnerUser {
    /// User id.
    pub id: String,
    /// Email address.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Role (open string).
    pub role: Option<String>,
}

/// The service account that owns a project API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyOwnerServiceAccount {
    /// Service-account id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Role (open string).
    pub role: Option<String>,
}

/// Owner of a project API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyOwner {
    /// `user` or `service_account`.
    #[serde(rename = "type")]
    pub owner_type: Option<ApiKeyOwnerType>,
    /// Set when owned by a user.
    pub user: Option<ApiKeyOwnerUser>,
    /// Set when owned by a service account.
    pub service_account: Option<ApiKeyOwnerServiceAccount>,
}

/// A project API key (`organization.project.api_key`), redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectApiKey {
    /// `organization.project.api_key`.
    pub object: String,
    /// `key_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// `sk-...abcd`.
    pub redacted_value: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
    /// Whether the owner still has access.
    pub owner_project_access: Option<OwnerProjectAccess>,
    /// Who owns it.
    pub owner: ApiKeyOwner,
}

/// A group's access to a project (`project.group`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectGroup {
    /// `project.group`.
    pub object: String,
    /// Project id.
    pub project_id: String,
    /// Group id.
    pub group_id: String,
    /// Group name.
    pub group_name: Option<String>,
    /// `group` or `tenant_group`.
    pub group_type: Option<GroupType>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A group of users (`GroupResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    /// `group` when present (the schema omits it).
    pub object: Option<String>,
    /// `group_...`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Managed by the identity provider: writes may fail or be overwritten.
    #[serde(alias = "scim_managed")]
    pub is_scim_managed: bool,
    /// `group` or `tenant_group` (absent in update answers).
    pub group_type: Option<GroupType>,
}

/// A member of a group as listed (`GroupUser`) or retrieved (`GroupMemberUser`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupUser {
    /// User id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Picture URL (retrieve only).
    pub picture: Option<String>,
    /// Whether a service account (retrieve only).
    pub is_service_account: Option<bool>,
    /// `user` or `tenant_user` (retrieve only; open string).
    pub user_type: Option<String>,
}

/// Answer to adding a user to a group (`group.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupUserAssignment {
    /// `group.user`.
    pub object: String,
    /// User id.
    pub user_id: String,
    /// Group id.
    pub group_id: String,
}

/// A role (`role`): predefined or custom, organization or project level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    /// `role`.
    pub object: String,
    /// `role_...`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Permissions such as `api.groups.read`.
    #[serde(deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    /// `api.organization` or `api.project` (open string).
    pub resource_type: String,
    /// Whether OpenAI defines it.
    pub predefined_role: bool,
}

/// Body to create a role (organization or project).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRole {
    /// Name.
    pub role_name: String,
    /// Permissions.
    pub permissions: Vec<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body to update a role (organization or project).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateRole {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// New permissions (replaces the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A principal a role assignment is inherited from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssignmentSource {
    /// Principal id.
    pub principal_id: String,
    /// Principal type (open string).
    pub principal_type: String,
}

/// A role as assigned to a user or group (`AssignedRoleDetails`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssignedRole {
    /// Role id.
    pub id: String,
    /// Role name.
    pub name: String,
    /// Permissions.
    #[serde(deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    /// `api.organization` or `api.project`.
    pub resource_type: String,
    /// Whether OpenAI defines it.
    pub predefined_role: bool,
    /// Description.
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Unix seconds.
    pub updated_at: Option<i64>,
    /// Creator id.
    pub created_by: Option<String>,
    /// Where the assignment comes from, when inherited.
    pub assignment_sources: Option<Vec<AssignmentSource>>,
}

/// Answer to assigning a role to a user (`user.role`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserRoleAssignment {
    /// `user.role`.
    pub object: String,
    /// The user.
    pub user: OrgUser,
    /// The role.
    pub role: Role,
}

/// Answer to assigning a role to a group (`group.role`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupRoleAssignment {
    /// `group.role`.
    pub object: String,
    /// The group.
    pub group: Group,
    /// The role.
    pub role: Role,
}

/// The answer of every delete (`{object, id?, deleted}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deleted {
    /// E.g. `organization.user.deleted`.
    pub object: String,
    /// The deleted id (RBAC membership deletes omit it).
    pub id: Option<String>,
    /// True when deleted.
    pub deleted: bool,
}

/// Owner of an admin API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminApiKeyOwner {
    /// `user` or `service_account` (open string).
    #[serde(rename = "type")]
    pub owner_type: Option<String>,
    /// Object name.
    pub object: Option<String>,
    /// Owner id.
    pub id: Option<String>,
    /// Owner name.
    pub name: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Role (open string).
    pub role: Option<String>,
}

/// An organization admin API key (`organization.admin_api_key`), redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminApiKey {
    /// `organization.admin_api_key`.
    pub object: String,
    /// `key_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// `sk-admin...xyz`: match the suffix to find one's own key.
    pub redacted_value: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` for keys that do not expire.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
    /// Who created it.
    pub owner: AdminApiKeyOwner,
}

/// A project named in an audit-log event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogProject {
    /// Project id.
    pub id: Option<String>,
    /// Project name.
    pub name: Option<String>,
}

/// A user named as an audit-log actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorUser {
    /// User id.
    pub id: Option<String>,
    /// Email address.
    pub email: Option<String>,
}

/// A dashboard session that acted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorSession {
    /// The person.
    pub user: Option<AuditLogActorUser>,
    /// Their IP address.
    pub ip_address: Option<String>,
}

/// A service account named as an audit-log actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorServiceAccount {
    /// Service-account id.
    pub id: Option<String>,
}

/// An API key that acted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorApiKey {
    /// Key id.
    pub id: Option<String>,
    /// `user` or `service_account` (open string).
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// Owning user.
    pub user: Option<AuditLogActorUser>,
    /// Owning service account.
    pub service_account: Option<AuditLogActorServiceAccount>,
}

/// Who performed an audit-logged action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActor {
    /// `session` or `api_key`.
    #[serde(rename = "type")]
    pub actor_type: Option<AuditActorType>,
    /// Set for dashboard sessions.
    pub session: Option<AuditLogActorSession>,
    /// Set for API keys.
    pub api_key: Option<AuditLogActorApiKey>,
}

/// One audit-log event. The details sit in a property named like the event type
/// (`"user.added": {...}`); there are 145 types, so they are kept as JSON: see [`AuditLog::details`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLog {
    /// `audit_log-...`.
    pub id: String,
    /// Event type, e.g. `user.added` (open string).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub effective_at: i64,
    /// The project involved.
    pub project: Option<AuditLogProject>,
    /// Who did it.
    pub actor: Option<AuditLogActor>,
    /// All other properties, the details among them.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AuditLog {
    /// The event-specific details (the property named like `event_type`), if present.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.extra.get(&self.event_type)
    }
}

/// A time bucket of usage or cost results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "R: Deserialize<'de> + Default"))]
pub struct Bucket<R> {
    /// `bucket`.
    pub object: String,
    /// Unix seconds, inclusive.
    pub start_time: i64,
    /// Unix seconds, exclusive.
    pub end_time: i64,
    /// Results, one per group.
    #[serde(deserialize_with = "null_as_default")]
    pub results: Vec<R>,
}

/// A cost bucket (`/organization/costs`).
pub type CostBucket = Bucket<CostResult>;
/// A usage bucket (`/organization/usage/*`).
pub type UsageBucket = Bucket<UsageResult>;

/// An amount of money.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Amount {
    /// The value (floating point, as OpenAI sends it).
    pub value: f64,
    /// Currency code, e.g. `usd`.
    pub currency: String,
}

/// One cost result (`organization.costs.result`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostResult {
    /// `organization.costs.result`.
    pub object: String,
    /// The cost.
    pub amount: Option<Amount>,
    /// Line item when grouped by it.
    pub line_item: Option<String>,
    /// Project when grouped by it.
    pub project_id: Option<String>,
    /// API key when grouped by it.
    pub api_key_id: Option<String>,
    /// Quantity billed.
    pub quantity: Option<f64>,
    /// Unit of `quantity` (open string).
    pub quantity_unit: Option<String>,
}

/// One usage result of any usage endpoint: the common grouping fields typed, the counters
/// (which differ per endpoint) kept in `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageResult {
    /// E.g. `organization.usage.completions.result`.
    pub object: String,
    /// Project when grouped by it.
    pub project_id: Option<String>,
    /// User when grouped by it.
    pub user_id: Option<String>,
    /// API key when grouped by it.
    pub api_key_id: Option<String>,
    /// Model when grouped by it.
    pub model: Option<String>,
    /// Number of model requests, where the endpoint counts them.
    pub num_model_requests: Option<i64>,
    /// Input tokens, where the endpoint counts them.
    pub input_tokens: Option<i64>,
    /// Output tokens, where the endpoint counts them.
    pub output_tokens: Option<i64>,
    /// Every other field of the result.
    #[serde(flatten)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn unknown_fields_and_enum_values_are_kept_or_ignored() {
        let json = r#"{"object":"organization.invite","id":"invite-1","email":"a@b.c","role":"writer",
            "status":"revoked","created_at":1,"brand_new_field":{"x":1},"projects":null}"#;
        let invite: Invite = serde_json::from_str(json).unwrap();
        assert_eq!(invite.status, InviteStatus::Unknown("revoked".into()));
        assert_eq!(invite.role, "writer");
        assert!(invite.projects.is_empty());
        let back = serde_json::to_value(&invite).unwrap();
        assert_eq!(back["status"], "revoked");
        let invite: Invite = serde_json::from_str(
            r#"{"id":"i","status":"pending","email":"e","role":"reader","created_at":2}"#,
        )
        .unwrap();
        assert_eq!(invite.status, InviteStatus::Pending);
    }

    #[test]
    fn optional_fields_may_be_missing_or_null() {
        let user: OrgUser =
            serde_json::from_str(r#"{"id":"user-1","added_at":5,"role":null,"name":null}"#)
                .unwrap();
        assert_eq!(user.id, "user-1");
        assert_eq!(user.role, None);
        let role: Role = serde_json::from_str(r#"{"id":"role_1","permissions":null}"#).unwrap();
        assert!(role.permissions.is_empty());
    }

    #[test]
    fn audit_log_details_are_found_by_type() {
        let json = r#"{"id":"audit_log-1","type":"user.added","effective_at":7,
            "actor":{"type":"api_key","api_key":{"id":"key_1","type":"user","user":{"id":"u","email":"e"}}},
            "user.added":{"id":"user_x","data":{"role":"member"}}}"#;
        let log: AuditLog = serde_json::from_str(json).unwrap();
        assert_eq!(log.details().unwrap()["data"]["role"], "member");
        let actor = log.actor.unwrap();
        assert_eq!(actor.actor_type, Some(AuditActorType::ApiKey));
    }

    #[test]
    fn service_account_key_value_is_secret() {
        let json = r#"{"id":"svc_acct_1","name":"bot","role":"member","created_at":1,
            "api_key":{"object":"organization.project.service_account.api_key","id":"key_1","name":"k","value":"sk-svcacct-TOPSECRET","created_at":1}}"#;
        let created: CreatedServiceAccount = serde_json::from_str(json).unwrap();
        let shown = format!("{created:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        let value = created.api_key.unwrap().value.unwrap();
        assert_eq!(value.expose_secret(), "sk-svcacct-TOPSECRET");
    }

    #[test]
    fn group_accepts_scim_managed_alias() {
        let g: Group = serde_json::from_str(
            r#"{"object":"group","id":"g","name":"n","created_at":1,"scim_managed":true}"#,
        )
        .unwrap();
        assert!(g.is_scim_managed);
    }

    #[test]
    fn usage_results_keep_endpoint_specific_counters() {
        let json = r#"{"object":"bucket","start_time":0,"end_time":86400,"results":[
            {"object":"organization.usage.images.result","images":3,"num_model_requests":2,"size":"1024x1024"}]}"#;
        let b: UsageBucket = serde_json::from_str(json).unwrap();
        assert_eq!(b.results[0].num_model_requests, Some(2));
        assert_eq!(b.results[0].metrics["images"], 3);
    }
}
