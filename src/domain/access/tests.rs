//! Tests of person access and project reach over hand-built snapshots.

use super::*;
use serde_json::json;

fn snap(item: Item) -> SnapshotItem {
    SnapshotItem {
        connection_id: "0192f000-0000-7000-8000-000000000001".parse().unwrap(),
        connection_name: "acme".into(),
        sync_id: "0192f000-0000-7000-8000-000000000002".parse().unwrap(),
        synced_at: Utc::now(),
        item,
    }
}

fn alice_items() -> Vec<Item> {
    vec![
        Item::new(
            ItemKind::User,
            "user-a",
            json!({"id": "user-a", "email": "alice@corp.com", "role": "reader", "name": "Alice"}),
        )
        .subject("user-a"),
        Item::new(
            ItemKind::ProjectMember,
            "proj_A/user-a",
            json!({"id": "user-a", "email": "alice@corp.com", "role": "member"}),
        )
        .parent("proj_A")
        .subject("user-a"),
        Item::new(
            ItemKind::GroupMember,
            "group_1/user-a",
            json!({"id": "user-a", "email": "alice@corp.com"}),
        )
        .parent("group_1")
        .subject("user-a"),
        Item::new(
            ItemKind::Group,
            "group_1",
            json!({"id": "group_1", "name": "eng"}),
        ),
        Item::new(
            ItemKind::ProjectGroup,
            "proj_B/group_1",
            json!({"group_id": "group_1", "group_name": "eng"}),
        )
        .parent("proj_B")
        .subject("group_1"),
        Item::new(
            ItemKind::Invite,
            "invite-1",
            json!({"email": "alice@corp.com", "role": "reader", "status": "pending",
                   "projects": [{"id": "proj_C", "role": "owner"}]}),
        ),
        Item::new(
            ItemKind::Project,
            "proj_A",
            json!({"name": "A", "status": "active"}),
        ),
    ]
}

#[test]
fn a_person_s_paths_are_named_with_their_permissions() {
    let out = person_access(alice_items().into_iter().map(snap).collect());
    assert_eq!(out.len(), 1);
    let c = &out[0];
    let user = c.user.as_ref().unwrap();
    assert_eq!(user.role.as_deref(), Some("reader"));
    assert_eq!(user.permissions_source, PermissionSource::Predefined);
    let vias: Vec<(String, Via, Option<String>)> = c
        .projects
        .iter()
        .flat_map(|p| {
            p.paths
                .iter()
                .map(|x| (p.project_id.clone(), x.via, x.role.clone()))
        })
        .collect();
    assert_eq!(
        vias,
        [
            ("proj_A".into(), Via::Direct, Some("member".into())),
            ("proj_B".into(), Via::Group, None),
            ("proj_C".into(), Via::Invite, Some("owner".into())),
        ]
    );
    assert_eq!(c.projects[0].project_name.as_deref(), Some("A"));
    assert_eq!(c.projects[1].paths[0].group_name.as_deref(), Some("eng"));
    assert!(
        c.projects[2]
            .permissions
            .contains("api.organization.projects.write")
    );
    assert_eq!(c.groups[0].name.as_deref(), Some("eng"));
    let refs = referenced_projects(&alice_items().into_iter().map(snap).collect::<Vec<_>>());
    assert_eq!(
        refs.values().next().unwrap().iter().collect::<Vec<_>>(),
        ["proj_A", "proj_B", "proj_C"]
    );
}

/// The first page of who reaches `project`, from `items` (no owners but those among them).
fn reach(project: Item, items: Vec<Item>, permission: Option<&str>) -> ProjectReach {
    let found = ProjectItems {
        sync_id: SyncId::new(),
        synced_at: Utc::now(),
        project,
        items,
        owners: Vec::new(),
    };
    project_reach(&found, permission, &ReachPage::first(100))
}

#[test]
fn who_can_reach_merges_paths_per_person_and_filters_by_permission() {
    let mut items = alice_items();
    items.push(
        Item::new(
            ItemKind::GroupMember,
            "group_1/user-b",
            json!({"id": "user-b", "email": "bob@corp.com", "name": "Bob"}),
        )
        .parent("group_1")
        .subject("user-b"),
    );
    items.push(
        Item::new(
            ItemKind::ProjectMember,
            "proj_B/user-b",
            json!({"id": "user-b", "email": "bob@corp.com", "role": "owner"}),
        )
        .parent("proj_B")
        .subject("user-b"),
    );
    let project = Item::new(ItemKind::Project, "proj_B", json!({"name": "B"}));
    let reach = reach(project, items.clone(), None);
    let who: Vec<(Option<&str>, Vec<Via>)> = reach
        .people
        .iter()
        .map(|r| (r.email.as_deref(), r.paths.iter().map(|p| p.via).collect()))
        .collect();
    assert_eq!(
        who,
        [
            (Some("alice@corp.com"), vec![Via::Group]),
            (Some("bob@corp.com"), vec![Via::Direct, Via::Group]),
        ]
    );
    let writers = self::reach(
        Item::new(ItemKind::Project, "proj_B", json!({"name": "B"})),
        items,
        Some("api.organization.projects.write"),
    );
    assert_eq!(writers.people.len(), 1);
    assert_eq!(writers.people[0].paths.len(), 1, "only the owner path");
}

#[test]
fn a_group_path_holds_the_roles_assigned_to_the_group_in_the_project() {
    let mut items = alice_items();
    items.push(
        Item::new(
            ItemKind::RoleAssignment,
            "proj_B/group/group_1/role_x",
            json!({"id": "role_x", "name": "deployer", "permissions": ["api.deploy"]}),
        )
        .parent("proj_B")
        .subject("group_1")
        .role(Some("deployer".into()))
        .status(Some("group".into())),
    );
    // The group's organization-level assignment does not grant anything in a project.
    items.push(
        Item::new(
            ItemKind::RoleAssignment,
            "organization/group/group_1/role_y",
            json!({"id": "role_y", "name": "auditor", "permissions": ["api.audit"]}),
        )
        .subject("group_1")
        .role(Some("auditor".into()))
        .status(Some("group".into())),
    );
    let out = person_access(items.iter().cloned().map(snap).collect());
    let b = &out[0].projects[1];
    assert_eq!(b.project_id, "proj_B");
    assert_eq!(b.paths.len(), 1);
    let path = &b.paths[0];
    assert_eq!(
        (path.via, path.role.as_deref(), path.role_id.as_deref()),
        (Via::Group, Some("deployer"), Some("role_x"))
    );
    assert_eq!(path.permissions, ["api.deploy"]);
    assert_eq!(path.permissions_source, PermissionSource::Role);
    let project = Item::new(ItemKind::Project, "proj_B", json!({"name": "B"}));
    let deploy = reach(project.clone(), items.clone(), Some("api.deploy"));
    let reach = reach(project, items, None);
    assert_eq!(reach.people[0].paths[0].role.as_deref(), Some("deployer"));
    assert_eq!(
        deploy.people.len(),
        1,
        "the assigned role's permissions count"
    );
}

fn connection(n: u8, projects: &[&str]) -> ConnectionAccess {
    ConnectionAccess {
        connection_id: format!("0192f000-0000-7000-8000-00000000000{n}")
            .parse()
            .unwrap(),
        connection_name: format!("c{n}"),
        sync_id: "0192f000-0000-7000-8000-000000000002".parse().unwrap(),
        synced_at: Utc::now(),
        user: None,
        invites: vec![],
        projects: projects
            .iter()
            .map(|p| ProjectAccess {
                project_id: (*p).to_owned(),
                project_name: None,
                project_status: None,
                paths: vec![],
                permissions: Default::default(),
            })
            .collect(),
        groups: vec![],
        api_keys: vec![],
    }
}

#[test]
fn a_person_s_pages_hold_every_project_once_and_every_connection() {
    let all = vec![
        connection(1, &["p1", "p2", "p3"]),
        connection(2, &[]),
        connection(3, &["p1", "p4"]),
    ];
    for limit in 1..=6 {
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut connections = BTreeSet::new();
        let mut after = None;
        for _ in 0..10 {
            let page = person_page(all.clone(), after.as_ref(), limit);
            let held: usize = page.connections.iter().map(|c| c.projects.len()).sum();
            assert!(held <= limit, "limit {limit}: {held} projects");
            for c in &page.connections {
                connections.insert(c.connection_name.clone());
                for p in &c.projects {
                    seen.push((c.connection_name.clone(), p.project_id.clone()));
                }
            }
            assert_eq!(page.has_more, page.next_cursor.is_some());
            match page.next_cursor {
                Some(raw) => after = Some(PersonCursor::decode(&raw).unwrap()),
                None => break,
            }
        }
        let want: Vec<(String, String)> = [
            ("c1", "p1"),
            ("c1", "p2"),
            ("c1", "p3"),
            ("c3", "p1"),
            ("c3", "p4"),
        ]
        .map(|(c, p)| (c.to_owned(), p.to_owned()))
        .to_vec();
        assert_eq!(seen, want, "limit {limit}");
        assert_eq!(
            connections.len(),
            3,
            "limit {limit}: a connection without projects is kept"
        );
    }
    let whole = person_page(all.clone(), None, 1000);
    assert_eq!(whole.connections, all);
    assert!(!whole.has_more);
    assert_eq!(PersonCursor::decode("not a cursor"), None);
}

#[test]
fn cursors_are_positions_that_read_back() {
    let conn = ConnectionId(uuid::Uuid::from_u128(7));
    let person = |email: Option<&str>, user: Option<&str>| ReachCursor {
        email: email.map(str::to_owned),
        user_id: user.map(str::to_owned),
    };
    for p in [
        person(Some("a@x.com"), Some("user-1")),
        person(None, Some("user-1")),
        person(Some("a@x.com"), None),
        person(None, None),
        // A synced email may hold a space; the user id is after the last one.
        person(Some("odd name@x.com"), Some("user-2")),
    ] {
        assert_eq!(ReachCursor::decode(&p.encode()), p, "{}", p.encode());
        let h = HolderCursor {
            connection_id: conn,
            project_id: Some("proj_1".into()),
            email: p.email.clone(),
            user_id: p.user_id.clone(),
        };
        assert_eq!(HolderCursor::decode(&h.encode()), Some(h.clone()));
        let org_role = HolderCursor {
            project_id: None,
            ..h
        };
        assert_eq!(HolderCursor::decode(&org_role.encode()), Some(org_role));
    }
    for after_project in ["", "proj_9"] {
        let c = PersonCursor {
            connection_id: conn,
            after_project: after_project.into(),
        };
        assert_eq!(PersonCursor::decode(&c.encode()), Some(c));
    }
    // Written by hand: a connection id alone, any text after a person.
    let id = "00000000-0000-0000-0000-000000000007";
    assert_eq!(
        PersonCursor::decode(id).map(|c| c.after_project),
        Some(String::new())
    );
    assert_eq!(
        HolderCursor::decode(id).map(|c| c.connection_id),
        Some(conn)
    );
    assert_eq!(ReachCursor::decode("zed"), person(Some("zed"), None));
    assert_eq!(HolderCursor::decode("proj_1 a@x.com user-1"), None);
}

fn owner(id: &str, email: &str) -> Item {
    Item::new(
        ItemKind::User,
        id,
        json!({"id": id, "email": email, "name": id}),
    )
    .subject(id)
    .email(Some(email))
    .role(Some("owner".into()))
}

#[test]
fn owners_come_a_page_at_a_time_merged_with_their_other_paths() {
    let project = Item::new(ItemKind::Project, "proj_B", json!({"name": "B"}));
    // Bob is a member and an owner: his user item is among the items, not the owners.
    let items = vec![
        Item::new(
            ItemKind::ProjectMember,
            "proj_B/user-b",
            json!({"id": "user-b", "email": "bob@corp.com", "role": "member"}),
        )
        .parent("proj_B")
        .subject("user-b")
        .email(Some("bob@corp.com")),
        owner("user-b", "bob@corp.com"),
    ];
    let owners = [
        owner("user-a", "ann@corp.com"),
        owner("user-c", "cy@corp.com"),
        owner("user-d", "dee@corp.com"),
    ];
    let read = |after: Option<ReachCursor>, permission: Option<&str>| {
        let page = ReachPage { after, limit: 2 };
        let found = ProjectItems {
            sync_id: SyncId::new(),
            synced_at: Utc::now(),
            project: project.clone(),
            items: items.clone(),
            // What the store gives: the owners after the cursor, in order.
            owners: owners
                .iter()
                .filter(|o| {
                    page.after
                        .as_ref()
                        .is_none_or(|a| (o.email.as_ref(), o.subject_id.as_ref()) > a.key())
                })
                .cloned()
                .collect(),
        };
        project_reach(&found, permission, &page)
    };
    let vias = |r: &ProjectReach| -> Vec<(String, Vec<Via>)> {
        r.people
            .iter()
            .map(|p| {
                (
                    p.email.clone().unwrap_or_default(),
                    p.paths.iter().map(|x| x.via).collect(),
                )
            })
            .collect()
    };
    let first = read(None, None);
    assert_eq!(
        vias(&first),
        [
            ("ann@corp.com".into(), vec![Via::OrganizationOwner]),
            (
                "bob@corp.com".into(),
                vec![Via::Direct, Via::OrganizationOwner]
            ),
        ]
    );
    assert!(first.has_more);
    let cursor = ReachCursor::decode(first.next_cursor.as_deref().unwrap());
    let second = read(Some(cursor), None);
    assert_eq!(
        vias(&second),
        [
            ("cy@corp.com".into(), vec![Via::OrganizationOwner]),
            ("dee@corp.com".into(), vec![Via::OrganizationOwner]),
        ]
    );
    assert!(!second.has_more && second.next_cursor.is_none());
    assert!(second.service_accounts.is_empty());
    // A permission only a member's role grants, not an owner's: nobody; one owners hold:
    // everyone, with only the owner path.
    assert!(read(None, Some("api.not.a.permission")).people.is_empty());
    let writers = read(None, Some("api.organization.projects.write"));
    assert_eq!(writers.people.len(), 2);
    assert!(
        writers
            .people
            .iter()
            .all(|p| p.paths.iter().all(|x| x.via == Via::OrganizationOwner))
    );
}
