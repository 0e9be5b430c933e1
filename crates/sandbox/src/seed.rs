//! The seed generator: a deterministic organization of a chosen size (same seed and shape →
//! same ids, names and memberships). Builds plain [`Org`] data only, no HTTP.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::model::{
    Actor, AdminKey, Assignment, Group, GroupMember, Invite, InviteProject, KeyOwner, Membership,
    ORG_RESOURCE, Org, PROJECT_RESOURCE, Project, ProjectApiKey, ProjectGroup, Role,
    ServiceAccount, User, alnum,
};
use super::table::Table;

/// How big the generated organization is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgShape {
    /// Organization members (at least 1; the first is the owner holding the admin keys).
    pub users: usize,
    /// Projects, including the default project.
    pub projects: usize,
    /// Share of non-default projects that are archived (0.0 – 1.0).
    pub archived_share: f64,
    /// Members per project (capped by `users`).
    pub members_per_project: usize,
    pub groups: usize,
    /// Members per group (capped by `users`).
    pub members_per_group: usize,
    /// Custom org-level roles.
    pub custom_roles: usize,
    /// Service accounts per active project.
    pub service_accounts_per_project: usize,
    /// User-owned API keys per active project.
    pub api_keys_per_project: usize,
    /// Pending invites (plus one accepted and one expired when > 2).
    pub invites: usize,
    /// Days of backdated audit events.
    pub audit_days: usize,
}

impl Default for OrgShape {
    fn default() -> Self {
        Self::small()
    }
}

impl OrgShape {
    /// The test-sized organization: 10 users, 4 projects (the default and 1 archived).
    pub fn small() -> Self {
        Self {
            users: 10,
            projects: 4,
            archived_share: 0.34,
            members_per_project: 4,
            groups: 3,
            members_per_group: 3,
            custom_roles: 2,
            service_accounts_per_project: 1,
            api_keys_per_project: 2,
            invites: 3,
            audit_days: 3,
        }
    }

    /// The large organization: 50,000 users and 2,000 projects.
    pub fn large() -> Self {
        Self {
            users: 50_000,
            projects: 2_000,
            archived_share: 0.1,
            members_per_project: 25,
            groups: 200,
            members_per_group: 50,
            custom_roles: 20,
            service_accounts_per_project: 2,
            api_keys_per_project: 3,
            invites: 500,
            audit_days: 30,
        }
    }
}

/// The base of seeded timestamps: seeded objects are dated before the moment of seeding.
const DAY: i64 = 86_400;

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Sophie",
    "Tim",
    "Katherine",
    "John",
    "Hedy",
    "Niklaus",
    "Shafi",
    "Leslie",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Wilson",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Wirth",
    "Goldwasser",
    "Lamport",
];

/// Predefined org roles: (name, permissions).
const ORG_ROLES: &[(&str, &[&str])] = &[
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
const PROJECT_ROLES: &[(&str, &[&str])] = &[
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

/// The plaintext admin keys to create: (name, scopes).
pub type KeySpec = (String, Vec<String>);

/// Builds the organization for `seed` and `shape`, with admin keys owned by the first user.
/// `now` dates the objects (seeded ones lie in the days before it).
pub fn generate(seed: u64, shape: &OrgShape, keys: &[KeySpec], now: i64, fixed_now: bool) -> Org {
    let mut rng = StdRng::seed_from_u64(seed);
    let org_id = format!("org-{}", alnum(&mut rng, 24));
    let base = now - 400 * DAY;
    let mut org = Org {
        id: org_id,
        seed,
        users: Table::default(),
        emails: HashMap::new(),
        invites: Table::default(),
        projects: Table::default(),
        default_project_id: String::new(),
        project_users: HashMap::new(),
        service_accounts: HashMap::new(),
        api_keys: HashMap::new(),
        project_groups: HashMap::new(),
        groups: Table::default(),
        group_users: HashMap::new(),
        roles: Table::default(),
        user_roles: HashMap::new(),
        group_roles: HashMap::new(),
        project_user_roles: HashMap::new(),
        project_group_roles: HashMap::new(),
        admin_keys: Table::default(),
        admin_key_values: HashMap::new(),
        audit: Table::default(),
        fixed_now: fixed_now.then_some(now),
        rng: StdRng::seed_from_u64(seed ^ 0x0005_EED0_F1D5),
    };

    // Users: the first one is the owner; about one in twenty others is an owner too.
    let n_users = shape.users.max(1);
    let mut user_ids = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        let id = format!("user-{}", alnum(&mut rng, 24));
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            i
        );
        let role = if i == 0 || rng.random_ratio(1, 20) {
            "owner"
        } else {
            "reader"
        };
        org.emails.insert(email.to_lowercase(), id.clone());
        org.users.insert(User {
            id: id.clone(),
            name: format!("{first} {last}"),
            email,
            role: role.to_owned(),
            added_at: base + (i as i64 * 300) % (300 * DAY),
        });
        user_ids.push(id);
    }
    let owner = user_ids[0].clone();

    // Projects: the default project first, then a share archived (never the default).
    let n_projects = shape.projects.max(1);
    let n_archived =
        ((n_projects - 1) as f64 * shape.archived_share.clamp(0.0, 1.0)).round() as usize;
    let mut active = Vec::new();
    for i in 0..n_projects {
        let id = format!("proj_{}", alnum(&mut rng, 24));
        let created_at = base + i as i64 * 600;
        let archived = i > 0 && i + n_archived >= n_projects;
        org.projects.insert(Project {
            id: id.clone(),
            name: if i == 0 {
                "Default project".to_owned()
            } else {
                format!("Project {i:04}")
            },
            created_at,
            archived_at: archived.then_some(created_at + 30 * DAY),
            residency: "GLOBAL".to_owned(),
            external_key_id: None,
        });
        if i == 0 {
            org.default_project_id = id.clone();
        }
        if !archived {
            active.push(id);
        }
    }

    // Memberships: the org owner owns every project; other members are spread round-robin
    // so that large seeds stay linear in size.
    let per_project = shape.members_per_project.clamp(1, n_users);
    for (pi, pid) in active.iter().enumerate() {
        let mut members = Table::default();
        members.insert(Membership {
            user_id: owner.clone(),
            role: "owner".into(),
            added_at: base + DAY,
        });
        for k in 1..per_project {
            let ui = 1 + (pi * (per_project - 1) + k - 1) % (n_users - 1).max(1);
            if ui >= n_users || user_ids[ui] == owner {
                continue;
            }
            let role = if rng.random_ratio(1, 8) {
                "owner"
            } else {
                "member"
            };
            members.insert(Membership {
                user_id: user_ids[ui].clone(),
                role: role.into(),
                added_at: base + 2 * DAY,
            });
        }
        org.project_users.insert(pid.clone(), members);
    }

    for pid in &active {
        let mut sas = Table::default();
        let mut keys_t = Table::default();
        for s in 0..shape.service_accounts_per_project {
            let sid = format!("svc_acct_{}", alnum(&mut rng, 24));
            sas.insert(ServiceAccount {
                id: sid.clone(),
                name: format!("bot-{s}"),
                role: "member".into(),
                created_at: base + 3 * DAY,
            });
            let kid = format!("key_{}", alnum(&mut rng, 16));
            keys_t.insert(ProjectApiKey {
                id: kid,
                name: format!("bot-{s} key"),
                redacted_value: format!("sk-svcacct-...{}", alnum(&mut rng, 4)),
                created_at: base + 3 * DAY,
                last_used_at: Some(now - DAY),
                owner: KeyOwner::ServiceAccount(sid),
            });
        }
        let members: Vec<String> = org
            .project_users
            .get(pid)
            .map(|t| t.iter().map(|m| m.user_id.clone()).collect())
            .unwrap_or_default();
        for k in 0..shape.api_keys_per_project {
            if members.is_empty() {
                break;
            }
            let uid = members[k % members.len()].clone();
            let kid = format!("key_{}", alnum(&mut rng, 16));
            keys_t.insert(ProjectApiKey {
                id: kid,
                name: format!("key {k}"),
                redacted_value: format!("sk-proj-...{}", alnum(&mut rng, 4)),
                created_at: base + 4 * DAY,
                last_used_at: None,
                owner: KeyOwner::User(uid),
            });
        }
        org.service_accounts.insert(pid.clone(), sas);
        org.api_keys.insert(pid.clone(), keys_t);
    }
    // A key whose owner has left the project (owner_project_access: inactive).
    if let (Some(pid), true) = (active.first(), n_users > per_project + 1) {
        let uid = user_ids[n_users - 1].clone();
        let member = org.project_users.get(pid).is_some_and(|t| t.contains(&uid));
        if !member {
            let kid = format!("key_{}", alnum(&mut rng, 16));
            if let Some(t) = org.api_keys.get_mut(pid) {
                t.insert(ProjectApiKey {
                    id: kid,
                    name: "left-behind".into(),
                    redacted_value: format!("sk-proj-...{}", alnum(&mut rng, 4)),
                    created_at: base + 5 * DAY,
                    last_used_at: None,
                    owner: KeyOwner::User(uid),
                });
            }
        }
    }

    // Roles: predefined org and project roles, then custom org roles.
    for (name, perms) in ORG_ROLES {
        let id = format!("role_{}", alnum(&mut rng, 24));
        org.roles.insert(Role {
            id,
            name: (*name).into(),
            description: Some(format!("Predefined organization {name}")),
            permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
            resource_type: ORG_RESOURCE.into(),
            predefined: true,
            project_id: None,
            created_at: base,
            updated_at: base,
        });
    }
    for (name, perms) in PROJECT_ROLES {
        let id = format!("role_{}", alnum(&mut rng, 24));
        org.roles.insert(Role {
            id,
            name: (*name).into(),
            description: Some(format!("Predefined project {name}")),
            permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
            resource_type: PROJECT_RESOURCE.into(),
            predefined: true,
            project_id: None,
            created_at: base,
            updated_at: base,
        });
    }
    let mut custom = Vec::new();
    for r in 0..shape.custom_roles {
        let id = format!("role_{}", alnum(&mut rng, 24));
        org.roles.insert(Role {
            id: id.clone(),
            name: format!("custom-role-{r}"),
            description: Some("Seeded custom role".into()),
            permissions: vec![
                "api.groups.read".into(),
                "api.organization.projects.read".into(),
            ],
            resource_type: ORG_RESOURCE.into(),
            predefined: false,
            project_id: None,
            created_at: base + DAY,
            updated_at: base + DAY,
        });
        custom.push(id);
    }
    let project_member_role = org
        .roles
        .iter()
        .find(|r| r.resource_type == PROJECT_RESOURCE && r.name == "member")
        .map(|r| r.id.clone());

    // Groups, their members, an org role each (custom when there are some) and project access.
    let per_group = shape.members_per_group.min(n_users);
    for g in 0..shape.groups {
        let gid = format!("group_{}", alnum(&mut rng, 24));
        org.groups.insert(Group {
            id: gid.clone(),
            name: format!("group-{g}"),
            created_at: base + DAY,
            is_scim_managed: g % 5 == 4,
        });
        let mut members = Table::default();
        for k in 0..per_group {
            let ui = (g * per_group + k) % n_users;
            members.insert(GroupMember {
                user_id: user_ids[ui].clone(),
                added_at: base + 2 * DAY,
            });
        }
        org.group_users.insert(gid.clone(), members);
        if let Some(rid) = custom.get(g % custom.len().max(1)) {
            let mut t = Table::default();
            t.insert(Assignment {
                role_id: rid.clone(),
                created_at: base + 2 * DAY,
                created_by: Some(owner.clone()),
            });
            org.group_roles.insert(gid.clone(), t);
        }
        if let (Some(pid), Some(rid)) = (active.get(g % active.len().max(1)), &project_member_role)
        {
            org.project_groups
                .entry(pid.clone())
                .or_default()
                .insert(ProjectGroup {
                    group_id: gid.clone(),
                    role_id: rid.clone(),
                    created_at: base + 2 * DAY,
                });
            let mut t = Table::default();
            t.insert(Assignment {
                role_id: rid.clone(),
                created_at: base + 2 * DAY,
                created_by: Some(owner.clone()),
            });
            org.project_group_roles
                .insert((pid.clone(), gid.clone()), t);
        }
    }
    for (i, rid) in custom.iter().enumerate() {
        if let Some(uid) = user_ids.get(1 + i) {
            let mut t = Table::default();
            t.insert(Assignment {
                role_id: rid.clone(),
                created_at: base + 3 * DAY,
                created_by: Some(owner.clone()),
            });
            org.user_roles.insert(uid.clone(), t);
        }
    }

    // Invites: pending ones, plus one accepted and one expired.
    for i in 0..shape.invites {
        let id = format!("invite-{}", alnum(&mut rng, 24));
        let email = format!("invitee{i}@example.net");
        let (created_at, accepted_at) = match i {
            1 => (now - 20 * DAY, Some(now - 19 * DAY)),
            2 => (now - 40 * DAY, None),
            _ => (now - DAY, None),
        };
        org.invites.insert(Invite {
            id,
            email,
            role: "reader".into(),
            created_at,
            expires_at: created_at + 7 * DAY,
            accepted_at,
            projects: vec![InviteProject {
                id: org.default_project_id.clone(),
                role: "member".into(),
            }],
        });
    }

    for (name, scopes) in keys {
        let id = format!("key_{}", alnum(&mut rng, 16));
        let value = format!("sk-admin-{}", alnum(&mut rng, 48));
        org.admin_key_values.insert(value.clone(), id.clone());
        org.admin_keys.insert(AdminKey {
            id,
            name: name.clone(),
            value,
            scopes: scopes.clone(),
            created_at: base + DAY,
            expires_at: None,
            owner_user_id: owner.clone(),
        });
    }

    // Backdated audit events: project creation and member additions.
    let owner_email = org
        .users
        .get(&owner)
        .map(|u| u.email.clone())
        .unwrap_or_default();
    let actor = Actor::Session {
        user_id: owner.clone(),
        email: owner_email,
    };
    let days = shape.audit_days as i64;
    let start = now - days * DAY;
    let mut t = start;
    let step = if days == 0 {
        0
    } else {
        (days * DAY / (active.len() as i64 * 2 + 1)).max(1)
    };
    for pid in active.iter().take(if days == 0 { 0 } else { usize::MAX }) {
        let name = org
            .projects
            .get(pid)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        org.audit_at(
            &actor,
            "project.created",
            Some(pid),
            pid,
            json!({"id": pid, "data": {"name": name, "title": name}}),
            t,
        );
        t += step;
        let first_member = org
            .project_users
            .get(pid)
            .and_then(|m| m.iter().nth(1))
            .map(|m| (m.user_id.clone(), m.role.clone()));
        if let Some((uid, role)) = first_member {
            org.audit_at(
                &actor,
                "user.added",
                Some(pid),
                &uid,
                json!({"id": uid, "data": {"role": role}}),
                t,
            );
        }
        t += step;
    }
    org
}
