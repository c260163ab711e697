//! A run's life across invocations: attaching through the lease (so a duplicate delivery does
//! nothing), closing runs whose holder vanished, finishing, and handing over to a continuation.
//!
//! Every exit path ends the run with a reason, or leaves it resumable: a continuation is
//! dispatched (at-least-once), and if it never arrives the lease expires and whoever takes it
//! next closes the run (it is listed among the lease's orphans).

use super::attach::{Attached, port};
use super::fence::FenceGuard;
use super::gate::{Gate, GateConfig};
use super::pipeline::{Budget, Pipeline, Progress, Work};
use super::property::{PropertyCtx, Stop};
use super::{Engine, EngineError, Outcome, report};
use crate::domain::breaker::Breaker;
use crate::domain::facet::facets_for;
use crate::domain::lease::LeaseRequest;
use crate::domain::run::{RunStatus, SyncRequest, SyncRun, SyncType};
use crate::domain::settings::Settings;
use crate::domain::shape::Watch;
use crate::ports::*;
use backon::{ExponentialBuilder, Retryable};
use std::sync::Arc;
use std::time::Duration;
use tracing::{Instrument, error, info, warn};

impl Engine {
    pub(super) async fn invoke(
        &self,
        req: SyncRequest,
        budget: Budget,
    ) -> Result<Outcome, EngineError> {
        let settings = self.settings().await;
        let attached = match self.attach(&req, &settings, budget).await? {
            Ok(a) => a,
            Err(reason) => {
                info!(request = ?req, "sync not started: {reason}");
                return Ok(Outcome::Skipped { reason });
            }
        };
        let span =
            tracing::info_span!("sync", sync_id = %attached.run.sync_id, fence = attached.fence);
        self.drive(attached, settings, budget)
            .instrument(span)
            .await
    }

    async fn drive(
        &self,
        a: Attached,
        settings: Result<Settings, String>,
        budget: Budget,
    ) -> Result<Outcome, EngineError> {
        let Attached {
            mut run,
            fence,
            orphans,
            acquired_at,
        } = a;
        let guard = Arc::new(FenceGuard::new(
            run.sync_id.clone(),
            fence,
            self.cfg.lease_ttl,
            acquired_at,
        ));
        let result = tokio::select! {
            biased;
            _ = guard.keep_alive(self.deps.lease.clone()) => Err(Stop::Lost),
            r = self.work(&mut run, &guard, settings, orphans, budget) => r,
        };
        match result {
            Ok(Progress::Done) => self.finish(run, &guard, End::Counters).await,
            Ok(Progress::Continue) => self.hand_over(run, &guard).await,
            // An error, so the platform retries this event: the retry finds the run held by its
            // newer holder (and does nothing), or its lease expired (and resumes it).
            Err(Stop::Lost) => Err(lost(&run.sync_id)),
            Err(Stop::Abort(reason)) => self.finish(run, &guard, End::Failed(reason)).await,
            Err(Stop::Halt(reason)) => self.finish(run, &guard, End::Halted(reason)).await,
            Err(Stop::Dependency(e)) => {
                error!(error = %e, "sync stopped by a failed dependency call");
                let reason = format!("stopped by a failed dependency call: {e}");
                self.finish(run, &guard, End::Failed(reason)).await
            }
        }
    }

    /// Closes the runs whose holder vanished (listed on the lease), then forgets them. What an
    /// orphan observed of the documents' shapes (saved with its checkpoints) is settled as its
    /// own end would have: its drift reported, the baseline folded forward (`settle_schema`).
    async fn close_orphans(
        &self,
        me: &str,
        guard: &FenceGuard,
        orphans: Vec<String>,
    ) -> Result<(), Stop> {
        let fence = guard.fence;
        let lost_or = |e: PortError| {
            if e.kind == PortErrorKind::Fenced {
                Stop::Lost
            } else {
                Stop::Dependency(e)
            }
        };
        for orphan in orphans {
            if orphan != me
                && let Some(mut r) = self
                    .deps
                    .runs
                    .get(&orphan)
                    .await
                    .map_err(Stop::Dependency)?
                && r.status.is_active()
            {
                r.status = RunStatus::Abandoned;
                r.completed_at = Some(self.deps.clock.now());
                r.error_message = Some(format!(
                    "its invocation stopped without finishing (killed or timed out) and its lease expired; closed by sync {me}"
                ));
                self.settle_schema(&mut r, guard)
                    .await
                    .map_err(|e| match e {
                        EngineError::LeaseLost { .. } => Stop::Lost,
                        other => Stop::Dependency(PortError::new(
                            format!("settle the schema drift of abandoned run {orphan}"),
                            PortErrorKind::Unavailable,
                            other.to_string(),
                        )),
                    })?;
                self.deps.runs.save(&r, fence).await.map_err(lost_or)?;
                warn!(abandoned = %orphan, "closed a run whose holder vanished");
                self.publish_drift(&r).await;
                // A schedule whose every run is killed never ends one badly by itself: the
                // run closing them counts them.
                if r.sync_type == SyncType::Scheduled {
                    self.auto_pause(&r).await;
                }
            }
            let forget = LeaseRequest::ForgetOrphan {
                owner: me.to_string(),
                fence,
                orphan,
            };
            match self.deps.lease.apply(&forget, self.cfg.lease_ttl).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(Stop::Lost),
                Err(e) => return Err(Stop::Dependency(e)),
            }
        }
        Ok(())
    }

    /// This invocation's share of the run.
    async fn work(
        &self,
        run: &mut SyncRun,
        guard: &Arc<FenceGuard>,
        settings: Result<Settings, String>,
        orphans: Vec<String>,
        budget: Budget,
    ) -> Result<Progress, Stop> {
        self.close_orphans(&run.sync_id, guard, orphans).await?;
        let settings = settings.map_err(Stop::Abort)?;
        let first = run.invocations == 0;
        let mut rcu = 0.0;
        let work = match &run.hotel_ids {
            Some(ids) => {
                let (mut found, usage) = self
                    .deps
                    .reader
                    .get_tracked(ids)
                    .await
                    .map_err(Stop::Dependency)?;
                rcu += usage.rcu;
                found.sort_by_key(|t| t.hotel_id);
                found.dedup_by_key(|t| t.hotel_id);
                if first {
                    run.total = found.len() as u64;
                }
                if let Some(c) = run.cursor {
                    found.retain(|t| t.hotel_id > c);
                }
                Work::Listed(found.into())
            }
            None => {
                if first {
                    // The catalogue counts: one small read, whatever the number of properties.
                    let stats = self.deps.stats.get().await.map_err(Stop::Dependency)?;
                    rcu += 1.0;
                    run.total = stats.counts.tracked();
                    run.stats_epoch = Some(stats.epoch);
                }
                Work::scanned(run.cursor)
            }
        };
        if first {
            run.requests_per_property = settings.requests_per_property();
            info!(
                total = run.total,
                dry_run = run.dry_run,
                sync_type = run.sync_type.as_str(),
                "sync started"
            );
        } else {
            info!(cursor = ?run.cursor, processed = run.counters.processed, "sync resumed");
        }
        run.status = RunStatus::Running;
        run.invocations += 1;
        run.counters.consumed_rcu += rcu;
        match self.deps.runs.save(run, guard.fence).await {
            Ok(u) => run.counters.consumed_wcu += u.wcu,
            Err(e) if e.kind == PortErrorKind::Fenced => return Err(Stop::Lost),
            Err(e) => return Err(Stop::Dependency(e)),
        }
        let gate = Gate::new(
            GateConfig {
                max_concurrent: settings.max_concurrent,
                rate_limit: settings.rate_limit,
                retries: settings.retry_attempts,
                retry_base: self.cfg.retry_base,
                max_retry_after: self.cfg.max_retry_after,
                stop_fetching: budget.stop_fetching,
            },
            self.deps.clock.clone(),
        );
        // What this run compares shapes with (the baseline before it, if it stored one).
        let baseline = self
            .deps
            .schemas
            .baseline()
            .await
            .map_err(Stop::Dependency)?;
        let base = baseline
            .map(|b| b.for_run(&run.sync_id).clone())
            .unwrap_or_default();
        let ctx = Arc::new(PropertyCtx {
            reader: self.deps.reader.clone(),
            writer: self.deps.writer.clone(),
            upstream: self.deps.upstream.clone(),
            clock: self.deps.clock.clone(),
            gate,
            guard: guard.clone(),
            facets: facets_for(&settings),
            sync_id: run.sync_id.clone(),
            dry_run: run.dry_run,
            touch_unchanged: self.cfg.touch_unchanged,
            retries: settings.retry_attempts,
            // Off for a dry run (it writes nothing), a subset (an operator named the ids) and a
            // forced run (an operator accepted the change).
            breaker: std::sync::Mutex::new(Breaker::new(
                settings.max_change_ratio,
                !run.dry_run && !run.force && run.hotel_ids.is_none(),
                &run.breaker,
            )),
            watch: Watch::new(settings.schema_policy, base, run.shape.clone()),
            part_bytes: self.cfg.part_bytes,
        });
        let batch_size = settings.batch_size.max(1) as usize;
        // Enough properties in flight to keep every concurrency slot busy across property
        // boundaries, and a whole batch ahead.
        let window = (settings.max_concurrent as usize).max(batch_size).max(2) * 2;
        let pipeline = Pipeline {
            ctx,
            runs: &self.deps.runs,
            stats: &self.deps.stats,
            batch_size,
            window,
            scan_page: self.cfg.scan_page,
            budget,
        };
        pipeline.run(run, work).await
    }

    pub(super) async fn release(&self, owner: &str, fence: u64) {
        let req = LeaseRequest::Release {
            owner: owner.to_string(),
            fence,
        };
        match self.deps.lease.apply(&req, self.cfg.lease_ttl).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => warn!("the lease was already taken over; nothing to release"),
            Err(e) => warn!(error = %e, "could not release the lease; it will expire"),
        }
    }

    /// Ends the run: `reason` = failed with it; `None` = by its counters. When the run cannot
    /// be saved closed, the lease is kept (an error: the platform's retry resumes the run once
    /// the lease expires, or the next sync closes it); releasing it could leave the run
    /// `running` for good.
    async fn finish(
        &self,
        mut run: SyncRun,
        guard: &FenceGuard,
        end: End,
    ) -> Result<Outcome, EngineError> {
        match &end {
            End::Failed(r) => {
                run.status = RunStatus::Failed;
                run.error_message = Some(r.clone());
            }
            End::Halted(r) => {
                run.status = RunStatus::Halted;
                run.error_message = Some(r.clone());
            }
            End::Counters => {
                run.status = run.final_status();
                if run.counters.failed > 0 && run.error_message.is_none() {
                    run.error_message = Some(format!(
                        "{} of {} properties failed; see failures",
                        run.counters.failed, run.total
                    ));
                }
            }
        }
        run.completed_at = Some(self.deps.clock.now());
        if !guard.ok() {
            return Err(lost(&run.sync_id));
        }
        self.settle_schema(&mut run, guard).await?;
        if !guard.ok() {
            return Err(lost(&run.sync_id));
        }
        match self.deps.runs.save(&run, guard.fence).await {
            Ok(_) => {}
            Err(e) if e.kind == PortErrorKind::Fenced => return Err(lost(&run.sync_id)),
            Err(e) => {
                // The save may have applied before the error: look before giving up.
                let saved = matches!(
                    self.deps.runs.get(&run.sync_id).await,
                    Ok(Some(r)) if r.status == run.status && r.completed_at == run.completed_at
                );
                if !saved {
                    error!(error = %e, "could not save the finished run; keeping the lease");
                    return Err(port(&run.sync_id)(e));
                }
            }
        }
        if end == End::Counters {
            self.recount(&run).await;
        }
        self.release(&run.sync_id, guard.fence).await;
        let detail_type = match run.status {
            RunStatus::Failed => "SyncFailed",
            RunStatus::Halted => "SyncHalted",
            _ => "SyncCompleted",
        };
        let event = RunEvent {
            detail_type,
            detail: report::run_summary(&run),
        };
        if let Err(e) = self.deps.events.publish(&event).await {
            warn!(error = %e, "could not publish {detail_type}");
        }
        self.publish_drift(&run).await;
        if self.cfg.emit_metrics {
            report::emit_metrics(&run);
        }
        if run.sync_type == SyncType::Scheduled && crate::domain::pause::ended_badly(&run) {
            self.auto_pause(&run).await;
        }
        info!(status = %run.status, total = run.total, updated = run.counters.updated, unchanged = run.counters.unchanged,
              failed = run.counters.failed, not_found = run.counters.not_found, document_writes = run.counters.document_writes,
              error = run.error_message.as_deref().unwrap_or(""), duration_s = run.duration_secs().unwrap_or(0), "sync finished");
        Ok(Outcome::Finished(Box::new(run)))
    }

    /// A full run that ended by its counters knows every tracked property's status (its tally,
    /// exact across continuations): it replaces the catalogue counts, unless tracking changed
    /// while it ran. Still under the lease, so no other run's moves interleave. Best effort:
    /// the counts stay as maintained when it cannot.
    async fn recount(&self, run: &SyncRun) {
        let Some(epoch) = run.stats_epoch else {
            return;
        };
        if run.hotel_ids.is_some() || run.tally_unknown > 0 {
            return;
        }
        let runs = match self.deps.runs.count().await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "could not count the runs; counts not recounted");
                return;
            }
        };
        let now = self.deps.clock.now();
        match self
            .deps
            .stats
            .recount(&run.tally, runs, epoch, &run.sync_id, now)
            .await
        {
            Ok(true) => info!(
                tracked = run.tally.tracked(),
                runs, "catalogue counts recounted"
            ),
            Ok(false) => info!("tracking changed during the run; counts kept as maintained"),
            Err(e) => warn!(error = %e, "could not store the recount; counts kept as maintained"),
        }
    }

    /// Passes the run to a continuation (its checkpoint is saved). When the hand-over or the
    /// dispatch fails, an error: the platform retries this invocation's event, and the retry
    /// resumes the run once the handed-off lease expires (or sees the continuation working).
    async fn hand_over(&self, run: SyncRun, guard: &FenceGuard) -> Result<Outcome, EngineError> {
        let sync_id = run.sync_id.clone();
        if !guard.ok() {
            return Err(lost(&sync_id));
        }
        let req = LeaseRequest::HandOver {
            owner: sync_id.clone(),
            fence: guard.fence,
        };
        match self.deps.lease.apply(&req, self.cfg.lease_ttl).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(lost(&sync_id)),
            Err(e) => {
                // The hand-over may have applied before the error: look.
                let handed = matches!(
                    self.deps.lease.current().await,
                    Ok(Some(l)) if l.owner.as_deref() == Some(sync_id.as_str()) && l.fence == guard.fence && l.handoff
                );
                if !handed {
                    return Err(port(&sync_id)(e));
                }
            }
        }
        let next = SyncRequest::Resume {
            sync_id: sync_id.clone(),
            lease: Some(guard.fence),
        };
        let sent = (|| self.deps.dispatch.dispatch(&next))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(2),
            )
            .sleep(tokio::time::sleep)
            .await;
        if let Err(e) = sent {
            error!(error = %e, "could not dispatch the continuation; the platform's retry resumes the run");
            return Err(port(&sync_id)(e));
        }
        info!(
            processed = run.counters.processed,
            remaining = run.total.saturating_sub(run.counters.processed),
            "time budget reached; continuing in a new invocation"
        );
        Ok(Outcome::Continued {
            sync_id,
            processed: run.counters.processed,
        })
    }
}

/// How a run ends.
#[derive(Debug, PartialEq)]
enum End {
    /// By its counters: completed, or completed with errors.
    Counters,
    Failed(String),
    /// The circuit breaker tripped.
    Halted(String),
}

fn lost(sync_id: &str) -> EngineError {
    EngineError::LeaseLost {
        sync_id: sync_id.to_string(),
    }
}
