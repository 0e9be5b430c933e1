//! The policy file's YAML form, read into a [`Policy`]: unknown fields, unknown callers,
//! actions and kinds, bad patterns and durations are refused with the line they are on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::{Action, CallerDef, Glob, Lifetime, Policy, Rule, Target};

/// Grant target types a rule's `kinds` may name (the `type` of a grant's `target`).
pub const KINDS: [&str; 4] = ["project", "group", "role", "organization_role"];

/// Why a policy file was refused, with its line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    callers: BTreeMap<String, CallerIn>,
    #[serde(default)]
    rules: Vec<RuleIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerIn {
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    clients: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Effect {
    Allow,
    Deny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationIn {
    default: Option<String>,
    max: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionsIn {
    max: Option<u32>,
    total: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketIn {
    #[serde(default)]
    required: bool,
    pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonIn {
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleIn {
    id: String,
    effect: Effect,
    callers: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    actions: Vec<String>,
    connections: Option<Vec<String>>,
    projects: Option<Vec<String>>,
    kinds: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    duration: Option<DurationIn>,
    extensions: Option<ExtensionsIn>,
    ticket: Option<TicketIn>,
    reason: Option<ReasonIn>,
    #[serde(default)]
    others_grants: bool,
    #[serde(default)]
    all_connections: bool,
    message: Option<String>,
}

/// Reads a policy file's text.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let file: File = serde_norway::from_str(text).map_err(|e| PolicyError {
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    if let Some(v) = file.version
        && v != 1
    {
        return Err(PolicyError {
            line: line_of(text, "version:", ""),
            message: format!("version {v} is not known: this service reads version 1"),
        });
    }
    let mut callers = BTreeMap::new();
    for (name, c) in file.callers {
        let at = line_of(text, &format!("{name}:"), "");
        if name == "*" || name.trim().is_empty() {
            return Err(PolicyError {
                line: at,
                message: format!("`{name}` cannot name a caller"),
            });
        }
        if c.subjects.is_empty() && c.clients.is_empty() && c.groups.is_empty() {
            return Err(PolicyError {
                line: at,
                message: format!(
                    "caller `{name}` matches no token: give subjects, clients or groups"
                ),
            });
        }
        let globs = |v: &[String]| v.iter().map(|s| Glob::new(s)).collect();
        callers.insert(
            name,
            CallerDef {
                subjects: globs(&c.subjects),
                clients: globs(&c.clients),
                groups: c.groups,
            },
        );
    }
    let mut ids = BTreeSet::new();
    let mut rules = Vec::new();
    for r in file.rules {
        let line = line_of(text, "id:", &r.id);
        rules.push(rule(r, line, &callers, &mut ids)?);
    }
    Ok(Policy { callers, rules })
}

fn rule(
    r: RuleIn,
    line: Option<usize>,
    callers: &BTreeMap<String, CallerDef>,
    ids: &mut BTreeSet<String>,
) -> Result<Rule, PolicyError> {
    let id = r.id.trim().to_owned();
    let fail = |message: String| PolicyError { line, message };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(fail(format!(
            "rule id `{id}` must be letters, digits, `-`, `_` or `.`"
        )));
    }
    if id == super::DEFAULT_DENY || !ids.insert(id.clone()) {
        return Err(fail(format!("rule id `{id}` is used twice or reserved")));
    }
    for c in r.callers.iter().chain(&r.except) {
        if c != "*" && !callers.contains_key(c) {
            return Err(fail(format!(
                "rule `{id}` names caller `{c}`, which `callers:` does not define"
            )));
        }
    }
    if r.callers.is_empty() {
        return Err(fail(format!(
            "rule `{id}` names no callers (use `*` for anyone)"
        )));
    }
    let mut actions = Vec::new();
    for a in &r.actions {
        if a == "*" {
            actions.extend(Action::ALL);
        } else {
            actions.push(Action::parse(a).ok_or_else(|| {
                fail(format!(
                    "rule `{id}`: unknown action `{a}` (one of {}, or `*`)",
                    Action::ALL.map(Action::as_str).join(", ")
                ))
            })?);
        }
    }
    if actions.is_empty() {
        return Err(fail(format!("rule `{id}` names no actions")));
    }
    if let Some(kinds) = &r.kinds
        && let Some(k) = kinds.iter().find(|k| !KINDS.contains(&k.as_str()))
    {
        return Err(fail(format!(
            "rule `{id}`: unknown grant kind `{k}` (one of {})",
            KINDS.join(", ")
        )));
    }
    let duration = |what: &str, v: &Option<String>| -> Result<Option<Duration>, PolicyError> {
        v.as_deref()
            .map(|s| {
                humantime::parse_duration(s).map_err(|e| {
                    fail(format!(
                        "rule `{id}`: {what} `{s}` is not a duration like 7d or 12h ({e})"
                    ))
                })
            })
            .transpose()
    };
    let (default, max) = match &r.duration {
        Some(d) => (
            duration("duration.default", &d.default)?,
            duration("duration.max", &d.max)?,
        ),
        None => (None, None),
    };
    if let (Some(d), Some(m)) = (default, max)
        && d > m
    {
        return Err(fail(format!(
            "rule `{id}`: duration.default is longer than duration.max"
        )));
    }
    let (max_extensions, max_total) = match &r.extensions {
        Some(e) => (e.max, duration("extensions.total", &e.total)?),
        None => (None, None),
    };
    let ticket_pattern = match r.ticket.as_ref().and_then(|t| t.pattern.as_deref()) {
        Some(p) => Some(Regex::new(p).map_err(|e| {
            fail(format!(
                "rule `{id}`: ticket.pattern is not a regular expression: {e}"
            ))
        })?),
        None => None,
    };
    let deny = matches!(r.effect, Effect::Deny);
    let limits = r.duration.is_some()
        || r.extensions.is_some()
        || r.ticket.is_some()
        || r.reason.is_some()
        || r.others_grants
        || r.all_connections;
    if deny && limits {
        return Err(fail(format!(
            "rule `{id}` denies: limits (duration, extensions, ticket, reason, others_grants, \
             all_connections) belong on allow rules"
        )));
    }
    let targets = |v: Option<Vec<String>>| {
        v.map(|list| {
            list.iter()
                .map(|s| Target(Glob::new(s)))
                .collect::<Vec<_>>()
        })
    };
    Ok(Rule {
        line: line.unwrap_or_default(),
        deny,
        callers: r.callers,
        except: r.except,
        actions,
        connections: targets(r.connections),
        projects: targets(r.projects),
        kinds: r.kinds,
        roles: r.roles.map(|v| v.iter().map(|s| Glob::new(s)).collect()),
        lifetime: Lifetime {
            default,
            max,
            max_extensions,
            max_total,
        },
        ticket_required: r.ticket.as_ref().is_some_and(|t| t.required),
        ticket_pattern,
        reason_required: r.reason.as_ref().is_some_and(|t| t.required),
        any_granter: r.others_grants,
        all_connections: r.all_connections,
        message: r.message,
        id,
    })
}

/// The 1-based line where `key` is followed by `value` (a best effort: YAML gives no
/// positions once parsed, and a rule is found by its id).
fn line_of(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix(key).is_some_and(|rest| {
                let rest = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                value.is_empty() || rest == value
            })
        })
        .map(|i| i + 1)
}
