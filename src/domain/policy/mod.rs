//! The operator's policy: which caller may do what, on which connection and project, for how
//! long. Parsed from a YAML file ([`parse`]); evaluated deny-first: a matching `deny` rule
//! refuses, otherwise the first matching `allow` rule in file order decides (and its limits
//! apply), otherwise nothing allows it and the answer is [`DEFAULT_DENY`]. Pure: knows nothing
//! of tokens, HTTP or the store; callers hand it a [`Caller`] and a [`Scope`].

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;

pub use parse::{PolicyError, parse};

/// The rule id of a refusal no rule allowed.
pub const DEFAULT_DENY: &str = "default-deny";

/// What a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// See a connection, its inventory, access answers and grants.
    Read,
    /// Read the audit trail.
    Audit,
    /// Grant access.
    Grant,
    /// Change a live grant's expiry.
    Extend,
    /// Revoke a grant.
    Revoke,
    /// Offboard a person.
    Offboard,
    /// Create, change, test, sync and delete connections.
    Manage,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Audit,
        Action::Grant,
        Action::Extend,
        Action::Revoke,
        Action::Offboard,
        Action::Manage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Audit => "audit",
            Action::Grant => "grant",
            Action::Extend => "extend",
            Action::Revoke => "revoke",
            Action::Offboard => "offboard",
            Action::Manage => "manage",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who is asking, as the verified token says.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub subject: &'a str,
    pub client_id: Option<&'a str>,
    pub groups: &'a [String],
}

/// A `*` glob (any run of characters), or an exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.to_owned())
    }

    pub fn matches(&self, text: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Whom a named caller is: any one of these matching the token makes it that caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerDef {
    pub subjects: Vec<Glob>,
    pub clients: Vec<Glob>,
    pub groups: Vec<String>,
}

impl CallerDef {
    fn is(&self, c: &Caller<'_>) -> bool {
        self.subjects.iter().any(|g| g.matches(c.subject))
            || c.client_id
                .is_some_and(|id| self.clients.iter().any(|g| g.matches(id)))
            || self.groups.iter().any(|g| c.groups.contains(g))
    }
}

/// A connection or project named by id or name (globs allowed); `*` is any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(Glob);

impl Target {
    fn matches(&self, id: &str, name: Option<&str>) -> bool {
        self.0.matches(id) || name.is_some_and(|n| self.0.matches(n))
    }
}

/// The limits an allow rule puts on a grant's lifetime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifetime {
    /// Given to a grant asked for without an expiry.
    pub default: Option<Duration>,
    /// The longest a grant may be asked for (from now).
    pub max: Option<Duration>,
    /// How many times its expiry may be changed.
    pub max_extensions: Option<u32>,
    /// The longest a grant may live in all, from its creation, extensions included.
    pub max_total: Option<Duration>,
}

/// One rule of the file.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// 1-based line of the rule in the file, for messages.
    pub line: usize,
    pub deny: bool,
    /// Named callers (`*`: anyone, named or not).
    pub callers: Vec<String>,
    /// Named callers the rule does not apply to.
    pub except: Vec<String>,
    pub actions: Vec<Action>,
    /// `None`: every connection.
    pub connections: Option<Vec<Target>>,
    /// `None`: any target; otherwise only targets in one of these projects.
    pub projects: Option<Vec<Target>>,
    /// Grant target types (`project`, `group`, `role`, `organization_role`); `None`: all.
    pub kinds: Option<Vec<String>>,
    /// Roles (project role, organization role or role id); `None`: all.
    pub roles: Option<Vec<Glob>>,
    pub lifetime: Lifetime,
    pub ticket_required: bool,
    pub ticket_pattern: Option<Regex>,
    pub reason_required: bool,
    /// May revoke (or extend) grants another caller made.
    pub any_granter: bool,
    /// May offboard from every connection at once (`all_connections`).
    pub all_connections: bool,
    /// Said with a refusal by this rule (deny rules).
    pub message: Option<String>,
}

/// A connection as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
}

/// What is asked: an action, and (when it concerns one) the connection, project, kind of
/// grant and role.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub action: Action,
    pub connection: Option<Named<'a>>,
    pub project: Option<Named<'a>>,
    pub kind: Option<&'a str>,
    pub role: Option<&'a str>,
}

impl<'a> Scope<'a> {
    pub fn new(action: Action) -> Self {
        Self {
            action,
            connection: None,
            project: None,
            kind: None,
            role: None,
        }
    }

    pub fn on(mut self, connection: Named<'a>) -> Self {
        self.connection = Some(connection);
        self
    }

    pub fn target(mut self, kind: &'a str, role: &'a str, project: Option<Named<'a>>) -> Self {
        self.kind = Some(kind);
        self.role = Some(role);
        self.project = project;
        self
    }
}

/// A refusal: the rule that refused (or [`DEFAULT_DENY`]) and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub rule: String,
    pub message: String,
}

/// The policy file, parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub callers: BTreeMap<String, CallerDef>,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The named callers the token is.
    pub fn names(&self, c: &Caller<'_>) -> Vec<&str> {
        self.callers
            .iter()
            .filter(|(_, def)| def.is(c))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The rule that decides `scope` for `caller`: the first matching deny rule refuses;
    /// otherwise the first matching allow rule allows (its limits are the caller's to apply).
    pub fn decide(&self, caller: &Caller<'_>, scope: &Scope<'_>) -> Result<&Rule, Denied> {
        let names = self.names(caller);
        let applies = |r: &&Rule| r.applies_to(&names) && r.covers(scope);
        if let Some(r) = self.rules.iter().filter(|r| r.deny).find(applies) {
            return Err(Denied {
                rule: r.id.clone(),
                message: r.message.clone().unwrap_or_else(|| {
                    format!("policy rule `{}` forbids this: {}", r.id, scope.describe())
                }),
            });
        }
        self.rules
            .iter()
            .filter(|r| !r.deny)
            .find(applies)
            .ok_or_else(|| Denied {
                rule: DEFAULT_DENY.to_owned(),
                message: format!(
                    "no policy rule allows {} to {}; ask the operator to add one",
                    who(caller, &names),
                    scope.describe()
                ),
            })
    }

    /// Whether some allow rule lets `caller` do `action` on the connection (and no deny rule
    /// covering the whole connection refuses): what scoped reads filter by.
    pub fn allows(&self, caller: &Caller<'_>, action: Action, connection: Named<'_>) -> bool {
        self.decide(caller, &Scope::new(action).on(connection))
            .is_ok()
    }

    /// Whether `action` is allowed on every connection, present and future: for reads of
    /// entries that name no connection.
    pub fn allows_everywhere(&self, caller: &Caller<'_>, action: Action) -> bool {
        let names = self.names(caller);
        let scope = Scope::new(action);
        !self
            .rules
            .iter()
            .any(|r| r.deny && r.applies_to(&names) && r.actions.contains(&action))
            && self.rules.iter().any(|r| {
                !r.deny && r.applies_to(&names) && r.covers(&scope) && r.connections.is_none()
            })
    }
}

fn who(caller: &Caller<'_>, names: &[&str]) -> String {
    match names {
        [] => format!("`{}` (no caller of the policy)", caller.subject),
        _ => format!("`{}` ({})", caller.subject, names.join(", ")),
    }
}

impl Scope<'_> {
    fn describe(&self) -> String {
        let mut s = self.action.as_str().to_owned();
        if let (Some(kind), Some(role)) = (self.kind, self.role) {
            s.push_str(&format!(" {kind} `{role}`"));
        }
        if let Some(p) = self.project {
            s.push_str(&format!(" in project {}", p.name.unwrap_or(p.id)));
        }
        if let Some(c) = self.connection {
            s.push_str(&format!(" on connection {}", c.name.unwrap_or(c.id)));
        }
        s
    }
}

impl Rule {
    fn applies_to(&self, names: &[&str]) -> bool {
        let named = |list: &[String]| list.iter().any(|c| c == "*" || names.contains(&c.as_str()));
        named(&self.callers) && !self.except.iter().any(|c| names.contains(&c.as_str()))
    }

    /// Whether the rule's scope covers what is asked. A part the rule does not name matches
    /// anything; a part it names that the request lacks does not match (an allow limited to
    /// some projects never allows a target outside every project).
    fn covers(&self, s: &Scope<'_>) -> bool {
        if !self.actions.contains(&s.action) {
            return false;
        }
        let part = |rule: &Option<Vec<Target>>, asked: Option<Named<'_>>| match (rule, asked) {
            (None, _) => true,
            (Some(list), Some(n)) => list.iter().any(|t| t.matches(n.id, n.name)),
            (Some(_), None) => false,
        };
        if !part(&self.connections, s.connection) || !part(&self.projects, s.project) {
            return false;
        }
        let kind_ok = match (&self.kinds, s.kind) {
            (None, _) => true,
            (Some(list), Some(k)) => list.iter().any(|x| x == k),
            (Some(_), None) => false,
        };
        let role_ok = match (&self.roles, s.role) {
            (None, _) => true,
            (Some(list), Some(r)) => list.iter().any(|g| g.matches(r)),
            (Some(_), None) => false,
        };
        kind_ok && role_ok
    }

    /// Applies the rule's limits to a new grant: the default expiry when none was asked,
    /// refusals for one too long, a missing ticket or reason. Returns the expiry to use.
    pub fn check_grant(
        &self,
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        ticket: Option<&str>,
        reason: &str,
    ) -> Result<Option<DateTime<Utc>>, Denied> {
        self.check_ticket(ticket, reason)?;
        let expires_at = expires_at.or_else(|| self.lifetime.default.map(|d| later(now, d)));
        if let Some(max) = self.lifetime.max {
            match expires_at {
                None => {
                    return Err(self.refuse(format!(
                        "grants under policy rule `{}` must end within {}: give expires_at or \
                         expires_in_seconds",
                        self.id,
                        human(max)
                    )));
                }
                Some(at) if at > later(now, max) => {
                    return Err(self.refuse(format!(
                        "grants under policy rule `{}` may last at most {}; ask for an earlier \
                         expiry",
                        self.id,
                        human(max)
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(expires_at)
    }

    /// Applies the rule's limits to changing a live grant's expiry: how many times, for how
    /// long from now, and for how long in all since the grant was created.
    pub fn check_extension(
        &self,
        now: DateTime<Utc>,
        created_at: DateTime<Utc>,
        extensions_so_far: u32,
        new_expiry: Option<DateTime<Utc>>,
        ticket: Option<&str>,
        reason: &str,
    ) -> Result<(), Denied> {
        self.check_ticket(ticket, reason)?;
        if let Some(max) = self.lifetime.max_extensions
            && extensions_so_far >= max
        {
            return Err(self.refuse(format!(
                "policy rule `{}` allows at most {max} extension(s) of a grant and this one has \
                 had {extensions_so_far}; make a new request instead",
                self.id
            )));
        }
        let bounded = self.lifetime.max.is_some() || self.lifetime.max_total.is_some();
        let Some(at) = new_expiry else {
            return if bounded {
                Err(self.refuse(format!(
                    "grants under policy rule `{}` must keep an expiry",
                    self.id
                )))
            } else {
                Ok(())
            };
        };
        if let Some(max) = self.lifetime.max
            && at > later(now, max)
        {
            return Err(self.refuse(format!(
                "policy rule `{}` allows an expiry at most {} from now",
                self.id,
                human(max)
            )));
        }
        if let Some(total) = self.lifetime.max_total
            && at > later(created_at, total)
        {
            return Err(self.refuse(format!(
                "policy rule `{}` allows a grant to live at most {} in all (until {})",
                self.id,
                human(total),
                later(created_at, total).to_rfc3339()
            )));
        }
        Ok(())
    }

    fn check_ticket(&self, ticket: Option<&str>, reason: &str) -> Result<(), Denied> {
        let ticket = ticket.map(str::trim).filter(|t| !t.is_empty());
        if self.ticket_required && ticket.is_none() {
            return Err(self.refuse(format!(
                "policy rule `{}` requires a ticket: give the access request's ticket id",
                self.id
            )));
        }
        if let (Some(re), Some(t)) = (&self.ticket_pattern, ticket)
            && !re.is_match(t)
        {
            return Err(self.refuse(format!(
                "policy rule `{}` requires a ticket matching `{}`; `{}` does not",
                self.id,
                re.as_str(),
                t.chars().take(64).collect::<String>()
            )));
        }
        if self.reason_required && reason.trim().is_empty() {
            return Err(self.refuse(format!("policy rule `{}` requires a reason", self.id)));
        }
        Ok(())
    }

    fn refuse(&self, message: String) -> Denied {
        Denied {
            rule: self.id.clone(),
            message,
        }
    }
}

fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `30 days`, `12 hours`, else humantime's form (which counts months of 30.44 days).
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" }),
        s if s % 3_600 == 0 => format!("{} hour{}", s / 3_600, if s == 3_600 { "" } else { "s" }),
        _ => humantime::format_duration(d).to_string(),
    }
}
