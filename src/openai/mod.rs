//! A typed async client of OpenAI's administration API (users, invites, projects and their
//! members, service accounts, API keys, groups, roles and role assignments, admin keys, audit
//! logs, usage and costs).
//!
//! It knows nothing of our database, HTTP server or domain: callers hand it a base URL, an
//! admin key and a `ClientConfig`. It retries with backoff, keeps a rate budget per endpoint
//! template (learned from 429s), bounds concurrency, never follows redirects and never logs secrets or bodies.
//!
//! Operations are `Client` methods: `list_*` fetches one page, the plural (`projects`,
//! `groups`, ...) streams every item page by page. Creates are not repeated after an unknown
//! outcome unless the client is `retrying_writes`.

// OpenAiError carries what the brief asks for (status, message, request id, organization,
// timing); errors cost a network round trip anyway, so its size does not matter.
#![allow(clippy::result_large_err)]

mod budget;
mod client;
mod config;
mod error;
mod models;
mod pagination;
mod params;
mod projects;
mod rbac;
mod reports;
mod users;

pub use budget::{EndpointFamily, LearnedLimit, Priority};
pub use client::{Client, Meter, MeterReading, OrganizationPin, Reply, ResponseMeta};
pub use config::{ClientConfig, RateBudgetConfig, RetryPolicy};
pub use error::{ErrorKind, OpenAiError};
pub use models::*;
pub use pagination::{CursorPage, HasId, RbacPage, UsagePage};
pub use params::{
    AuditLogParams, BucketWidth, CostsParams, CursorParams, ListProjectApiKeysParams,
    ListProjectsParams, ListUsersParams, OwnerAccessFilter, RbacListParams, SortOrder, TimeRange,
    UsageKind, UsageParams,
};
pub use rbac::{Assignee, RoleAssignment, RoleScope};
