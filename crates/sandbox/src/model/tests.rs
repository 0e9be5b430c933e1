//! The membership rules of `Org`, on a seeded organization.

use super::*;
use crate::{SandboxConfig, build_state};

fn invite(org: &mut Org, email: &str, projects: Vec<InviteProject>) -> String {
    let now = org.now();
    let id = org.new_id("invite-");
    org.invites.insert(Invite {
        id: id.clone(),
        email: email.to_owned(),
        role: "reader".to_owned(),
        created_at: now,
        expires_at: now + 7 * 86_400,
        accepted_at: None,
        projects,
    });
    id
}

fn member_of(org: &Org, user: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = org
        .project_users
        .iter()
        .filter_map(|(p, t)| t.get(user).map(|m| (p.clone(), m.role.clone())))
        .collect();
    out.sort();
    out
}

#[test]
fn expire_makes_a_pending_invite_expired_and_refuses_the_rest() {
    let (state, _, _stop) = build_state(&SandboxConfig::default());
    state.write(|org| {
        let id = invite(org, "late@example.com", Vec::new());
        org.expire_invite(&id).unwrap();
        let now = org.now();
        assert_eq!(org.invites.get(&id).unwrap().status(now), "expired");
        assert!(matches!(org.expire_invite(&id), Err(Refusal::Invalid(m, None)) if m.contains("expired")));
        assert!(matches!(org.accept_invite(&id), Err(Refusal::Invalid(m, None)) if m.contains("expired")));
        assert!(org.user_by_email("late@example.com").is_none());

        let taken = invite(org, "taken@example.com", Vec::new());
        org.accept_invite(&taken).unwrap();
        assert!(matches!(org.expire_invite(&taken), Err(Refusal::Invalid(m, None)) if m.contains("accepted")));
        assert!(matches!(org.expire_invite("invite-nope"), Err(Refusal::NotFound(_))));
    });
}

#[test]
fn acceptance_joins_exactly_the_listed_projects() {
    let (state, _, _stop) = build_state(&SandboxConfig::default());
    state.write(|org| {
        let default = org.default_project_id.clone();
        let other = org
            .projects
            .iter()
            .find(|p| p.id != default && !p.archived())
            .map(|p| p.id.clone())
            .unwrap();
        // Not the default project unless listed; a project listed twice is joined once.
        let id = invite(
            org,
            "listed@example.com",
            vec![
                InviteProject {
                    id: other.clone(),
                    role: "owner".into(),
                },
                InviteProject {
                    id: other.clone(),
                    role: "member".into(),
                },
            ],
        );
        let user = org.accept_invite(&id).unwrap();
        assert_eq!(
            member_of(org, &user),
            vec![(other.clone(), "owner".to_owned())]
        );

        let id = invite(org, "nothing@example.com", Vec::new());
        let user = org.accept_invite(&id).unwrap();
        assert_eq!(member_of(org, &user), Vec::new());
    });
}
