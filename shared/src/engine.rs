//! The sync engine (DESIGN §5): lease, read tracked records, fetch under a rate limit and a
//! concurrency cap with retries, compare by content hash, write only what changed, checkpoint
//! after every batch, hand over to a fresh invocation before the deadline, finish.

use crate::domain::document::{self, CanonicalDoc, Summary};
use crate::domain::lease::Acquired;
use crate::domain::run::{
    Change, MAX_PATHS, RunStatus, SyncRequest, SyncRun, SyncStatus, SyncType, Tracked,
};
use crate::domain::settings::Settings;
use crate::ports::*;
use backon::{ExponentialBuilder, Retryable};
use futures::stream::{self, StreamExt};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

pub const FACET_PROPERTY: &str = "property";

/// Everything the engine talks to.
#[derive(Clone)]
pub struct EngineDeps {
    pub props: Arc<dyn PropertyStore>,
    pub runs: Arc<dyn RunLog>,
    pub lease: Arc<dyn Lease>,
    pub upstream: Arc<dyn Upstream>,
    pub dispatch: Arc<dyn Dispatch>,
    pub events: Arc<dyn Events>,
    pub settings: Arc<dyn SettingsStore>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Settings defaults (env); the settings table overrides them per run.
    pub defaults: Settings,
    /// Cap on one invocation's work (SYNC_MAX_RUN_SECONDS).
    pub max_run: Duration,
    /// Stop this long before the deadline.
    pub margin: Duration,
    pub lease_ttl: Duration,
    /// Touch `last_synced` of unchanged properties (1 small write each) or write nothing.
    pub touch_unchanged: bool,
    /// First retry delay; doubles each attempt (with jitter).
    pub retry_base: Duration,
}

impl EngineConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        EngineConfig {
            defaults: c.settings,
            max_run: c.max_run,
            margin: c.deadline_margin,
            lease_ttl: c.lease_ttl,
            touch_unchanged: c.touch_unchanged,
            retry_base: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The run ended (any final status).
    Finished(Box<SyncRun>),
    /// Out of time: the cursor is saved and a resume was dispatched.
    Continued { sync_id: String, processed: u64 },
    /// Nothing was done (another sync holds the lease, or auto sync is off).
    Skipped { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("sync {sync_id}: {source}")]
    Port { sync_id: String, source: PortError },
    #[error("sync {0} does not exist")]
    UnknownRun(String),
}

enum Fetched {
    Doc(CanonicalDoc),
    NotFound,
    Failed(String),
    Unauthorized(String),
}

pub struct Engine {
    deps: EngineDeps,
    cfg: EngineConfig,
}

impl Engine {
    pub fn new(deps: EngineDeps, cfg: EngineConfig) -> Self {
        Engine { deps, cfg }
    }

    async fn effective_settings(&self) -> Settings {
        let mut s = self.cfg.defaults;
        match self.deps.settings.load().await {
            Ok(stored) => {
                let raw = stored.into_iter().map(|(k, v)| (k, v.value)).collect();
                s.overlay(&raw);
            }
            Err(e) => warn!(error = %e, "could not read stored settings; using defaults"),
        }
        s
    }

    /// Handles one sync function input. `deadline` is the Lambda deadline when known.
    pub async fn handle(
        &self,
        req: SyncRequest,
        deadline: Option<Instant>,
    ) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let budget_end = {
            let cap = started + self.cfg.max_run;
            // `cargo lambda watch` reports a deadline that has already passed: a deadline that
            // leaves no room for even the margin is not a real one, so only the cap applies.
            match deadline {
                Some(d) if d > started + self.cfg.margin => d.min(cap),
                Some(_) => {
                    warn!(
                        "ignoring an impossible invocation deadline; SYNC_MAX_RUN_SECONDS caps this invocation"
                    );
                    cap
                }
                None => cap,
            }
        };
        let settings = self.effective_settings().await;
        let now = self.deps.clock.now();
        let port = |sync_id: &str| {
            let sync_id = sync_id.to_string();
            move |source| EngineError::Port { sync_id, source }
        };

        let mut run = match &req {
            SyncRequest::Scheduled {} => {
                if !settings.enable_auto {
                    info!("scheduled sync skipped: sync_enable_auto is false");
                    return Ok(Outcome::Skipped {
                        reason: "automatic sync is disabled".into(),
                    });
                }
                let mut run = SyncRun::new(
                    crate::domain::run::new_sync_id(self.deps.clock.now_ms()),
                    SyncType::Scheduled,
                    now,
                );
                run.status = RunStatus::Running;
                run
            }
            SyncRequest::Manual {
                sync_id,
                hotel_ids,
                dry_run,
            } => match self.deps.runs.get(sync_id).await.map_err(port(sync_id))? {
                Some(r) if r.status.is_active() => r,
                Some(r) => {
                    return Ok(Outcome::Skipped {
                        reason: format!("sync {} already ended ({})", r.sync_id, r.status),
                    });
                }
                None => {
                    let mut r = SyncRun::new(sync_id.clone(), SyncType::Manual, now);
                    r.hotel_ids = hotel_ids.clone();
                    r.dry_run = *dry_run;
                    r
                }
            },
            SyncRequest::Resume { sync_id } => {
                match self.deps.runs.get(sync_id).await.map_err(port(sync_id))? {
                    Some(r) if r.status == RunStatus::Running => r,
                    Some(r) => {
                        return Ok(Outcome::Skipped {
                            reason: format!("sync {} is {}, not resumable", r.sync_id, r.status),
                        });
                    }
                    None => return Err(EngineError::UnknownRun(sync_id.clone())),
                }
            }
        };
        let sync_id = run.sync_id.clone();
        let span = tracing::info_span!("sync", sync_id = %sync_id);
        let _enter = span.enter();

        // 1. The lease.
        let fence = match self
            .deps
            .lease
            .acquire(&sync_id, self.cfg.lease_ttl)
            .await
            .map_err(port(&sync_id))?
        {
            Acquired::Granted { fence, took_over } => {
                if let Some(prev) = took_over {
                    self.abandon(&prev, &sync_id).await;
                }
                fence
            }
            Acquired::Held { owner, .. } => {
                let reason = format!("another sync ({owner}) is in progress");
                info!(holder = %owner, "sync not started: {reason}");
                if matches!(req, SyncRequest::Manual { .. })
                    && self.deps.runs.get(&sync_id).await.ok().flatten().is_some()
                {
                    run.status = RunStatus::Failed;
                    run.error_message = Some(reason.clone());
                    run.completed_at = Some(self.deps.clock.now());
                    let _ = self.deps.runs.save(&run).await;
                }
                return Ok(Outcome::Skipped { reason });
            }
        };

        let first_invocation = run.status != RunStatus::Running || run.invocations == 0;
        run.status = RunStatus::Running;
        run.invocations += 1;
        if first_invocation && !matches!(req, SyncRequest::Resume { .. }) {
            run.started_at = self.deps.clock.now();
            if self
                .deps
                .runs
                .get(&sync_id)
                .await
                .map_err(port(&sync_id))?
                .is_none()
            {
                self.deps.runs.create(&run).await.map_err(port(&sync_id))?;
            }
        }

        match self
            .run_locked(&mut run, fence, &settings, budget_end, first_invocation)
            .await
        {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => {
                // 7. Finish.
                let status = run.final_status();
                if run.counters.failed > 0 && run.error_message.is_none() {
                    run.error_message = Some(format!(
                        "{} of {} properties failed; see failures",
                        run.counters.failed, run.total
                    ));
                }
                Ok(Outcome::Finished(Box::new(
                    self.finish(&mut run, status, fence).await,
                )))
            }
            Err(source) => {
                // A dependency failed mid-run: close the run with the reason and free the lease
                // rather than leave it `running` until the lease expires.
                error!(error = %source, "sync stopped by a failed dependency call");
                run.error_message = Some(format!("stopped by a failed dependency call: {source}"));
                Ok(Outcome::Finished(Box::new(
                    self.finish(&mut run, RunStatus::Failed, fence).await,
                )))
            }
        }
    }

    /// Steps 2-6 under the lease. `Ok(None)`: all done, finish normally.
    async fn run_locked(
        &self,
        run: &mut SyncRun,
        fence: u64,
        settings: &Settings,
        budget_end: Instant,
        first_invocation: bool,
    ) -> Result<Option<Outcome>, PortError> {
        let sync_id = run.sync_id.clone();
        // 2. What to sync, in ascending id order after the cursor.
        let (mut todo, usage) = match &run.hotel_ids {
            None => self.deps.props.list_tracked().await,
            Some(ids) => self.deps.props.get_tracked(ids).await.map(|(found, u)| {
                let mut all = found;
                for id in ids {
                    if !all.iter().any(|t| t.hotel_id == *id) {
                        all.push(Tracked {
                            hotel_id: *id,
                            data_version: 0,
                            content_hash: None,
                        });
                    }
                }
                (all, u)
            }),
        }?;
        run.counters.consumed_rcu += usage.rcu;
        todo.sort_by_key(|t| t.hotel_id);
        todo.dedup_by_key(|t| t.hotel_id);
        if first_invocation {
            run.total = todo.len() as u64;
            info!(
                total = run.total,
                dry_run = run.dry_run,
                sync_type = run.sync_type.as_str(),
                "sync started"
            );
        } else {
            info!(cursor = ?run.cursor, processed = run.counters.processed, "sync resumed");
        }
        if let Some(c) = run.cursor {
            todo.retain(|t| t.hotel_id > c);
        }
        self.deps.runs.save(run).await?;

        let limiter = {
            let period = Duration::from_secs_f64(1.0 / settings.rate_limit);
            let quota =
                Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
            Arc::new(RateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)))
        };
        let requests = Arc::new(AtomicU64::new(0));
        let batch_size = settings.batch_size.max(1) as usize;

        // 3-5. Batches.
        let mut offset = 0;
        while offset < todo.len() {
            // Every invocation does at least one batch, so a continuation always makes progress.
            if offset > 0 && Instant::now() + self.cfg.margin >= budget_end {
                run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
                self.deps.runs.save(run).await?;
                let alive = self
                    .deps
                    .lease
                    .heartbeat(&sync_id, fence, self.cfg.lease_ttl)
                    .await?;
                if !alive {
                    warn!("lease lost before hand-over; stopping");
                    return Ok(Some(Outcome::Skipped {
                        reason: "lease lost".into(),
                    }));
                }
                info!(
                    processed = run.counters.processed,
                    remaining = todo.len() - offset,
                    "time budget reached; continuing in a new invocation"
                );
                self.deps
                    .dispatch
                    .dispatch(&SyncRequest::Resume {
                        sync_id: sync_id.clone(),
                    })
                    .await?;
                return Ok(Some(Outcome::Continued {
                    sync_id,
                    processed: run.counters.processed,
                }));
            }
            let end = (offset + batch_size).min(todo.len());
            let batch = &todo[offset..end];
            offset = end;

            let fetched = self.fetch_batch(batch, settings, &limiter, &requests).await;
            if let Some(reason) = fetched.iter().find_map(|(_, f)| match f {
                Fetched::Unauthorized(r) => Some(r.clone()),
                _ => None,
            }) {
                error!(error = %reason, "upstream refused our credentials; aborting the run without writing");
                run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
                run.error_message = Some(reason);
                return Ok(Some(Outcome::Finished(Box::new(
                    self.finish(run, RunStatus::Failed, fence).await,
                ))));
            }
            self.apply_batch(run, fetched).await?;
            run.cursor = batch.last().map(|t| t.hotel_id);
            run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
            let u = self.deps.runs.save(run).await?;
            run.counters.consumed_wcu += u.wcu;
            let alive = self
                .deps
                .lease
                .heartbeat(&sync_id, fence, self.cfg.lease_ttl)
                .await?;
            if !alive {
                warn!("lease lost (another run took over); stopping without finishing");
                return Ok(Some(Outcome::Skipped {
                    reason: "lease lost".into(),
                }));
            }
            info!(
                processed = run.counters.processed,
                total = run.total,
                updated = run.counters.updated,
                failed = run.counters.failed,
                "batch done"
            );
        }

        Ok(None)
    }

    async fn fetch_batch(
        &self,
        batch: &[Tracked],
        settings: &Settings,
        limiter: &Arc<
            RateLimiter<
                governor::state::NotKeyed,
                governor::state::InMemoryState,
                governor::clock::DefaultClock,
            >,
        >,
        requests: &Arc<AtomicU64>,
    ) -> Vec<(Tracked, Fetched)> {
        let retries = settings.retry_attempts as usize;
        let base = self.cfg.retry_base;
        stream::iter(batch.iter().cloned())
            .map(|t| {
                let upstream = self.deps.upstream.clone();
                let limiter = limiter.clone();
                let requests = requests.clone();
                async move {
                    let id = t.hotel_id;
                    let backoff = ExponentialBuilder::default()
                        .with_min_delay(base)
                        .with_max_delay(Duration::from_secs(30))
                        .with_max_times(retries)
                        .with_jitter();
                    let result = (|| async {
                        limiter.until_ready().await;
                        requests.fetch_add(1, Ordering::Relaxed);
                        upstream.fetch_property(id).await
                    })
                    .retry(backoff)
                    .sleep(tokio::time::sleep)
                    .when(|e: &FetchError| e.is_retryable())
                    .adjust(|e: &FetchError, d| e.retry_after().map(Some).unwrap_or(d))
                    .notify(|e: &FetchError, d| warn!(hotel_id = id, error = %e, retry_in_ms = d.as_millis() as u64, "retrying upstream call"))
                    .await;
                    let f = match result {
                        Ok(v) => {
                            if v.is_object() {
                                Fetched::Doc(CanonicalDoc::new(v))
                            } else {
                                Fetched::Failed("malformed upstream body: expected a JSON object".into())
                            }
                        }
                        Err(FetchError::NotFound) => Fetched::NotFound,
                        Err(e @ FetchError::Unauthorized(_)) => Fetched::Unauthorized(e.to_string()),
                        Err(e) if e.is_retryable() => Fetched::Failed(format!("{e} (after {} retries)", retries)),
                        Err(e) => Fetched::Failed(e.to_string()),
                    };
                    (t, f)
                }
            })
            .buffer_unordered(settings.max_concurrent.max(1) as usize)
            .collect()
            .await
    }

    async fn apply_batch(
        &self,
        run: &mut SyncRun,
        fetched: Vec<(Tracked, Fetched)>,
    ) -> PortResult<()> {
        let now = self.deps.clock.now();
        let sync_id = run.sync_id.clone();
        let dry = run.dry_run;
        let changed_ids: Vec<i64> = fetched
            .iter()
            .filter_map(|(t, f)| match f {
                Fetched::Doc(d)
                    if t.content_hash.as_deref() != Some(d.hash.as_str()) && t.data_version > 0 =>
                {
                    Some(t.hotel_id)
                }
                _ => None,
            })
            .collect();
        let (old_docs, usage) = if changed_ids.is_empty() {
            Default::default()
        } else {
            self.deps
                .props
                .get_documents(&changed_ids, FACET_PROPERTY)
                .await?
        };
        run.counters.consumed_rcu += usage.rcu;

        enum Op {
            Write(DocumentWrite),
            Touch(i64),
            Mark(RecordMark),
        }
        let mut ops = Vec::new();
        for (t, f) in fetched {
            run.counters.processed += 1;
            let id = t.hotel_id;
            match f {
                Fetched::Doc(doc) => {
                    if t.content_hash.as_deref() == Some(doc.hash.as_str()) {
                        run.counters.unchanged += 1;
                        if !dry && self.cfg.touch_unchanged {
                            ops.push(Op::Touch(id));
                        }
                        continue;
                    }
                    let (paths, truncated) = match old_docs
                        .get(&id)
                        .map(|d| document::decompress(&d.compressed))
                    {
                        Some(Ok(bytes)) => {
                            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                                Ok(old) => document::changed_paths(&old, &doc.value, MAX_PATHS),
                                Err(_) => (vec!["$".into()], false),
                            }
                        }
                        _ => (vec!["$".into()], false),
                    };
                    info!(
                        hotel_id = id,
                        changed = paths.len(),
                        first_sync = t.data_version == 0,
                        "content changed"
                    );
                    if dry {
                        run.counters.updated += 1;
                        run.record_change(Change {
                            hotel_id: id,
                            paths,
                            paths_truncated: truncated,
                        });
                        continue;
                    }
                    let compressed = match document::compress(&doc.bytes) {
                        Ok(z) => z,
                        Err(e) => {
                            run.counters.failed += 1;
                            run.record_failure(id, format!("could not compress the document: {e}"));
                            continue;
                        }
                    };
                    if compressed.len() > document::MAX_COMPRESSED_BYTES {
                        let reason = format!(
                            "document is {} bytes after compression, over DynamoDB's 400 KB item limit; previous version kept",
                            compressed.len()
                        );
                        warn!(hotel_id = id, "{reason}");
                        run.counters.failed += 1;
                        run.record_failure(id, reason.clone());
                        ops.push(Op::Mark(RecordMark {
                            hotel_id: id,
                            status: SyncStatus::Failed,
                            error: Some(reason),
                            sync_id: sync_id.clone(),
                            now,
                        }));
                        continue;
                    }
                    run.record_change(Change {
                        hotel_id: id,
                        paths,
                        paths_truncated: truncated,
                    });
                    ops.push(Op::Write(DocumentWrite {
                        hotel_id: id,
                        facet: FACET_PROPERTY.into(),
                        expected_version: t.data_version,
                        compressed,
                        content_hash: doc.hash.clone(),
                        summary: Summary::of(&doc.value),
                        sync_id: sync_id.clone(),
                        now,
                    }));
                }
                Fetched::NotFound => {
                    run.counters.not_found += 1;
                    info!(hotel_id = id, "not found upstream; data kept");
                    if !dry {
                        ops.push(Op::Mark(RecordMark {
                            hotel_id: id,
                            status: SyncStatus::NotFound,
                            error: Some("not found upstream (404)".into()),
                            sync_id: sync_id.clone(),
                            now,
                        }));
                    }
                }
                Fetched::Failed(reason) | Fetched::Unauthorized(reason) => {
                    warn!(hotel_id = id, error = %reason, "property failed; previous data kept");
                    run.counters.failed += 1;
                    run.record_failure(id, reason.clone());
                    if !dry {
                        ops.push(Op::Mark(RecordMark {
                            hotel_id: id,
                            status: SyncStatus::Failed,
                            error: Some(reason),
                            sync_id: sync_id.clone(),
                            now,
                        }));
                    }
                }
            }
        }

        let props = self.deps.props.clone();
        let results: Vec<(i64, bool, PortResult<Usage>)> = stream::iter(ops)
            .map(|op| {
                let props = props.clone();
                let sync_id = sync_id.clone();
                async move {
                    match op {
                        Op::Write(w) => (w.hotel_id, true, props.write_document(&w).await),
                        Op::Touch(id) => (id, false, props.touch(id, &sync_id, now).await),
                        Op::Mark(m) => (m.hotel_id, false, props.mark(&m).await),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (id, is_write, r) in results {
            match r {
                Ok(u) => {
                    run.counters.consumed_rcu += u.rcu;
                    run.counters.consumed_wcu += u.wcu;
                    if is_write {
                        run.counters.updated += 1;
                        run.counters.document_writes += 1;
                    }
                }
                Err(e) if e.kind == PortErrorKind::Conflict => {
                    run.counters.failed += 1;
                    run.changes.retain(|c| c.hotel_id != id);
                    run.record_failure(id, format!("document changed concurrently (data_version moved); will retry next sync: {e}"));
                }
                Err(e) if e.kind == PortErrorKind::Unavailable => return Err(e),
                Err(e) => {
                    run.counters.failed += 1;
                    run.changes.retain(|c| c.hotel_id != id);
                    run.record_failure(id, format!("store write failed: {e}"));
                }
            }
        }
        Ok(())
    }

    async fn abandon(&self, prev: &str, by: &str) {
        match self.deps.runs.get(prev).await {
            Ok(Some(mut r)) if r.status.is_active() => {
                r.status = RunStatus::Abandoned;
                r.completed_at = Some(self.deps.clock.now());
                r.error_message = Some(format!(
                    "lease expired without completion (process killed or timed out); taken over by sync {by}"
                ));
                match self.deps.runs.save(&r).await {
                    Ok(_) => warn!(abandoned = %prev, "marked an expired run abandoned"),
                    Err(e) => {
                        warn!(abandoned = %prev, error = %e, "could not mark an expired run abandoned")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => warn!(abandoned = %prev, error = %e, "could not read an expired run"),
        }
    }

    async fn finish(&self, run: &mut SyncRun, status: RunStatus, fence: u64) -> SyncRun {
        run.status = status;
        run.completed_at = Some(self.deps.clock.now());
        if let Err(e) = self.deps.runs.save(run).await {
            error!(error = %e, "could not save the finished run");
        }
        if let Err(e) = self.deps.lease.release(&run.sync_id, fence).await {
            warn!(error = %e, "could not release the lease; it will expire");
        }
        let detail_type = if status == RunStatus::Failed {
            "SyncFailed"
        } else {
            "SyncCompleted"
        };
        let detail = run_summary(run);
        if let Err(e) = self
            .deps
            .events
            .publish(&RunEvent {
                detail_type,
                detail: detail.clone(),
            })
            .await
        {
            warn!(error = %e, "could not publish {detail_type}");
        }
        emit_metrics(run);
        info!(status = %status, total = run.total, updated = run.counters.updated, unchanged = run.counters.unchanged,
              failed = run.counters.failed, not_found = run.counters.not_found, document_writes = run.counters.document_writes,
              duration_s = run.duration_secs().unwrap_or(0), "sync finished");
        run.clone()
    }
}

/// The event detail / summary of a run.
pub fn run_summary(run: &SyncRun) -> serde_json::Value {
    serde_json::json!({
        "sync_id": run.sync_id,
        "sync_type": run.sync_type.as_str(),
        "status": run.status.as_str(),
        "dry_run": run.dry_run,
        "started_at": run.started_at.rfc3339(),
        "completed_at": run.completed_at.map(|t| t.rfc3339()),
        "duration_seconds": run.duration_secs(),
        "total_properties": run.total,
        "updated_properties": run.counters.updated,
        "unchanged_properties": run.counters.unchanged,
        "failed_properties": run.counters.failed,
        "not_found_properties": run.counters.not_found,
        "error_message": run.error_message,
    })
}

/// One CloudWatch Embedded Metric Format line on stdout.
pub fn emf_line(run: &SyncRun, timestamp_ms: u64) -> String {
    let total = run.total.max(1) as f64;
    let success =
        (run.counters.processed.saturating_sub(run.counters.failed)) as f64 / total * 100.0;
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "CupidSync",
                "Dimensions": [["SyncType"]],
                "Metrics": [
                    {"Name": "TotalProperties", "Unit": "Count"},
                    {"Name": "UpdatedProperties", "Unit": "Count"},
                    {"Name": "UnchangedProperties", "Unit": "Count"},
                    {"Name": "FailedProperties", "Unit": "Count"},
                    {"Name": "SyncDuration", "Unit": "Seconds"},
                    {"Name": "SuccessRate", "Unit": "Percent"},
                    {"Name": "SyncFailed", "Unit": "Count"}
                ]
            }]
        },
        "SyncType": run.sync_type.as_str(),
        "sync_id": run.sync_id,
        "TotalProperties": run.total,
        "UpdatedProperties": run.counters.updated,
        "UnchangedProperties": run.counters.unchanged,
        "FailedProperties": run.counters.failed,
        "SyncDuration": run.duration_secs().unwrap_or(0),
        "SuccessRate": if run.status == RunStatus::Failed { 0.0 } else { success.min(100.0) },
        "SyncFailed": u8::from(run.status == RunStatus::Failed),
    })
    .to_string()
}

fn emit_metrics(run: &SyncRun) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    println!("{}", emf_line(run, ms));
}
