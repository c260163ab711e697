//! Attaching an invocation to its run: which run the input names, and the lease for it. A
//! duplicate delivery gets nothing; a platform retry after a holder died resumes the run.

use super::pipeline::Budget;
use super::{Engine, EngineError};
use crate::domain::lease::{LeaseRequest, LeaseState, Refused};
use crate::domain::run::{RunStatus, SyncRequest, SyncRun, SyncType, slot_sync_id};
use crate::domain::settings::Settings;
use crate::domain::time::Timestamp;
use crate::ports::*;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// A run this invocation now holds.
pub(super) struct Attached {
    pub run: SyncRun,
    pub fence: u64,
    pub orphans: Vec<String>,
    pub acquired_at: Instant,
}

pub(super) fn port(sync_id: &str) -> impl FnOnce(PortError) -> EngineError + '_ {
    move |source| EngineError::Port {
        sync_id: sync_id.to_string(),
        source,
    }
}

fn held_reason(r: Refused, sync_id: &str) -> String {
    match r {
        Refused::Held { owner, .. } if owner == sync_id => {
            format!(
                "sync {sync_id} is held by a live invocation (a duplicate delivery); nothing to do"
            )
        }
        Refused::Held { owner, .. } if owner.is_empty() => {
            format!("sync {sync_id} no longer holds the lease; the next sync closes it")
        }
        Refused::Held { owner, .. } => format!("another sync ({owner}) is in progress"),
        Refused::Fenced => format!("sync {sync_id} is no longer ours to run"),
    }
}

impl Engine {
    /// The effective settings: defaults overlaid with the stored values. A stored value that
    /// does not validate, or a store that cannot be read, is an error naming it: a run never
    /// proceeds on values nobody chose.
    pub(super) async fn settings(&self) -> Result<Settings, String> {
        let stored = self
            .deps
            .settings
            .load()
            .await
            .map_err(|e| format!("could not read the stored settings: {e}"))?;
        let mut s = self.cfg.defaults.clone();
        s.overlay(&stored.into_iter().map(|(k, v)| (k, v.value)).collect())
            .map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// Applies an acquisition; returns the new state and when the successful request was
    /// sent (the guard's clock starts there). When the lease is held by the same run — a
    /// duplicate delivery, or a platform retry after the holder died, or a hand-over whose
    /// continuation never came — watch it: a renewal or a pickup means someone is working on
    /// the run (nothing to do); an expiry without one means nobody is, and the run is resumed
    /// from its checkpoint instead of waiting for the next sync to close it.
    async fn acquire(
        &self,
        req: &LeaseRequest,
        sync_id: &str,
        budget: Budget,
    ) -> Result<Result<(LeaseState, Instant), String>, EngineError> {
        let ttl = self.cfg.lease_ttl;
        let sent = Instant::now();
        let refused = match self
            .deps
            .lease
            .apply(req, ttl)
            .await
            .map_err(port(sync_id))?
        {
            Ok(state) => return Ok(Ok((state, sent))),
            Err(r) => r,
        };
        let Refused::Held {
            owner,
            expires_at_ms,
            ..
        } = &refused
        else {
            return Ok(Err(held_reason(refused, sync_id)));
        };
        if owner != sync_id {
            return Ok(Err(held_reason(refused, sync_id)));
        }
        let _ = expires_at_ms;
        // A live holder renews every ttl/6 (a continuation picks up at once): watch for either.
        // Silence until expiry means nobody is working on the run: resume it.
        let mut seen: Option<(u64, u64)> = None;
        loop {
            let Some(now) = self.deps.lease.current().await.map_err(port(sync_id))? else {
                return Ok(Err(held_reason(refused, sync_id)));
            };
            if now.owner.as_deref() != Some(sync_id) {
                return Ok(Err(held_reason(refused, sync_id)));
            }
            let mark = (now.fence, now.expires_at_ms);
            if seen.is_some_and(|s| s != mark) {
                info!("the run's holder is alive (renewed or picked up); nothing to do");
                return Ok(Err(held_reason(refused, sync_id)));
            }
            seen = Some(mark);
            let now_ms = self.deps.clock.now_ms();
            if now.expires_at_ms <= now_ms {
                let pickup = LeaseRequest::Pickup {
                    owner: sync_id.to_string(),
                    from: None,
                };
                let sent = Instant::now();
                return match self
                    .deps
                    .lease
                    .apply(&pickup, ttl)
                    .await
                    .map_err(port(sync_id))?
                {
                    Ok(state) => {
                        warn!(
                            "the run's previous holder stopped without handing over; resuming from its checkpoint"
                        );
                        Ok(Ok((state, sent)))
                    }
                    Err(r) => Ok(Err(held_reason(r, sync_id))),
                };
            }
            let to_expiry = Duration::from_millis(now.expires_at_ms - now_ms + 1);
            let step = to_expiry.min(ttl / 6 + Duration::from_secs(1));
            if Instant::now() + step >= budget.latest_pickup {
                // Silent, but not expired while this invocation would still have time to work:
                // let the platform retry later.
                return Err(EngineError::HolderSilent {
                    sync_id: sync_id.to_string(),
                });
            }
            info!(
                wait_ms = step.as_millis() as u64,
                "the run's lease is held by another invocation of it; watching for a renewal"
            );
            tokio::time::sleep(step).await;
        }
    }

    /// After acquiring: the run as it is now (it may have ended while we waited for the lease).
    /// `Err(reason)`: it ended; the lease is released again.
    async fn fresh_run(
        &self,
        sync_id: &str,
        fence: u64,
    ) -> Result<Result<SyncRun, String>, EngineError> {
        match self.deps.runs.get(sync_id).await.map_err(port(sync_id))? {
            Some(r) if r.status.is_active() => Ok(Ok(r)),
            Some(r) => {
                self.release(sync_id, fence).await;
                Ok(Err(format!("sync {sync_id} already ended ({})", r.status)))
            }
            None => {
                self.release(sync_id, fence).await;
                Ok(Err(format!("no sync {sync_id} exists; nothing to do")))
            }
        }
    }

    /// Takes the lease for the run `req` names. `Ok(Err(reason))`: nothing to do.
    pub(super) async fn attach(
        &self,
        req: &SyncRequest,
        settings: &Result<Settings, String>,
        budget: Budget,
    ) -> Result<Result<Attached, String>, EngineError> {
        match req {
            SyncRequest::Scheduled { scheduled_time } => {
                if let Ok(s) = settings
                    && !s.enable_auto
                {
                    return Ok(Err("automatic sync is disabled".into()));
                }
                let slot = match scheduled_time {
                    None => self.deps.clock.now(),
                    Some(t) => match Timestamp::parse_rfc3339(t) {
                        Some(ts) => ts,
                        None => {
                            error!(scheduled_time = %t, "invalid scheduled_time");
                            return Ok(Err(format!(
                                "scheduled_time `{t}` is not an RFC 3339 time"
                            )));
                        }
                    },
                };
                let sync_id = slot_sync_id(slot);
                let existing = self.deps.runs.get(&sync_id).await.map_err(port(&sync_id))?;
                if let Some(r) = &existing
                    && !r.status.is_active()
                {
                    return Ok(Err(format!(
                        "schedule slot {slot} already ran as sync {sync_id} ({})",
                        r.status
                    )));
                }
                let lease_req = match existing {
                    // An earlier delivery of this slot started it and died: resume it once its
                    // lease has expired.
                    Some(_) => LeaseRequest::Pickup {
                        owner: sync_id.clone(),
                        from: None,
                    },
                    None => LeaseRequest::Take {
                        owner: sync_id.clone(),
                        handoff: false,
                    },
                };
                let (state, acquired_at) = match self.acquire(&lease_req, &sync_id, budget).await? {
                    Ok(s) => s,
                    Err(reason) => return Ok(Err(reason)),
                };
                let run = match existing {
                    Some(_) => match self.fresh_run(&sync_id, state.fence).await? {
                        Ok(r) => r,
                        Err(reason) => return Ok(Err(reason)),
                    },
                    None => {
                        let mut run = SyncRun::new(sync_id.clone(), SyncType::Scheduled, slot);
                        run.started_at = self.deps.clock.now();
                        run.status = RunStatus::Running;
                        match self.deps.runs.create(&run, state.fence).await {
                            Ok(()) => run,
                            // Created by an earlier delivery of this slot (or by our own
                            // request, retried after it applied).
                            Err(e) if e.kind == PortErrorKind::Conflict => {
                                match self.fresh_run(&sync_id, state.fence).await? {
                                    Ok(r) => r,
                                    Err(reason) => return Ok(Err(reason)),
                                }
                            }
                            // The create may have applied: keep the lease. When it expires, a
                            // retry of this event resumes the run, or the next sync closes it.
                            Err(e) => return Err(port(&sync_id)(e)),
                        }
                    }
                };
                Ok(Ok(Attached {
                    run,
                    fence: state.fence,
                    orphans: state.orphans,
                    acquired_at,
                }))
            }
            SyncRequest::Manual { sync_id, lease, .. } | SyncRequest::Resume { sync_id, lease } => {
                match self.deps.runs.get(sync_id).await.map_err(port(sync_id))? {
                    None => return Ok(Err(format!("no sync {sync_id} exists; nothing to do"))),
                    Some(r) if !r.status.is_active() => {
                        return Ok(Err(format!("sync {sync_id} already ended ({})", r.status)));
                    }
                    Some(_) => {}
                }
                let pickup = LeaseRequest::Pickup {
                    owner: sync_id.clone(),
                    from: *lease,
                };
                match self.acquire(&pickup, sync_id, budget).await? {
                    Ok((state, acquired_at)) => match self.fresh_run(sync_id, state.fence).await? {
                        Ok(run) => Ok(Ok(Attached {
                            run,
                            fence: state.fence,
                            orphans: state.orphans,
                            acquired_at,
                        })),
                        Err(reason) => Ok(Err(reason)),
                    },
                    Err(reason) => Ok(Err(reason)),
                }
            }
        }
    }
}
