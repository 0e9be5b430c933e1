//! The OpenAI client against the sandbox over loopback HTTP: every operation, its effect on
//! the sandbox's state, and its typed errors (kind, status, request id).

use std::collections::HashSet;
use std::fmt::Debug;

use futures::TryStreamExt;
use openai_governor::openai::{
    Assignee, AuditLogParams, BucketWidth, Client, CostsParams, CreateInvite, CreateProject,
    CreateRole, CreateServiceAccount, CreateServiceAccountApiKey, CursorParams, ErrorKind,
    GroupType, InviteProject, InviteStatus, ListProjectApiKeysParams, ListProjectsParams,
    ListUsersParams, ModifyProject, ModifyUser, OpenAiError, OwnerAccessFilter, OwnerProjectAccess,
    ProjectStatus, RbacListParams, Reply, RoleScope, TimeRange, UpdateRole, UpdateServiceAccount,
    UsageKind, UsageParams,
};
use openai_governor_sandbox::{KeyProfile, SandboxConfig, SandboxHandle};
use secrecy::ExposeSecret;

use crate::helpers::{CheckedSandbox, openai_client, start_sandbox, test_client_config};

async fn setup() -> (CheckedSandbox, Client) {
    let sandbox = start_sandbox(SandboxConfig::default()).await;
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());
    (sandbox, client)
}

/// Asserts a typed error answered by the sandbox (one attempt, a request id) and returns it.
#[track_caller]
fn refused<T: Debug>(
    result: Result<Reply<T>, OpenAiError>,
    kind: ErrorKind,
    status: u16,
) -> OpenAiError {
    let err = result.expect_err("expected an error");
    assert_eq!(err.kind, kind, "{err}");
    assert_eq!(err.status, Some(status), "{err}");
    assert!(
        err.request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("req_")),
        "request id in {err:?}"
    );
    assert!(!err.message.is_empty(), "{err:?}");
    assert_eq!(err.attempts, 1, "4xx are not retried: {err}");
    err
}

/// Asserts the metadata every successful answer carries.
#[track_caller]
fn answered<T>(reply: &Reply<T>, sandbox: &SandboxHandle) {
    assert_eq!(reply.meta.status, 200);
    assert!(
        reply
            .meta
            .request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("req_")),
        "{:?}",
        reply.meta
    );
    assert_eq!(
        reply.meta.organization.as_deref(),
        Some(sandbox.organization_id())
    );
    assert_eq!(reply.meta.attempts, 1);
}

/// A seeded organization member who is not an owner (safe to change or remove).
fn a_reader(sandbox: &SandboxHandle, skip: usize) -> (String, String) {
    sandbox.state().read(|org| {
        org.users
            .iter()
            .filter(|u| u.role == "reader")
            .nth(skip)
            .map(|u| (u.id.clone(), u.email.clone()))
            .expect("a reader")
    })
}

fn active_project(sandbox: &SandboxHandle, n: usize) -> String {
    sandbox.state().read(|org| {
        org.projects
            .iter()
            .filter(|p| !p.archived() && p.id != org.default_project_id)
            .nth(n)
            .map(|p| p.id.clone())
            .expect("an active project")
    })
}

#[tokio::test]
async fn users_list_filter_get_modify_delete() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let all_ids: Vec<String> = state.read(|org| org.users.iter().map(|u| u.id.clone()).collect());

    // One page and the stream agree with the sandbox, in order.
    let page = client
        .list_users(&ListUsersParams {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    answered(&page, &sandbox);
    assert!(!page.data.has_more);
    let ids: Vec<String> = page.data.data.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, all_ids);
    assert_eq!(
        page.data.last_id.as_deref(),
        all_ids.last().map(String::as_str)
    );
    let streamed: Vec<_> = client
        .users(&ListUsersParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), all_ids.len());
    assert!(streamed.iter().all(|u| u.object == "organization.user"));

    // emails[] filters, case-insensitively, one or several addresses.
    let (reader, reader_email) = a_reader(&sandbox, 0);
    let (other, other_email) = a_reader(&sandbox, 1);
    let found = client
        .list_users(&ListUsersParams {
            emails: vec![reader_email.to_uppercase()],
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .data;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, reader);
    assert_eq!(found[0].email.as_deref(), Some(reader_email.as_str()));
    let found: HashSet<String> = client
        .users(&ListUsersParams {
            emails: vec![reader_email.clone(), other_email.clone()],
            ..Default::default()
        })
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found, HashSet::from([reader.clone(), other.clone()]));
    let none = client
        .list_users(&ListUsersParams {
            emails: vec!["nobody@nowhere.example".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.data.data.is_empty());

    // Get.
    let got = client.get_user(&reader).await.unwrap();
    answered(&got, &sandbox);
    assert_eq!(got.data.id, reader);
    assert_eq!(got.data.role.as_deref(), Some("reader"));
    let err = refused(
        client.get_user("user-does-not-exist").await,
        ErrorKind::NotFound,
        404,
    );
    assert_eq!(err.error_type.as_deref(), Some("invalid_request_error"));

    // Modify: legacy role, then a custom role id (an RBAC assignment).
    let changed = client
        .modify_user(
            &reader,
            &ModifyUser {
                role: Some("owner".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.data.role.as_deref(), Some("owner"));
    assert_eq!(
        state.read(|org| org.users.get(&reader).unwrap().role.clone()),
        "owner"
    );
    let custom_role = state.read(|org| {
        org.roles
            .iter()
            .find(|r| !r.predefined && r.resource_type == "api.organization")
            .map(|r| r.id.clone())
            .unwrap()
    });
    client
        .modify_user(
            &other,
            &ModifyUser {
                role_id: Some(custom_role.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(state.read(|org| org.user_roles[&other].contains(&custom_role)));
    let err = refused(
        client
            .modify_user(
                &other,
                &ModifyUser {
                    role: Some("emperor".into()),
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::BadRequest,
        400,
    );
    assert_eq!(err.param.as_deref(), Some("role"));

    // Delete: gone from the org and from its projects.
    let deleted = client.delete_user(&other).await.unwrap();
    assert!(deleted.data.deleted);
    assert_eq!(deleted.data.id.as_deref(), Some(other.as_str()));
    assert_eq!(deleted.data.object, "organization.user.deleted");
    assert!(state.read(|org| !org.users.contains(&other)
        && org.project_users.values().all(|m| !m.contains(&other))));
    refused(client.get_user(&other).await, ErrorKind::NotFound, 404);
    refused(client.delete_user(&other).await, ErrorKind::NotFound, 404);
}

#[tokio::test]
async fn invites_create_get_accept_delete() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let project = active_project(&sandbox, 0);

    let seeded: Vec<_> = client
        .invites(&CursorParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seeded.len(), state.read(|org| org.invites.len()));
    let statuses: HashSet<InviteStatus> = seeded.iter().map(|i| i.status.clone()).collect();
    assert_eq!(
        statuses,
        HashSet::from([
            InviteStatus::Pending,
            InviteStatus::Accepted,
            InviteStatus::Expired
        ])
    );

    // Create with projects[]: the invite carries them; nothing is a member yet.
    let created = client
        .create_invite(&CreateInvite {
            email: "new.hire@example.org".into(),
            role: "reader".into(),
            projects: Some(vec![InviteProject {
                id: project.clone(),
                role: "owner".into(),
            }]),
        })
        .await
        .unwrap();
    answered(&created, &sandbox);
    let invite = created.data;
    assert_eq!(invite.status, InviteStatus::Pending);
    assert_eq!(invite.email, "new.hire@example.org");
    assert_eq!(
        invite.projects,
        vec![InviteProject {
            id: project.clone(),
            role: "owner".into()
        }]
    );
    assert!(state.read(|org| org.invites.contains(&invite.id)));
    let got = client.get_invite(&invite.id).await.unwrap().data;
    assert_eq!(got, invite);

    // A second pending invite for the same address, or one for a member, is refused.
    refused(
        client
            .create_invite(&CreateInvite {
                email: "new.hire@example.org".into(),
                role: "reader".into(),
                projects: Some(vec![]),
            })
            .await,
        ErrorKind::BadRequest,
        400,
    );
    let (_, member_email) = a_reader(&sandbox, 0);
    refused(
        client
            .create_invite(&CreateInvite {
                email: member_email,
                role: "reader".into(),
                projects: None,
            })
            .await,
        ErrorKind::BadRequest,
        400,
    );

    // Omitting projects means the default project (legacy behaviour).
    let legacy = client
        .create_invite(&CreateInvite {
            email: "legacy@example.org".into(),
            role: "owner".into(),
            projects: None,
        })
        .await
        .unwrap()
        .data;
    let default_project = state.read(|org| org.default_project_id.clone());
    assert_eq!(legacy.projects.len(), 1);
    assert_eq!(legacy.projects[0].id, default_project);

    // Delete a pending invite.
    let deleted = client.delete_invite(&legacy.id).await.unwrap().data;
    assert!(deleted.deleted);
    assert_eq!(deleted.id.as_deref(), Some(legacy.id.as_str()));
    assert!(state.read(|org| !org.invites.contains(&legacy.id)));
    refused(
        client.get_invite(&legacy.id).await,
        ErrorKind::NotFound,
        404,
    );

    // Accepted (by the invitee): a member of the org and of the invited project; the invite
    // can no longer be deleted.
    let user_id = state.accept_invite(&invite.id).unwrap();
    let got = client.get_invite(&invite.id).await.unwrap().data;
    assert_eq!(got.status, InviteStatus::Accepted);
    assert!(got.accepted_at.is_some());
    let member = client
        .get_project_user(&project, &user_id)
        .await
        .unwrap()
        .data;
    assert_eq!(member.role, "owner");
    let err = refused(
        client.delete_invite(&invite.id).await,
        ErrorKind::BadRequest,
        400,
    );
    assert!(err.message.contains("accepted"), "{err}");
    assert!(state.read(|org| org.invites.contains(&invite.id)));
}

#[tokio::test]
async fn projects_list_create_modify_archive() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let (total, archived) = state.read(|org| {
        (
            org.projects.len(),
            org.projects.iter().filter(|p| p.archived()).count(),
        )
    });
    assert!(archived > 0);

    let active: Vec<_> = client
        .projects(&ListProjectsParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(active.len(), total - archived);
    assert!(
        active
            .iter()
            .all(|p| p.status == Some(ProjectStatus::Active))
    );
    let everything = client
        .list_projects(&ListProjectsParams {
            include_archived: true,
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert_eq!(everything.data.len(), total);
    let archived_one = everything
        .data
        .iter()
        .find(|p| p.status == Some(ProjectStatus::Archived))
        .unwrap();
    assert!(archived_one.archived_at.is_some());

    // Create: the admin key's owner owns the new project.
    let created = client
        .create_project(&CreateProject {
            name: "Research".into(),
            residency: Some("EU_STORAGE_PROCESSING".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    answered(&created, &sandbox);
    let project = created.data;
    assert_eq!(project.name.as_deref(), Some("Research"));
    assert_eq!(project.status, Some(ProjectStatus::Active));
    assert_eq!(project.residency.as_deref(), Some("EU_STORAGE_PROCESSING"));
    assert!(state.read(|org| org.projects.contains(&project.id)));
    let members: Vec<_> = client
        .project_users(&project.id, &CursorParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, "owner");
    assert_eq!(client.get_project(&project.id).await.unwrap().data, project);
    refused(
        client
            .create_project(&CreateProject {
                name: " ".into(),
                ..Default::default()
            })
            .await,
        ErrorKind::BadRequest,
        400,
    );

    // Modify.
    let renamed = client
        .modify_project(
            &project.id,
            &ModifyProject {
                name: Some("Research (EU)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .data;
    assert_eq!(renamed.name.as_deref(), Some("Research (EU)"));
    assert_eq!(
        state.read(|org| org.projects.get(&project.id).unwrap().name.clone()),
        "Research (EU)"
    );
    let default_project = state.read(|org| org.default_project_id.clone());
    refused(
        client
            .modify_project(
                &default_project,
                &ModifyProject {
                    name: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.get_project("proj_missing").await,
        ErrorKind::NotFound,
        404,
    );

    // Archive: status changes; archived projects cannot be modified or have members.
    let archived = client.archive_project(&project.id).await.unwrap().data;
    assert_eq!(archived.status, Some(ProjectStatus::Archived));
    assert!(archived.archived_at.is_some());
    assert!(state.read(|org| org.projects.get(&project.id).unwrap().archived()));
    refused(
        client
            .modify_project(
                &project.id,
                &ModifyProject {
                    name: Some("again".into()),
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client
            .list_project_users(&project.id, &CursorParams::default())
            .await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.archive_project(&default_project).await,
        ErrorKind::BadRequest,
        400,
    );
    let listed = client
        .list_projects(&ListProjectsParams::default())
        .await
        .unwrap()
        .data;
    assert!(listed.data.iter().all(|p| p.id != project.id));
}

#[tokio::test]
async fn project_members_add_get_modify_remove() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let project = client
        .create_project(&CreateProject {
            name: "Team".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .id;
    let (reader, reader_email) = a_reader(&sandbox, 0);

    let added = client
        .add_project_user(&project, &reader, "member")
        .await
        .unwrap();
    answered(&added, &sandbox);
    assert_eq!(added.data.id, reader);
    assert_eq!(added.data.role, "member");
    assert_eq!(added.data.email.as_deref(), Some(reader_email.as_str()));
    assert_eq!(
        state.read(|org| org.project_users[&project]
            .get(&reader)
            .unwrap()
            .role
            .clone()),
        "member"
    );
    let got = client
        .get_project_user(&project, &reader)
        .await
        .unwrap()
        .data;
    assert_eq!(got, added.data);

    // Adding twice, adding someone outside the org, or an unknown role: 400.
    refused(
        client.add_project_user(&project, &reader, "member").await,
        ErrorKind::BadRequest,
        400,
    );
    let err = refused(
        client
            .add_project_user(&project, "user-not-in-org", "member")
            .await,
        ErrorKind::BadRequest,
        400,
    );
    assert_eq!(err.param.as_deref(), Some("user_id"));
    let (second, _) = a_reader(&sandbox, 1);
    refused(
        client.add_project_user(&project, &second, "viewer").await,
        ErrorKind::BadRequest,
        400,
    );

    // Change role.
    let owner = client
        .modify_project_user(&project, &reader, "owner")
        .await
        .unwrap()
        .data;
    assert_eq!(owner.role, "owner");
    assert_eq!(
        state.read(|org| org.project_users[&project]
            .get(&reader)
            .unwrap()
            .role
            .clone()),
        "owner"
    );
    refused(
        client
            .modify_project_user(&project, &second, "member")
            .await,
        ErrorKind::NotFound,
        404,
    );

    // Remove.
    let removed = client
        .remove_project_user(&project, &reader)
        .await
        .unwrap()
        .data;
    assert!(removed.deleted);
    assert!(state.read(|org| !org.project_users[&project].contains(&reader)));
    refused(
        client.get_project_user(&project, &reader).await,
        ErrorKind::NotFound,
        404,
    );

    // Archived projects refuse membership changes with 400.
    client
        .add_project_user(&project, &reader, "member")
        .await
        .unwrap();
    client.archive_project(&project).await.unwrap();
    refused(
        client.add_project_user(&project, &second, "member").await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.modify_project_user(&project, &reader, "owner").await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.remove_project_user(&project, &reader).await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.get_project_user(&project, &reader).await,
        ErrorKind::BadRequest,
        400,
    );
}

#[tokio::test]
async fn service_accounts_and_project_api_keys() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let project = active_project(&sandbox, 0);
    let seeded = state.read(|org| org.service_accounts[&project].len());

    // Create: the key's value comes back once, as a secret that Debug does not show.
    let created = client
        .create_project_service_account(
            &project,
            &CreateServiceAccount {
                name: "deploy-bot".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    answered(&created, &sandbox);
    let sa = created.data.clone();
    assert_eq!(sa.role, "member");
    let key = sa.api_key.clone().expect("key returned on create");
    let value = key.value.clone().expect("value").expose_secret().to_owned();
    assert!(value.starts_with("sk-svcacct-"), "{value}");
    assert!(!format!("{created:?}").contains(&value));
    let (stored_name, key_owned) = state.read(|org| {
        (
            org.service_accounts[&project]
                .get(&sa.id)
                .unwrap()
                .name
                .clone(),
            org.api_keys[&project].contains(&key.id),
        )
    });
    assert_eq!(stored_name, "deploy-bot");
    assert!(key_owned);

    // Never again: get and list return no key.
    let got = client
        .get_project_service_account(&project, &sa.id)
        .await
        .unwrap()
        .data;
    assert_eq!(got.name, "deploy-bot");
    let listed: Vec<_> = client
        .project_service_accounts(&project, &CursorParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), seeded + 1);
    assert!(listed.iter().any(|s| s.id == sa.id));

    // Service account only: role none, no key.
    let bare = client
        .create_project_service_account(
            &project,
            &CreateServiceAccount {
                name: "bare".into(),
                create_service_account_only: Some(true),
            },
        )
        .await
        .unwrap()
        .data;
    assert_eq!(bare.role, "none");
    assert!(bare.api_key.is_none());
    let minted = client
        .create_service_account_api_key(
            &project,
            &bare.id,
            &CreateServiceAccountApiKey {
                name: Some("ci".into()),
                scopes: vec![],
            },
        )
        .await
        .unwrap()
        .data;
    assert!(
        minted
            .value
            .as_ref()
            .is_some_and(|v| v.expose_secret().starts_with("sk-svcacct-"))
    );
    assert!(state.read(|org| org.api_keys[&project].contains(&minted.id)));

    // Modify.
    let changed = client
        .modify_project_service_account(
            &project,
            &sa.id,
            &UpdateServiceAccount {
                name: Some("deploy-bot-2".into()),
                role: Some("owner".into()),
            },
        )
        .await
        .unwrap()
        .data;
    assert_eq!(
        (changed.name.as_str(), changed.role.as_str()),
        ("deploy-bot-2", "owner")
    );
    assert_eq!(
        state.read(|org| org.service_accounts[&project]
            .get(&sa.id)
            .unwrap()
            .role
            .clone()),
        "owner"
    );
    refused(
        client
            .modify_project_service_account(
                &project,
                &sa.id,
                &UpdateServiceAccount {
                    role: Some("boss".into()),
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::BadRequest,
        400,
    );

    // API keys: the list (owner_project_access=any by default) matches the sandbox; the
    // filters split it into active and inactive keys.
    let all_keys: Vec<_> = client
        .project_api_keys(&project, &ListProjectApiKeysParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        all_keys.len(),
        state.read(|org| org.api_keys[&project].len())
    );
    let count = |filter| {
        let client = client.clone();
        let project = project.clone();
        async move {
            client
                .list_project_api_keys(
                    &project,
                    &ListProjectApiKeysParams {
                        owner_project_access: filter,
                        limit: Some(100),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .data
                .data
        }
    };
    let active = count(OwnerAccessFilter::Active).await;
    let inactive = count(OwnerAccessFilter::Inactive).await;
    assert_eq!(active.len() + inactive.len(), all_keys.len());
    assert!(
        inactive
            .iter()
            .all(|k| k.owner_project_access == Some(OwnerProjectAccess::Inactive))
    );
    let sa_key = client
        .get_project_api_key(&project, &key.id)
        .await
        .unwrap()
        .data;
    assert_eq!(
        sa_key.owner.service_account.as_ref().map(|s| s.id.as_str()),
        Some(sa.id.as_str())
    );
    assert!(!sa_key.redacted_value.contains(&value));
    // A service account's key cannot be deleted directly; a user's key can.
    refused(
        client.delete_project_api_key(&project, &key.id).await,
        ErrorKind::BadRequest,
        400,
    );
    let user_key = all_keys
        .iter()
        .find(|k| k.owner.user.is_some())
        .expect("a user-owned key")
        .id
        .clone();
    let deleted = client
        .delete_project_api_key(&project, &user_key)
        .await
        .unwrap()
        .data;
    assert!(deleted.deleted);
    assert!(state.read(|org| !org.api_keys[&project].contains(&user_key)));
    refused(
        client.get_project_api_key(&project, &user_key).await,
        ErrorKind::NotFound,
        404,
    );

    // Deleting the service account takes its keys with it.
    let deleted = client
        .delete_project_service_account(&project, &sa.id)
        .await
        .unwrap()
        .data;
    assert!(deleted.deleted);
    assert!(
        state.read(|org| !org.service_accounts[&project].contains(&sa.id)
            && !org.api_keys[&project].contains(&key.id))
    );
    refused(
        client.get_project_service_account(&project, &sa.id).await,
        ErrorKind::NotFound,
        404,
    );

    // Archived projects: 400 on the service-account list.
    let archived = state.read(|org| {
        org.projects
            .iter()
            .find(|p| p.archived())
            .map(|p| p.id.clone())
            .unwrap()
    });
    refused(
        client
            .list_project_service_accounts(&archived, &CursorParams::default())
            .await,
        ErrorKind::BadRequest,
        400,
    );
}

#[tokio::test]
async fn groups_group_users_and_project_groups() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let seeded: Vec<_> = client
        .groups(&RbacListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(seeded.len(), state.read(|org| org.groups.len()));

    let created = client.create_group("platform").await.unwrap();
    answered(&created, &sandbox);
    let group = created.data;
    assert_eq!(group.name, "platform");
    assert_eq!(group.group_type, Some(GroupType::Group));
    assert!(state.read(|org| org.groups.contains(&group.id)));
    assert_eq!(client.get_group(&group.id).await.unwrap().data, group);
    let renamed = client
        .update_group(&group.id, "platform-team")
        .await
        .unwrap()
        .data;
    assert_eq!(renamed.name, "platform-team");
    assert_eq!(
        state.read(|org| org.groups.get(&group.id).unwrap().name.clone()),
        "platform-team"
    );
    refused(client.create_group("").await, ErrorKind::BadRequest, 400);

    // Members.
    let (reader, reader_email) = a_reader(&sandbox, 0);
    let added = client
        .add_group_user(&group.id, &reader)
        .await
        .unwrap()
        .data;
    assert_eq!(
        (added.user_id.as_str(), added.group_id.as_str()),
        (reader.as_str(), group.id.as_str())
    );
    assert!(state.read(|org| org.group_users[&group.id].contains(&reader)));
    refused(
        client.add_group_user(&group.id, &reader).await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client.add_group_user(&group.id, "user-ghost").await,
        ErrorKind::BadRequest,
        400,
    );
    let members: Vec<_> = client
        .group_users(&group.id, &RbacListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].email.as_deref(), Some(reader_email.as_str()));
    let member = client
        .get_group_user(&group.id, &reader)
        .await
        .unwrap()
        .data;
    assert_eq!(member.id, reader);
    assert_eq!(member.user_type.as_deref(), Some("user"));

    // Project groups: a group gets a project role (by role id).
    let project = active_project(&sandbox, 1);
    let member_role = state.read(|org| {
        org.roles
            .iter()
            .find(|r| r.resource_type == "api.project" && r.name == "member")
            .map(|r| r.id.clone())
            .unwrap()
    });
    let before = client
        .list_project_groups(&project, &RbacListParams::default())
        .await
        .unwrap()
        .data
        .data
        .len();
    let pg = client
        .add_project_group(&project, &group.id, &member_role)
        .await
        .unwrap()
        .data;
    assert_eq!(pg.object, "project.group");
    assert_eq!(
        (pg.project_id.as_str(), pg.group_id.as_str()),
        (project.as_str(), group.id.as_str())
    );
    assert_eq!(pg.group_name.as_deref(), Some("platform-team"));
    assert!(state.read(|org| org.project_groups[&project].contains(&group.id)));
    let listed: Vec<_> = client
        .project_groups(&project, &RbacListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), before + 1);
    let got = client
        .get_project_group(&project, &group.id, Some(GroupType::Group))
        .await
        .unwrap()
        .data;
    assert_eq!(got, pg);
    refused(
        client
            .add_project_group(&project, &group.id, &member_role)
            .await,
        ErrorKind::BadRequest,
        400,
    );
    let removed = client
        .remove_project_group(&project, &group.id)
        .await
        .unwrap()
        .data;
    assert!(removed.deleted);
    assert!(state.read(|org| !org.project_groups[&project].contains(&group.id)));
    refused(
        client.get_project_group(&project, &group.id, None).await,
        ErrorKind::NotFound,
        404,
    );

    // Remove the member, then the group.
    let removed = client
        .remove_group_user(&group.id, &reader)
        .await
        .unwrap()
        .data;
    assert!(removed.deleted);
    assert!(state.read(|org| org.group_users[&group.id].is_empty()));
    refused(
        client.get_group_user(&group.id, &reader).await,
        ErrorKind::NotFound,
        404,
    );
    let deleted = client.delete_group(&group.id).await.unwrap().data;
    assert!(deleted.deleted);
    assert!(state.read(|org| !org.groups.contains(&group.id)));
    refused(client.get_group(&group.id).await, ErrorKind::NotFound, 404);
}

#[tokio::test]
async fn roles_at_organization_and_project_level() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let project = active_project(&sandbox, 0);

    let org_roles: Vec<_> = client
        .roles(&RoleScope::Organization, &RbacListParams::default())
        .try_collect()
        .await
        .unwrap();
    let expected = state.read(|org| {
        org.roles
            .iter()
            .filter(|r| r.resource_type == "api.organization")
            .count()
    });
    assert_eq!(org_roles.len(), expected);
    assert!(
        org_roles
            .iter()
            .all(|r| r.resource_type == "api.organization")
    );
    assert!(org_roles.iter().any(|r| r.predefined_role));
    let page = client
        .list_project_roles(&project, &RbacListParams::default())
        .await
        .unwrap()
        .data;
    assert!(!page.data.is_empty());
    assert!(page.data.iter().all(|r| r.resource_type == "api.project"));
    assert_eq!(
        client
            .list_roles(&RbacListParams::default())
            .await
            .unwrap()
            .data
            .data,
        org_roles
    );

    for scope in [RoleScope::Organization, RoleScope::Project(project.clone())] {
        let created = client
            .create_role(
                &scope,
                &CreateRole {
                    role_name: "auditor".into(),
                    permissions: vec!["api.groups.read".into()],
                    description: Some("reads".into()),
                },
            )
            .await
            .unwrap()
            .data;
        assert!(!created.predefined_role);
        let resource = match scope {
            RoleScope::Organization => "api.organization",
            RoleScope::Project(_) => "api.project",
        };
        assert_eq!(created.resource_type, resource);
        assert!(state.read(|org| org.roles.contains(&created.id)));
        assert_eq!(
            client.get_role(&scope, &created.id).await.unwrap().data,
            created
        );
        let listed: Vec<_> = client
            .roles(&scope, &RbacListParams::default())
            .try_collect()
            .await
            .unwrap();
        assert!(listed.iter().any(|r| r.id == created.id));

        let updated = client
            .update_role(
                &scope,
                &created.id,
                &UpdateRole {
                    role_name: Some("auditor-2".into()),
                    permissions: Some(vec!["api.groups.read".into(), "api.roles.read".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .data;
        assert_eq!(updated.name, "auditor-2");
        assert_eq!(
            state.read(|org| org.roles.get(&created.id).unwrap().permissions.clone()),
            vec!["api.groups.read".to_string(), "api.roles.read".to_string()]
        );

        let deleted = client.delete_role(&scope, &created.id).await.unwrap().data;
        assert!(deleted.deleted);
        assert!(state.read(|org| !org.roles.contains(&created.id)));
        refused(
            client.get_role(&scope, &created.id).await,
            ErrorKind::NotFound,
            404,
        );
    }

    // Predefined roles cannot be changed or deleted.
    let predefined = org_roles.iter().find(|r| r.predefined_role).unwrap();
    refused(
        client
            .delete_role(&RoleScope::Organization, &predefined.id)
            .await,
        ErrorKind::BadRequest,
        400,
    );
}

#[tokio::test]
async fn role_assignments_of_users_and_groups_at_both_levels() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();
    let project = active_project(&sandbox, 0);
    let (user, _) = a_reader(&sandbox, 0);
    let group = client.create_group("assignees").await.unwrap().data.id;
    let (org_role, project_role) = state.read(|org| {
        let find = |resource: &str, name: &str| {
            org.roles
                .iter()
                .find(|r| r.resource_type == resource && r.name == name)
                .map(|r| r.id.clone())
                .unwrap()
        };
        (
            find("api.organization", "reader"),
            find("api.project", "viewer"),
        )
    });

    let cases = [
        (
            Assignee::OrgUser(user.clone()),
            org_role.clone(),
            "user.role",
        ),
        (
            Assignee::OrgGroup(group.clone()),
            org_role.clone(),
            "group.role",
        ),
        (
            Assignee::ProjectUser {
                project_id: project.clone(),
                user_id: user.clone(),
            },
            project_role.clone(),
            "user.role",
        ),
        (
            Assignee::ProjectGroup {
                project_id: project.clone(),
                group_id: group.clone(),
            },
            project_role.clone(),
            "group.role",
        ),
    ];
    for (assignee, role, object) in cases {
        let before: Vec<_> = client
            .role_assignments(&assignee, &RbacListParams::default())
            .try_collect()
            .await
            .unwrap();
        let assigned = client.assign_role(&assignee, &role).await.unwrap();
        answered(&assigned, &sandbox);
        assert_eq!(assigned.data.object, object, "{assignee:?}");
        assert_eq!(assigned.data.role.id, role);
        match &assignee {
            Assignee::OrgUser(u) | Assignee::ProjectUser { user_id: u, .. } => {
                assert_eq!(
                    assigned.data.user.as_ref().map(|x| x.id.as_str()),
                    Some(u.as_str())
                );
            }
            Assignee::OrgGroup(g) | Assignee::ProjectGroup { group_id: g, .. } => {
                assert_eq!(
                    assigned.data.group.as_ref().map(|x| x.id.as_str()),
                    Some(g.as_str())
                );
            }
        }
        let in_state = state.read(|org| match &assignee {
            Assignee::OrgUser(u) => org.user_roles[u].contains(&role),
            Assignee::OrgGroup(g) => org.group_roles[g].contains(&role),
            Assignee::ProjectUser {
                project_id,
                user_id,
            } => org.project_user_roles[&(project_id.clone(), user_id.clone())].contains(&role),
            Assignee::ProjectGroup {
                project_id,
                group_id,
            } => org.project_group_roles[&(project_id.clone(), group_id.clone())].contains(&role),
        });
        assert!(in_state, "{assignee:?}");
        let after: Vec<_> = client
            .role_assignments(&assignee, &RbacListParams::default())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(after.len(), before.len() + 1);
        let got = client
            .get_role_assignment(&assignee, &role)
            .await
            .unwrap()
            .data;
        assert_eq!(got.id, role);
        assert!(got.created_by.is_some());
        let page = client
            .list_role_assignments(&assignee, &RbacListParams::default())
            .await
            .unwrap()
            .data;
        assert!(page.data.iter().any(|a| a.id == role));

        let removed = client.unassign_role(&assignee, &role).await.unwrap().data;
        assert!(removed.deleted);
        refused(
            client.get_role_assignment(&assignee, &role).await,
            ErrorKind::NotFound,
            404,
        );
    }

    // A project role cannot be assigned at organization level, nor the reverse.
    refused(
        client
            .assign_role(&Assignee::OrgUser(user.clone()), &project_role)
            .await,
        ErrorKind::BadRequest,
        400,
    );
    refused(
        client
            .assign_role(
                &Assignee::ProjectUser {
                    project_id: project,
                    user_id: user,
                },
                &org_role,
            )
            .await,
        ErrorKind::BadRequest,
        400,
    );
}

#[tokio::test]
async fn admin_keys_audit_logs_usage_and_costs() {
    let (sandbox, client) = setup().await;
    let state = sandbox.state();

    // Admin keys: listed redacted, never with their value.
    let keys: Vec<_> = client
        .admin_api_keys(&RbacListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys.len(), state.read(|org| org.admin_keys.len()));
    let full = sandbox.key(KeyProfile::All);
    assert!(keys.iter().all(|k| !k.redacted_value.contains(full)));
    let mine = keys
        .iter()
        .find(|k| k.redacted_value.ends_with(&full[full.len() - 4..]))
        .expect("our key by its suffix");
    let got = client.get_admin_api_key(&mine.id).await.unwrap().data;
    assert_eq!(&got, mine);
    refused(
        client.get_admin_api_key("key_missing").await,
        ErrorKind::NotFound,
        404,
    );

    // Audit logs: our writes show up, and every filter narrows them.
    let project = client
        .create_project(&CreateProject {
            name: "Audited".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .id;
    let (reader, _) = a_reader(&sandbox, 0);
    client
        .add_project_user(&project, &reader, "member")
        .await
        .unwrap();
    let all: Vec<_> = client
        .audit_logs(&AuditLogParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), state.read(|org| org.audit.len()));
    let by_type: Vec<_> = client
        .audit_logs(&AuditLogParams {
            event_types: vec!["user.added".into()],
            project_ids: vec![project.clone()],
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(by_type.len(), 1);
    let event = &by_type[0];
    assert_eq!(event.event_type, "user.added");
    assert_eq!(event.details().unwrap()["id"], reader.as_str());
    assert_eq!(event.details().unwrap()["data"]["role"], "member");
    assert_eq!(
        event.project.as_ref().and_then(|p| p.id.as_deref()),
        Some(project.as_str())
    );
    let actor_key = event
        .actor
        .as_ref()
        .and_then(|a| a.api_key.as_ref())
        .and_then(|k| k.id.clone())
        .expect("an api_key actor");
    let by_actor_and_resource = client
        .list_audit_logs(&AuditLogParams {
            actor_ids: vec![actor_key],
            resource_ids: vec![project.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .data;
    assert_eq!(by_actor_and_resource.len(), 1);
    assert_eq!(by_actor_and_resource[0].event_type, "project.created");
    let future = client
        .list_audit_logs(&AuditLogParams {
            effective_at: TimeRange {
                gt: Some(event.effective_at + 3600),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap()
        .data;
    assert!(future.data.is_empty() && !future.has_more);
    let owner_email = event
        .actor
        .as_ref()
        .and_then(|a| a.api_key.as_ref())
        .and_then(|k| k.user.as_ref())
        .and_then(|u| u.email.clone())
        .unwrap();
    let by_email = client
        .list_audit_logs(&AuditLogParams {
            actor_emails: vec![owner_email],
            effective_at: TimeRange {
                gte: Some(event.effective_at - 60),
                ..Default::default()
            },
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .data;
    assert!(by_email.iter().any(|e| e.id == event.id));

    // Usage and costs, grouped.
    let now = chrono::Utc::now().timestamp();
    let usage: Vec<_> = client
        .usage(
            UsageKind::Completions,
            &UsageParams {
                start_time: now - 3 * 86_400,
                bucket_width: Some(BucketWidth::Day),
                group_by: vec!["project_id".into(), "model".into()],
                ..Default::default()
            },
        )
        .try_collect()
        .await
        .unwrap();
    assert!((3..=4).contains(&usage.len()), "{}", usage.len());
    let results: Vec<_> = usage.iter().flat_map(|b| &b.results).collect();
    assert!(!results.is_empty());
    for r in &results {
        assert_eq!(r.object, "organization.usage.completions.result");
        assert!(r.project_id.is_some() && r.model.is_some());
        assert!(r.input_tokens.is_some_and(|t| t > 0));
    }
    let page = client
        .list_usage(
            UsageKind::Embeddings,
            &UsageParams {
                start_time: now - 86_400,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    answered(&page, &sandbox);
    assert_eq!(page.data.object, "page");
    let costs: Vec<_> = client
        .costs(&CostsParams {
            start_time: now - 3 * 86_400,
            group_by: vec!["line_item".into()],
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    let lines: Vec<_> = costs.iter().flat_map(|b| &b.results).collect();
    assert!(!lines.is_empty());
    for r in lines {
        assert_eq!(r.object, "organization.costs.result");
        assert!(r.line_item.is_some());
        assert_eq!(r.amount.as_ref().map(|a| a.currency.as_str()), Some("usd"));
    }
    refused(
        client
            .list_costs(&CostsParams {
                start_time: now,
                end_time: Some(now - 10),
                ..Default::default()
            })
            .await,
        ErrorKind::BadRequest,
        400,
    );
}

#[tokio::test]
async fn keys_without_a_scope_or_unknown_keys_are_typed_errors() {
    let (sandbox, _) = setup().await;
    let no_usage = openai_client(&sandbox, KeyProfile::NoUsage, test_client_config());
    let err = refused(
        no_usage
            .list_costs(&CostsParams {
                start_time: 0,
                ..Default::default()
            })
            .await,
        ErrorKind::MissingScope {
            scopes: vec!["api.usage.read".into()],
        },
        401,
    );
    assert!(!err.is_transient());
    let read_only = openai_client(&sandbox, KeyProfile::ReadOnly, test_client_config());
    refused(
        read_only.create_group("nope").await,
        ErrorKind::MissingScope {
            scopes: vec!["api.management.write".into()],
        },
        401,
    );
    assert!(
        sandbox
            .state()
            .read(|org| org.groups.iter().all(|g| g.name != "nope"))
    );
    let usage_only = openai_client(&sandbox, KeyProfile::UsageOnly, test_client_config());
    refused(
        usage_only.list_users(&ListUsersParams::default()).await,
        ErrorKind::MissingScope {
            scopes: vec!["api.management.read".into()],
        },
        401,
    );

    let wrong = Client::new(
        sandbox.base_url(),
        secrecy::SecretString::from("sk-admin-not-a-real-key-0000".to_string()),
        test_client_config(),
    )
    .unwrap();
    let err = refused(
        wrong.list_users(&ListUsersParams::default()).await,
        ErrorKind::Unauthorized,
        401,
    );
    assert_eq!(err.code.as_deref(), Some("invalid_api_key"));
    assert!(!err.to_string().contains("not-a-real-key"), "{err}");
}
