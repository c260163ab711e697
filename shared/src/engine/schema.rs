//! Schema drift at the end of a run (`domain::shape`): the run's drift against its baseline,
//! the baseline folded forward, and the `SchemaChanged` event.

use super::attach::port;
use super::{Engine, EngineError};
use crate::domain::drift::{self, Baseline};
use crate::domain::run::SyncRun;
use crate::ports::*;
use tracing::{info, warn};

impl Engine {
    /// Sets the run's drift against its baseline and, unless it is a dry run, stores the
    /// baseline with what the run observed (fenced by the run's token). Before the run's final
    /// save: a retried end compares with the same baseline (`Baseline::for_run`), so a drift is
    /// reported by one run. When the baseline cannot be read or stored the run is not closed
    /// (an error, as when its final save fails): its drift is never silently dropped.
    pub(super) async fn settle_schema(
        &self,
        run: &mut SyncRun,
        fence: u64,
    ) -> Result<(), EngineError> {
        if run.shape.is_empty() {
            return Ok(());
        }
        let stored = self
            .deps
            .schemas
            .baseline()
            .await
            .map_err(port(&run.sync_id))?;
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
                fence,
                self.deps.clock.now(),
            );
            match self.deps.schemas.save_baseline(&next).await {
                Ok(u) => run.counters.consumed_wcu += u.wcu,
                Err(e) if e.kind == PortErrorKind::Fenced => {
                    return Err(EngineError::LeaseLost {
                        sync_id: run.sync_id.clone(),
                    });
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

    /// Publishes `SchemaChanged` for a run that reported drift.
    pub(super) async fn publish_drift(&self, run: &SyncRun) {
        if run.drift.is_empty() {
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
