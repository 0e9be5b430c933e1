//! What a role lets its holder do: the permissions of OpenAI's predefined legacy roles (org
//! `owner` / `reader`, project `owner` / `member` / `viewer`), and the lookup that prefers a
//! synced RBAC role's own `permissions`. Plain data; imports nothing else of ours.
//!
//! The lists follow the predefined roles OpenAI's Roles API reports (`predefined_role: true`)
//! and the sandbox seeds (`crates/sandbox/src/seed.rs`); a test in `tests/api/access.rs` checks
//! that a synced sandbox's predefined roles still agree with this table.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde::{Serialize, Serializer};
use utoipa::ToSchema;

/// `resource_type` of organization-level roles.
pub const ORG_RESOURCE: &str = "api.organization";
/// `resource_type` of project-level roles.
pub const PROJECT_RESOURCE: &str = "api.project";

/// Where a role applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleLevel {
    /// The organization (`api.organization`).
    Organization,
    /// One project (`api.project`).
    Project,
}

impl RoleLevel {
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Organization => ORG_RESOURCE,
            Self::Project => PROJECT_RESOURCE,
        }
    }
}

/// Predefined organization roles: (name, permissions).
pub const ORG_ROLES: &[(&str, &[&str])] = &[
    (
        "owner",
        &[
            "api.organization.admin",
            "api.groups.write",
            "api.groups.read",
            "api.roles.write",
            "api.roles.read",
        ],
    ),
    (
        "reader",
        &["api.groups.read", "api.roles.read", "api.organization.read"],
    ),
];

pub const PROJECT_ROLES: &[(&str, &[&str])] = &[
    (
        "owner",
        &[
            "api.organization.projects.write",
            "api.organization.projects.api_keys.write",
            "api.organization.projects.read",
        ],
    ),
    (
        "member",
        &[
            "api.organization.projects.api_keys.write",
            "api.organization.projects.read",
        ],
    ),
    ("viewer", &["api.organization.projects.read"]),
];

/// The permissions of a predefined role at `level`, matched case-insensitively (error
/// messages and older objects capitalize them); `None` for any other name.
pub fn predefined(level: RoleLevel, name: &str) -> Option<&'static [&'static str]> {
    let table = match level {
        RoleLevel::Organization => ORG_ROLES,
        RoleLevel::Project => PROJECT_ROLES,
    };
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, p)| *p)
}

/// A list of permissions, shared: a role's list is built once an answer (once a process for
/// the predefined roles), and every grant and path that comes from it points at it (a page
/// of who can reach a project repeats the owner path for each owner). Serialized as an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions(Arc<[Box<str>]>);

impl Default for Permissions {
    /// None (one shared empty list: an `Arc` allocates even when empty).
    fn default() -> Self {
        static NONE: LazyLock<Permissions> = LazyLock::new(|| Permissions(Arc::new([])));
        NONE.clone()
    }
}

impl Permissions {
    pub fn contains(&self, permission: &str) -> bool {
        self.0.iter().any(|p| &**p == permission)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|p| &**p)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both are the same shared list (then their union is either).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<S: AsRef<str>> FromIterator<S> for Permissions {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(|p| p.as_ref().into()).collect())
    }
}

impl<const N: usize> PartialEq<[&str; N]> for Permissions {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// The predefined roles' lists, shared like a synced role's.
static PREDEFINED: LazyLock<Vec<(RoleLevel, &'static str, Permissions)>> = LazyLock::new(|| {
    let level = |l: RoleLevel, t: &'static [(&'static str, &'static [&'static str])]| {
        t.iter().map(move |(n, p)| (l, *n, p.iter().collect()))
    };
    level(RoleLevel::Organization, ORG_ROLES)
        .chain(level(RoleLevel::Project, PROJECT_ROLES))
        .collect()
});

/// [`predefined`]'s list, shared.
fn predefined_shared(level: RoleLevel, name: &str) -> Option<&'static Permissions> {
    PREDEFINED
        .iter()
        .find(|(l, n, _)| *l == level && n.eq_ignore_ascii_case(name))
        .map(|(_, _, p)| p)
}

/// Where a list of permissions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionSource {
    /// A role object of the synced snapshot (its `permissions`).
    Role,
    /// The predefined legacy role table of this service.
    Predefined,
    /// Neither knows the role (or the role itself is unknown): no permissions are claimed.
    Unknown,
}

/// A synced RBAC role, reduced to what the lookup needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleDef {
    pub id: String,
    /// Name (what legacy role strings match).
    pub name: String,
    pub resource_type: String,
    /// The project it was listed in (project roles); `None` for organization-wide ones.
    pub project_id: Option<String>,
    pub permissions: Permissions,
}

/// A role held, with what it grants.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Grant {
    /// The role's name (`owner`, `member`, a custom role), when known.
    pub role: Option<String>,
    /// The RBAC role object the permissions come from, when one matched.
    pub role_id: Option<String>,
    /// What the role grants (empty when unknown).
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
    /// Where `permissions` came from.
    pub permissions_source: PermissionSource,
}

impl Grant {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }
}

/// Resolves role names to permissions: first the synced RBAC roles of the right level
/// (by id or name), then the predefined table.
#[derive(Debug, Clone, Default)]
pub struct RoleBook {
    roles: Vec<RoleDef>,
    /// Each project's roles in book order (a person's book holds the roles of every project
    /// they are in, and each path looks in one), and the organization-wide ones.
    by_project: HashMap<String, Vec<usize>>,
    org: Vec<usize>,
}

impl RoleBook {
    pub fn new(roles: Vec<RoleDef>) -> Self {
        let mut by_project: HashMap<String, Vec<usize>> = HashMap::new();
        let mut org = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            match &r.project_id {
                Some(p) => by_project.entry(p.clone()).or_default().push(i),
                None => org.push(i),
            }
        }
        Self {
            roles,
            by_project,
            org,
        }
    }

    /// The first role listed in `project` (`None`: organization-wide) that `test` accepts.
    fn find(&self, project: Option<&str>, test: impl Fn(&RoleDef) -> bool) -> Option<&RoleDef> {
        let listed = match project {
            Some(p) => self.by_project.get(p)?,
            None => &self.org,
        };
        listed.iter().map(|&i| &self.roles[i]).find(|r| test(r))
    }

    /// What holding `role` at `level` grants, from the organization-wide roles or the table.
    pub fn grant(&self, level: RoleLevel, role: Option<&str>) -> Grant {
        self.grant_in(level, None, role)
    }

    /// What holding `role` at `level` in `project` grants: a role listed in that project
    /// first, then an organization-wide role of the level, then the predefined table.
    pub fn grant_in(&self, level: RoleLevel, project: Option<&str>, role: Option<&str>) -> Grant {
        let Some(name) = role else {
            return Grant {
                role: None,
                role_id: None,
                permissions: Permissions::default(),
                permissions_source: PermissionSource::Unknown,
            };
        };
        let matches = |r: &RoleDef| {
            (r.id == name || r.name == name) && r.resource_type == level.resource_type()
        };
        let synced = project
            .and_then(|p| self.find(Some(p), matches))
            .or_else(|| self.find(None, matches));
        if let Some(r) = synced {
            return Grant {
                role: Some(r.name.clone()),
                role_id: Some(r.id.clone()),
                permissions: r.permissions.clone(),
                permissions_source: PermissionSource::Role,
            };
        }
        match predefined_shared(level, name) {
            Some(p) => Grant {
                role: Some(name.to_owned()),
                role_id: None,
                permissions: p.clone(),
                permissions_source: PermissionSource::Predefined,
            },
            None => Grant {
                role: Some(name.to_owned()),
                role_id: None,
                permissions: Permissions::default(),
                permissions_source: PermissionSource::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_roles_are_found_by_level_and_any_case() {
        assert!(predefined(RoleLevel::Organization, "Owner").is_some());
        assert!(predefined(RoleLevel::Organization, "member").is_none());
        assert_eq!(
            predefined(RoleLevel::Project, "viewer"),
            Some(&["api.organization.projects.read"][..])
        );
    }

    #[test]
    fn synced_roles_win_over_the_table_and_unknown_roles_claim_nothing() {
        let book = RoleBook::new(vec![RoleDef {
            id: "role_1".into(),
            name: "owner".into(),
            resource_type: ORG_RESOURCE.into(),
            project_id: None,
            permissions: ["api.custom"].into_iter().collect(),
        }]);
        let org = book.grant(RoleLevel::Organization, Some("owner"));
        assert_eq!(org.permissions_source, PermissionSource::Role);
        assert_eq!(org.role_id.as_deref(), Some("role_1"));
        assert!(org.has("api.custom"));
        // The synced role is org-level: a project owner still comes from the table.
        let project = book.grant(RoleLevel::Project, Some("owner"));
        assert_eq!(project.permissions_source, PermissionSource::Predefined);
        assert!(project.has("api.organization.projects.write"));
        let odd = book.grant(RoleLevel::Project, Some("wizard"));
        assert_eq!(odd.permissions_source, PermissionSource::Unknown);
        assert!(odd.permissions.is_empty());
        assert_eq!(
            book.grant(RoleLevel::Project, None).permissions_source,
            PermissionSource::Unknown
        );
    }

    #[test]
    fn a_role_listed_in_the_project_wins_and_stays_in_its_project() {
        let role = |id: &str, project: Option<&str>, perm: &str| RoleDef {
            id: id.into(),
            name: "member".into(),
            resource_type: PROJECT_RESOURCE.into(),
            project_id: project.map(str::to_owned),
            permissions: [perm].into_iter().collect(),
        };
        let book = RoleBook::new(vec![
            role("role_a", Some("proj_a"), "api.a"),
            role("role_b", Some("proj_b"), "api.b"),
        ]);
        let a = book.grant_in(RoleLevel::Project, Some("proj_a"), Some("member"));
        assert_eq!(
            (a.role_id.as_deref(), a.permissions_source),
            (Some("role_a"), PermissionSource::Role)
        );
        assert!(a.has("api.a"));
        assert!(
            book.grant_in(RoleLevel::Project, Some("proj_b"), Some("role_b"))
                .has("api.b"),
            "by id"
        );
        // Another project's roles never answer: the predefined table does.
        let c = book.grant_in(RoleLevel::Project, Some("proj_c"), Some("member"));
        assert_eq!(c.permissions_source, PermissionSource::Predefined);
        let wide = RoleBook::new(vec![role("role_w", None, "api.w")]);
        assert!(
            wide.grant_in(RoleLevel::Project, Some("proj_c"), Some("member"))
                .has("api.w"),
            "organization-wide roles apply in every project"
        );
    }
}
