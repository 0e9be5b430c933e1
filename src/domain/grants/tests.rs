//! The planning rules, case by case: what a grant or a revoke writes given OpenAI's state.

use super::plan::{plan_project_grant, plan_project_revoke};
use super::*;
use crate::domain::ConnectionId;
use chrono::Utc;

fn state() -> ProjectAccessState {
    ProjectAccessState {
        archived: false,
        is_default: false,
        member: Some(("user-1".into(), "reader".into())),
        project_role: None,
        project_owners: 1,
        invite: None,
    }
}

fn write(w: Write, o: Outcome) -> Result<Step, Refusal> {
    Ok(Step::Write(w, o))
}

fn target(role: &str) -> GrantTarget {
    GrantTarget::Project {
        project_id: "proj_1".into(),
        role: role.into(),
    }
}

fn grant(outcome: GrantOutcome, previous: Option<&str>) -> Grant {
    let now = Utc::now();
    let request = GrantRequest {
        connection_id: ConnectionId::new(),
        grantee: Grantee {
            email: Some("a@x.io".into()),
            ..Grantee::default()
        },
        target: target("member"),
        reason: "r".into(),
        ticket: None,
        expires_at: None,
    };
    let mut g = Grant::new(request, "s".into(), None, now);
    g.state = GrantState::Live(if outcome == GrantOutcome::Invited {
        Held::Invited
    } else {
        Held::Active(outcome)
    });
    g.previous_role = previous.map(str::to_owned);
    g
}

#[test]
fn a_member_is_added_and_a_holder_left_alone() {
    let s = state();
    assert_eq!(
        plan_project_grant(&s, &target("member"), true),
        write(
            Write::AddProjectUser {
                user_id: "user-1".into()
            },
            Outcome::Grant(GrantOutcome::Granted)
        )
    );
    let held = ProjectAccessState {
        project_role: Some("member".into()),
        ..s.clone()
    };
    assert_eq!(
        plan_project_grant(&held, &target("member"), true),
        Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
    );
    assert_eq!(
        plan_project_grant(&held, &target("owner"), true),
        write(
            Write::SetProjectRole {
                user_id: "user-1".into(),
                role: "owner".into()
            },
            Outcome::Grant(GrantOutcome::RoleChanged)
        )
    );
}

#[test]
fn refusals_come_before_any_write() {
    let archived = ProjectAccessState {
        archived: true,
        ..state()
    };
    assert_eq!(
        plan_project_grant(&archived, &target("member"), true),
        Err(Refusal::ProjectArchived)
    );
    let owner = ProjectAccessState {
        member: Some(("user-1".into(), "owner".into())),
        project_role: Some("owner".into()),
        ..state()
    };
    assert_eq!(
        plan_project_grant(&owner, &target("member"), true),
        Err(Refusal::OrgOwner)
    );
    let last = ProjectAccessState {
        project_role: Some("owner".into()),
        ..state()
    };
    assert_eq!(
        plan_project_grant(&last, &target("member"), true),
        Err(Refusal::LastOwner)
    );
    let stranger = ProjectAccessState {
        member: None,
        ..state()
    };
    assert_eq!(
        plan_project_grant(&stranger, &target("member"), false),
        Err(Refusal::EmailRequired)
    );
    assert_eq!(
        plan_project_grant(&stranger, &target("member"), true),
        write(Write::Invite, Outcome::Grant(GrantOutcome::Invited))
    );
    let invited_elsewhere = ProjectAccessState {
        invite: Some(("invite-1".into(), vec![("proj_2".into(), "member".into())])),
        ..stranger.clone()
    };
    assert_eq!(
        plan_project_grant(&invited_elsewhere, &target("member"), true),
        Err(Refusal::InvitePending {
            invite_id: "invite-1".into()
        })
    );
    let invited_here = ProjectAccessState {
        invite: Some(("invite-1".into(), vec![("proj_1".into(), "member".into())])),
        ..stranger
    };
    assert_eq!(
        plan_project_grant(&invited_here, &target("member"), true),
        Ok(Step::Done(Outcome::Grant(GrantOutcome::Invited)))
    );
}

#[test]
fn group_grants_refuse_scim_and_strangers() {
    let g = grant(GrantOutcome::Granted, None);
    let s = GroupAccessState {
        scim_managed: false,
        member: Some("user-1".into()),
        in_group: false,
    };
    let plan = |s: &GroupAccessState| plan_grant(&g, &AccessState::Group(s.clone()));
    assert_eq!(
        plan(&s),
        write(
            Write::AddGroupUser {
                user_id: "user-1".into()
            },
            Outcome::Grant(GrantOutcome::Granted)
        )
    );
    let scim = GroupAccessState {
        scim_managed: true,
        ..s.clone()
    };
    assert_eq!(plan(&scim), Err(Refusal::ScimManaged));
    let stranger = GroupAccessState {
        member: None,
        ..s.clone()
    };
    assert_eq!(plan(&stranger), Err(Refusal::NotAMember));
    let held = GroupAccessState {
        in_group: true,
        ..s
    };
    assert_eq!(
        plan(&held),
        Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::Group(held)),
        write(
            Write::RemoveGroupUser {
                user_id: "user-1".into()
            },
            Outcome::Revoke(RevokeOutcome::Removed)
        )
    );
}

#[test]
fn role_assignments_need_a_member_and_undo_only_their_own() {
    let g = grant(GrantOutcome::Granted, None);
    let s = RoleAccessState {
        archived: false,
        member: Some("user-1".into()),
        assigned: None,
    };
    let grant_plan = |s: &RoleAccessState| plan_grant(&g, &AccessState::Role(s.clone()));
    assert_eq!(
        grant_plan(&s),
        write(
            Write::AssignRole {
                principal: "user-1".into()
            },
            Outcome::Grant(GrantOutcome::Granted)
        )
    );
    let stranger = RoleAccessState {
        member: None,
        ..s.clone()
    };
    assert_eq!(grant_plan(&stranger), Err(Refusal::NotAMember));
    let archived = RoleAccessState {
        archived: true,
        ..s.clone()
    };
    assert_eq!(grant_plan(&archived), Err(Refusal::ProjectArchived));
    let held = RoleAccessState {
        assigned: Some("role_1".into()),
        ..s.clone()
    };
    assert_eq!(
        grant_plan(&held),
        Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::Role(held.clone())),
        write(
            Write::UnassignRole {
                principal: "user-1".into()
            },
            Outcome::Revoke(RevokeOutcome::Removed)
        )
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::Role(s)),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
    );
    let before = grant(GrantOutcome::AlreadyHeld, Some("role_1"));
    assert_eq!(
        plan_revoke(&before, &AccessState::Role(held)),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
    );
}

#[test]
fn an_organization_role_keeps_one_owner_and_is_restored() {
    let mut g = grant(GrantOutcome::RoleChanged, Some("reader"));
    g.target = GrantTarget::OrganizationRole {
        role: "owner".into(),
    };
    let reader = OrgRoleState {
        member: Some(("user-1".into(), "reader".into())),
        owners: 1,
    };
    assert_eq!(
        plan_grant(&g, &AccessState::OrganizationRole(reader.clone())),
        write(
            Write::SetOrganizationRole {
                user_id: "user-1".into(),
                role: "owner".into()
            },
            Outcome::Grant(GrantOutcome::RoleChanged)
        )
    );
    let sole_owner = OrgRoleState {
        member: Some(("user-1".into(), "owner".into())),
        owners: 1,
    };
    assert_eq!(
        plan_revoke(&g, &AccessState::OrganizationRole(sole_owner.clone())),
        Err(Refusal::LastOrganizationOwner)
    );
    let two_owners = OrgRoleState {
        owners: 2,
        ..sole_owner
    };
    assert_eq!(
        plan_revoke(&g, &AccessState::OrganizationRole(two_owners)),
        write(
            Write::SetOrganizationRole {
                user_id: "user-1".into(),
                role: "reader".into()
            },
            Outcome::Revoke(RevokeOutcome::RoleRestored)
        )
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::OrganizationRole(reader)),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
    );
    let gone = OrgRoleState {
        member: None,
        owners: 1,
    };
    assert_eq!(
        plan_grant(&g, &AccessState::OrganizationRole(gone)),
        Err(Refusal::NotAMember)
    );
}

#[test]
fn a_group_gets_project_access_once_and_loses_it_on_revoke() {
    let g = grant(GrantOutcome::Granted, None);
    let none = ProjectGroupState {
        archived: false,
        role_id: Some("role_m".into()),
        roles: None,
    };
    let plan = |s: &ProjectGroupState| plan_grant(&g, &AccessState::ProjectGroup(s.clone()));
    assert_eq!(
        plan(&none),
        write(
            Write::AddProjectGroup {
                role_id: "role_m".into()
            },
            Outcome::Grant(GrantOutcome::Granted)
        )
    );
    let held = ProjectGroupState {
        roles: Some(vec!["role_m".into()]),
        ..none.clone()
    };
    assert_eq!(
        plan(&held),
        Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
    );
    assert_eq!(
        AccessState::ProjectGroup(held.clone()).held().as_deref(),
        Some("role_m")
    );
    let other = ProjectGroupState {
        roles: Some(vec!["role_o".into()]),
        ..none.clone()
    };
    assert_eq!(plan(&other), Err(Refusal::GroupHasAccess));
    let unknown = ProjectGroupState {
        role_id: None,
        ..none.clone()
    };
    assert_eq!(
        plan(&unknown),
        Err(Refusal::UnknownRole {
            role: "member".into()
        })
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::ProjectGroup(held)),
        write(
            Write::RemoveProjectGroup,
            Outcome::Revoke(RevokeOutcome::Removed)
        )
    );
    assert_eq!(
        plan_revoke(&g, &AccessState::ProjectGroup(none)),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
    );
}

#[test]
fn a_write_that_landed_is_reported_as_ours() {
    let mut g = grant(GrantOutcome::Granted, None);
    let held = Outcome::Grant(GrantOutcome::AlreadyHeld);
    assert_eq!(landed(&g, held), held);
    g.state = GrantState::Ending {
        held: Held::Active(GrantOutcome::Granted),
        end: End {
            kind: EndKind::Revoke,
            by: "s".into(),
            reason: None,
            ticket: None,
        },
        attempt: Attempt {
            count: 1,
            error: None,
        },
    };
    assert_eq!(landed(&g, held), Outcome::Grant(GrantOutcome::Granted));
    assert_eq!(
        landed(&g, Outcome::Revoke(RevokeOutcome::AlreadyAbsent)),
        Outcome::Revoke(RevokeOutcome::Removed)
    );
    g.previous_role = Some("member".into());
    assert_eq!(landed(&g, held), Outcome::Grant(GrantOutcome::RoleChanged));
    assert_eq!(
        landed(&g, Outcome::Revoke(RevokeOutcome::NothingToUndo)),
        Outcome::Revoke(RevokeOutcome::RoleRestored)
    );
}

#[test]
fn a_revoke_undoes_only_what_the_grant_did() {
    let holds = ProjectAccessState {
        project_role: Some("member".into()),
        project_owners: 2,
        ..state()
    };
    assert_eq!(
        plan_revoke(
            &grant(GrantOutcome::Granted, None),
            &AccessState::Project(holds.clone())
        ),
        write(
            Write::RemoveProjectUser {
                user_id: "user-1".into()
            },
            Outcome::Revoke(RevokeOutcome::Removed)
        )
    );
    assert_eq!(
        plan_revoke(
            &grant(GrantOutcome::AlreadyHeld, None),
            &AccessState::Project(holds.clone())
        ),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
    );
    let owner_now = ProjectAccessState {
        project_role: Some("owner".into()),
        ..holds.clone()
    };
    assert_eq!(
        plan_project_revoke(
            &grant(GrantOutcome::RoleChanged, Some("member")),
            &owner_now
        ),
        write(
            Write::SetProjectRole {
                user_id: "user-1".into(),
                role: "member".into()
            },
            Outcome::Revoke(RevokeOutcome::RoleRestored)
        )
    );
    let gone = ProjectAccessState {
        project_role: None,
        ..holds.clone()
    };
    assert_eq!(
        plan_revoke(
            &grant(GrantOutcome::Granted, None),
            &AccessState::Project(gone.clone())
        ),
        Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
    );
    let default = ProjectAccessState {
        is_default: true,
        ..holds
    };
    assert_eq!(
        plan_revoke(
            &grant(GrantOutcome::Granted, None),
            &AccessState::Project(default.clone())
        ),
        Err(Refusal::DefaultProject)
    );
}
