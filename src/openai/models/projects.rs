//! Projects and what hangs off them: members, service accounts and their keys, project
//! API keys and their owners, groups with project access.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::rbac::GroupType;

open_enum! {
    ProjectStatus {
        Active = "active",
        /// Archived: read-only, hidden from lists unless asked.
        Archived = "archived",
    }
}

open_enum! {
    /// Whether an API key's owner still has access to its project.
    OwnerProjectAccess {
        Active = "active",
        /// The owner left; the key stays listed.
        Inactive = "inactive",
    }
}

open_enum! {
    ApiKeyOwnerType {
        User = "user",
        ServiceAccount = "service_account",
    }
}

/// A project (`organization.project`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiProject)]
pub struct Project {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub status: Option<ProjectStatus>,
    /// Customer-managed encryption key id.
    pub external_key_id: Option<String>,
    /// Data residency (open string: GLOBAL, US_STORAGE_PROCESSING, ...).
    pub residency: Option<String>,
}

/// Body of `POST /organization/projects`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateProject {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_key_id: Option<String>,
}

/// Body of `POST /organization/projects/{p}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModifyProject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_key_id: Option<String>,
}

/// A member of a project (`organization.project.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiProjectUser)]
pub struct ProjectUser {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Project role: `owner`, `member`, `viewer` or custom (open string).
    pub role: String,
    pub added_at: i64,
}

/// A project service account (`organization.project.service_account`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiServiceAccount)]
pub struct ServiceAccount {
    pub object: String,
    pub id: String,
    pub name: String,
    /// `owner`, `member`, `none` or another value (open string).
    pub role: String,
    pub created_at: i64,
}

/// Body of `POST /organization/projects/{p}/service_accounts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateServiceAccount {
    pub name: String,
    /// Create the account without a key (role `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_service_account_only: Option<bool>,
}

/// Body of `POST /organization/projects/{p}/service_accounts/{sa}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateServiceAccount {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New role (`member`, `owner`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Body of `POST .../service_accounts/{sa}/api_keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateServiceAccountApiKey {
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
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    /// The secret key; shown once, never logged.
    pub value: Option<SecretString>,
    pub created_at: i64,
}

/// Answer to a service-account creation: the account and (unless asked otherwise) its key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CreatedServiceAccount {
    pub object: String,
    pub id: String,
    pub name: String,
    /// `member` or `none` (open string).
    pub role: String,
    pub created_at: i64,
    /// The first key, returned once; `None` with `create_service_account_only`.
    pub api_key: Option<ServiceAccountApiKey>,
}

/// The person who owns a project API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiApiKeyOwnerUser)]
pub struct ApiKeyOwnerUser {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: Option<i64>,
    pub role: Option<String>,
}

/// The service account that owns a project API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiApiKeyOwnerServiceAccount)]
pub struct ApiKeyOwnerServiceAccount {
    pub id: String,
    pub name: Option<String>,
    pub created_at: Option<i64>,
    pub role: Option<String>,
}

/// The owner of a project API key: `type` says which of `user` and `service_account` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiApiKeyOwner)]
pub struct ApiKeyOwner {
    #[serde(rename = "type")]
    pub owner_type: Option<ApiKeyOwnerType>,
    pub user: Option<ApiKeyOwnerUser>,
    pub service_account: Option<ApiKeyOwnerServiceAccount>,
}

/// A project API key (`organization.project.api_key`), redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiProjectApiKey)]
pub struct ProjectApiKey {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    pub redacted_value: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub owner_project_access: Option<OwnerProjectAccess>,
    pub owner: ApiKeyOwner,
}

/// A group's access to a project (`project.group`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiProjectGroup)]
pub struct ProjectGroup {
    pub object: String,
    pub project_id: String,
    pub group_id: String,
    pub group_name: Option<String>,
    pub group_type: Option<GroupType>,
    pub created_at: i64,
}
