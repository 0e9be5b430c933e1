//! Audit-log events and usage and cost buckets.

use serde::{Deserialize, Serialize};

use super::null_as_default;

open_enum! {
    /// Who acted in an audit-log event.
    AuditActorType {
        /// A person in the dashboard.
        Session = "session",
        /// An API key.
        ApiKey = "api_key",
    }
}

/// A project named in an audit-log event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogProject {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A user named as an audit-log actor.
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

/// A service account named as an audit-log actor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActorServiceAccount {
    pub id: Option<String>,
}

/// An API key that acted.
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

/// Who performed an audit-logged action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditLogActor {
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
    pub id: String,
    /// Event type, e.g. `user.added` (open string).
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Amount {
    /// The value (floating point, as OpenAI sends it).
    pub value: f64,
    pub currency: String,
}

/// One cost result (`organization.costs.result`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostResult {
    pub object: String,
    pub amount: Option<Amount>,
    /// Line item when grouped by it.
    pub line_item: Option<String>,
    /// Project when grouped by it.
    pub project_id: Option<String>,
    /// API key when grouped by it.
    pub api_key_id: Option<String>,
    pub quantity: Option<f64>,
    /// Unit of `quantity` (open string).
    pub quantity_unit: Option<String>,
}

/// One usage result of any usage endpoint: the common grouping fields typed, the counters
/// (which differ per endpoint) kept in `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageResult {
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
    #[serde(flatten)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}
