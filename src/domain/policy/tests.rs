use super::*;

/// Two portals and a break-glass admin: the example of docs/policy.md.
pub(crate) const EXAMPLE: &str = r#"
version: 1
callers:
  portal-a:
    subjects: [portal-a]
  portal-b:
    clients: [portal-b-*]
  breakglass:
    subjects: [admin@corp.com]
rules:
  - id: no-org-owner
    effect: deny
    callers: ["*"]
    except: [breakglass]
    actions: [grant]
    kinds: [organization_role]
    roles: [owner]
    message: only the break-glass admin may make organization owners
  - id: no-project-owner
    effect: deny
    callers: ["*"]
    actions: [grant]
    kinds: [project]
    roles: [owner]
  - id: portal-a-projects
    effect: allow
    callers: [portal-a]
    actions: [read, grant, extend, revoke]
    connections: [acme]
    projects: ["proj_*"]
    kinds: [project]
    roles: [member, reader]
    duration: {default: 7d, max: 30d}
    extensions: {max: 2, total: 90d}
    ticket: {required: true, pattern: "^SEC-[0-9]+$"}
    reason: {required: true}
  - id: portal-b-read
    effect: allow
    callers: [portal-b]
    actions: [read]
    connections: [beta]
  - id: breakglass
    effect: allow
    callers: [breakglass]
    actions: ["*"]
    others_grants: true
    all_connections: true
"#;

fn caller(subject: &str) -> Caller<'_> {
    Caller {
        subject,
        client_id: None,
        groups: &[],
    }
}

const ACME: Named<'static> = Named {
    id: "0192f000-0000-7000-8000-000000000001",
    name: Some("acme"),
};
const BETA: Named<'static> = Named {
    id: "0192f000-0000-7000-8000-000000000002",
    name: Some("beta"),
};

fn project(id: &str) -> Option<Named<'_>> {
    Some(Named { id, name: None })
}

#[test]
fn deny_rules_win_then_the_first_allow_decides() {
    let p = parse(EXAMPLE).unwrap();
    let a = caller("portal-a");
    let member = Scope::new(Action::Grant)
        .on(ACME)
        .target("project", "member", project("proj_1"));
    assert_eq!(p.decide(&a, &member).unwrap().id, "portal-a-projects");
    let owner = Scope::new(Action::Grant)
        .on(ACME)
        .target("project", "owner", project("proj_1"));
    assert_eq!(p.decide(&a, &owner).unwrap_err().rule, "no-project-owner");
    let elsewhere =
        Scope::new(Action::Grant)
            .on(BETA)
            .target("project", "member", project("proj_1"));
    let denied = p.decide(&a, &elsewhere).unwrap_err();
    assert_eq!(denied.rule, DEFAULT_DENY);
    assert!(denied.message.contains("portal-a"), "{}", denied.message);
    let org_owner = Scope::new(Action::Grant)
        .on(ACME)
        .target("organization_role", "owner", None);
    let admin = caller("admin@corp.com");
    assert_eq!(p.decide(&admin, &org_owner).unwrap().id, "breakglass");
    let refused = p.decide(&a, &org_owner).unwrap_err();
    assert_eq!(refused.rule, "no-org-owner");
    assert_eq!(
        refused.message,
        "only the break-glass admin may make organization owners"
    );
    // A project-limited allow never covers a target outside every project.
    let group = Scope::new(Action::Grant)
        .on(ACME)
        .target("group", "member", None);
    assert_eq!(p.decide(&a, &group).unwrap_err().rule, DEFAULT_DENY);
}

#[test]
fn callers_are_known_by_subject_client_or_group() {
    let p = parse(EXAMPLE).unwrap();
    let b = Caller {
        subject: "svc",
        client_id: Some("portal-b-prod"),
        groups: &[],
    };
    assert_eq!(p.names(&b), ["portal-b"]);
    assert!(p.allows(&b, Action::Read, BETA));
    assert!(!p.allows(&b, Action::Read, ACME));
    assert!(!p.allows(&caller("stranger"), Action::Read, ACME));
    assert!(p.allows_everywhere(&caller("admin@corp.com"), Action::Audit));
    assert!(!p.allows_everywhere(&caller("portal-a"), Action::Read));
}

#[test]
fn grant_limits_default_and_cap_the_lifetime_and_want_a_ticket() {
    let p = parse(EXAMPLE).unwrap();
    let rule = &p.rules[2];
    let now = Utc::now();
    let day = Duration::from_secs(86_400);
    let expiry = rule
        .check_grant(now, None, Some("SEC-1"), "why")
        .unwrap()
        .unwrap();
    assert_eq!(expiry, later(now, 7 * day));
    let too_long = rule.check_grant(now, Some(later(now, 31 * day)), Some("SEC-1"), "why");
    assert!(too_long.unwrap_err().message.contains("at most 30 days"));
    let no_ticket = rule.check_grant(now, None, None, "why").unwrap_err();
    assert!(no_ticket.message.contains("requires a ticket"));
    let bad_ticket = rule
        .check_grant(now, None, Some("JIRA-1"), "why")
        .unwrap_err();
    assert!(bad_ticket.message.contains("^SEC-[0-9]+$"));
    let no_reason = rule.check_grant(now, None, Some("SEC-1"), " ").unwrap_err();
    assert!(no_reason.message.contains("requires a reason"));

    let created = now - chrono::Duration::days(80);
    let ok = rule.check_extension(
        now,
        created,
        1,
        Some(later(now, 5 * day)),
        Some("SEC-2"),
        "x",
    );
    assert!(ok.is_ok());
    let third = rule.check_extension(now, created, 2, Some(later(now, day)), Some("SEC-2"), "x");
    assert!(third.unwrap_err().message.contains("at most 2 extension"));
    let past_total = rule.check_extension(
        now,
        created,
        1,
        Some(later(now, 20 * day)),
        Some("SEC-2"),
        "x",
    );
    assert!(past_total.unwrap_err().message.contains("90 days in all"));
    let forever = rule.check_extension(now, created, 0, None, Some("SEC-2"), "x");
    assert!(forever.unwrap_err().message.contains("must keep an expiry"));
}

#[test]
fn bad_files_are_refused_with_the_line() {
    let cases = [
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [read]\n    colour: red\n",
            6,
            "unknown field `colour`",
        ),
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [nobody]\n    actions: [read]\n",
            2,
            "caller `nobody`",
        ),
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [fly]\n",
            2,
            "unknown action `fly`",
        ),
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [grant]\n    duration: {max: soon}\n",
            2,
            "not a duration",
        ),
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [read]\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [read]\n",
            2,
            "used twice",
        ),
        (
            "rules:\n  - id: a\n    effect: deny\n    callers: [\"*\"]\n    actions: [grant]\n    ticket: {required: true}\n",
            2,
            "belong on allow rules",
        ),
        (
            "rules:\n  - id: a\n    effect: allow\n    callers: [\"*\"]\n    actions: [grant]\n    ticket: {pattern: \"(\"}\n",
            2,
            "not a regular expression",
        ),
        ("callers:\n  x: {}\n", 2, "matches no token"),
        ("rules: [\n", 2, ""),
    ];
    for (text, line, needle) in cases {
        let e = parse(text).unwrap_err();
        assert!(e.message.contains(needle), "{text}: {e}");
        assert!(e.line.is_some(), "{text}: {e}");
        if !needle.is_empty() && needle != "used twice" {
            assert_eq!(e.line, Some(line), "{text}: {e}");
        }
    }
}

#[test]
fn globs() {
    for (g, t, want) in [
        ("*", "anything", true),
        ("proj_*", "proj_1", true),
        ("proj_*", "xproj_1", false),
        ("*-prod", "a-prod", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "acb", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("ab*ba", "aba", false),
    ] {
        assert_eq!(Glob::new(g).matches(t), want, "{g} {t}");
    }
}

#[test]
fn projects_match_by_id_or_name() {
    let p = parse(
        "callers:\n  a: {subjects: [a]}\nrules:\n  - id: ml\n    effect: allow\n    callers: [a]\n    actions: [grant]\n    projects: [\"ml-*\", proj_fixed]\n",
    )
    .unwrap();
    let a = caller("a");
    let ask = |id: &'static str, name: Option<&'static str>| {
        Scope::new(Action::Grant)
            .on(ACME)
            .target("project", "member", Some(Named { id, name }))
    };
    assert!(p.decide(&a, &ask("proj_1", Some("ml-research"))).is_ok());
    assert!(p.decide(&a, &ask("proj_fixed", None)).is_ok());
    assert!(p.decide(&a, &ask("proj_2", Some("payments"))).is_err());
    assert!(p.decide(&a, &ask("proj_2", None)).is_err());
}
