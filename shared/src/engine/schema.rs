//! Schema drift at the end of a run (`domain::shape`, `domain::drift`): the run's drift against
//! its baseline, the baseline folded forward, and the `SchemaChanged` event. Also for a run
//! closed as abandoned by the next one (its shapes are on its item, saved with checkpoints).

use super::attach::port;
use super::fence::FenceGuard;
use super::{Engine, EngineError};
use crate::domain::drift::{self, Baseline};
use crate::domain::run::{RunStatus, SyncRun};
use crate::ports::*;
use tracing::{error, info, warn};

impl Engine {
    /// Sets `run`'s drift against its baseline and, unless it is a dry run, stores the
    /// baseline with what the run observed, under `guard`'s token (the run's own, or that of
    /// the run closing it as abandoned). Before the run's final save: a retried end compares
    /// with the same baseline (`Baseline::for_run`), so a drift is reported by one run.
    ///
    /// - A halted run wrote none of what it would have changed: it reports and keeps nothing
    ///   (the run that stores the change reports it).
    /// - The store unavailable: an error, and the run is not closed (as when its final save
    ///   fails), so its drift is not silently dropped.
    /// - A baseline that does not decode, or cannot be stored as it is (too large for an
    ///   item): logged as an error and started afresh or left as it was; never a run that can
    ///   never end.
    pub(super) async fn settle_schema(
        &self,
        run: &mut SyncRun,
        guard: &FenceGuard,
    ) -> Result<(), EngineError> {
        if run.shape.is_empty() {
            return Ok(());
        }
        if run.status == RunStatus::Halted {
            run.shape.clear();
            return Ok(());
        }
        let stored = match self.deps.schemas.baseline().await {
            Ok(b) => b,
            Err(e) if e.kind == PortErrorKind::Invalid => {
                error!(error = %e, "the schema baseline does not decode; starting a new one");
                None
            }
            Err(e) => return Err(port(&run.sync_id)(e)),
        };
        let base = stored
            .as_ref()
            .map(|b| b.for_run(&run.sync_id).clone())
            .unwrap_or_default();
        run.drift = drift::report(&base, &run.shape);
        if !run.dry_run {
            let next = Baseline::after(
                &base,
                &run.shape,
                &run.sync_id,
                guard.fence,
                self.deps.clock.now(),
            );
            // One call per safety margin: the lease may have gone while reading.
            if !guard.ok() {
                return Err(EngineError::LeaseLost {
                    sync_id: run.sync_id.clone(),
                });
            }
            match self.deps.schemas.save_baseline(&next).await {
                Ok(u) => run.counters.consumed_wcu += u.wcu,
                Err(e) if e.kind == PortErrorKind::Fenced => {
                    return Err(EngineError::LeaseLost {
                        sync_id: run.sync_id.clone(),
                    });
                }
                Err(e) if e.kind == PortErrorKind::Invalid => {
                    error!(error = %e, "the schema baseline could not be stored; it stays as it was (this drift may be reported again)");
                }
                Err(e) => return Err(port(&run.sync_id)(e)),
            }
        }
        for d in &run.drift {
            warn!(
                facet = %d.facet,
                documents = d.documents,
                appeared = ?d.appeared.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                disappeared = ?d.disappeared.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                type_changed = ?d.type_changed.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                untracked = d.untracked,
                "schema drift"
            );
        }
        let new_kinds: Vec<&str> = run
            .shape
            .keys()
            .filter(|k| !base.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !new_kinds.is_empty() && !run.dry_run {
            info!(kinds = ?new_kinds, "schema baseline recorded for the first time");
        }
        run.shape.clear();
        Ok(())
    }

    /// Publishes `SchemaChanged` for a run that reported drift (best effort, like the run's
    /// own event: the run log keeps the drift).
    pub(super) async fn publish_drift(&self, run: &SyncRun) {
        // A dry run leaves the baseline as it was, so the next real run reports the same
        // drift: subscribers are told once, by that run (the dry run's log still shows it).
        if run.drift.is_empty() || run.dry_run {
            return;
        }
        let event = RunEvent {
            detail_type: "SchemaChanged",
            detail: serde_json::json!({
                "sync_id": run.sync_id,
                "dry_run": run.dry_run,
                "schema_drift": run.drift,
            }),
        };
        if let Err(e) = self.deps.events.publish(&event).await {
            warn!(error = %e, "could not publish SchemaChanged");
        }
    }
}
