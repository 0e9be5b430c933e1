//! The connection test: cheap read probes (`limit=1`) and write probes that cannot change
//! anything, showing what a key can do, which organization it reaches and how fast. Each
//! failure becomes a line of the report, never an error of ours: a restricted key yields
//! "these features work, these don't".
//!
//! A write probe deletes something under ids that cannot exist. A key with the permission
//! gets a validation refusal (404/400), one without gets a missing-scope refusal, *if* OpenAI
//! checks the permission before validating. Only then does a validation refusal prove the
//! permission; otherwise the line is `unknown`. The order is taken as known when configured
//! (`checks_permission_first`) or once this process saw a missing-scope answer to the same
//! probe on the same base URL (a server that validates first never gives one).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use url::Url;

use crate::domain::{Capability, CapabilityCheck, CheckStatus, ProbeResult, TestReport};
use crate::openai::{
    Assignee, AuditLogParams, Client, ClientConfig, CostsParams, CursorParams, Deleted, ErrorKind,
    ListProjectApiKeysParams, ListProjectsParams, ListUsersParams, OpenAiError, RbacListParams,
    Reply, RetryPolicy,
};

/// Ids no OpenAI object has (OpenAI never issues these prefixes and words), so a write
/// probe aimed at them can only be refused.
const NO_PROJECT: &str = "proj_governor_probe_does_not_exist";
const NO_USER: &str = "user-governor-probe-does-not-exist";
const NO_INVITE: &str = "invite-governor-probe-does-not-exist";
const NO_GROUP: &str = "group_governor_probe_does_not_exist";
const NO_ROLE: &str = "role_governor_probe_does_not_exist";
const NO_KEY: &str = "key_governor_probe_does_not_exist";

/// Runs connection tests with a given OpenAI client configuration.
#[derive(Clone)]
pub struct Prober {
    config: ClientConfig,
    /// Trust every base URL to check permission before validation (configured).
    permission_first: bool,
    /// (base URL, capability) pairs whose write probe was once refused for a missing scope:
    /// proof that this server checks that permission first.
    seen_permission_first: Arc<Mutex<HashSet<(String, Capability)>>>,
}

/// One probe's result plus what it told us.
struct Outcome<T> {
    probe: ProbeResult,
    organization: Option<String>,
    data: Option<T>,
    error: Option<ErrorKind>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn outcome<T>(endpoint: &str, result: Result<Reply<T>, OpenAiError>) -> Outcome<T> {
    match result {
        Ok(reply) => Outcome {
            probe: ProbeResult {
                endpoint: endpoint.to_owned(),
                status: CheckStatus::Ok,
                http_status: Some(reply.meta.status),
                latency_ms: Some(ms(reply.meta.elapsed)),
                request_id: reply.meta.request_id,
                missing_scopes: Vec::new(),
                message: None,
            },
            organization: reply.meta.organization,
            data: Some(reply.data),
            error: None,
        },
        Err(err) => {
            let (status, missing_scopes) = match &err.kind {
                ErrorKind::MissingScope { scopes } => (CheckStatus::MissingScope, scopes.clone()),
                _ => (CheckStatus::Error, Vec::new()),
            };
            Outcome {
                probe: ProbeResult {
                    endpoint: endpoint.to_owned(),
                    status,
                    http_status: err.status,
                    latency_ms: Some(ms(err.elapsed)),
                    request_id: err.request_id.clone(),
                    missing_scopes,
                    message: Some(describe(&err)),
                },
                organization: err.organization.clone(),
                data: None,
                error: Some(err.kind),
            }
        }
    }
}

/// A message for a person: what OpenAI said, or what went wrong on the way.
fn describe(err: &OpenAiError) -> String {
    match &err.kind {
        ErrorKind::Timeout => format!("OpenAI did not answer in time ({})", err.message),
        ErrorKind::Network => format!("could not reach OpenAI: {}", err.message),
        ErrorKind::Upstream => format!(
            "OpenAI had a server error (HTTP {}): {}",
            err.status.unwrap_or(500),
            err.message
        ),
        ErrorKind::RateLimited { .. } => {
            format!("OpenAI rate-limited the request: {}", err.message)
        }
        ErrorKind::InvalidResponse => format!("OpenAI's answer could not be read: {}", err.message),
        _ => err.message.clone(),
    }
}

/// What a write probe's answer shows.
fn write_outcome(
    endpoint: &str,
    result: Result<Reply<Deleted>, OpenAiError>,
    permission_first: bool,
) -> ProbeResult {
    let mut out = outcome(endpoint, result);
    match out.error {
        // 2xx: the permission check passed (and nothing existed to change).
        None => {}
        Some(ErrorKind::Forbidden) => out.probe.status = CheckStatus::MissingScope,
        Some(ErrorKind::NotFound | ErrorKind::BadRequest) => {
            let status = out.probe.http_status.unwrap_or(400);
            if permission_first {
                out.probe.status = CheckStatus::Ok;
                out.probe.message = Some(format!(
                    "refused on validation (HTTP {status}) after the permission check, as expected"
                ));
            } else {
                out.probe.status = CheckStatus::Unknown;
                out.probe.message = Some(format!(
                    "OpenAI refused the probe on validation (HTTP {status}); that shows the \
                     permission only if OpenAI checks it first, which is not established for \
                     this base URL"
                ));
            }
        }
        Some(_) => {}
    }
    out.probe
}

impl Prober {
    /// A prober whose client never retries (a test should answer quickly and truthfully).
    pub fn new(mut config: ClientConfig) -> Self {
        config.retry = RetryPolicy::none();
        // All of a round's probes at once (the second has 13): a test is one short burst,
        // and its wall time should be its two dependent rounds, not more.
        config.max_concurrency = config.max_concurrency.max(16);
        Self {
            config,
            permission_first: false,
            seen_permission_first: Arc::default(),
        }
    }

    /// Trusts OpenAI to check a key's permission before validating a write, so that a write
    /// probe refused on validation counts as proof of the permission.
    pub fn checks_permission_first(mut self, yes: bool) -> Self {
        self.permission_first = yes;
        self
    }

    fn trusts(&self, base_url: &Url, capability: Capability) -> bool {
        self.permission_first
            || self
                .seen_permission_first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&(base_url.to_string(), capability))
    }

    /// Remembers the servers that refused a write probe for a missing scope.
    fn learn(&self, base_url: &Url, lines: &[CapabilityCheck]) {
        let mut seen = self
            .seen_permission_first
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for line in lines.iter().filter(|l| l.capability.is_write()) {
            if line
                .probes
                .iter()
                .any(|p| p.status == CheckStatus::MissingScope)
            {
                seen.insert((base_url.to_string(), line.capability));
            }
        }
    }

    /// The write probes, all at once: deletes under ids that cannot exist.
    async fn write_probes(&self, client: &Client, base_url: &Url) -> Vec<CapabilityCheck> {
        let trust = |c| self.trusts(base_url, c);
        let no_user = Assignee::OrgUser(NO_USER.to_owned());
        let (member, invite, user, group, role, key) = tokio::join!(
            client.remove_project_user(NO_PROJECT, NO_USER),
            client.delete_invite(NO_INVITE),
            client.delete_user(NO_USER),
            client.remove_group_user(NO_GROUP, NO_USER),
            client.unassign_role(&no_user, NO_ROLE),
            client.delete_project_api_key(NO_PROJECT, NO_KEY),
        );
        let line = |c: Capability, probes: Vec<(String, Result<Reply<Deleted>, OpenAiError>)>| {
            let probes = probes
                .into_iter()
                .map(|(endpoint, r)| write_outcome(&endpoint, r, trust(c)))
                .collect();
            CapabilityCheck::from_probes(c, probes)
        };
        let lines = vec![
            line(
                Capability::WriteProjectMembers,
                vec![(
                    format!("DELETE /organization/projects/{NO_PROJECT}/users/{NO_USER}"),
                    member,
                )],
            ),
            line(
                Capability::WriteUsersAndInvites,
                vec![
                    (format!("DELETE /organization/invites/{NO_INVITE}"), invite),
                    (format!("DELETE /organization/users/{NO_USER}"), user),
                ],
            ),
            line(
                Capability::WriteGroups,
                vec![(
                    format!("DELETE /organization/groups/{NO_GROUP}/users/{NO_USER}"),
                    group,
                )],
            ),
            line(
                Capability::WriteRoles,
                vec![(
                    format!("DELETE /organization/users/{NO_USER}/roles/{NO_ROLE}"),
                    role,
                )],
            ),
            line(
                Capability::WriteKeys,
                vec![(
                    format!("DELETE /organization/projects/{NO_PROJECT}/api_keys/{NO_KEY}"),
                    key,
                )],
            ),
        ];
        self.learn(base_url, &lines);
        lines
    }

    /// Runs the test against `base_url` with `key`.
    pub async fn run(
        &self,
        base_url: &Url,
        key: &SecretString,
        expected_organization_id: Option<String>,
    ) -> TestReport {
        let started = Instant::now();
        let tested_at = Utc::now();
        let finish = |organization, capabilities, failure| {
            TestReport::conclude(
                tested_at,
                ms(started.elapsed()),
                organization,
                expected_organization_id.clone(),
                capabilities,
                failure,
            )
        };
        let client = match Client::new(base_url.clone(), key.clone(), self.config.clone()) {
            Ok(client) => client,
            Err(err) => {
                let why = format!("could not set up an OpenAI client: {}", err.message);
                return finish(None, skipped_all(&why), Some(why));
            }
        };

        // Round 1: users (which also decides whether the key works at all) and projects (the
        // per-project probes need one). A wrong key costs one extra request, not nine, and a
        // good key needs two rounds of latency, not three.
        let one_user = ListUsersParams {
            limit: Some(1),
            ..Default::default()
        };
        let one_active_project = ListProjectsParams {
            limit: Some(1),
            include_archived: false,
            ..Default::default()
        };
        let (users, projects) = tokio::join!(
            client.list_users(&one_user),
            client.list_projects(&one_active_project),
        );
        let users = outcome("GET /organization/users?limit=1", users);
        let projects = outcome("GET /organization/projects?limit=1", projects);
        let failure = match &users.error {
            Some(ErrorKind::Unauthorized) => Some(format!(
                "OpenAI rejected the admin key: {}",
                users.probe.message.as_deref().unwrap_or("401 Unauthorized")
            )),
            Some(ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Upstream) => {
                users.probe.message.clone()
            }
            _ => None,
        };
        if let Some(why) = failure {
            let mut lines = vec![CapabilityCheck::from_probes(
                Capability::ReadUsers,
                vec![users.probe],
            )];
            lines.extend(
                Capability::ALL[1..]
                    .iter()
                    .map(|c| skip(*c, "not tried: the first probe failed")),
            );
            return finish(users.organization, lines, Some(why));
        }

        // Round 2: everything else, at once.
        let per_project = async {
            let project = projects
                .data
                .as_ref()
                .and_then(|page| page.data.first())
                .map(|p| p.id.clone())?;
            let one = CursorParams {
                limit: Some(1),
                ..Default::default()
            };
            let one_key = ListProjectApiKeysParams {
                limit: Some(1),
                ..Default::default()
            };
            let (members, accounts, keys) = tokio::join!(
                client.list_project_users(&project, &one),
                client.list_project_service_accounts(&project, &one),
                client.list_project_api_keys(&project, &one_key),
            );
            let base = format!("GET /organization/projects/{project}");
            Some((
                outcome(&format!("{base}/users?limit=1"), members),
                outcome(&format!("{base}/service_accounts?limit=1"), accounts),
                outcome(
                    &format!("{base}/api_keys?limit=1&owner_project_access=any"),
                    keys,
                ),
            ))
        };
        let rbac = async {
            let one = RbacListParams {
                limit: Some(1),
                ..Default::default()
            };
            let (groups, roles) = tokio::join!(client.list_groups(&one), client.list_roles(&one));
            (
                outcome("GET /organization/groups?limit=1", groups),
                outcome("GET /organization/roles?limit=1", roles),
            )
        };
        let audit = async {
            outcome(
                "GET /organization/audit_logs?limit=1",
                client
                    .list_audit_logs(&AuditLogParams {
                        limit: Some(1),
                        ..Default::default()
                    })
                    .await,
            )
        };
        let costs = async {
            let start_time = Utc::now().timestamp() - 86_400;
            outcome(
                "GET /organization/costs?limit=1",
                client
                    .list_costs(&CostsParams {
                        start_time,
                        limit: Some(1),
                        ..Default::default()
                    })
                    .await,
            )
        };
        let writes = self.write_probes(&client, base_url);
        let (per_project, (groups, roles), audit, costs, writes) =
            tokio::join!(per_project, rbac, audit, costs, writes);

        let mut organization = users.organization.clone();
        for seen in [
            &projects.organization,
            &groups.organization,
            &audit.organization,
            &costs.organization,
        ] {
            if organization.is_none() {
                organization.clone_from(seen);
            }
        }
        let project_lines = match per_project {
            Some((members, accounts, keys)) => vec![
                CapabilityCheck::from_probes(Capability::ReadProjectMembers, vec![members.probe]),
                CapabilityCheck::from_probes(
                    Capability::ReadServiceAccountsAndKeys,
                    vec![accounts.probe, keys.probe],
                ),
            ],
            None => {
                let why = if projects.error.is_some() {
                    "needs a readable project, and projects could not be listed"
                } else {
                    "the organization has no active project to probe"
                };
                vec![
                    skip(Capability::ReadProjectMembers, why),
                    skip(Capability::ReadServiceAccountsAndKeys, why),
                ]
            }
        };
        let mut lines = vec![
            CapabilityCheck::from_probes(Capability::ReadUsers, vec![users.probe]),
            CapabilityCheck::from_probes(Capability::ReadProjects, vec![projects.probe]),
        ];
        lines.extend(project_lines);
        lines.push(CapabilityCheck::from_probes(
            Capability::ReadGroupsAndRoles,
            vec![groups.probe, roles.probe],
        ));
        lines.push(CapabilityCheck::from_probes(
            Capability::ReadAuditLogs,
            vec![audit.probe],
        ));
        lines.push(CapabilityCheck::from_probes(
            Capability::ReadUsageAndCosts,
            vec![costs.probe],
        ));
        lines.extend(writes);
        finish(organization, lines, None)
    }
}

fn skip(capability: Capability, why: &str) -> CapabilityCheck {
    CapabilityCheck::from_probes(capability, vec![ProbeResult::skipped("-", why)])
}

fn skipped_all(why: &str) -> Vec<CapabilityCheck> {
    Capability::ALL.iter().map(|c| skip(*c, why)).collect()
}
