//! The sync engine (DESIGN §5): lease, read tracked records, fetch under a rate limit and a
//! concurrency cap with retries, compare by content hash, write only what changed, checkpoint
//! after every batch, hand over to a fresh invocation before the deadline, finish.

use crate::domain::document::{self, CanonicalDoc, Summary};
use crate::domain::facet::{self, Facet, facets_for};
use crate::domain::lease::Acquired;
use crate::domain::run::{
    Change, FacetState, MAX_PATHS, RunStatus, SyncRequest, SyncRun, SyncStatus, SyncType, Tracked,
};
use crate::domain::settings::Settings;
use crate::ports::*;
use backon::{ExponentialBuilder, Retryable};
use futures::stream::{self, StreamExt};
use governor::{Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::ops::Not;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, error, info, warn};

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
    /// Print CloudWatch EMF metrics on stdout when a run ends (off in tests and benchmarks).
    pub emit_metrics: bool,
    /// Records read per Scan page while walking the tracked properties.
    pub scan_page: usize,
}

impl EngineConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        EngineConfig {
            defaults: c.settings.clone(),
            max_run: c.max_run,
            margin: c.deadline_margin,
            lease_ttl: c.lease_ttl,
            touch_unchanged: c.touch_unchanged,
            retry_base: Duration::from_millis(200),
            emit_metrics: true,
            scan_page: SCAN_PAGE,
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

/// What one batch did: counter deltas, failures and changes, merged into the run in order.
#[derive(Default)]
struct BatchOutcome {
    counters: crate::domain::run::Counters,
    failures: Vec<(i64, String)>,
    changes: Vec<Change>,
}

impl BatchOutcome {
    fn failure(&mut self, hotel_id: i64, reason: String) {
        self.failures.push((hotel_id, reason));
    }

    fn merge_into(self, run: &mut SyncRun) {
        let c = &mut run.counters;
        let d = self.counters;
        c.processed += d.processed;
        c.updated += d.updated;
        c.unchanged += d.unchanged;
        c.failed += d.failed;
        c.not_found += d.not_found;
        c.partial += d.partial;
        c.document_writes += d.document_writes;
        c.consumed_rcu += d.consumed_rcu;
        c.consumed_wcu += d.consumed_wcu;
        for (id, reason) in self.failures {
            run.record_failure(id, reason);
        }
        for change in self.changes {
            run.record_change(change);
        }
    }
}

/// One facet's outcome: the upstream call failed, or its body was canonicalised (or refused
/// as malformed, with the reason).
type FacetResult = Result<Result<Compared, String>, FetchError>;

/// A canonicalised facet compared with the stored hash, where it was fetched. Batches in
/// flight hold no parsed documents: an unchanged one is dropped at once, a changed one is kept
/// compressed as it will be stored (~10 KB instead of ~0.5 MB parsed), and parsed again only to
/// list the changed paths against a previous version.
struct Compared {
    /// The property facet's summary fields (for the small record).
    summary: Option<Summary>,
    /// `Some` when the content differs from the stored hash.
    changed: Option<Packed>,
}

/// A changed document, compressed.
struct Packed {
    hash: String,
    compressed: std::io::Result<Vec<u8>>,
}

impl Packed {
    fn of(doc: CanonicalDoc) -> Self {
        Packed {
            compressed: document::compress(&doc.bytes),
            hash: doc.hash,
        }
    }

    /// The document again, for the diff.
    fn value(&self) -> Option<serde_json::Value> {
        let z = self.compressed.as_ref().ok()?;
        serde_json::from_slice(&document::decompress(z).ok()?).ok()
    }
}

struct PropertyFetch {
    tracked: Tracked,
    results: Vec<(Facet, FacetResult)>,
}

type PendingWrites<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = PortResult<BatchOutcome>> + Send + 'a>>;

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
>;

/// Records read per Scan page while a sync walks the tracked properties (< 1 MB of records).
pub const SCAN_PAGE: usize = 1000;

/// Where a run's properties come from.
enum Work {
    /// Requested ids, ascending, already read.
    Listed(VecDeque<Tracked>),
    /// Every tracked record, read lazily one Scan page at a time, starting after the run's
    /// cursor (the last id of the last checkpointed batch, in scan order). The next page is
    /// read ahead while this one is worked on, so the fetch pipeline never waits on the Scan.
    Scanned {
        buffer: VecDeque<Tracked>,
        /// Where the next page starts; `None` before the first page means "from the start".
        after: Option<i64>,
        /// The page being read ahead. Never aborted mid-call: a store call cut off after its
        /// connection opened leaves an idle connection behind, which stalls a one-request-at-
        /// a-time local store (moto_serial.py) until it times out.
        ahead: Option<tokio::task::JoinHandle<PortResult<TrackedPage>>>,
        done: bool,
    },
}

impl Work {
    fn scanned(cursor: Option<i64>) -> Self {
        Work::Scanned {
            buffer: VecDeque::new(),
            after: cursor,
            ahead: None,
            done: false,
        }
    }

    /// The next batch of at most `n` properties; empty when there is no more.
    async fn next_batch(
        &mut self,
        props: &Arc<dyn PropertyStore>,
        n: usize,
        page_size: usize,
        rcu: &mut f64,
    ) -> PortResult<Vec<Tracked>> {
        match self {
            Work::Listed(all) => Ok(all.drain(..n.min(all.len())).collect()),
            Work::Scanned {
                buffer,
                after,
                ahead,
                done,
            } => {
                let read = |after: Option<i64>| {
                    let props = props.clone();
                    async move { props.scan_tracked(after, page_size.max(1)).await }
                };
                while buffer.len() < n && !*done {
                    let page = match ahead.take() {
                        Some(h) => h
                            .await
                            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?,
                        None => read(*after).await?,
                    };
                    *rcu += page.usage.rcu;
                    buffer.extend(page.items);
                    *after = page.next;
                    *done = page.next.is_none();
                    if !*done {
                        *ahead = Some(tokio::spawn(
                            read(*after).instrument(tracing::Span::current()),
                        ));
                    }
                }
                Ok(buffer.drain(..n.min(buffer.len())).collect())
            }
        }
    }

    /// Whether a later invocation could still find work (false only when known to be done).
    fn may_have_more(&self) -> bool {
        match self {
            Work::Listed(all) => !all.is_empty(),
            Work::Scanned { buffer, done, .. } => !buffer.is_empty() || !*done,
        }
    }
}

/// What every upstream request of a run shares.
#[derive(Clone)]
struct Gate {
    permits: Arc<Semaphore>,
    limiter: Arc<Limiter>,
    requests: Arc<AtomicU64>,
    retries: usize,
    /// Set by the first 401/403: requests not yet sent are not sent (the run aborts).
    refused: Arc<std::sync::OnceLock<u16>>,
}

/// A batch whose upstream requests are running.
struct Fetching {
    batch: Vec<Tracked>,
    tasks: JoinSet<(usize, Facet, FacetResult)>,
}

impl Fetching {
    /// Waits for every request of the batch; results per property in `facets` order.
    async fn collect(mut self, facets: &[Facet], retries: usize) -> Vec<PropertyFetch> {
        let mut out: Vec<PropertyFetch> = self
            .batch
            .into_iter()
            .map(|tracked| PropertyFetch {
                tracked,
                results: Vec::new(),
            })
            .collect();
        while let Some(joined) = self.tasks.join_next().await {
            // A request task only ends early by panicking (a bug): surface it as one.
            let (i, facet, r) =
                joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            let r = r.map_err(|e| {
                if e.is_retryable() && retries > 0 {
                    FetchError::Transport(format!("{e} (after {retries} retries)"))
                } else {
                    e
                }
            });
            out[i].results.push((facet, r));
        }
        for p in &mut out {
            p.results
                .sort_by_key(|(f, _)| facets.iter().position(|x| x == f));
        }
        out
    }
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
        let mut s = self.cfg.defaults.clone();
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
        // 2. What to sync: the requested ids (ascending, after the cursor), or every tracked
        // record, read page by page in the store's scan order from the cursor on.
        let mut work = match &run.hotel_ids {
            Some(ids) => {
                let (found, usage) = self.deps.props.get_tracked(ids).await?;
                run.counters.consumed_rcu += usage.rcu;
                let mut all = found;
                for id in ids {
                    if !all.iter().any(|t| t.hotel_id == *id) {
                        all.push(Tracked::new(*id));
                    }
                }
                all.sort_by_key(|t| t.hotel_id);
                all.dedup_by_key(|t| t.hotel_id);
                if let Some(c) = run.cursor {
                    all.retain(|t| t.hotel_id > c);
                }
                Work::Listed(all.into())
            }
            None => Work::scanned(run.cursor),
        };
        if first_invocation {
            run.total = match &work {
                Work::Listed(all) => all.len() as u64,
                Work::Scanned { .. } => {
                    let (count, usage) = self.deps.props.count_tracked().await?;
                    run.counters.consumed_rcu += usage.rcu;
                    count
                }
            };
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
        self.deps.runs.save(run).await?;

        let limiter = {
            let period = Duration::from_secs_f64(1.0 / settings.rate_limit);
            let quota =
                Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
            Arc::new(RateLimiter::direct(quota.allow_burst(NonZeroU32::MIN)))
        };
        let requests = Arc::new(AtomicU64::new(0));
        let gate = Gate {
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1) as usize)),
            limiter,
            requests: requests.clone(),
            retries: settings.retry_attempts as usize,
            refused: Arc::default(),
        };
        let batch_size = settings.batch_size.max(1) as usize;
        let facets = facets_for(settings);

        // 3-5. Batches, pipelined two ways: batch k+1's requests start while batch k's last
        // ones finish (they share the concurrency permits, so no slot idles at a batch
        // boundary), and batch k's writes overlap the fetching of k+1 (the rate limiter never
        // idles while DynamoDB works). Batch k's checkpoint (cursor, counters) is saved only
        // after its writes are done. Every invocation starts at least one batch, so a
        // continuation always makes progress.
        let mut pending: Option<(i64, PendingWrites<'_>)> = None;
        // Batches fetching ahead: enough queued requests to keep every permit busy.
        let per_batch = batch_size * facets.len().max(1);
        let depth = 1 + (settings.max_concurrent.max(1) as usize).div_ceil(per_batch);
        let mut fetching: VecDeque<Fetching> = VecDeque::with_capacity(depth);
        let mut out_of_time = false;
        // Capacity read while walking the records, added to the run between checkpoints.
        let mut scan_rcu = 0.0;
        loop {
            if !out_of_time {
                self.top_up(
                    &mut fetching,
                    depth,
                    &mut work,
                    batch_size,
                    &facets,
                    &gate,
                    &mut scan_rcu,
                )
                .await?;
            }
            run.counters.consumed_rcu += std::mem::take(&mut scan_rcu);
            let Some(current) = fetching.pop_front() else {
                if let Some((last, writes)) = pending.take() {
                    let outcome = writes.await?;
                    if let Some(stop) = self
                        .checkpoint(run, outcome, last, fence, &requests)
                        .await?
                    {
                        return Ok(Some(stop));
                    }
                }
                if !out_of_time || !work.may_have_more() {
                    break;
                }
                run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
                self.deps.runs.save(run).await?;
                info!(
                    processed = run.counters.processed,
                    remaining = run.total.saturating_sub(run.counters.processed),
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
            };
            // Batches already fetching finish; no new one starts once the budget is spent.
            out_of_time = Instant::now() + self.cfg.margin >= budget_end;

            let fetch = current.collect(&facets, gate.retries);
            let fetched = match pending.take() {
                Some((last, writes)) => {
                    // Batch k's fetch and batch k-1's writes + checkpoint run together. When
                    // the fetch ends first, the next batches start at once: a checkpoint that
                    // waits on the store must not leave concurrency slots idle.
                    let checkpointed = async {
                        let outcome = writes.await?;
                        self.checkpoint(run, outcome, last, fence, &requests).await
                    };
                    tokio::pin!(fetch, checkpointed);
                    let mut fetched = None;
                    let stop = loop {
                        tokio::select! {
                            f = &mut fetch, if fetched.is_none() => {
                                fetched = Some(f);
                                if !out_of_time {
                                    self.top_up(&mut fetching, depth, &mut work, batch_size, &facets, &gate, &mut scan_rcu)
                                        .await?;
                                }
                            }
                            stop = &mut checkpointed => break stop,
                        }
                    };
                    if let Some(stop) = stop? {
                        return Ok(Some(stop));
                    }
                    match fetched {
                        Some(f) => f,
                        None => fetch.await,
                    }
                }
                None => fetch.await,
            };
            if let Some(reason) =
                fetched
                    .iter()
                    .flat_map(|p| p.results.iter())
                    .find_map(|(_, r)| match r {
                        Err(e @ FetchError::Unauthorized(_)) => Some(e.to_string()),
                        _ => None,
                    })
            {
                // Returning drops the next batch's fetches (their tasks are aborted).
                error!(error = %reason, "upstream refused our credentials; aborting the run without writing");
                run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
                run.error_message = Some(reason);
                return Ok(Some(Outcome::Finished(Box::new(
                    self.finish(run, RunStatus::Failed, fence).await,
                ))));
            }
            let last = fetched
                .last()
                .map(|p| p.tracked.hotel_id)
                .unwrap_or_default();
            pending = Some((
                last,
                Box::pin(self.apply_batch(sync_id.clone(), run.dry_run, fetched)),
            ));
        }

        Ok(None)
    }

    /// Merges a finished batch into the run, saves the checkpoint and heartbeats the lease.
    /// `Some` when the run must stop (the lease was taken over).
    async fn checkpoint(
        &self,
        run: &mut SyncRun,
        outcome: BatchOutcome,
        last: i64,
        fence: u64,
        requests: &AtomicU64,
    ) -> PortResult<Option<Outcome>> {
        outcome.merge_into(run);
        run.cursor = Some(last);
        run.counters.upstream_requests += requests.swap(0, Ordering::Relaxed);
        let u = self.deps.runs.save(run).await?;
        run.counters.consumed_wcu += u.wcu;
        if !self
            .deps
            .lease
            .heartbeat(&run.sync_id, fence, self.cfg.lease_ttl)
            .await?
        {
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
        Ok(None)
    }

    /// Starts batches until `depth` are fetching (or there is no more work).
    #[allow(clippy::too_many_arguments)]
    async fn top_up(
        &self,
        fetching: &mut VecDeque<Fetching>,
        depth: usize,
        work: &mut Work,
        batch_size: usize,
        facets: &[Facet],
        gate: &Gate,
        rcu: &mut f64,
    ) -> PortResult<()> {
        while fetching.len() < depth {
            match self.start_next(work, batch_size, facets, gate, rcu).await? {
                Some(f) => fetching.push_back(f),
                None => break,
            }
        }
        Ok(())
    }

    /// Reads the next batch and starts its upstream requests; `None` when there is no more.
    async fn start_next(
        &self,
        work: &mut Work,
        batch_size: usize,
        facets: &[Facet],
        gate: &Gate,
        rcu: &mut f64,
    ) -> PortResult<Option<Fetching>> {
        let batch = work
            .next_batch(&self.deps.props, batch_size, self.cfg.scan_page, rcu)
            .await?;
        if batch.is_empty() {
            return Ok(None);
        }
        // Every facet request of the batch is its own task, under the run's rate limit and
        // concurrency permits (granted in request order).
        let mut tasks = JoinSet::new();
        for (i, t) in batch.iter().enumerate() {
            for facet in facets {
                let (id, facet) = (t.hotel_id, facet.clone());
                let known = t.hash(&facet.key()).map(str::to_string);
                let upstream = self.deps.upstream.clone();
                let gate = gate.clone();
                let base = self.cfg.retry_base;
                tasks.spawn(
                    async move {
                        // The semaphore is never closed.
                        let _permit = gate.permits.acquire_owned().await.ok();
                        let backoff = ExponentialBuilder::default()
                            .with_min_delay(base)
                            .with_max_delay(Duration::from_secs(30))
                            .with_max_times(gate.retries)
                            .with_jitter();
                        let key = facet.key();
                        let result = (|| async {
                            gate.limiter.until_ready().await;
                            if let Some(reason) = gate.refused.get() {
                                return Err(FetchError::Unauthorized(*reason));
                            }
                            gate.requests.fetch_add(1, Ordering::Relaxed);
                            let r = upstream.fetch(id, &facet).await;
                            if let Err(FetchError::Unauthorized(reason)) = &r {
                                let _ = gate.refused.set(*reason);
                            }
                            r
                        })
                        .retry(backoff)
                        .sleep(tokio::time::sleep)
                        .when(|e: &FetchError| e.is_retryable())
                        .adjust(|e: &FetchError, d| e.retry_after().map(Some).unwrap_or(d))
                        .notify(|e: &FetchError, d| {
                            warn!(hotel_id = id, facet = %key, error = %e, retry_in_ms = d.as_millis() as u64, "retrying upstream call")
                        })
                        .await;
                        // Parsing is done; canonicalising and hashing here too spreads the CPU
                        // work over the runtime's threads and overlaps it with other requests.
                        let result = result.map(|v| {
                            facet.canonical(v).map(|doc| Compared {
                                summary: (facet == Facet::Property)
                                    .then(|| Summary::of(&doc.value)),
                                changed: (known.as_deref() != Some(doc.hash.as_str()))
                                    .then(|| Packed::of(doc)),
                            })
                        });
                        (i, facet, result)
                    }
                    .instrument(tracing::Span::current()),
                );
            }
        }
        Ok(Some(Fetching { batch, tasks }))
    }

    /// Decides and writes one batch. Returns what happened instead of touching the run, so the
    /// writes of one batch can overlap the fetching of the next.
    async fn apply_batch(
        &self,
        sync_id: String,
        dry: bool,
        fetched: Vec<PropertyFetch>,
    ) -> PortResult<BatchOutcome> {
        let now = self.deps.clock.now();
        let mut run = BatchOutcome::default();

        // 1. Decide per property and facet.
        struct Decided {
            tracked: Tracked,
            changed: Vec<(Facet, Packed)>,
            facet_failures: Vec<(String, String)>,
            summary: Option<Summary>,
        }
        let mut decided: Vec<Decided> = Vec::new();
        let mut marks: Vec<RecordMark> = Vec::new();
        for pf in fetched {
            run.counters.processed += 1;
            let id = pf.tracked.hotel_id;
            let mut changed = Vec::new();
            let mut facet_failures = Vec::new();
            let mut property_failed: Option<String> = None;
            let mut not_found = false;
            let mut summary = None;
            for (facet, result) in pf.results {
                let key = facet.key();
                match result {
                    Ok(Ok(compared)) => {
                        if compared.summary.is_some() {
                            summary = compared.summary;
                        }
                        if let Some(doc) = compared.changed {
                            changed.push((facet, doc));
                        }
                    }
                    Ok(Err(reason)) if facet == Facet::Property => property_failed = Some(reason),
                    Ok(Err(reason)) => facet_failures.push((key, reason)),
                    Err(FetchError::NotFound) if facet == Facet::Property => not_found = true,
                    // A translation or review list upstream does not have: nothing to store.
                    Err(FetchError::NotFound) => {}
                    Err(e) if facet == Facet::Property => property_failed = Some(e.to_string()),
                    Err(e) => facet_failures.push((key, e.to_string())),
                }
            }
            if not_found {
                run.counters.not_found += 1;
                info!(hotel_id = id, "not found upstream; data kept");
                marks.push(RecordMark {
                    hotel_id: id,
                    status: SyncStatus::NotFound,
                    error: Some("not found upstream (404)".into()),
                    sync_id: sync_id.clone(),
                    now,
                });
                continue;
            }
            if let Some(reason) = property_failed {
                warn!(hotel_id = id, error = %reason, "property failed; previous data kept");
                run.counters.failed += 1;
                run.failure(id, reason.clone());
                marks.push(RecordMark {
                    hotel_id: id,
                    status: SyncStatus::Failed,
                    error: Some(reason),
                    sync_id: sync_id.clone(),
                    now,
                });
                continue;
            }
            decided.push(Decided {
                tracked: pf.tracked,
                changed,
                facet_failures,
                summary,
            });
        }

        // 2. Previous versions of the changed facets, for the diff (BatchGetItem per facet).
        let mut old: HashMap<(i64, String), serde_json::Value> = HashMap::new();
        let mut by_facet: HashMap<String, Vec<i64>> = HashMap::new();
        for d in &decided {
            for (f, _) in &d.changed {
                if d.tracked.facets.contains_key(&f.key()) {
                    by_facet
                        .entry(f.key())
                        .or_default()
                        .push(d.tracked.hotel_id);
                }
            }
        }
        for (key, ids) in by_facet {
            let (docs, usage) = self.deps.props.get_documents(&ids, &key).await?;
            run.counters.consumed_rcu += usage.rcu;
            for (id, doc) in docs {
                if let Some(v) = document::decompress(&doc.compressed)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    old.insert((id, key.clone()), v);
                }
            }
        }

        // 3. Writes.
        enum Op {
            Write(PropertyWrite),
            Touch(Touch),
            Mark(RecordMark),
        }
        let mut ops: Vec<Op> = marks.into_iter().filter(|_| !dry).map(Op::Mark).collect();
        for d in decided {
            let id = d.tracked.hotel_id;
            let mut facet_failures = d.facet_failures;
            let mut docs = Vec::new();
            let mut changes = Vec::new();
            let mut property_oversized = None;
            for (facet, doc) in d.changed {
                let key = facet.key();
                let (paths, truncated) = match (old.get(&(id, key.clone())), doc.value()) {
                    (Some(prev), Some(new)) => facet.diff(prev, &new, MAX_PATHS),
                    _ => (vec!["$".into()], false),
                };
                info!(hotel_id = id, facet = %key, changed = paths.len(), "content changed");
                if !dry {
                    let compressed = match doc.compressed {
                        Ok(z) if z.len() <= document::MAX_COMPRESSED_BYTES => z,
                        Ok(z) => {
                            let reason = format!(
                                "document is {} bytes after compression, over DynamoDB's 400 KB item limit; previous version kept",
                                z.len()
                            );
                            if facet == Facet::Property {
                                property_oversized = Some(reason);
                                break;
                            }
                            facet_failures.push((key, reason));
                            continue;
                        }
                        Err(e) => {
                            facet_failures
                                .push((key, format!("could not compress the document: {e}")));
                            continue;
                        }
                    };
                    docs.push(FacetDoc {
                        facet: key.clone(),
                        expected_version: d.tracked.facets.get(&key).map(|f| f.version),
                        compressed,
                        content_hash: doc.hash.clone(),
                    });
                }
                changes.push(Change {
                    hotel_id: id,
                    facet: key,
                    paths,
                    paths_truncated: truncated,
                });
            }
            if let Some(reason) = property_oversized {
                warn!(hotel_id = id, "{reason}");
                run.counters.failed += 1;
                run.failure(id, reason.clone());
                if !dry {
                    ops.push(Op::Mark(RecordMark {
                        hotel_id: id,
                        status: SyncStatus::Failed,
                        error: Some(reason),
                        sync_id: sync_id.clone(),
                        now,
                    }));
                }
                continue;
            }
            let (status, error) = if facet_failures.is_empty() {
                (SyncStatus::Synced, None)
            } else {
                run.counters.partial += 1;
                for (key, reason) in &facet_failures {
                    warn!(hotel_id = id, facet = %key, error = %reason, "facet failed; its previous version kept");
                    run.failure(id, format!("{key}: {reason}"));
                }
                let joined = facet_failures
                    .iter()
                    .map(|(k, r)| format!("{k}: {r}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                (SyncStatus::Partial, Some(joined))
            };
            if changes.is_empty() {
                run.counters.unchanged += 1;
                let skip = self.cfg.touch_unchanged.not()
                    && status == SyncStatus::Synced
                    && d.tracked.synced;
                if !dry && !skip {
                    ops.push(Op::Touch(Touch {
                        hotel_id: id,
                        status,
                        error,
                        sync_id: sync_id.clone(),
                        now,
                    }));
                }
                continue;
            }
            for c in changes {
                run.changes.push(c);
            }
            if dry {
                run.counters.updated += 1;
                continue;
            }
            let new_version = d.tracked.data_version + 1;
            let mut facets = d.tracked.facets.clone();
            for doc in &docs {
                facets.insert(
                    doc.facet.clone(),
                    FacetState {
                        hash: doc.content_hash.clone(),
                        version: new_version,
                    },
                );
            }
            let property_changed = docs.iter().any(|doc| doc.facet == facet::PROPERTY);
            ops.push(Op::Write(PropertyWrite {
                hotel_id: id,
                expected_version: d.tracked.data_version,
                docs,
                facets,
                summary: if property_changed { d.summary } else { None },
                status,
                error,
                sync_id: sync_id.clone(),
                now,
            }));
        }

        let props = self.deps.props.clone();
        let results: Vec<(i64, usize, PortResult<Usage>)> = stream::iter(ops)
            .map(|op| {
                let props = props.clone();
                async move {
                    match op {
                        Op::Write(w) => (w.hotel_id, w.docs.len(), props.write_property(&w).await),
                        Op::Touch(t) => (t.hotel_id, 0, props.touch(&t).await),
                        Op::Mark(m) => (m.hotel_id, 0, props.mark(&m).await),
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for (id, docs, r) in results {
            match r {
                Ok(u) => {
                    run.counters.consumed_rcu += u.rcu;
                    run.counters.consumed_wcu += u.wcu;
                    if docs > 0 {
                        run.counters.updated += 1;
                        run.counters.document_writes += docs as u64;
                    }
                }
                Err(e) if e.kind == PortErrorKind::Conflict => {
                    run.counters.failed += 1;
                    run.changes.retain(|c| c.hotel_id != id);
                    run.failure(
                        id,
                        format!(
                            "changed concurrently (data_version moved); will retry next sync: {e}"
                        ),
                    );
                }
                Err(e) if e.kind == PortErrorKind::Unavailable => return Err(e),
                Err(e) => {
                    run.counters.failed += 1;
                    run.changes.retain(|c| c.hotel_id != id);
                    run.failure(id, format!("store write failed: {e}"));
                }
            }
        }
        Ok(run)
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
        if self.cfg.emit_metrics {
            emit_metrics(run);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    #[test]
    fn emf_lines_carry_the_metrics_cloudwatch_extracts() {
        let mut run = SyncRun::new("01TEST".into(), SyncType::Scheduled, Timestamp(1_000));
        run.status = RunStatus::CompletedWithErrors;
        run.completed_at = Some(Timestamp(1_042));
        run.total = 10;
        run.counters.processed = 10;
        run.counters.updated = 3;
        run.counters.unchanged = 6;
        run.counters.failed = 1;
        let v: serde_json::Value = serde_json::from_str(&emf_line(&run, 5)).unwrap();
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "CupidSync");
        let names: Vec<&str> = meta["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for n in &names {
            assert!(v.get(*n).is_some(), "metric {n} has a value");
        }
        assert_eq!(
            (v["UpdatedProperties"].as_u64(), v["SyncDuration"].as_i64()),
            (Some(3), Some(42))
        );
        assert_eq!(v["SuccessRate"].as_f64(), Some(90.0));
        assert_eq!(v["SyncFailed"], 0);
        run.status = RunStatus::Failed;
        let v: serde_json::Value = serde_json::from_str(&emf_line(&run, 5)).unwrap();
        assert_eq!(
            (v["SyncFailed"].as_u64(), v["SuccessRate"].as_f64()),
            (Some(1), Some(0.0))
        );
    }
}
