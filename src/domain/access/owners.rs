//! A connection's organization owners: who can manage everything in the organization.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::person::grant_user;
use super::{OrgUser, role_book};
use crate::domain::{Item, SyncId};

/// A page of a connection's owners as the store read it (users ordered by id), with the
/// organization's role objects.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerItems {
    pub sync_id: SyncId,
    pub synced_at: DateTime<Utc>,
    pub users: Vec<Item>,
    pub roles: Vec<Item>,
    pub has_more: bool,
}

/// A page of a connection's organization owners.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Owners {
    /// The snapshot answering (`null` before the first successful sync).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sync_id: Option<SyncId>,
    /// When it was taken.
    pub synced_at: Option<DateTime<Utc>>,
    /// Owners, ordered by user id.
    pub data: Vec<OrgUser>,
    /// Whether more follow.
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    pub next_cursor: Option<String>,
}

impl Owners {
    /// No snapshot yet: nobody is known.
    pub fn none() -> Self {
        Self {
            sync_id: None,
            synced_at: None,
            data: Vec::new(),
            has_more: false,
            next_cursor: None,
        }
    }
}

/// Each owner with what their organization role grants.
pub fn owners(found: &OwnerItems) -> Owners {
    let book = role_book(found.roles.iter());
    let data: Vec<OrgUser> = found.users.iter().map(|u| grant_user(&book, u)).collect();
    Owners {
        sync_id: Some(found.sync_id),
        synced_at: Some(found.synced_at),
        next_cursor: found
            .has_more
            .then(|| data.last().map(|u| u.id.clone()))
            .flatten(),
        has_more: found.has_more,
        data,
    }
}
