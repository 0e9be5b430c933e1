//! An offboarding request's life: recorded before anything is sent to OpenAI, run in a task
//! of its own under a renewed lease, answered `202` when the caller stops waiting, resumed by
//! the worker when its process died.

use chrono::Utc;

use super::super::connections::not_found;
use super::{OffboardInput, OffboardingService, Valid, validate};
use crate::auth::Principal;
use crate::auth::Scope as TokenScope;
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome};
use crate::domain::offboarding::{OffboardError, Offboarding, OffboardingRun, RunStatus};
use crate::domain::policy::{Action, Denied, Named, Scope};
use crate::domain::{Connection, ConnectionId};
use crate::error::{AppError, ErrorCode};
use crate::service::policy::denied;

/// An offboarding that was recorded and is running in its own task.
pub struct Started {
    /// Its record as first stored (status `running`).
    pub run: OffboardingRun,
    /// Its end: what the caller would have got had it waited.
    pub done: tokio::task::JoinHandle<Result<Offboarding, AppError>>,
    /// How long the caller should wait before answering `202`.
    pub wait: std::time::Duration,
}

impl OffboardingService {
    /// The policy's word on offboarding from `connections`: every one must be allowed, and
    /// `all_connections` needs a rule that says so. The deciding rule of each (`None`
    /// without a policy), or the first refusal with its connection.
    pub(super) fn decide(
        &self,
        who: &Principal,
        v: &Valid,
        connections: &[Connection],
    ) -> Result<Vec<Option<String>>, (ConnectionId, Denied)> {
        let mut rules = Vec::with_capacity(connections.len());
        for c in connections {
            let id = c.id.to_string();
            let scope = Scope::new(Action::Offboard).on(Named {
                id: &id,
                name: Some(&c.name),
            });
            match self.policy.check(who, &scope) {
                Ok(Some(rule)) if v.connection_id.is_none() && !rule.all_connections => {
                    let message = format!(
                        "policy rule `{}` allows offboarding one connection at a time: give \
                         connection_id instead of all_connections",
                        rule.id
                    );
                    return Err((
                        c.id,
                        Denied {
                            message,
                            rule: rule.id,
                        },
                    ));
                }
                Ok(rule) => rules.push(rule.map(|r| r.id)),
                Err(d) => return Err((c.id, d)),
            }
        }
        Ok(rules)
    }

    /// [`Self::decide`], a refusal audited.
    async fn authorize(
        &self,
        who: &Principal,
        v: &Valid,
        connections: &[Connection],
    ) -> Result<(), AppError> {
        let Err((connection_id, refusal)) = self.decide(who, v, connections) else {
            return Ok(());
        };
        let mut e = AuditEntry::new(
            Utc::now(),
            who.subject.clone(),
            who.client_id.clone(),
            AuditAction::OffboardingStarted,
            AuditOutcome::Denied,
        );
        e.connection_id = Some(connection_id);
        e.user_id = v.user_id.clone();
        e.email = v.email.clone();
        e.reason = Some(v.reason.clone());
        e.ticket = v.ticket.clone();
        e.detail = Some(serde_json::json!({
            "policy_rule": refusal.rule,
            "message": refusal.message,
            "all_connections": v.connection_id.is_none(),
        }));
        if let Err(err) = self.audit.record(&e).await {
            tracing::warn!(error = %err, "could not audit a policy refusal");
        }
        Err(denied(refusal))
    }

    /// How long a runner's lease lasts (the grant lease: `OG_GRANT_LEASE`).
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.grants.settings().lease)
            .unwrap_or(chrono::Duration::minutes(2))
    }

    /// The connections an offboarding covers (one, or all).
    pub(super) async fn covered(&self, v: &Valid) -> Result<Vec<Connection>, AppError> {
        match v.connection_id {
            Some(id) => Ok(vec![
                self.connections
                    .get_connection(id)
                    .await
                    .map_err(not_found(id))?,
            ]),
            None => self.all_connections().await,
        }
    }

    /// Records an offboarding and starts it in a task of its own (see the module docs).
    /// Requires `access:write`; an invalid request or an unknown connection is refused before
    /// anything is recorded.
    pub async fn start(&self, who: &Principal, input: OffboardInput) -> Result<Started, AppError> {
        who.require(TokenScope::AccessWrite)?;
        let v = validate(&input)?;
        let connections = self.covered(&v).await?;
        self.authorize(who, &v, &connections).await?;
        let run = OffboardingRun {
            id: uuid::Uuid::now_v7().to_string(),
            status: RunStatus::Running,
            requested_by: who.subject.clone(),
            email: v.email.clone(),
            user_id: v.user_id.clone(),
            connection_ids: connections.iter().map(|c| c.id).collect(),
            delete_api_keys: v.delete_api_keys,
            reason: v.reason.clone(),
            ticket: v.ticket.clone(),
            created_at: Utc::now(),
            finished_at: None,
            result: None,
            error: None,
        };
        let now = Utc::now();
        self.offboardings
            .insert_offboarding(&run, &self.instance, now + self.lease())
            .await?;
        let mut e = AuditEntry::new(
            run.created_at,
            who.subject.clone(),
            who.client_id.clone(),
            AuditAction::OffboardingStarted,
            AuditOutcome::Pending,
        );
        e.connection_id = v.connection_id;
        e.user_id = v.user_id.clone();
        e.email = v.email.clone();
        e.reason = Some(v.reason.clone());
        e.ticket = v.ticket.clone();
        e.detail = Some(serde_json::json!({
            "offboarding_id": run.id,
            "connection_ids": run.connection_ids,
            "delete_api_keys": v.delete_api_keys,
        }));
        if let Err(err) = self.audit.record(&e).await {
            let err = AppError::from(err);
            // Not started without its audit entry: close the record so no worker resumes it.
            let mut closed = run.clone();
            closed.status = RunStatus::Failed;
            closed.finished_at = Some(Utc::now());
            closed.error = Some(OffboardError {
                code: err.code.as_str().to_owned(),
                message: "not started: its audit entry could not be written".into(),
            });
            if let Err(e) = self.offboardings.save_offboarding(&closed).await {
                tracing::error!(offboarding_id = %run.id, error = %e, "could not close an offboarding that never started");
            }
            return Err(err);
        }
        let first = run.clone();
        let (svc, who) = (self.clone(), who.clone());
        let done = tokio::spawn(async move { svc.execute(run, &who, &v, &connections).await });
        Ok(Started {
            run: first,
            done,
            wait: self.wait,
        })
    }

    /// Offboards a person and waits for the end. Requires `access:write`. With one
    /// connection, a refusal (last owner) or an OpenAI failure is the caller's error (the
    /// audit entry keeps the record); with `all_connections`, each organization's outcome is
    /// in the answer.
    pub async fn offboard(
        &self,
        who: &Principal,
        input: OffboardInput,
    ) -> Result<Offboarding, AppError> {
        let started = self.start(who, input).await?;
        started.done.await.map_err(AppError::internal)?
    }

    /// Runs a recorded offboarding under this process's lease (renewed while it runs) and
    /// records its end.
    async fn execute(
        &self,
        mut run: OffboardingRun,
        who: &Principal,
        v: &Valid,
        connections: &[Connection],
    ) -> Result<Offboarding, AppError> {
        let renew = {
            let (svc, id) = (self.clone(), run.id.clone());
            tokio::spawn(async move {
                let every = (svc.lease() / 3)
                    .to_std()
                    .unwrap_or_default()
                    .max(std::time::Duration::from_millis(50));
                loop {
                    tokio::time::sleep(every).await;
                    let now = Utc::now();
                    match svc
                        .offboardings
                        .claim_offboarding(&id, &svc.instance, now, now + svc.lease())
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => {
                            tracing::warn!(offboarding_id = %id, error = %e, "could not renew an offboarding's lease")
                        }
                    }
                }
            })
        };
        let result = self.run(who, v, &run.id, connections).await;
        renew.abort();
        run.finished_at = Some(Utc::now());
        match &result {
            Ok(o) => {
                run.status = RunStatus::Succeeded;
                run.result = Some(o.clone());
            }
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(OffboardError {
                    code: e.code.as_str().to_owned(),
                    message: e.message.clone(),
                });
            }
        }
        if let Err(e) = self.offboardings.save_offboarding(&run).await {
            tracing::error!(offboarding_id = %run.id, error = %e, "could not record the end of an offboarding (its audit entries have it)");
        }
        result
    }

    /// Resumes offboardings whose runner died (their lease ran out): each is claimed, then run
    /// again from its record as its requester (offboarding finds what is left and removes it).
    /// Returns how many it resumed.
    pub async fn work_once(&self) -> Result<usize, AppError> {
        let now = Utc::now();
        let mut resumed = 0;
        for mut run in self.offboardings.interrupted_offboardings(now, 20).await? {
            if !self
                .offboardings
                .claim_offboarding(&run.id, &self.instance, now, now + self.lease())
                .await?
            {
                continue;
            }
            tracing::warn!(offboarding_id = %run.id, "resuming an interrupted offboarding");
            let who = Principal {
                subject: run.requested_by.clone(),
                client_id: None,
                scopes: [TokenScope::AccessWrite].into_iter().collect(),
                groups: Vec::new(),
            };
            let input = OffboardInput {
                email: run.email.clone(),
                user_id: run.user_id.clone(),
                connection_id: run
                    .connection_ids
                    .first()
                    .copied()
                    .filter(|_| run.connection_ids.len() == 1),
                all_connections: run.connection_ids.len() != 1,
                delete_api_keys: run.delete_api_keys,
                reason: run.reason.clone(),
                ticket: run.ticket.clone(),
            };
            let v = match validate(&input) {
                Ok(v) => v,
                Err(e) => {
                    run.status = RunStatus::Failed;
                    run.finished_at = Some(Utc::now());
                    run.error = Some(OffboardError {
                        code: e.code.as_str().to_owned(),
                        message: e.message,
                    });
                    self.offboardings.save_offboarding(&run).await?;
                    continue;
                }
            };
            // The organizations it was recorded for; one deleted since is left out (its
            // connection, and so its key, are gone).
            let mut connections = Vec::with_capacity(run.connection_ids.len());
            for id in &run.connection_ids {
                match self.connections.get_connection(*id).await {
                    Ok(c) => connections.push(c),
                    Err(crate::store::StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // The answer went to the log and the record, not to a caller.
            let _ = self.execute(run, &who, &v, &connections).await;
            resumed += 1;
        }
        Ok(resumed)
    }

    /// Runs [`Self::work_once`] every `tick`, for ever (started by `serve` with the grant
    /// worker).
    pub async fn run_worker(self, tick: std::time::Duration) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = self.work_once().await {
                tracing::warn!(error = %e.message, "offboarding worker failed; retrying next tick");
            }
        }
    }

    /// An offboarding's record. Requires `access:write` or `audit:read`.
    pub async fn get(&self, who: &Principal, id: &str) -> Result<OffboardingRun, AppError> {
        if !who.has(TokenScope::AuditRead) {
            who.require(TokenScope::AccessWrite)?;
        }
        self.offboardings
            .get_offboarding(id)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => AppError::new(
                    ErrorCode::NotFound,
                    format!(
                        "no offboarding has id {}",
                        id.chars().take(64).collect::<String>()
                    ),
                ),
                other => other.into(),
            })
    }
}
