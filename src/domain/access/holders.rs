//! Everyone holding one permission anywhere: through their organization role, and in each
//! project through every path that grants it. Listed connection by connection (by id), the
//! organization-wide holdings first (by user id), then project by project (by project id,
//! people by email then user id), in pages.

use serde::Serialize;
use utoipa::ToSchema;

use super::{AccessPath, ProjectReach, ReachCursor, role_book};
use crate::domain::permissions::RoleLevel;
use crate::domain::{ConnectionId, Item};

/// One person holding the permission in one place.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Holder {
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    pub connection_name: String,
    /// `null` for someone only invited.
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The project; `null` when held organization-wide through `organization_role`.
    pub project_id: Option<String>,
    /// The organization role granting it, for an organization-wide holding.
    pub organization_role: Option<String>,
    /// In a project: each path granting it.
    pub paths: Vec<AccessPath>,
}

/// A page of holders.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Holders {
    pub permission: String,
    pub data: Vec<Holder>,
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    pub next_cursor: Option<String>,
}

/// Where a page of holders starts: after this holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderCursor {
    pub connection_id: ConnectionId,
    /// `None` while in the organization-wide part.
    pub project_id: Option<String>,
    pub email: Option<String>,
    pub user_id: Option<String>,
}

impl HolderCursor {
    pub fn of(h: &Holder) -> Self {
        Self {
            connection_id: h.connection_id,
            project_id: h.project_id.clone(),
            email: h.email.clone(),
            user_id: h.user_id.clone(),
        }
    }

    /// The text form callers pass back: `connection_id project_id email user_id`.
    pub fn encode(&self) -> String {
        let sep = super::CURSOR_SEP;
        let person = ReachCursor {
            email: self.email.clone(),
            user_id: self.user_id.clone(),
        };
        format!(
            "{}{sep}{}{sep}{}",
            self.connection_id,
            self.project_id.as_deref().unwrap_or(""),
            person.encode()
        )
    }

    /// Reads [`Self::encode`]'s form; `None` unless it starts with a connection id.
    pub fn decode(raw: &str) -> Option<Self> {
        let (connection_id, rest) = super::connection_key(raw)?;
        let (project, person) = rest.split_once(super::CURSOR_SEP).unwrap_or((rest, ""));
        let (email, user_id) = super::person_key(person);
        Some(Self {
            connection_id,
            project_id: super::non_empty(project),
            email,
            user_id,
        })
    }
}

/// The organization roles (among the predefined ones and the synced organization-level role
/// objects `roles`) whose permissions include `permission`.
pub fn org_roles_granting(roles: &[Item], permission: &str) -> Vec<String> {
    let book = role_book(roles.iter());
    let mut names: Vec<String> = ["owner", "reader"].map(str::to_owned).to_vec();
    names.extend(roles.iter().filter_map(|r| r.role.clone()));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| {
            book.grant(RoleLevel::Organization, Some(n))
                .permissions
                .contains(permission)
        })
        .collect()
}

/// The organization-wide holders among `users` (who hold one of the roles granting it).
pub fn org_holders(connection: (ConnectionId, &str), users: &[Item]) -> Vec<Holder> {
    users
        .iter()
        .map(|u| Holder {
            connection_id: connection.0,
            connection_name: connection.1.to_owned(),
            user_id: u.subject_id.clone().or_else(|| Some(u.key.clone())),
            email: u.email.clone(),
            name: super::text(&u.data, "name"),
            project_id: None,
            organization_role: u.role.clone(),
            paths: Vec::new(),
        })
        .collect()
}

/// The holders in one project: everyone `reach` (already kept to the paths granting the
/// permission) lists, in its order.
pub fn project_holders(connection: (ConnectionId, &str), reach: ProjectReach) -> Vec<Holder> {
    let project = reach.project_id;
    reach
        .people
        .into_iter()
        .map(|r| Holder {
            connection_id: connection.0,
            connection_name: connection.1.to_owned(),
            user_id: r.user_id,
            email: r.email,
            name: r.name,
            project_id: Some(project.clone()),
            organization_role: None,
            paths: r.paths,
        })
        .collect()
}
