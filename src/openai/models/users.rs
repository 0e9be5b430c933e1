//! Organization users, invites and admin API keys.

use serde::{Deserialize, Serialize};

use super::null_as_default;

open_enum! {
    InviteStatus {
        Pending = "pending",
        Accepted = "accepted",
        Expired = "expired",
    }
}

impl Default for InviteStatus {
    fn default() -> Self {
        InviteStatus::Unknown(String::new())
    }
}

/// A member of the organization (`organization.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiOrgUser)]
pub struct OrgUser {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Organization role: `owner`, `reader` or a custom value (open string).
    pub role: Option<String>,
    pub added_at: i64,
    pub is_service_account: Option<bool>,
    pub is_scim_managed: Option<bool>,
    /// Last use of any of the user's API keys.
    pub api_key_last_used_at: Option<i64>,
}

/// A project membership named in an invite.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiInviteProject)]
pub struct InviteProject {
    pub id: String,
    /// Project role: `member`, `owner` or a custom value.
    pub role: String,
}

/// An invitation to the organization (`organization.invite`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiInvite)]
pub struct Invite {
    pub object: String,
    pub id: String,
    pub email: String,
    /// Organization role offered (`reader`, `owner`, ...).
    pub role: String,
    pub status: InviteStatus,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub accepted_at: Option<i64>,
    /// Memberships granted on acceptance.
    #[serde(deserialize_with = "null_as_default")]
    pub projects: Vec<InviteProject>,
}

/// Body of `POST /organization/invites`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateInvite {
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

/// Owner of an admin API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiAdminApiKeyOwner)]
pub struct AdminApiKeyOwner {
    /// `user` or `service_account` (open string).
    #[serde(rename = "type")]
    pub owner_type: Option<String>,
    pub object: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub created_at: Option<i64>,
    pub role: Option<String>,
}

/// An organization admin API key (`organization.admin_api_key`), redacted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiAdminApiKey)]
pub struct AdminApiKey {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    /// `sk-admin...xyz`: match the suffix to find one's own key.
    pub redacted_value: String,
    pub created_at: i64,
    /// `None`: never expires.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub owner: AdminApiKeyOwner,
}
