//! The connection test: cheap read probes (`limit=1`) that show what a key can do, which
//! organization it reaches and how fast. Each failure becomes a line of the report, never an
//! error of ours: a restricted key yields "these features work, these don't".

use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::SecretString;
use url::Url;

use crate::domain::{Capability, CapabilityCheck, CheckStatus, ProbeResult, TestReport};
use crate::openai::{
    AuditLogParams, Client, ClientConfig, CostsParams, CursorParams, ErrorKind,
    ListProjectApiKeysParams, ListProjectsParams, ListUsersParams, OpenAiError, RbacListParams,
    Reply, RetryPolicy,
};

/// Runs connection tests with a given OpenAI client configuration.
#[derive(Clone)]
pub struct Prober {
    config: ClientConfig,
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

impl Prober {
    /// A prober whose client never retries (a test should answer quickly and truthfully).
    pub fn new(mut config: ClientConfig) -> Self {
        config.retry = RetryPolicy::none();
        Self { config }
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
        let (per_project, (groups, roles), audit, costs) =
            tokio::join!(per_project, rbac, audit, costs);

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
        finish(organization, lines, None)
    }
}

fn skip(capability: Capability, why: &str) -> CapabilityCheck {
    CapabilityCheck::from_probes(capability, vec![ProbeResult::skipped("-", why)])
}

fn skipped_all(why: &str) -> Vec<CapabilityCheck> {
    Capability::ALL.iter().map(|c| skip(*c, why)).collect()
}
