//! The connection-test report: what an admin needs to trust a connection. The probing lives
//! in `service::connection_test`; the rules that turn probe results into a verdict live here:
//! probes → capability lines → per-feature verdicts (sync, costs, grants, ...) → summary.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What the service can do with a key, one line of the report each. Read capabilities are
/// shown by `limit=1` lists; write capabilities by writes aimed at ids that cannot exist, so
/// that nothing can change (see `docs/connection-test.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// List organization users (and the key is valid at all).
    ReadUsers,
    /// List projects.
    ReadProjects,
    /// List a project's members.
    ReadProjectMembers,
    /// List a project's service accounts and API keys.
    ReadServiceAccountsAndKeys,
    /// List groups and roles (RBAC).
    ReadGroupsAndRoles,
    /// Read the organization audit log.
    ReadAuditLogs,
    /// Read usage and costs.
    ReadUsageAndCosts,
    /// Add and remove project members, change their project role.
    WriteProjectMembers,
    /// Invite people to the organization, cancel invites, remove organization users.
    WriteUsersAndInvites,
    /// Add and remove group members and groups' project access.
    WriteGroups,
    /// Assign and unassign roles (RBAC).
    WriteRoles,
    /// Revoke project API keys.
    WriteKeys,
}

impl Capability {
    /// Every capability, in report order.
    pub const ALL: [Capability; 12] = [
        Capability::ReadUsers,
        Capability::ReadProjects,
        Capability::ReadProjectMembers,
        Capability::ReadServiceAccountsAndKeys,
        Capability::ReadGroupsAndRoles,
        Capability::ReadAuditLogs,
        Capability::ReadUsageAndCosts,
        Capability::WriteProjectMembers,
        Capability::WriteUsersAndInvites,
        Capability::WriteGroups,
        Capability::WriteRoles,
        Capability::WriteKeys,
    ];

    /// True for the capabilities that change something in OpenAI.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Capability::WriteProjectMembers
                | Capability::WriteUsersAndInvites
                | Capability::WriteGroups
                | Capability::WriteRoles
                | Capability::WriteKeys
        )
    }

    /// What the capability enables, for the report.
    pub fn feature(self) -> &'static str {
        match self {
            Capability::ReadUsers => "organization user inventory",
            Capability::ReadProjects => "project inventory",
            Capability::ReadProjectMembers => "project membership inventory",
            Capability::ReadServiceAccountsAndKeys => "service account and API key inventory",
            Capability::ReadGroupsAndRoles => "group and role (RBAC) inventory",
            Capability::ReadAuditLogs => "audit log and incremental sync",
            Capability::ReadUsageAndCosts => "usage and cost reports",
            Capability::WriteProjectMembers => "changing project membership",
            Capability::WriteUsersAndInvites => "inviting and removing organization users",
            Capability::WriteGroups => "changing group membership and group project access",
            Capability::WriteRoles => "assigning and unassigning roles",
            Capability::WriteKeys => "revoking project API keys",
        }
    }
}

/// Outcome of one probe or one capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// It works.
    Ok,
    /// OpenAI refused for a missing key scope (named in `missing_scopes`).
    MissingScope,
    /// Any other failure (message and request id given).
    Error,
    /// Not tried, and why (`message`).
    Skipped,
    /// Tried, but the answer does not tell: OpenAI refused the write probe on validation, and
    /// it is not established that it checks the key's permission before validating.
    Unknown,
}

/// One request made during a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProbeResult {
    /// `GET /organization/users?limit=1` style description of the request.
    pub endpoint: String,
    /// Outcome.
    pub status: CheckStatus,
    /// HTTP status OpenAI answered with, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Round-trip time in milliseconds, when a request was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// OpenAI's `x-request-id`, to quote to OpenAI support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Scopes OpenAI says the key lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_scopes: Vec<String>,
    /// OpenAI's message, or why the probe was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ProbeResult {
    /// A probe that was not run, with the reason.
    pub fn skipped(endpoint: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            status: CheckStatus::Skipped,
            http_status: None,
            latency_ms: None,
            request_id: None,
            missing_scopes: Vec::new(),
            message: Some(why.into()),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CapabilityCheck {
    /// Which capability.
    pub capability: Capability,
    /// The worst outcome of its probes.
    pub status: CheckStatus,
    /// One sentence for a person.
    pub summary: String,
    /// The requests made for it.
    pub probes: Vec<ProbeResult>,
}

impl CapabilityCheck {
    /// Aggregates probes: any error wins, then missing scope, then skipped, then unknown; all
    /// ok is ok.
    pub fn from_probes(capability: Capability, probes: Vec<ProbeResult>) -> Self {
        let has = |s: CheckStatus| probes.iter().any(|p| p.status == s);
        let status = if has(CheckStatus::Error) {
            CheckStatus::Error
        } else if has(CheckStatus::MissingScope) {
            CheckStatus::MissingScope
        } else if probes.is_empty() || has(CheckStatus::Skipped) {
            CheckStatus::Skipped
        } else if has(CheckStatus::Unknown) {
            CheckStatus::Unknown
        } else {
            CheckStatus::Ok
        };
        let feature = capability.feature();
        let summary = match status {
            CheckStatus::Ok => format!("works: {feature} available"),
            CheckStatus::MissingScope => {
                let mut scopes: Vec<&str> = probes
                    .iter()
                    .flat_map(|p| p.missing_scopes.iter().map(String::as_str))
                    .collect();
                scopes.sort_unstable();
                scopes.dedup();
                let scopes = if scopes.is_empty() {
                    "a scope".to_owned()
                } else {
                    scopes.join(", ")
                };
                format!("the key lacks {scopes}: {feature} unavailable")
            }
            CheckStatus::Error => {
                let why = probes
                    .iter()
                    .find(|p| p.status == CheckStatus::Error)
                    .and_then(|p| p.message.clone())
                    .unwrap_or_else(|| "request failed".to_owned());
                format!("failed: {why}")
            }
            CheckStatus::Skipped => {
                let why = probes
                    .iter()
                    .find_map(|p| p.message.clone())
                    .unwrap_or_else(|| "not tested".to_owned());
                format!("not tested: {why}")
            }
            CheckStatus::Unknown => {
                let why = probes
                    .iter()
                    .find(|p| p.status == CheckStatus::Unknown)
                    .and_then(|p| p.message.clone())
                    .unwrap_or_else(|| "the answer does not tell".to_owned());
                format!("not verified: {why}; {feature} may or may not work")
            }
        };
        Self {
            capability,
            status,
            summary,
            probes,
        }
    }
}

/// A feature of ours, judged from the capabilities it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Full inventory sync.
    Sync,
    /// Syncs in between that read only what the audit log says changed.
    IncrementalSync,
    /// Daily costs in the inventory.
    Costs,
    /// Granting and revoking access.
    Grants,
    /// Offboarding a person.
    Offboarding,
}

impl Feature {
    /// Every feature, in report order.
    pub const ALL: [Feature; 5] = [
        Feature::Sync,
        Feature::IncrementalSync,
        Feature::Costs,
        Feature::Grants,
        Feature::Offboarding,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Sync => "sync",
            Feature::IncrementalSync => "incremental sync",
            Feature::Costs => "costs",
            Feature::Grants => "grants",
            Feature::Offboarding => "offboarding",
        }
    }

    /// What the feature cannot work without, and what only some of its parts need.
    pub fn needs(self) -> (&'static [Capability], &'static [Capability]) {
        use Capability::*;
        const INVENTORY: &[Capability] = &[
            ReadUsers,
            ReadProjects,
            ReadProjectMembers,
            ReadServiceAccountsAndKeys,
        ];
        // Sync skips groups, roles and costs a key may not read (see `service::sync`).
        const INVENTORY_EXTRAS: &[Capability] = &[ReadGroupsAndRoles, ReadUsageAndCosts];
        match self {
            Feature::Sync => (INVENTORY, INVENTORY_EXTRAS),
            Feature::IncrementalSync => (
                &[
                    ReadUsers,
                    ReadProjects,
                    ReadProjectMembers,
                    ReadServiceAccountsAndKeys,
                    ReadAuditLogs,
                ],
                INVENTORY_EXTRAS,
            ),
            Feature::Costs => (&[ReadUsageAndCosts], &[]),
            // Project membership is every grant's core; invites (people not yet in the
            // organization), groups and roles serve the other grant forms.
            Feature::Grants => (
                &[
                    ReadUsers,
                    ReadProjects,
                    ReadProjectMembers,
                    WriteProjectMembers,
                ],
                &[
                    ReadGroupsAndRoles,
                    WriteUsersAndInvites,
                    WriteGroups,
                    WriteRoles,
                ],
            ),
            // Offboarding finds the person's keys and invites, revokes the keys, cancels the
            // invites and removes the user from the organization.
            Feature::Offboarding => (
                &[
                    ReadUsers,
                    ReadProjects,
                    ReadProjectMembers,
                    ReadServiceAccountsAndKeys,
                    WriteUsersAndInvites,
                    WriteKeys,
                ],
                &[],
            ),
        }
    }
}

/// The verdict on one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStatus {
    /// Everything it needs works.
    Works,
    /// What it cannot do without works; some parts (named) do not or are not verified.
    Partial,
    /// Something it cannot do without does not work.
    Unavailable,
    /// Something it cannot do without could not be verified (or was not tested).
    Unknown,
}

/// One feature's verdict, with the capabilities behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureCheck {
    /// Which feature.
    pub feature: Feature,
    /// The verdict.
    pub status: FeatureStatus,
    /// One sentence for a person.
    pub summary: String,
    /// The capabilities behind the verdict that do not work or are not verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lacking: Vec<Capability>,
}

impl FeatureCheck {
    /// Judges `feature` from the capability lines: a required capability that fails makes it
    /// unavailable, one that is unknown or untested makes it unknown; an optional one that is
    /// not ok makes it partial. A capability missing from the lines counts as untested.
    pub fn judge(feature: Feature, lines: &[CapabilityCheck]) -> Self {
        let status_of = |c: Capability| {
            lines
                .iter()
                .find(|l| l.capability == c)
                .map_or(CheckStatus::Skipped, |l| l.status)
        };
        let (required, optional) = feature.needs();
        let failing = |cs: &[Capability], pick: fn(CheckStatus) -> bool| -> Vec<Capability> {
            cs.iter().copied().filter(|c| pick(status_of(*c))).collect()
        };
        let broken = failing(required, |s| {
            matches!(s, CheckStatus::Error | CheckStatus::MissingScope)
        });
        let unsure = failing(required, |s| {
            matches!(s, CheckStatus::Unknown | CheckStatus::Skipped)
        });
        let partial = failing(optional, |s| s != CheckStatus::Ok);
        let names = |cs: &[Capability]| {
            cs.iter()
                .map(|c| c.feature())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = feature.name();
        let (status, summary, lacking) = if !broken.is_empty() {
            let summary = format!("{name} unavailable: needs {}", names(&broken));
            (FeatureStatus::Unavailable, summary, broken)
        } else if !unsure.is_empty() {
            let summary = format!(
                "{name} not verified: {} could not be checked",
                names(&unsure)
            );
            (FeatureStatus::Unknown, summary, unsure)
        } else if !partial.is_empty() {
            let summary = format!("{name} works, except what needs {}", names(&partial));
            (FeatureStatus::Partial, summary, partial)
        } else {
            (FeatureStatus::Works, format!("{name} works"), Vec::new())
        };
        Self {
            feature,
            status,
            summary,
            lacking,
        }
    }
}

/// The verdict on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverallStatus {
    /// Every capability works and the organization is the expected one.
    Ok,
    /// The key works, but some capabilities are unavailable (missing scopes, errors) or
    /// could not be verified.
    Degraded,
    /// The key does not work (rejected, unreachable) or reaches the wrong organization.
    Failed,
}

/// The report of a connection test, stored on the connection and served with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestReport {
    /// The verdict.
    pub status: OverallStatus,
    /// One sentence for a person.
    pub summary: String,
    /// When the test ran.
    pub tested_at: DateTime<Utc>,
    /// Wall time of the whole test in milliseconds.
    pub duration_ms: u64,
    /// The organization id OpenAI named in its `openai-organization` header.
    pub organization_id: Option<String>,
    /// The organization id the connection expects, if set.
    pub expected_organization_id: Option<String>,
    /// Whether the two match; absent when nothing was expected or nothing was seen.
    pub organization_matches: Option<bool>,
    /// One line per capability.
    pub capabilities: Vec<CapabilityCheck>,
    /// One verdict per feature of ours, drawn from the capabilities (absent in reports stored
    /// before features were judged).
    #[serde(default)]
    pub features: Vec<FeatureCheck>,
}

impl TestReport {
    /// Draws the verdict from the capability lines and the organization check.
    ///
    /// `key_works` is false when OpenAI rejected the key or could not be reached at all; then
    /// the report is `failed` whatever else happened.
    pub fn conclude(
        tested_at: DateTime<Utc>,
        duration_ms: u64,
        organization_id: Option<String>,
        expected_organization_id: Option<String>,
        capabilities: Vec<CapabilityCheck>,
        key_failure: Option<String>,
    ) -> Self {
        let organization_matches = match (&organization_id, &expected_organization_id) {
            (Some(seen), Some(expected)) => Some(seen == expected),
            _ => None,
        };
        let working = capabilities
            .iter()
            .filter(|c| c.status == CheckStatus::Ok)
            .count();
        let features: Vec<FeatureCheck> = Feature::ALL
            .iter()
            .map(|f| FeatureCheck::judge(*f, &capabilities))
            .collect();
        let (status, summary) = if let Some(why) = key_failure {
            (OverallStatus::Failed, why)
        } else if organization_matches == Some(false) {
            (
                OverallStatus::Failed,
                format!(
                    "the key belongs to organization {} but {} was expected",
                    organization_id.as_deref().unwrap_or("?"),
                    expected_organization_id.as_deref().unwrap_or("?")
                ),
            )
        } else if working == 0 {
            (
                OverallStatus::Failed,
                "no capability works with this key".to_owned(),
            )
        } else if working == capabilities.len() {
            (
                OverallStatus::Ok,
                format!(
                    "every capability works with this key: {}",
                    Feature::ALL.map(Feature::name).join(", ")
                ),
            )
        } else {
            let missing: Vec<&str> = capabilities
                .iter()
                .filter(|c| c.status != CheckStatus::Ok)
                .map(|c| c.capability.feature())
                .collect();
            let verdicts: Vec<String> = features
                .iter()
                .map(|f| {
                    let word = match f.status {
                        FeatureStatus::Works => "works",
                        FeatureStatus::Partial => "works in part",
                        FeatureStatus::Unavailable => "unavailable",
                        FeatureStatus::Unknown => "not verified",
                    };
                    format!("{} {word}", f.feature.name())
                })
                .collect();
            (
                OverallStatus::Degraded,
                format!(
                    "{working} of {} capabilities work; not working or not verified: {}; {}",
                    capabilities.len(),
                    missing.join(", "),
                    verdicts.join(", ")
                ),
            )
        };
        Self {
            status,
            summary,
            tested_at,
            duration_ms,
            organization_id,
            expected_organization_id,
            organization_matches,
            capabilities,
            features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(status: CheckStatus, scopes: &[&str]) -> ProbeResult {
        ProbeResult {
            endpoint: "GET /x".into(),
            status,
            http_status: Some(200),
            latency_ms: Some(1),
            request_id: None,
            missing_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            message: Some("m".into()),
        }
    }

    fn line(cap: Capability, status: CheckStatus) -> CapabilityCheck {
        CapabilityCheck::from_probes(cap, vec![probe(status, &["api.usage.read"])])
    }

    #[test]
    fn capability_takes_the_worst_probe() {
        let c = CapabilityCheck::from_probes(
            Capability::ReadServiceAccountsAndKeys,
            vec![
                probe(CheckStatus::Ok, &[]),
                probe(CheckStatus::MissingScope, &["a.b"]),
            ],
        );
        assert_eq!(c.status, CheckStatus::MissingScope);
        assert!(c.summary.contains("a.b"), "{}", c.summary);
        let c = CapabilityCheck::from_probes(
            Capability::ReadUsers,
            vec![
                probe(CheckStatus::MissingScope, &[]),
                probe(CheckStatus::Error, &[]),
            ],
        );
        assert_eq!(c.status, CheckStatus::Error);
        let c = CapabilityCheck::from_probes(Capability::ReadUsers, vec![]);
        assert_eq!(c.status, CheckStatus::Skipped);
    }

    #[test]
    fn verdicts() {
        let now = Utc::now();
        let all_ok: Vec<_> = Capability::ALL
            .iter()
            .map(|c| line(*c, CheckStatus::Ok))
            .collect();
        let r = TestReport::conclude(now, 1, Some("org-a".into()), None, all_ok.clone(), None);
        assert_eq!(r.status, OverallStatus::Ok);
        assert_eq!(r.organization_matches, None);

        let r = TestReport::conclude(
            now,
            1,
            Some("org-a".into()),
            Some("org-b".into()),
            all_ok.clone(),
            None,
        );
        assert_eq!(r.status, OverallStatus::Failed);
        assert_eq!(r.organization_matches, Some(false));

        let mut some = all_ok.clone();
        some[6] = line(Capability::ReadUsageAndCosts, CheckStatus::MissingScope);
        let r = TestReport::conclude(
            now,
            1,
            Some("org-a".into()),
            Some("org-a".into()),
            some,
            None,
        );
        assert_eq!(r.status, OverallStatus::Degraded);
        assert!(r.summary.contains("usage"), "{}", r.summary);

        let r = TestReport::conclude(now, 1, None, None, all_ok, Some("key rejected".into()));
        assert_eq!(r.status, OverallStatus::Failed);
        assert_eq!(r.summary, "key rejected");
    }

    fn lines(status_of: impl Fn(Capability) -> CheckStatus) -> Vec<CapabilityCheck> {
        Capability::ALL
            .iter()
            .map(|c| line(*c, status_of(*c)))
            .collect()
    }

    fn verdict(report: &TestReport, f: Feature) -> FeatureStatus {
        report
            .features
            .iter()
            .find(|x| x.feature == f)
            .map(|x| x.status)
            .unwrap()
    }

    #[test]
    fn unknown_ranks_below_failures_and_above_ok() {
        let c = CapabilityCheck::from_probes(
            Capability::WriteUsersAndInvites,
            vec![
                probe(CheckStatus::Ok, &[]),
                probe(CheckStatus::Unknown, &[]),
            ],
        );
        assert_eq!(c.status, CheckStatus::Unknown);
        assert!(c.summary.starts_with("not verified: m"), "{}", c.summary);
        let c = CapabilityCheck::from_probes(
            Capability::WriteUsersAndInvites,
            vec![
                probe(CheckStatus::Unknown, &[]),
                probe(CheckStatus::MissingScope, &["api.management.write"]),
            ],
        );
        assert_eq!(c.status, CheckStatus::MissingScope);
    }

    #[test]
    fn a_read_only_key_is_not_all_working_and_cannot_grant_or_offboard() {
        let now = Utc::now();
        let caps = lines(|c| {
            if c.is_write() {
                CheckStatus::MissingScope
            } else {
                CheckStatus::Ok
            }
        });
        let r = TestReport::conclude(now, 1, None, None, caps, None);
        assert_eq!(r.status, OverallStatus::Degraded);
        assert!(!r.summary.contains("every capability"), "{}", r.summary);
        assert!(r.summary.starts_with("7 of 12"), "{}", r.summary);
        for (f, want) in [
            (Feature::Sync, FeatureStatus::Works),
            (Feature::IncrementalSync, FeatureStatus::Works),
            (Feature::Costs, FeatureStatus::Works),
            (Feature::Grants, FeatureStatus::Unavailable),
            (Feature::Offboarding, FeatureStatus::Unavailable),
        ] {
            assert_eq!(verdict(&r, f), want, "{f:?}");
        }
        let grants = r.features.iter().find(|f| f.feature == Feature::Grants);
        assert_eq!(
            grants.map(|g| g.lacking.clone()),
            Some(vec![Capability::WriteProjectMembers])
        );
        assert!(r.summary.contains("grants unavailable"), "{}", r.summary);
    }

    #[test]
    fn feature_verdicts_follow_required_and_optional_capabilities() {
        let now = Utc::now();
        let judge = |status_of: &dyn Fn(Capability) -> CheckStatus| {
            TestReport::conclude(now, 1, None, None, lines(status_of), None)
        };
        // Every capability works: every feature works, and the summary says so.
        let r = judge(&|_| CheckStatus::Ok);
        assert_eq!(r.status, OverallStatus::Ok);
        assert!(
            r.summary.starts_with("every capability works"),
            "{}",
            r.summary
        );
        assert!(r.features.iter().all(|f| f.status == FeatureStatus::Works));
        assert_eq!(r.features.len(), Feature::ALL.len());

        // Writes not verified: grants and offboarding unknown, never "works"; reads unaffected.
        let r = judge(&|c| {
            if c.is_write() {
                CheckStatus::Unknown
            } else {
                CheckStatus::Ok
            }
        });
        assert_eq!(r.status, OverallStatus::Degraded);
        assert_eq!(verdict(&r, Feature::Grants), FeatureStatus::Unknown);
        assert_eq!(verdict(&r, Feature::Offboarding), FeatureStatus::Unknown);
        assert_eq!(verdict(&r, Feature::Sync), FeatureStatus::Works);
        assert!(r.summary.contains("grants not verified"), "{}", r.summary);

        // No usage scope: costs unavailable; sync partial (it skips costs); grants fine.
        let r = judge(&|c| {
            if c == Capability::ReadUsageAndCosts {
                CheckStatus::MissingScope
            } else {
                CheckStatus::Ok
            }
        });
        assert_eq!(verdict(&r, Feature::Costs), FeatureStatus::Unavailable);
        assert_eq!(verdict(&r, Feature::Sync), FeatureStatus::Partial);
        assert_eq!(verdict(&r, Feature::Grants), FeatureStatus::Works);

        // No audit log: incremental sync unavailable, full sync works.
        let r = judge(&|c| {
            if c == Capability::ReadAuditLogs {
                CheckStatus::Error
            } else {
                CheckStatus::Ok
            }
        });
        assert_eq!(
            verdict(&r, Feature::IncrementalSync),
            FeatureStatus::Unavailable
        );
        assert_eq!(verdict(&r, Feature::Sync), FeatureStatus::Works);

        // Groups cannot be written: grants partial (project membership still works).
        let r = judge(&|c| {
            if c == Capability::WriteGroups {
                CheckStatus::MissingScope
            } else {
                CheckStatus::Ok
            }
        });
        assert_eq!(verdict(&r, Feature::Grants), FeatureStatus::Partial);
        assert_eq!(verdict(&r, Feature::Offboarding), FeatureStatus::Works);

        // Project members skipped (no project): sync unknown, not unavailable.
        let r = judge(&|c| {
            if c == Capability::ReadProjectMembers {
                CheckStatus::Skipped
            } else {
                CheckStatus::Ok
            }
        });
        assert_eq!(verdict(&r, Feature::Sync), FeatureStatus::Unknown);

        // A capability absent from the lines (an old report) counts as untested.
        let f = FeatureCheck::judge(Feature::Costs, &[]);
        assert_eq!(f.status, FeatureStatus::Unknown);
    }

    #[test]
    fn reports_stored_before_features_still_load() {
        let r = TestReport::conclude(Utc::now(), 1, None, None, lines(|_| CheckStatus::Ok), None);
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("features");
        let back: TestReport = serde_json::from_value(v).unwrap();
        assert!(back.features.is_empty());
    }
}
