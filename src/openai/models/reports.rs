//! Audit-log events and usage and cost buckets.

use serde::{Deserialize, Serialize};

use super::null_as_default;

open_enum! {
    AuditActorType {
        /// A person in the dashboard.
        Session = "session",
        ApiKey = "api_key",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogProject {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorUser {
    pub id: Option<String>,
    pub email: Option<String>,
}

/// A dashboard session that acted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorSession {
    pub user: Option<AuditLogActorUser>,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorServiceAccount {
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorApiKey {
    pub id: Option<String>,
    /// `user` or `service_account` (open string).
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    pub user: Option<AuditLogActorUser>,
    pub service_account: Option<AuditLogActorServiceAccount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActor {
    #[serde(rename = "type")]
    pub actor_type: Option<AuditActorType>,
    pub session: Option<AuditLogActorSession>,
    pub api_key: Option<AuditLogActorApiKey>,
}

/// One audit-log event. The details sit in a property named like the event type
/// (`"user.added": {...}`); there are 145 types, so they are kept as JSON: see [`AuditLog::details`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLog {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub effective_at: i64,
    pub project: Option<AuditLogProject>,
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
    pub object: String,
    pub start_time: i64,
    pub end_time: i64,
    /// Results, one per group.
    #[serde(deserialize_with = "null_as_default")]
    pub results: Vec<R>,
}

/// A cost bucket (`/organization/costs`).
pub type CostBucket = Bucket<CostResult>;
/// A usage bucket (`/organization/usage/*`).
pub type UsageBucket = Bucket<UsageResult>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiAmount)]
pub struct Amount {
    /// The value (floating point, as OpenAI sends it).
    pub value: f64,
    pub currency: String,
}

/// One cost result (`organization.costs.result`); the grouping fields are set only when
/// grouped by them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiCostResult)]
pub struct CostResult {
    pub object: String,
    pub amount: Option<Amount>,
    pub line_item: Option<String>,
    pub project_id: Option<String>,
    pub api_key_id: Option<String>,
    pub quantity: Option<f64>,
    /// Unit of `quantity` (open string).
    pub quantity_unit: Option<String>,
}

/// One usage result of any usage endpoint. Typed: the grouping fields (set only when grouped
/// by them) and the common counters (where the endpoint counts them); the counters that differ
/// per endpoint stay in `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageResult {
    pub object: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: Option<String>,
    pub num_model_requests: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    #[serde(flatten)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}
