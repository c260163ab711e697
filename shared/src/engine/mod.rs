//! The sync engine. One invocation: attach to a run through the lease (a duplicate delivery does
//! nothing), close runs whose holder vanished, work on the run's properties under a heartbeat,
//! then finish the run or hand it to a continuation before the time budget runs out.
//!
//! - `attach`: which run an input names, and the lease for it (duplicates do nothing)
//! - `lifecycle`: driving an invocation, finishing, handing over, closing orphans
//! - `fence`: the lease guard (heartbeat timer, local expiry)
//! - `pipeline`: reading properties, tasks, checkpoints, the time budget
//! - `property`: one property — fetch, decide (`domain::decide`), diff, fenced writes
//! - `gate`: concurrency, rate limit, bounded retries
//! - `report`: the run's event and metrics
//! - `schema`: schema drift when a run ends (`domain::shape`)

mod attach;
mod fence;
mod gate;
mod lifecycle;
mod pause;
mod pipeline;
mod property;
mod report;
mod schema;
mod write;

pub use pipeline::SCAN_PAGE;
pub use report::{emf_line, run_summary};

use crate::domain::run::{SyncRequest, SyncRun};
use crate::domain::settings::Settings;
use crate::ports::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Everything the engine talks to.
#[derive(Clone)]
pub struct EngineDeps {
    pub reader: Arc<dyn PropertyReader>,
    pub writer: Arc<dyn PropertyWriter>,
    pub runs: Arc<dyn RunLog>,
    pub stats: Arc<dyn Stats>,
    /// The schema baseline (`domain::shape`).
    pub schemas: Arc<dyn SchemaStore>,
    pub lease: Arc<dyn Lease>,
    pub upstream: Arc<dyn Upstream>,
    pub dispatch: Arc<dyn Dispatch>,
    pub events: Arc<dyn Events>,
    pub settings: Arc<dyn SettingsStore>,
    /// The schedule, for auto-pause (`lifecycle::auto_pause`).
    pub schedule: Arc<dyn Schedule>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Settings defaults (env); the settings table overrides them per run.
    pub defaults: Settings,
    /// Cap on one invocation's work (SYNC_MAX_RUN_SECONDS).
    pub max_run: Duration,
    /// Kept before the end of the invocation's share: properties stop starting at
    /// `end - margin`, upstream attempts at `end - margin/2`, whatever is left is dropped at
    /// `end - margin/10`; then checkpoint and hand over.
    pub margin: Duration,
    pub lease_ttl: Duration,
    /// Touch `last_synced` of unchanged properties (1 small write each) or write nothing.
    pub touch_unchanged: bool,
    /// First retry delay; doubles each attempt (with jitter).
    pub retry_base: Duration,
    /// Retry-After is honoured up to this long.
    pub max_retry_after: Duration,
    /// Print CloudWatch EMF metrics on stdout when a run ends (off in tests and benchmarks).
    pub emit_metrics: bool,
    /// Records read per Scan page while walking the tracked properties.
    pub scan_page: usize,
    /// Compressed bytes per document item; larger documents are stored in parts.
    pub part_bytes: usize,
}

/// Retry-After is honoured up to this long; a longer ask counts as that long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl EngineConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        EngineConfig {
            defaults: c.settings.clone(),
            max_run: c.max_run,
            margin: c.deadline_margin,
            lease_ttl: c.lease_ttl,
            touch_unchanged: c.touch_unchanged,
            retry_base: Duration::from_millis(200),
            max_retry_after: MAX_RETRY_AFTER,
            emit_metrics: true,
            scan_page: SCAN_PAGE,
            part_bytes: crate::domain::document::PART_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The run ended (any final status).
    Finished(Box<SyncRun>),
    /// Out of time: the cursor is saved and a continuation was dispatched.
    Continued { sync_id: String, processed: u64 },
    /// Nothing was done: a duplicate delivery, a run held by a live invocation or already
    /// ended, automatic sync off, or the lease lost mid-way.
    Skipped { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A dependency failed where the run could not be closed or handed over safely (the store
    /// or dispatch is down): the lease is kept, and the platform's retry of the event resumes
    /// the run once the lease expires.
    #[error("sync {sync_id}: {source}")]
    Port { sync_id: String, source: PortError },
    /// The invocation lost its lease (a write was fenced out, or it could not renew in time)
    /// and stopped without further writes. The platform's retry finds the run held by its
    /// newer holder (and does nothing) or its lease expired (and resumes it).
    #[error("sync {sync_id}: the lease was lost; stopped without further writes")]
    LeaseLost { sync_id: String },
    /// The run's lease is held by an invocation of it that has stopped renewing, and does not
    /// expire within this invocation's budget: the platform's retry of this event resumes it.
    #[error("sync {sync_id}: its lease is held by a silent invocation; retry later to resume it")]
    HolderSilent { sync_id: String },
}

pub struct Engine {
    deps: EngineDeps,
    cfg: EngineConfig,
}

impl Engine {
    pub fn new(deps: EngineDeps, cfg: EngineConfig) -> Self {
        Engine { deps, cfg }
    }

    /// Handles one sync function input. `deadline` is the invocation's deadline when known.
    pub async fn handle(
        &self,
        req: SyncRequest,
        deadline: Option<Instant>,
    ) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let cap = started + self.cfg.max_run;
        // `cargo lambda watch` reports a deadline that has already passed: that one is not
        // real, so only the cap applies.
        let end = match deadline {
            Some(d) if d > started => d.min(cap),
            Some(_) => {
                tracing::warn!(
                    "ignoring an invocation deadline in the past; SYNC_MAX_RUN_SECONDS caps this invocation"
                );
                cap
            }
            None => cap,
        };
        // A deadline shorter than the configured margin leaves a proportional one.
        let margin = self.cfg.margin.min((end - started) / 3);
        self.invoke(req, pipeline::Budget::new(end, margin)).await
    }
}
