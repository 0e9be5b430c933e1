//! Where a grant is in its life, as one enum: each state carries only what holds in it, so
//! "revoked but never ended", "active with an error" or "pending with no operation" cannot be
//! built. The service moves a grant with the transition methods below; reading a grant never
//! changes it. The flat fields the API shows (`status`, `pending`, `outcome`, ...) are derived.

use chrono::{DateTime, Utc};

use super::{Grant, GrantOutcome, GrantStatus, PendingOp, RevokeOutcome};

/// What a live grant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The access; `GrantOutcome` is what granting did (`Invited` once the invite was accepted).
    Active(GrantOutcome),
    /// An invite naming the project was sent and is not accepted yet.
    Invited,
}

impl Held {
    /// What granting did.
    pub fn outcome(self) -> GrantOutcome {
        match self {
            Self::Active(o) => o,
            Self::Invited => GrantOutcome::Invited,
        }
    }

    fn status(self) -> GrantStatus {
        match self {
            Self::Active(_) => GrantStatus::Active,
            Self::Invited => GrantStatus::Invited,
        }
    }
}

/// How a grant ends: revoked on request, or at its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Revoke,
    Expire,
}

/// Who ends a grant, how and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub kind: EndKind,
    /// The JWT subject, or `openai-governor` for the expiry worker.
    pub by: String,
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

/// A write to OpenAI in flight: tries so far (bounded, so a grant never loops) and, while its
/// outcome is unknown, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    pub count: u32,
    pub error: Option<String>,
}

/// Where a grant is.
#[derive(Debug, Clone, PartialEq)]
pub enum GrantState {
    /// Recorded; the write that grants is under way, or reconciled after a crash.
    Applying(Attempt),
    /// The person holds the access, or was invited to.
    Live(Held),
    /// Being revoked or expired; `held` is what it keeps if the end fails.
    Ending {
        held: Held,
        end: End,
        attempt: Attempt,
    },
    /// OpenAI refused, the invite lapsed, or the grant could not be carried out.
    Failed { error: String },
    /// Revoked or expired: `outcome` is what granting had done, `revoke` what ending did.
    Ended {
        outcome: GrantOutcome,
        revoke: RevokeOutcome,
        end: End,
        at: DateTime<Utc>,
    },
}

/// A transition the grant's state does not allow: a bug in the caller, never input.
#[derive(Debug, thiserror::Error)]
#[error("grant {grant}: cannot {to} a grant that is {from}")]
pub struct BadTransition {
    pub grant: super::GrantId,
    pub from: GrantStatus,
    pub to: &'static str,
}

impl Grant {
    pub fn status(&self) -> GrantStatus {
        match &self.state {
            GrantState::Applying(_) | GrantState::Ending { .. } => GrantStatus::Pending,
            GrantState::Live(h) => h.status(),
            GrantState::Failed { .. } => GrantStatus::Failed,
            GrantState::Ended { end, .. } => match end.kind {
                EndKind::Revoke => GrantStatus::Revoked,
                EndKind::Expire => GrantStatus::Expired,
            },
        }
    }

    /// The write in flight, if any.
    pub fn pending(&self) -> Option<PendingOp> {
        match &self.state {
            GrantState::Applying(_) => Some(PendingOp::Apply),
            GrantState::Ending { end, .. } => Some(match end.kind {
                EndKind::Revoke => PendingOp::Revoke,
                EndKind::Expire => PendingOp::Expire,
            }),
            _ => None,
        }
    }

    /// What granting did, once known. A failed grant that had sent an invite was invited.
    pub fn outcome(&self) -> Option<GrantOutcome> {
        match &self.state {
            GrantState::Applying(_) => None,
            GrantState::Live(h) | GrantState::Ending { held: h, .. } => Some(h.outcome()),
            GrantState::Failed { .. } => self.invite_id.as_ref().map(|_| GrantOutcome::Invited),
            GrantState::Ended { outcome, .. } => Some(*outcome),
        }
    }

    /// Why it failed, or why the outcome of its write is not known yet.
    pub fn error(&self) -> Option<&str> {
        match &self.state {
            GrantState::Applying(a) | GrantState::Ending { attempt: a, .. } => a.error.as_deref(),
            GrantState::Failed { error } => Some(error),
            _ => None,
        }
    }

    /// Writes tried for the operation in flight.
    pub fn attempts(&self) -> u32 {
        match &self.state {
            GrantState::Applying(a) | GrantState::Ending { attempt: a, .. } => a.count,
            _ => 0,
        }
    }

    /// Who ends it and why, from the moment its end starts.
    pub fn end(&self) -> Option<&End> {
        match &self.state {
            GrantState::Ending { end, .. } | GrantState::Ended { end, .. } => Some(end),
            _ => None,
        }
    }

    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        match &self.state {
            GrantState::Ended { at, .. } => Some(*at),
            _ => None,
        }
    }

    pub fn revoke_outcome(&self) -> Option<RevokeOutcome> {
        match &self.state {
            GrantState::Ended { revoke, .. } => Some(*revoke),
            _ => None,
        }
    }

    fn bad(&self, to: &'static str) -> BadTransition {
        BadTransition {
            grant: self.id,
            from: self.status(),
            to,
        }
    }

    fn attempt_mut(&mut self) -> Option<&mut Attempt> {
        match &mut self.state {
            GrantState::Applying(a) | GrantState::Ending { attempt: a, .. } => Some(a),
            _ => None,
        }
    }

    /// One more write is about to be sent for the operation in flight.
    pub fn attempted(&mut self, now: DateTime<Utc>) -> Result<(), BadTransition> {
        let bad = self.bad("write for");
        let a = self.attempt_mut().ok_or(bad)?;
        a.count += 1;
        self.updated_at = now;
        Ok(())
    }

    /// The write's answer was lost: the operation stays in flight, for the worker to reconcile.
    pub fn reconciling(&mut self, why: String, now: DateTime<Utc>) -> Result<(), BadTransition> {
        let bad = self.bad("reconcile");
        let a = self.attempt_mut().ok_or(bad)?;
        a.error = Some(why);
        self.updated_at = now;
        Ok(())
    }

    /// Granting is done: the person holds the access, or `invite_id` was sent for it.
    pub fn granted(
        &mut self,
        outcome: GrantOutcome,
        invite_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), BadTransition> {
        if !matches!(self.state, GrantState::Applying(_)) {
            return Err(self.bad("grant"));
        }
        self.state = GrantState::Live(if outcome == GrantOutcome::Invited {
            Held::Invited
        } else {
            Held::Active(outcome)
        });
        if invite_id.is_some() {
            self.invite_id = invite_id;
        }
        self.updated_at = now;
        Ok(())
    }

    /// The invite sent for the grant was accepted: the person holds the access.
    pub fn accepted(&mut self, now: DateTime<Utc>) -> Result<(), BadTransition> {
        if self.state != GrantState::Live(Held::Invited) {
            return Err(self.bad("activate"));
        }
        self.state = GrantState::Live(Held::Active(GrantOutcome::Invited));
        self.updated_at = now;
        Ok(())
    }

    /// The operation in flight failed. Granting (or an invite) fails the grant; a failed end
    /// leaves it holding what it held, and says which end it was.
    pub fn failed(
        &mut self,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<Option<EndKind>, BadTransition> {
        let ended = match &self.state {
            GrantState::Applying(_) | GrantState::Live(Held::Invited) => {
                self.state = GrantState::Failed { error };
                None
            }
            GrantState::Ending { held, end, .. } => {
                let kind = end.kind;
                self.state = GrantState::Live(*held);
                Some(kind)
            }
            _ => return Err(self.bad("fail")),
        };
        self.updated_at = now;
        Ok(ended)
    }

    /// Starts ending a live grant. An end already in flight of the same kind (being
    /// reconciled) goes on as it was, with its requester and its tries.
    pub fn ending(&mut self, end: End, now: DateTime<Utc>) -> Result<(), BadTransition> {
        match &self.state {
            GrantState::Live(held) => {
                self.state = GrantState::Ending {
                    held: *held,
                    end,
                    attempt: Attempt::default(),
                };
            }
            GrantState::Ending { end: current, .. } if current.kind == end.kind => {}
            _ => return Err(self.bad("end")),
        }
        self.updated_at = now;
        Ok(())
    }

    /// The end is done: `revoke` is what it did.
    pub fn ended(
        &mut self,
        revoke: RevokeOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), BadTransition> {
        let GrantState::Ending { held, end, .. } = &self.state else {
            return Err(self.bad("finish ending"));
        };
        self.state = GrantState::Ended {
            outcome: held.outcome(),
            revoke,
            end: end.clone(),
            at: now,
        };
        self.updated_at = now;
        Ok(())
    }
}

/// The state in the flat fields the API shows and version-1 records store.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatState {
    pub status: GrantStatus,
    pub pending: Option<PendingOp>,
    pub outcome: Option<GrantOutcome>,
    pub error: Option<String>,
    pub attempts: u32,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    pub end_ticket: Option<String>,
    pub revoke_outcome: Option<RevokeOutcome>,
}

impl Grant {
    pub fn flat_state(&self) -> FlatState {
        let end = self.end();
        FlatState {
            status: self.status(),
            pending: self.pending(),
            outcome: self.outcome(),
            error: self.error().map(str::to_owned),
            attempts: self.attempts(),
            ended_at: self.ended_at(),
            ended_by: end.map(|e| e.by.clone()),
            end_reason: end.and_then(|e| e.reason.clone()),
            end_ticket: end.and_then(|e| e.ticket.clone()),
            revoke_outcome: self.revoke_outcome(),
        }
    }
}

impl GrantState {
    /// Reads the flat fields back. Rows written before the state had its own type can hold
    /// combinations it now rules out (an error kept on an active grant); those read as the
    /// nearest state rather than failing, so one odd row never hides a listing.
    pub fn from_flat(f: FlatState, invite_id: Option<&str>) -> Self {
        let attempt = Attempt {
            count: f.attempts,
            error: f.error.clone(),
        };
        // Before this type, a live grant's invite was told apart by its outcome alone.
        let held = |status: GrantStatus| match (status, f.outcome) {
            (GrantStatus::Invited, _) => Held::Invited,
            (GrantStatus::Pending, Some(GrantOutcome::Invited)) if invite_id.is_some() => {
                Held::Invited
            }
            (_, Some(o)) => Held::Active(o),
            (_, None) => Held::Active(GrantOutcome::Granted),
        };
        let end = |kind| End {
            kind,
            by: f.ended_by.clone().unwrap_or_else(|| "unknown".to_owned()),
            reason: f.end_reason.clone(),
            ticket: f.end_ticket.clone(),
        };
        match (f.status, f.pending) {
            (GrantStatus::Pending, Some(PendingOp::Revoke | PendingOp::Expire)) => {
                let kind = if f.pending == Some(PendingOp::Expire) {
                    EndKind::Expire
                } else {
                    EndKind::Revoke
                };
                GrantState::Ending {
                    held: held(GrantStatus::Pending),
                    end: end(kind),
                    attempt,
                }
            }
            (GrantStatus::Pending, _) => GrantState::Applying(attempt),
            (GrantStatus::Active | GrantStatus::Invited, _) => GrantState::Live(held(f.status)),
            (GrantStatus::Failed, _) => GrantState::Failed {
                error: f.error.unwrap_or_else(|| "failed".to_owned()),
            },
            (GrantStatus::Revoked | GrantStatus::Expired, _) => GrantState::Ended {
                outcome: f.outcome.unwrap_or(GrantOutcome::Granted),
                revoke: f.revoke_outcome.unwrap_or(RevokeOutcome::Removed),
                end: end(if f.status == GrantStatus::Expired {
                    EndKind::Expire
                } else {
                    EndKind::Revoke
                }),
                at: f.ended_at.unwrap_or(chrono::DateTime::UNIX_EPOCH),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConnectionId;
    use crate::domain::grants::{GrantRequest, GrantTarget, Grantee};

    fn new_grant() -> Grant {
        let request = GrantRequest {
            connection_id: ConnectionId::new(),
            grantee: Grantee {
                email: Some("ann@corp.example".into()),
                ..Grantee::default()
            },
            target: GrantTarget::Project {
                project_id: "proj_1".into(),
                role: "member".into(),
            },
            reason: "on call".into(),
            ticket: None,
            expires_at: None,
        };
        Grant::new(request, "portal".into(), None, Utc::now())
    }

    fn revoke_by(who: &str) -> End {
        End {
            kind: EndKind::Revoke,
            by: who.into(),
            reason: Some("done".into()),
            ticket: None,
        }
    }

    #[test]
    fn a_grant_goes_from_applying_to_revoked_with_its_fields_following() {
        let mut g = new_grant();
        let now = Utc::now();
        assert_eq!(g.status(), GrantStatus::Pending);
        assert_eq!(g.pending(), Some(PendingOp::Apply));
        g.attempted(now).unwrap();
        g.reconciling("lost".into(), now).unwrap();
        assert_eq!((g.attempts(), g.error()), (1, Some("lost")));
        g.granted(GrantOutcome::Granted, None, now).unwrap();
        assert_eq!(g.status(), GrantStatus::Active);
        assert_eq!(
            (g.pending(), g.error(), g.attempts()),
            (None, None, 0),
            "an outcome clears what the write in flight carried"
        );
        g.ending(revoke_by("alice"), now).unwrap();
        assert_eq!(g.pending(), Some(PendingOp::Revoke));
        assert_eq!(g.flat_state().ended_by.as_deref(), Some("alice"));
        // A reconciler resuming the same end keeps the first requester.
        g.ending(revoke_by("openai-governor"), now).unwrap();
        assert_eq!(g.end().map(|e| e.by.as_str()), Some("alice"));
        g.ended(RevokeOutcome::Removed, now).unwrap();
        let flat = g.flat_state();
        assert_eq!(flat.status, GrantStatus::Revoked);
        assert_eq!(flat.outcome, Some(GrantOutcome::Granted));
        assert_eq!(flat.revoke_outcome, Some(RevokeOutcome::Removed));
        assert_eq!(flat.ended_at, Some(now));
    }

    #[test]
    fn a_failed_end_keeps_what_the_grant_held_and_forgets_the_end() {
        let mut g = new_grant();
        let now = Utc::now();
        g.granted(GrantOutcome::Invited, Some("invite-1".into()), now)
            .unwrap();
        g.accepted(now).unwrap();
        g.ending(revoke_by("alice"), now).unwrap();
        assert_eq!(
            g.failed("last owner".into(), now).unwrap(),
            Some(EndKind::Revoke)
        );
        assert_eq!(
            g.state,
            GrantState::Live(Held::Active(GrantOutcome::Invited))
        );
        let flat = g.flat_state();
        assert_eq!(
            (flat.ended_by, flat.end_reason, flat.error),
            (None, None, None)
        );
    }

    #[test]
    fn transitions_the_state_does_not_allow_are_refused_and_change_nothing() {
        let mut g = new_grant();
        let now = Utc::now();
        let before = g.clone();
        assert!(g.ending(revoke_by("alice"), now).is_err());
        assert!(g.ended(RevokeOutcome::Removed, now).is_err());
        assert!(g.accepted(now).is_err());
        assert_eq!(g, before);
        g.failed("refused".into(), now).unwrap();
        assert_eq!(g.status(), GrantStatus::Failed);
        assert!(g.granted(GrantOutcome::Granted, None, now).is_err());
        assert!(g.attempted(now).is_err());
        let err = g.failed("again".into(), now).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("grant {}: cannot fail a grant that is failed", g.id)
        );
    }

    #[test]
    fn every_state_reads_back_from_its_flat_fields() {
        let now = Utc::now();
        let mut states = Vec::new();
        let mut g = new_grant();
        states.push(g.clone());
        g.granted(GrantOutcome::Invited, Some("invite-1".into()), now)
            .unwrap();
        states.push(g.clone());
        g.ending(revoke_by("alice"), now).unwrap();
        states.push(g.clone());
        g.ended(RevokeOutcome::InviteDeleted, now).unwrap();
        states.push(g.clone());
        let mut failed = new_grant();
        failed.failed("refused".into(), now).unwrap();
        states.push(failed);
        let mut active = new_grant();
        active
            .granted(GrantOutcome::RoleChanged, None, now)
            .unwrap();
        states.push(active);
        for g in states {
            let back = GrantState::from_flat(g.flat_state(), g.invite_id.as_deref());
            assert_eq!(back, g.state, "{:?}", g.flat_state());
        }
    }
}
