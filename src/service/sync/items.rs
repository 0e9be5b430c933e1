//! How each object OpenAI lists becomes an inventory [`Item`]: its kind, key, parent and the
//! JSON kept of it. Pure functions, shared by the full and the incremental sync and by grants.

use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::{Item, ItemKind};
use crate::openai::{
    AdminApiKey, AssignedRole, Assignee, Group, GroupUser, Invite, OrgUser, Project, ProjectApiKey,
    ProjectGroup, ProjectUser, Role, ServiceAccount,
};

pub(super) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(crate) fn user_item(u: &OrgUser) -> Item {
    Item::new(ItemKind::User, &u.id, to_json(u)).subject(&u.id)
}

pub(crate) fn invite_item(i: &Invite) -> Item {
    Item::new(ItemKind::Invite, &i.id, to_json(i))
}

pub(super) fn project_item(p: &Project) -> Item {
    Item::new(ItemKind::Project, &p.id, to_json(p))
}

pub(crate) fn is_archived(p: &Project) -> bool {
    p.archived_at.is_some() || p.status.as_ref().is_some_and(|s| s.as_str() == "archived")
}

pub(super) fn group_item(g: &Group) -> Item {
    Item::new(ItemKind::Group, &g.id, to_json(g))
}

/// An organization role (`project` = `None`, keyed by id) or a role listed in a project
/// (keyed `project/id`: predefined project roles are listed in every project).
pub(super) fn role_item(project: Option<&str>, r: &Role) -> Item {
    let key = match project {
        Some(pid) => format!("{pid}/{}", r.id),
        None => r.id.clone(),
    };
    let mut item = Item::new(ItemKind::Role, key, to_json(r))
        .subject(&r.id)
        .role(Some(r.name.clone()))
        .status(Some(r.resource_type.clone()));
    item.parent_id = project.map(str::to_owned);
    item
}

pub(super) fn org_role_item(r: &Role) -> Item {
    role_item(None, r)
}

/// Where an assignment holds and who holds it.
pub(super) fn assignee_parts(who: &Assignee) -> (Option<&str>, &'static str, &str) {
    match who {
        Assignee::OrgUser(u) => (None, "user", u),
        Assignee::OrgGroup(g) => (None, "group", g),
        Assignee::ProjectUser {
            project_id,
            user_id,
        } => (Some(project_id), "user", user_id),
        Assignee::ProjectGroup {
            project_id,
            group_id,
        } => (Some(project_id), "group", group_id),
    }
}

/// The key prefix of an assignee's role assignments (`scope/principal_type/principal/`).
pub(super) fn assignment_prefix(who: &Assignee) -> String {
    let (project, ptype, principal) = assignee_parts(who);
    format!("{}/{ptype}/{principal}/", project.unwrap_or("organization"))
}

/// The inventory key of `role_id` assigned to `who`.
pub(crate) fn assignment_key(who: &Assignee, role_id: &str) -> String {
    format!("{}{role_id}", assignment_prefix(who))
}

pub(crate) fn assignment_item(who: &Assignee, a: &AssignedRole) -> Item {
    let (project, ptype, principal) = assignee_parts(who);
    let role = if a.name.is_empty() { &a.id } else { &a.name };
    let mut item = Item::new(
        ItemKind::RoleAssignment,
        assignment_key(who, &a.id),
        to_json(a),
    )
    .subject(principal)
    .role(Some(role.clone()))
    .status(Some(ptype.to_owned()));
    item.parent_id = project.map(str::to_owned);
    item
}

pub(super) fn admin_key_item(k: &AdminApiKey) -> Item {
    Item::new(ItemKind::AdminKey, &k.id, to_json(k))
}

pub(crate) fn member_item(pid: &str, m: &ProjectUser) -> Item {
    Item::new(
        ItemKind::ProjectMember,
        format!("{pid}/{}", m.id),
        to_json(m),
    )
    .parent(pid)
    .subject(&m.id)
}

pub(super) fn account_item(pid: &str, sa: &ServiceAccount) -> Item {
    Item::new(ItemKind::ServiceAccount, &sa.id, to_json(sa))
        .parent(pid)
        .subject(&sa.id)
}

pub(super) fn key_item(pid: &str, k: &ProjectApiKey) -> Item {
    let data = to_json(k);
    let access = data
        .get("owner_project_access")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (owner, email) = match (&k.owner.user, &k.owner.service_account) {
        (Some(u), _) => (Some(u.id.clone()), u.email.as_deref()),
        (None, Some(sa)) => (Some(sa.id.clone()), None),
        (None, None) => (None, None),
    };
    let mut item = Item::new(ItemKind::ApiKey, &k.id, data)
        .parent(pid)
        .email(email)
        .status(access);
    item.subject_id = owner;
    item
}

pub(crate) fn project_group_item(pid: &str, g: &ProjectGroup) -> Item {
    Item::new(
        ItemKind::ProjectGroup,
        format!("{pid}/{}", g.group_id),
        to_json(g),
    )
    .parent(pid)
    .subject(&g.group_id)
}

pub(crate) fn group_member_item(gid: &str, m: &GroupUser) -> Item {
    Item::new(ItemKind::GroupMember, format!("{gid}/{}", m.id), to_json(m))
        .parent(gid)
        .subject(&m.id)
}

/// One item per day, project and line item.
pub(super) fn cost_items(buckets: &[crate::openai::CostBucket]) -> Vec<Item> {
    let mut items = Vec::new();
    for b in buckets {
        for r in &b.results {
            let project = r.project_id.clone();
            let key = format!(
                "{}/{}/{}",
                b.start_time,
                project.as_deref().unwrap_or("-"),
                r.line_item.as_deref().unwrap_or("-")
            );
            let mut data = to_json(r);
            if let Value::Object(map) = &mut data {
                map.insert("start_time".into(), json!(b.start_time));
                map.insert("end_time".into(), json!(b.end_time));
            }
            let mut item = Item::new(ItemKind::Cost, key, data);
            item.parent_id = project;
            items.push(item);
        }
    }
    items
}
