//! The audit trail: one [`AuditEntry`] for every change openai-governor makes or attempts
//! (connections, keys, tests, syncs, grants, revocations, expiries, offboarding), appended and
//! never changed. Entries name who (JWT subject and client), what, on which target, why (reason,
//! ticket), how it ended, OpenAI's request id, and the access before and after.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ConnectionId, GrantId};

/// The subject recorded for changes the service makes on its own (scheduled syncs, expiry,
/// reconciliation after a crash).
pub const SYSTEM_ACTOR: &str = "openai-governor";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    /// A connection was created.
    #[serde(rename = "connection.created")]
    ConnectionCreated,
    /// A connection's name, URL or expected organization changed.
    #[serde(rename = "connection.updated")]
    ConnectionUpdated,
    /// A connection's admin key was replaced.
    #[serde(rename = "connection.key_replaced")]
    ConnectionKeyReplaced,
    /// A connection (and its sealed key) was deleted.
    #[serde(rename = "connection.deleted")]
    ConnectionDeleted,
    /// A connection was tested.
    #[serde(rename = "connection.tested")]
    ConnectionTested,
    /// A sync run ended (succeeded or failed).
    #[serde(rename = "sync.finished")]
    SyncFinished,
    /// Access was granted (or found already held, or an invite sent).
    #[serde(rename = "grant.created")]
    GrantCreated,
    /// An invite sent for a grant was accepted, so the grant became active.
    #[serde(rename = "grant.activated")]
    GrantActivated,
    /// A grant's expiry was changed.
    #[serde(rename = "grant.extended")]
    GrantExtended,
    /// A grant was revoked on request.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// A grant was revoked by the expiry worker.
    #[serde(rename = "grant.expired")]
    GrantExpired,
    /// A write whose outcome was unknown (crash, timeout) was resolved by reading OpenAI.
    #[serde(rename = "grant.reconciled")]
    GrantReconciled,
    /// Access not tied to a grant was revoked.
    #[serde(rename = "access.revoked")]
    AccessRevoked,
    /// A person was removed from an organization with everything they held.
    #[serde(rename = "user.offboarded")]
    UserOffboarded,
    /// An offboarding was recorded, before anything was sent to OpenAI.
    #[serde(rename = "offboarding.started")]
    OffboardingStarted,
}

impl AuditAction {
    pub const ALL: [AuditAction; 15] = [
        Self::ConnectionCreated,
        Self::ConnectionUpdated,
        Self::ConnectionKeyReplaced,
        Self::ConnectionDeleted,
        Self::ConnectionTested,
        Self::SyncFinished,
        Self::GrantCreated,
        Self::GrantActivated,
        Self::GrantExtended,
        Self::GrantRevoked,
        Self::GrantExpired,
        Self::GrantReconciled,
        Self::AccessRevoked,
        Self::UserOffboarded,
        Self::OffboardingStarted,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionCreated => "connection.created",
            Self::ConnectionUpdated => "connection.updated",
            Self::ConnectionKeyReplaced => "connection.key_replaced",
            Self::ConnectionDeleted => "connection.deleted",
            Self::ConnectionTested => "connection.tested",
            Self::SyncFinished => "sync.finished",
            Self::GrantCreated => "grant.created",
            Self::GrantActivated => "grant.activated",
            Self::GrantExtended => "grant.extended",
            Self::GrantRevoked => "grant.revoked",
            Self::GrantExpired => "grant.expired",
            Self::GrantReconciled => "grant.reconciled",
            Self::AccessRevoked => "access.revoked",
            Self::UserOffboarded => "user.offboarded",
            Self::OffboardingStarted => "offboarding.started",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done: the access (or the record) changed.
    Succeeded,
    /// Nothing needed doing: the access was already as asked.
    Unchanged,
    /// Waiting on someone else (an invite to accept).
    Pending,
    /// Refused or failed; `detail.message` says why.
    Failed,
    /// Refused by the operator's policy before anything was written; `detail.policy_rule`
    /// names the rule.
    Denied,
}

impl AuditOutcome {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Unchanged => "unchanged",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Denied => "denied",
        }
    }
}

impl FromStr for AuditOutcome {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "succeeded" => Ok(Self::Succeeded),
            "unchanged" => Ok(Self::Unchanged),
            "pending" => Ok(Self::Pending),
            "failed" => Ok(Self::Failed),
            "denied" => Ok(Self::Denied),
            _ => Err(()),
        }
    }
}

/// One change made or attempted, as it is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Who: the caller's JWT subject, or `openai-governor` for the service's own work.
    pub actor: String,
    /// The caller's OAuth client, when the token names one.
    pub client_id: Option<String>,
    /// What.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The connection (organization) it concerns.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub connection_id: Option<ConnectionId>,
    /// The grant it concerns.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub grant_id: Option<GrantId>,
    /// The person whose access changed (OpenAI user id), when known.
    pub user_id: Option<String>,
    /// The person's email (lower-cased), when known.
    pub email: Option<String>,
    /// The project whose access changed.
    pub project_id: Option<String>,
    /// The group whose membership changed, or the group that was granted access.
    pub group_id: Option<String>,
    /// Why, as the caller gave it.
    pub reason: Option<String>,
    /// The caller's ticket reference (`SEC-123`).
    pub ticket: Option<String>,
    /// OpenAI's `x-request-id` of the write, when one was made.
    pub upstream_request_id: Option<String>,
    /// The access before the change (for example `{"project_role": "member"}`), when known.
    pub before: Option<serde_json::Value>,
    /// The access after the change.
    pub after: Option<serde_json::Value>,
    /// Anything else worth keeping: an error message, counts, the sync id.
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// Adds `more`'s fields to `detail` (an object), keeping what is there.
    pub fn add_detail(&mut self, more: serde_json::Value) {
        match (&mut self.detail, more) {
            (Some(serde_json::Value::Object(have)), serde_json::Value::Object(add)) => {
                have.extend(add);
            }
            (slot, more) => *slot = Some(more),
        }
    }

    /// An entry with only who, what and how filled in; the rest is set field by field.
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        client_id: Option<String>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            client_id,
            action,
            outcome,
            connection_id: None,
            grant_id: None,
            user_id: None,
            email: None,
            project_id: None,
            group_id: None,
            reason: None,
            ticket: None,
            upstream_request_id: None,
            before: None,
            after: None,
            detail: None,
        }
    }
}

/// Position of an entry in the log: increasing in append order, the pagination cursor.
pub type AuditId = i64;

/// An appended entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Its position in the log, the cursor (`after`). Ids are handed out in commit order:
    /// once a reader sees id N, every entry below N is readable too, so polling with `after`
    /// never skips one.
    pub id: AuditId,
    /// Its place in the hash chain: 1, 2, 3, ... without holes, in the order of `id`. A
    /// reader of the whole trail checks each `seq` is one more than the last it kept and each
    /// `prev_hash` is that entry's `hash`: then it holds every entry. `null` for entries
    /// from before the chain.
    pub seq: Option<i64>,
    /// The previous entry's `hash` (64 zeros for the first).
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of `seq`, `prev_hash` and the entry's content, as `audit verify`
    /// checks it.
    pub hash: Option<String>,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Filters of an audit read; every `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub connection_id: Option<ConnectionId>,
    pub actor: Option<String>,
    /// One person, by email (compared lower-cased).
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub grant_id: Option<GrantId>,
    pub action: Option<AuditAction>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Cursor: entries after this id.
    pub after: Option<AuditId>,
    pub limit: u32,
}

/// The previous hash of the chain's first entry (seq 1).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the chain ends, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The last entry's sequence number (0 before the first).
    pub seq: i64,
    /// The last entry's hash ([`GENESIS_HASH`] before the first).
    pub hash: String,
    /// The last entry appended before the chain began (0 if none): entries up to it carry no
    /// hash and are not covered.
    pub legacy_through: AuditId,
}

/// One chained entry as stored, with its hash recomputed from its stored fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: i64,
    pub event_id: AuditId,
    /// The previous entry's hash, as stored in this one.
    pub prev_hash: String,
    /// Its hash, as stored.
    pub hash: String,
    /// Its hash, recomputed over the stored fields, `seq` and `prev_hash`.
    pub computed: String,
}

/// The first thing found wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// Entries are missing: `expected` was due after `after_event`; the next one found is
    /// `found` (`None`: none, the end of the chain was cut off).
    Gap {
        expected: i64,
        found: Option<i64>,
        after_event: Option<AuditId>,
    },
    /// The entry's fields no longer hash to its stored hash: it was edited.
    Edited { seq: i64, event_id: AuditId },
    /// The entry's previous hash is not the previous entry's hash: an entry before it was
    /// replaced (hash recomputed) or the entry was forged.
    BrokenLink { seq: i64, event_id: AuditId },
    /// The entry's id is not after the previous entry's (ids were rewritten).
    OutOfOrder { seq: i64, event_id: AuditId },
    /// An entry appended after the chain began carries no sequence number: it was written
    /// around the service.
    Unchained { event_id: AuditId },
    /// The head names another last entry than the chain's.
    HeadMismatch { head_seq: i64, last_seq: i64 },
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap {
                expected,
                found: Some(found),
                after_event,
            } => write!(
                f,
                "entries missing: seq {expected} to {} (after event {})",
                found - 1,
                after_event.map_or("none".into(), |e| e.to_string())
            ),
            Self::Gap {
                expected,
                found: None,
                after_event,
            } => write!(
                f,
                "entries missing: seq {expected} onwards, recorded by the head (after event {})",
                after_event.map_or("none".into(), |e| e.to_string())
            ),
            Self::Edited { seq, event_id } => {
                write!(f, "entry seq {seq} (event {event_id}) was edited")
            }
            Self::BrokenLink { seq, event_id } => write!(
                f,
                "entry seq {seq} (event {event_id}) does not link to the entry before it"
            ),
            Self::OutOfOrder { seq, event_id } => write!(
                f,
                "entry seq {seq} (event {event_id}) has an id out of append order"
            ),
            Self::Unchained { event_id } => {
                write!(f, "event {event_id} was appended outside the chain")
            }
            Self::HeadMismatch { head_seq, last_seq } => write!(
                f,
                "the chain head is at seq {head_seq} but the last entry is seq {last_seq}"
            ),
        }
    }
}

/// Checks links in `seq` order, one at a time (the trail is read in pages), and keeps the
/// first problem.
#[derive(Debug)]
pub struct ChainWalk {
    expected: i64,
    prev_hash: String,
    last_event: Option<AuditId>,
    good: i64,
    problem: Option<ChainProblem>,
}

impl Default for ChainWalk {
    fn default() -> Self {
        Self {
            expected: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            last_event: None,
            good: 0,
            problem: None,
        }
    }
}

impl ChainWalk {
    /// Checks the next link; `false` once a problem is found (the rest need not be read).
    pub fn push(&mut self, link: &ChainLink) -> bool {
        if self.problem.is_some() {
            return false;
        }
        self.problem = if link.seq != self.expected {
            Some(ChainProblem::Gap {
                expected: self.expected,
                found: Some(link.seq),
                after_event: self.last_event,
            })
        } else if link.computed != link.hash {
            Some(ChainProblem::Edited {
                seq: link.seq,
                event_id: link.event_id,
            })
        } else if link.prev_hash != self.prev_hash {
            Some(ChainProblem::BrokenLink {
                seq: link.seq,
                event_id: link.event_id,
            })
        } else if self.last_event.is_some_and(|last| link.event_id <= last) {
            Some(ChainProblem::OutOfOrder {
                seq: link.seq,
                event_id: link.event_id,
            })
        } else {
            None
        };
        self.expected = link.seq + 1;
        self.prev_hash.clone_from(&link.hash);
        self.last_event = Some(link.event_id);
        if self.problem.is_none() {
            self.good += 1;
        }
        self.problem.is_none()
    }

    /// How many links were checked and found good (those before the first problem).
    pub fn verified(&self) -> i64 {
        self.good
    }

    /// The first problem, after every link was pushed: the end must be where `head` says.
    pub fn finish(self, head: &ChainHead) -> Option<ChainProblem> {
        if self.problem.is_some() {
            return self.problem;
        }
        let last_seq = self.expected - 1;
        if head.seq > last_seq {
            Some(ChainProblem::Gap {
                expected: self.expected,
                found: None,
                after_event: self.last_event,
            })
        } else if head.seq < last_seq || head.hash != self.prev_hash {
            Some(ChainProblem::HeadMismatch {
                head_seq: head.seq,
                last_seq,
            })
        } else {
            None
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub head: ChainHead,
    /// Entries checked (all of the chain when there is no problem).
    pub verified: i64,
    /// Entries from before the chain began, not covered.
    pub legacy: u64,
    pub problem: Option<ChainProblem>,
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    fn link(seq: i64, event_id: i64, prev: &str, hash: &str) -> ChainLink {
        ChainLink {
            seq,
            event_id,
            prev_hash: prev.into(),
            hash: hash.into(),
            computed: hash.into(),
        }
    }

    fn head(seq: i64, hash: &str) -> ChainHead {
        ChainHead {
            seq,
            hash: hash.into(),
            legacy_through: 0,
        }
    }

    #[test]
    fn a_good_chain_verifies_and_each_fault_is_named() {
        let good = [
            link(1, 10, GENESIS_HASH, "a"),
            link(2, 12, "a", "b"),
            link(3, 13, "b", "c"),
        ];
        let walk = |links: &[ChainLink], h: &ChainHead| {
            let mut w = ChainWalk::default();
            for l in links {
                if !w.push(l) {
                    break;
                }
            }
            w.finish(h)
        };
        assert_eq!(walk(&good, &head(3, "c")), None);
        assert_eq!(walk(&[], &head(0, GENESIS_HASH)), None);

        let mut edited = good.clone();
        edited[1].computed = "x".into();
        assert_eq!(
            walk(&edited, &head(3, "c")),
            Some(ChainProblem::Edited {
                seq: 2,
                event_id: 12
            })
        );
        let gap = [good[0].clone(), good[2].clone()];
        assert_eq!(
            walk(&gap, &head(3, "c")),
            Some(ChainProblem::Gap {
                expected: 2,
                found: Some(3),
                after_event: Some(10)
            })
        );
        assert_eq!(
            walk(&good[..2], &head(3, "c")),
            Some(ChainProblem::Gap {
                expected: 3,
                found: None,
                after_event: Some(12)
            })
        );
        let mut relinked = good.clone();
        relinked[2].prev_hash = "z".into();
        assert_eq!(
            walk(&relinked, &head(3, "c")),
            Some(ChainProblem::BrokenLink {
                seq: 3,
                event_id: 13
            })
        );
        let mut reordered = good.clone();
        reordered[2].event_id = 11;
        assert_eq!(
            walk(&reordered, &head(3, "c")),
            Some(ChainProblem::OutOfOrder {
                seq: 3,
                event_id: 11
            })
        );
        assert_eq!(
            walk(&good, &head(3, "q")),
            Some(ChainProblem::HeadMismatch {
                head_seq: 3,
                last_seq: 3
            })
        );
    }
}
