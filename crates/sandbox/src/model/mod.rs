//! The sandbox's in-memory organization: [`Org`] and the membership rules shared by the admin
//! and control APIs (the entities and their JSON, as in `openapi.admin.yaml`, are in
//! `entities`). Plain data and rules: no HTTP, no axum, nothing else of the crate.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use serde_json::{Value, json};

use super::table::Table;

mod entities;
#[cfg(test)]
mod tests;

pub use entities::{
    AdminKey, Assignment, AuditEvent, Group, GroupMember, Invite, InviteProject, KeyOwner,
    Membership, Project, ProjectApiKey, ProjectGroup, Role, ServiceAccount, User, redact,
};

/// The three admin-key scopes OpenAI grants.
pub const SCOPE_MANAGEMENT_READ: &str = "api.management.read";
/// Scope needed by every write (POST / DELETE).
pub const SCOPE_MANAGEMENT_WRITE: &str = "api.management.write";
/// Scope needed by `/organization/usage/*` and `/organization/costs`.
pub const SCOPE_USAGE_READ: &str = "api.usage.read";

/// Resource type of organization-level roles.
pub const ORG_RESOURCE: &str = "api.organization";
/// Resource type of project-level roles.
pub const PROJECT_RESOURCE: &str = "api.project";

/// Who made a change: an admin key (through `/v1`) or a person in the dashboard (control API).
#[derive(Debug, Clone)]
pub enum Actor {
    /// An admin API key, owned by an organization user.
    ApiKey {
        /// Admin key id (`key_...`).
        key_id: String,
        user_id: String,
        email: String,
    },
    /// A person signed in to the dashboard.
    Session { user_id: String, email: String },
}

impl Actor {
    fn to_json(&self) -> Value {
        match self {
            Actor::ApiKey {
                key_id,
                user_id,
                email,
            } => json!({"type": "api_key", "api_key": {"id": key_id, "type": "user",
                "user": {"id": user_id, "email": email}}}),
            Actor::Session { user_id, email } => json!({"type": "session", "session": {
                "user": {"id": user_id, "email": email}, "ip_address": "127.0.0.1"}}),
        }
    }

    fn ids(&self) -> (&str, &str, Option<&str>) {
        match self {
            Actor::ApiKey {
                key_id,
                user_id,
                email,
            } => (user_id, email, Some(key_id)),
            Actor::Session { user_id, email } => (user_id, email, None),
        }
    }
}

/// Why a rule-checked change was refused (mapped to 400 / 404 by the HTTP layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 404: no such object.
    NotFound(String),
    /// 400: the request breaks a rule; optional offending parameter.
    Invalid(String, Option<&'static str>),
}

pub fn not_found(what: &str, id: &str) -> Refusal {
    Refusal::NotFound(format!("No {what} found with id '{id}'."))
}

/// The whole organization (`Clone` for dry runs: see `SandboxState::write`).
#[derive(Debug, Clone)]
pub struct Org {
    /// `org-...`
    pub id: String,
    /// Seed it was generated from (also drives usage figures).
    pub seed: u64,
    pub users: Table<User>,
    /// Lower-cased email → user id.
    pub emails: HashMap<String, String>,
    pub invites: Table<Invite>,
    /// Projects (the default project first).
    pub projects: Table<Project>,
    pub default_project_id: String,
    /// Project id → members.
    pub project_users: HashMap<String, Table<Membership>>,
    /// Project id → service accounts.
    pub service_accounts: HashMap<String, Table<ServiceAccount>>,
    /// Project id → API keys.
    pub api_keys: HashMap<String, Table<ProjectApiKey>>,
    /// Project id → groups with access.
    pub project_groups: HashMap<String, Table<ProjectGroup>>,
    pub groups: Table<Group>,
    /// Group id → members.
    pub group_users: HashMap<String, Table<GroupMember>>,
    pub roles: Table<Role>,
    /// User id → org-level role assignments.
    pub user_roles: HashMap<String, Table<Assignment>>,
    /// Group id → org-level role assignments.
    pub group_roles: HashMap<String, Table<Assignment>>,
    /// (project id, user id) → project-level role assignments.
    pub project_user_roles: HashMap<(String, String), Table<Assignment>>,
    /// (project id, group id) → project-level role assignments.
    pub project_group_roles: HashMap<(String, String), Table<Assignment>>,
    pub admin_keys: Table<AdminKey>,
    /// Plaintext admin key → key id.
    pub admin_key_values: HashMap<String, String>,
    /// Audit log, oldest first.
    pub audit: Table<AuditEvent>,
    /// Fixed "now" for deterministic output, or the wall clock when `None`.
    pub fixed_now: Option<i64>,
    pub rng: StdRng,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub fn alnum(rng: &mut impl RngCore, n: usize) -> String {
    (0..n)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

impl Org {
    /// The current time in Unix seconds.
    pub fn now(&self) -> i64 {
        self.fixed_now
            .unwrap_or_else(|| chrono::Utc::now().timestamp())
    }

    /// A fresh id with this prefix (e.g. `user-`).
    pub fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", alnum(&mut self.rng, 24))
    }

    pub fn user(&self, id: &str) -> Result<&User, Refusal> {
        self.users.get(id).ok_or_else(|| not_found("user", id))
    }

    /// A user by email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.emails
            .get(&email.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub fn project(&self, id: &str) -> Result<&Project, Refusal> {
        self.projects
            .get(id)
            .ok_or_else(|| not_found("project", id))
    }

    /// A project that must be active (member endpoints answer 400 on archived ones).
    pub fn active_project(&self, id: &str) -> Result<&Project, Refusal> {
        let p = self.project(id)?;
        if p.archived() {
            return Err(Refusal::Invalid(
                format!(
                    "Project {id} is archived. Archived projects have no users, service accounts or groups to manage."
                ),
                None,
            ));
        }
        Ok(p)
    }

    pub fn group(&self, id: &str) -> Result<&Group, Refusal> {
        self.groups.get(id).ok_or_else(|| not_found("group", id))
    }

    pub fn role(&self, id: &str) -> Result<&Role, Refusal> {
        self.roles.get(id).ok_or_else(|| not_found("role", id))
    }

    pub fn owner_count(&self) -> usize {
        self.users.iter().filter(|u| u.role == "owner").count()
    }

    pub fn project_user_json(&self, m: &Membership) -> Value {
        let (name, email) = match self.users.get(&m.user_id) {
            Some(u) => (Some(u.name.as_str()), Some(u.email.as_str())),
            None => (None, None),
        };
        json!({"object": "organization.project.user", "id": m.user_id, "name": name,
            "email": email, "role": m.role, "added_at": m.added_at})
    }

    /// Whether a key's owner still has access to the key's project.
    pub fn key_active(&self, project_id: &str, key: &ProjectApiKey) -> bool {
        match &key.owner {
            KeyOwner::User(u) => self
                .project_users
                .get(project_id)
                .is_some_and(|t| t.contains(u)),
            KeyOwner::ServiceAccount(s) => self
                .service_accounts
                .get(project_id)
                .is_some_and(|t| t.contains(s)),
        }
    }

    /// The `organization.project.api_key` object.
    pub fn api_key_json(&self, project_id: &str, key: &ProjectApiKey) -> Value {
        let owner = match &key.owner {
            KeyOwner::User(uid) => {
                let role = self
                    .project_users
                    .get(project_id)
                    .and_then(|t| t.get(uid))
                    .map_or("member", |m| m.role.as_str());
                match self.users.get(uid) {
                    Some(u) => json!({"type": "user", "user": {"id": u.id, "email": u.email,
                        "name": u.name, "created_at": u.added_at, "role": role}}),
                    None => json!({"type": "user"}),
                }
            }
            KeyOwner::ServiceAccount(sid) => match self
                .service_accounts
                .get(project_id)
                .and_then(|t| t.get(sid))
            {
                Some(s) => json!({"type": "service_account", "service_account": {"id": s.id,
                    "name": s.name, "created_at": s.created_at, "role": s.role}}),
                None => json!({"type": "service_account"}),
            },
        };
        json!({"object": "organization.project.api_key", "id": key.id, "name": key.name,
            "redacted_value": key.redacted_value, "created_at": key.created_at,
            "last_used_at": key.last_used_at,
            "owner_project_access": if self.key_active(project_id, key) { "active" } else { "inactive" },
            "owner": owner})
    }

    /// The `organization.admin_api_key` object.
    pub fn admin_key_json(&self, k: &AdminKey) -> Value {
        let owner = match self.users.get(&k.owner_user_id) {
            Some(u) => json!({"type": "user", "object": "organization.user", "id": u.id,
                "name": u.name, "created_at": u.added_at, "role": u.role}),
            None => json!({"type": "user", "object": "organization.user", "id": k.owner_user_id,
                "name": "", "created_at": k.created_at, "role": "owner"}),
        };
        json!({"object": "organization.admin_api_key", "id": k.id, "name": k.name,
            "redacted_value": redact(&k.value), "created_at": k.created_at,
            "expires_at": k.expires_at, "last_used_at": null, "owner": owner})
    }

    pub fn audit(
        &mut self,
        actor: &Actor,
        kind: &str,
        project_id: Option<&str>,
        resource_id: &str,
        details: Value,
    ) {
        let now = self.now();
        self.audit_at(actor, kind, project_id, resource_id, details, now);
    }

    /// Appends an audit event at a given time (the seed generator backdates events).
    pub fn audit_at(
        &mut self,
        actor: &Actor,
        kind: &str,
        project_id: Option<&str>,
        resource_id: &str,
        details: Value,
        at: i64,
    ) {
        // Actions made with admin keys are recorded against the default project.
        let pid = project_id.unwrap_or(&self.default_project_id).to_owned();
        let project = self
            .projects
            .get(&pid)
            .map(|p| (p.id.clone(), p.name.clone()));
        let id = self.new_id("audit_log-");
        let (user_id, email, key_id) = actor.ids();
        let event = AuditEvent {
            id,
            kind: kind.to_owned(),
            effective_at: at,
            project,
            actor_user_id: user_id.to_owned(),
            actor_email: email.to_owned(),
            actor_key_id: key_id.map(str::to_owned),
            actor: actor.to_json(),
            resource_id: resource_id.to_owned(),
            details,
        };
        self.audit.insert(event);
    }

    /// Adds an org member (as when an invite is accepted or a person is added in the dashboard).
    pub fn add_user(
        &mut self,
        name: &str,
        email: &str,
        role: &str,
        at: i64,
    ) -> Result<String, Refusal> {
        if !matches!(role, "owner" | "reader") {
            return Err(Refusal::Invalid(
                format!("Invalid role '{role}': expected 'owner' or 'reader'."),
                Some("role"),
            ));
        }
        if self.user_by_email(email).is_some() {
            return Err(Refusal::Invalid(
                format!("{email} is already a member of this organization."),
                Some("email"),
            ));
        }
        let id = self.new_id("user-");
        self.emails.insert(email.to_lowercase(), id.clone());
        self.users.insert(User {
            id: id.clone(),
            name: name.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
            added_at: at,
        });
        Ok(id)
    }

    /// Adds `user_id` to an active project; the user must be an org member and not yet in it.
    pub fn add_project_user(
        &mut self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), Refusal> {
        self.active_project(project_id)?;
        check_project_role(role)?;
        if !self.users.contains(user_id) {
            return Err(Refusal::Invalid(
                format!(
                    "User {user_id} is not a member of the organization. Users must be added to the organization before they can be added to a project."
                ),
                Some("user_id"),
            ));
        }
        let now = self.now();
        let members = self.project_users.entry(project_id.to_owned()).or_default();
        if members.contains(user_id) {
            return Err(Refusal::Invalid(
                format!("User {user_id} is already a member of project {project_id}."),
                Some("user_id"),
            ));
        }
        members.insert(Membership {
            user_id: user_id.to_owned(),
            role: role.to_owned(),
            added_at: now,
        });
        Ok(())
    }

    /// Changes a member's project role; refuses to demote the project's last owner.
    pub fn set_project_role(
        &mut self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), Refusal> {
        self.active_project(project_id)?;
        check_project_role(role)?;
        let members = self
            .project_users
            .get_mut(project_id)
            .ok_or_else(|| not_found("project user", user_id))?;
        let owners = members.iter().filter(|m| m.role == "owner").count();
        let m = members
            .get_mut(user_id)
            .ok_or_else(|| not_found("project user", user_id))?;
        if m.role == "owner" && role != "owner" && owners <= 1 {
            return Err(Refusal::Invalid(
                "A project must keep at least one owner.".to_owned(),
                Some("role"),
            ));
        }
        m.role = role.to_owned();
        Ok(())
    }

    /// Removes a member from a project; refuses to remove the project's last owner.
    pub fn remove_project_user(&mut self, project_id: &str, user_id: &str) -> Result<(), Refusal> {
        self.active_project(project_id)?;
        let members = self
            .project_users
            .get_mut(project_id)
            .ok_or_else(|| not_found("project user", user_id))?;
        let owners = members.iter().filter(|m| m.role == "owner").count();
        let m = members
            .get(user_id)
            .ok_or_else(|| not_found("project user", user_id))?;
        if m.role == "owner" && owners <= 1 {
            return Err(Refusal::Invalid(
                "Cannot remove the last owner of a project.".to_owned(),
                None,
            ));
        }
        members.remove(user_id);
        self.project_user_roles
            .remove(&(project_id.to_owned(), user_id.to_owned()));
        Ok(())
    }

    /// Removes a user from the organization and from everything they belonged to.
    pub fn remove_user(&mut self, user_id: &str) -> Result<User, Refusal> {
        let u = self.user(user_id)?;
        if u.role == "owner" && self.owner_count() <= 1 {
            return Err(Refusal::Invalid(
                "Cannot remove the last owner of the organization.".to_owned(),
                None,
            ));
        }
        let user = self
            .users
            .remove(user_id)
            .ok_or_else(|| not_found("user", user_id))?;
        self.emails.remove(&user.email.to_lowercase());
        for members in self.project_users.values_mut() {
            members.remove(user_id);
        }
        for members in self.group_users.values_mut() {
            members.remove(user_id);
        }
        self.user_roles.remove(user_id);
        self.project_user_roles.retain(|(_, u), _| u != user_id);
        Ok(user)
    }

    /// Accepts a pending invite as the invitee would: creates the user and the memberships.
    pub fn accept_invite(&mut self, invite_id: &str) -> Result<String, Refusal> {
        let now = self.now();
        let inv = self
            .invites
            .get(invite_id)
            .ok_or_else(|| not_found("invite", invite_id))?
            .clone();
        match inv.status(now) {
            "pending" => {}
            status => {
                return Err(Refusal::Invalid(
                    format!("Invite {invite_id} is {status} and cannot be accepted."),
                    None,
                ));
            }
        }
        let name = inv.email.split('@').next().unwrap_or("user").to_owned();
        let user_id = self.add_user(&name, &inv.email, &inv.role, now)?;
        // Exactly the listed projects (the default project only if listed: `create_invite`
        // lists it when `projects` was omitted). A project archived since the invite was sent
        // is skipped, as the membership could not be used anyway; a project listed twice is
        // joined once (first role wins), so acceptance never stops half-way.
        for p in &inv.projects {
            let joined = self
                .project_users
                .get(&p.id)
                .is_some_and(|t| t.contains(&user_id));
            if !joined && self.projects.get(&p.id).is_some_and(|pr| !pr.archived()) {
                self.add_project_user(&p.id, &user_id, &p.role)?;
            }
        }
        if let Some(i) = self.invites.get_mut(invite_id) {
            i.accepted_at = Some(now);
        }
        let actor = Actor::Session {
            user_id: user_id.clone(),
            email: inv.email.clone(),
        };
        self.audit(
            &actor,
            "invite.accepted",
            None,
            invite_id,
            json!({"id": invite_id}),
        );
        self.audit(
            &actor,
            "user.added",
            None,
            &user_id,
            json!({"id": user_id, "data": {"role": inv.role}}),
        );
        Ok(user_id)
    }

    /// Makes a pending invite expire now (as if its expiry date had passed); accepted or
    /// already expired invites are refused. OpenAI records no audit event for an expiry.
    pub fn expire_invite(&mut self, invite_id: &str) -> Result<(), Refusal> {
        let now = self.now();
        let inv = self
            .invites
            .get_mut(invite_id)
            .ok_or_else(|| not_found("invite", invite_id))?;
        match inv.status(now) {
            "pending" => {
                inv.expires_at = now;
                Ok(())
            }
            status => Err(Refusal::Invalid(
                format!("Invite {invite_id} is {status} and cannot be expired."),
                None,
            )),
        }
    }

    /// Deletes a group and every membership and assignment that hangs off it.
    pub fn remove_group(&mut self, group_id: &str) -> Result<Group, Refusal> {
        let g = self
            .groups
            .remove(group_id)
            .ok_or_else(|| not_found("group", group_id))?;
        self.group_users.remove(group_id);
        self.group_roles.remove(group_id);
        for pg in self.project_groups.values_mut() {
            pg.remove(group_id);
        }
        self.project_group_roles.retain(|(_, g), _| g != group_id);
        Ok(g)
    }

    /// Deletes a custom role and all its assignments.
    pub fn remove_role(&mut self, role_id: &str) -> Result<Role, Refusal> {
        let r = self.role(role_id)?;
        if r.predefined {
            return Err(Refusal::Invalid(
                "Predefined roles cannot be deleted.".to_owned(),
                None,
            ));
        }
        let role = self
            .roles
            .remove(role_id)
            .ok_or_else(|| not_found("role", role_id))?;
        for t in self.user_roles.values_mut() {
            t.remove(role_id);
        }
        for t in self.group_roles.values_mut() {
            t.remove(role_id);
        }
        for t in self.project_user_roles.values_mut() {
            t.remove(role_id);
        }
        for t in self.project_group_roles.values_mut() {
            t.remove(role_id);
        }
        Ok(role)
    }
}

/// Project roles accepted by the legacy membership endpoints.
pub fn check_project_role(role: &str) -> Result<(), Refusal> {
    if matches!(role, "owner" | "member") {
        Ok(())
    } else {
        Err(Refusal::Invalid(
            format!("Invalid role '{role}': expected 'owner' or 'member'."),
            Some("role"),
        ))
    }
}
