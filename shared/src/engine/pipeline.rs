//! The work of one invocation: read the run's properties lazily (one Scan page at a time, the
//! next read ahead), run each as its own task under the shared gate, checkpoint every
//! `sync_batch_size` completed properties, and stop on time so what is in flight finishes and is
//! checkpointed.
//!
//! Progress is per property: the cursor is the end of the done prefix in read order, and
//! properties finished out of order after it are saved in `skip`, so a continuation neither
//! redoes nor misses any, and a batch too long for one invocation still makes progress.

use super::property::{self, PropertyCtx, Report, StatusMove, Stop};
use crate::domain::run::{RunDetail, SyncRun, Tracked};
use crate::domain::stats::StatusCounts;
use crate::ports::*;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, error, info};

/// Records read per Scan page while a sync walks the tracked properties (< 1 MB of records).
pub const SCAN_PAGE: usize = 1000;

/// A spawned task aborted when dropped (a dropped invocation leaves nothing running).
pub(crate) struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a run's properties come from.
pub(crate) enum Work {
    /// Requested ids, ascending, already read.
    Listed(VecDeque<Tracked>),
    /// Every tracked record, one Scan page at a time after the run's cursor.
    Scanned {
        buffer: VecDeque<Tracked>,
        after: Option<i64>,
        ahead: Option<AbortOnDrop<PortResult<TrackedPage>>>,
        done: bool,
    },
}

impl Work {
    pub fn scanned(cursor: Option<i64>) -> Self {
        Work::Scanned {
            buffer: VecDeque::new(),
            after: cursor,
            ahead: None,
            done: false,
        }
    }

    /// The next property, or `None` when there is no more.
    async fn next(
        &mut self,
        reader: &Arc<dyn PropertyReader>,
        page_size: usize,
        rcu: &mut f64,
    ) -> PortResult<Option<Tracked>> {
        match self {
            Work::Listed(all) => Ok(all.pop_front()),
            Work::Scanned {
                buffer,
                after,
                ahead,
                done,
            } => {
                let read = |after: Option<i64>| {
                    let reader = reader.clone();
                    async move { reader.scan_tracked(after, page_size.max(1)).await }
                };
                while buffer.is_empty() && !*done {
                    let page = match ahead.take() {
                        Some(mut h) => match (&mut h.0).await {
                            Ok(r) => r?,
                            Err(e) => {
                                return Err(PortError::new(
                                    "Scan read-ahead",
                                    PortErrorKind::Unavailable,
                                    e.to_string(),
                                ));
                            }
                        },
                        None => read(*after).await?,
                    };
                    *rcu += page.usage.rcu;
                    buffer.extend(page.items);
                    *after = page.next;
                    *done = page.next.is_none();
                    if !*done {
                        let fut = read(*after).instrument(tracing::Span::current());
                        *ahead = Some(AbortOnDrop(tokio::spawn(fut)));
                    }
                }
                Ok(buffer.pop_front())
            }
        }
    }
}

/// How an invocation's work ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Every property of the run is done.
    Done,
    /// Out of time: the cursor is saved, a continuation does the rest.
    Continue,
}

/// The instants that bound one invocation's work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// A run whose lease is still held is picked up only before this: the middle of the time
    /// to work, so a resumed invocation has time to make progress.
    pub latest_pickup: Instant,
    /// No property starts after this.
    pub stop_starting: Instant,
    /// No upstream attempt (or retry wait) runs past this.
    pub stop_fetching: Instant,
    /// Whatever is still in flight is dropped here; then checkpoint and hand over.
    pub stop_waiting: Instant,
}

impl Budget {
    /// From the end of the invocation's share and the margin kept before it.
    pub fn new(end: Instant, margin: std::time::Duration) -> Self {
        let at = |part: u32| end.checked_sub(margin / part).unwrap_or(end);
        let stop_starting = end.checked_sub(margin).unwrap_or(end);
        let now = Instant::now();
        Budget {
            latest_pickup: now + stop_starting.saturating_duration_since(now) / 2,
            stop_starting,
            stop_fetching: at(2),
            stop_waiting: at(10),
        }
    }
}

/// Where the done prefix ends and what is done beyond it.
struct Order {
    started: VecDeque<(i64, bool)>,
    /// Done in an earlier invocation, not yet reached in read order.
    earlier: BTreeSet<i64>,
}

impl Order {
    fn finish(&mut self, id: i64) {
        if let Some(e) = self.started.iter_mut().find(|(i, _)| *i == id) {
            e.1 = true;
        }
    }

    /// Moves the run's cursor over the done prefix and records the rest.
    fn save_into(&mut self, run: &mut SyncRun) {
        while let Some(&(id, true)) = self.started.front() {
            run.cursor = Some(id);
            self.started.pop_front();
        }
        let mut skip: BTreeSet<i64> = self.earlier.clone();
        skip.extend(self.started.iter().filter(|(_, d)| *d).map(|(id, _)| *id));
        run.skip = skip.into_iter().collect();
    }

    fn all_done(&self) -> bool {
        self.started.iter().all(|(_, d)| *d)
    }
}

/// What finished since the last checkpoint and is saved with the next one.
#[derive(Default)]
struct Unsaved {
    rcu: f64,
    details: Vec<RunDetail>,
    moves: StatusCounts,
}

pub(crate) struct Pipeline<'a> {
    pub ctx: Arc<PropertyCtx>,
    pub runs: &'a Arc<dyn RunLog>,
    pub stats: &'a Arc<dyn Stats>,
    pub batch_size: usize,
    pub window: usize,
    pub scan_page: usize,
    pub budget: Budget,
}

impl Pipeline<'_> {
    fn breaker(&self) -> std::sync::MutexGuard<'_, crate::domain::breaker::Breaker> {
        self.ctx.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Acts on the circuit breaker's verdict: tripped, stop (the waiting changes are dropped,
    /// unwritten); released, save the run with the release first, then write the waiting
    /// changes.
    async fn judge(
        &self,
        run: &mut SyncRun,
        order: &mut Order,
        unsaved: &mut Unsaved,
        deferred: &mut Vec<property::Decided>,
        tasks: &mut JoinSet<(i64, Report)>,
        stop: &mut Option<Stop>,
    ) -> Result<(), Stop> {
        let (tripped, needs_saving) = {
            let b = self.breaker();
            (b.tripped().then(|| b.reason()), b.needs_saving())
        };
        if let Some(reason) = tripped {
            if stop.is_none() {
                error!(reason = %reason, "circuit breaker tripped; writing nothing more");
                *stop = Some(Stop::Halt(reason));
            }
            deferred.clear();
            return Ok(());
        }
        if needs_saving {
            self.checkpoint(run, order, unsaved).await?;
            self.breaker().saved();
            info!(counted = ?run.breaker, "circuit breaker released; writing the waiting changes");
        }
        if self.breaker().released() {
            for d in deferred.drain(..) {
                // In the run's span: its lines carry the request and the run.
                tasks.spawn(property::resume(self.ctx.clone(), d).in_current_span());
            }
        }
        Ok(())
    }

    /// Saves what finished: its detail items, its status moves into the catalogue counts, then
    /// the run (cursor, counters, tally). A crash before the run save redoes the properties
    /// (their detail items are replaced; their moves are counted again from what is stored, so
    /// only the lost flush is missing until the run's recount).
    async fn checkpoint(
        &self,
        run: &mut SyncRun,
        order: &mut Order,
        unsaved: &mut Unsaved,
    ) -> Result<(), Stop> {
        order.save_into(run);
        run.breaker = self.breaker().counts();
        run.shape = self.ctx.watch.seen();
        run.counters.consumed_rcu += std::mem::take(&mut unsaved.rcu);
        let up = self.ctx.gate.take_outcomes();
        let c = &mut run.counters;
        c.upstream_requests += up.requests;
        c.upstream_throttled += up.throttled;
        c.upstream_server_errors += up.server_errors;
        c.upstream_unreachable += up.unreachable;
        c.upstream_retries += up.retries;
        if !self.ctx.guard.ok() {
            return Err(Stop::Lost);
        }
        if !unsaved.details.is_empty() {
            let details = std::mem::take(&mut unsaved.details);
            match self.runs.put_details(run, &details).await {
                Ok(u) => {
                    run.counters.consumed_wcu += u.wcu;
                    run.details += details.len() as u64;
                }
                Err(e) => return Err(Stop::Dependency(e)),
            }
        }
        if !unsaved.moves.is_zero() {
            let moves = std::mem::take(&mut unsaved.moves);
            if let Err(e) = self.stats.add(&moves).await {
                return Err(Stop::Dependency(e));
            }
        }
        if !self.ctx.guard.ok() {
            return Err(Stop::Lost);
        }
        match self.runs.save(run, self.ctx.guard.fence).await {
            Ok(u) => {
                run.counters.consumed_wcu += u.wcu;
                info!(
                    processed = run.counters.processed,
                    total = run.total,
                    updated = run.counters.updated,
                    failed = run.counters.failed,
                    "checkpoint"
                );
                Ok(())
            }
            Err(e) if e.kind == PortErrorKind::Fenced => {
                self.ctx.guard.lose(&e.to_string());
                Err(Stop::Lost)
            }
            Err(e) => Err(Stop::Dependency(e)),
        }
    }

    /// Works on `run` until it is done, the budget is spent, or something stops it.
    pub async fn run(&self, run: &mut SyncRun, mut work: Work) -> Result<Progress, Stop> {
        let mut order = Order {
            started: VecDeque::new(),
            earlier: run.skip.iter().copied().collect(),
        };
        let mut tasks: JoinSet<(i64, Report)> = JoinSet::new();
        let mut exhausted = false;
        let mut cut = false;
        let mut stop: Option<Stop> = None;
        let mut since_checkpoint = 0usize;
        let mut started_here = 0u64;
        let cursor_before = (run.cursor, run.skip.len());
        let mut unsaved = Unsaved::default();
        // Changes decided during the circuit breaker's probe, unwritten until it is judged.
        let mut deferred: Vec<property::Decided> = Vec::new();
        loop {
            // Every invocation starts at least one property, however late it got going, so a
            // run always moves.
            while stop.is_none()
                && !exhausted
                && tasks.len() < self.window
                && (Instant::now() < self.budget.stop_starting || started_here == 0)
                && self.ctx.guard.ok()
            {
                match work
                    .next(&self.ctx.reader, self.scan_page, &mut unsaved.rcu)
                    .await
                {
                    Ok(Some(t)) => {
                        if order.earlier.remove(&t.hotel_id) {
                            order.started.push_back((t.hotel_id, true));
                            continue;
                        }
                        order.started.push_back((t.hotel_id, false));
                        started_here += 1;
                        tasks.spawn(property::process(self.ctx.clone(), t).in_current_span());
                    }
                    Ok(None) => exhausted = true,
                    Err(e) => stop = Some(Stop::Dependency(e)),
                }
            }
            // The probe cannot grow here: every property is decided (a small catalogue: judged
            // whole), or this invocation may start no more (a small sample is not judged: the
            // waiting changes go ahead, so a probe never stalls a run).
            let all_decided = exhausted && tasks.is_empty();
            let no_more =
                all_decided || (Instant::now() >= self.budget.stop_starting && started_here > 0);
            if no_more && stop.is_none() && !deferred.is_empty() {
                self.breaker().settle(all_decided);
                self.judge(
                    run,
                    &mut order,
                    &mut unsaved,
                    &mut deferred,
                    &mut tasks,
                    &mut stop,
                )
                .await?;
            }
            if tasks.is_empty() {
                break;
            }
            let joined = tokio::select! {
                biased;
                r = tasks.join_next() => r,
                _ = tokio::time::sleep_until(self.budget.stop_waiting) => {
                    // Out of time: drop what is still in flight (its writes are crash-safe) and
                    // keep what finished.
                    tasks.abort_all();
                    cut = true;
                    None
                }
            };
            let results: Vec<_> = match joined {
                Some(r) => vec![r],
                None => {
                    let mut rest = Vec::new();
                    while let Some(r) = tasks.join_next().await {
                        rest.push(r);
                    }
                    rest
                }
            };
            for joined in results {
                let (id, report) = match joined {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => {
                        error!(error = %e, "a property task panicked");
                        tasks.abort_all();
                        stop = Some(Stop::Abort(format!(
                            "internal error: a property task panicked ({e})"
                        )));
                        continue;
                    }
                };
                match report {
                    Report::Done {
                        counters,
                        detail,
                        status,
                        observed,
                    } => {
                        run.counters.add(&counters);
                        if observed.is_some() {
                            self.breaker().done(id);
                        }
                        unsaved.details.extend(detail);
                        match status {
                            StatusMove::Known { from, to } => {
                                run.tally.add(to, 1);
                                unsaved.moves.moved(from, to);
                            }
                            StatusMove::Untracked => {}
                            StatusMove::Unknown => run.tally_unknown += 1,
                        }
                        order.finish(id);
                        since_checkpoint += 1;
                    }
                    Report::Deferred(d) => deferred.push(*d),
                    Report::Halted => {}
                    Report::Cut => cut = true,
                    Report::Stop(Stop::Lost) => return Err(Stop::Lost),
                    Report::Stop(s) => {
                        if stop.is_none() {
                            error!(reason = ?s, "stopping the run");
                            stop = Some(s);
                        }
                    }
                }
            }
            self.judge(
                run,
                &mut order,
                &mut unsaved,
                &mut deferred,
                &mut tasks,
                &mut stop,
            )
            .await?;
            if since_checkpoint >= self.batch_size {
                since_checkpoint = 0;
                self.checkpoint(run, &mut order, &mut unsaved).await?;
            }
        }
        if let Some(s) = stop {
            self.checkpoint(run, &mut order, &mut unsaved).await?;
            return Err(s);
        }
        self.checkpoint(run, &mut order, &mut unsaved).await?;
        if exhausted && !cut && order.all_done() {
            return Ok(Progress::Done);
        }
        if (run.cursor, run.skip.len()) == cursor_before {
            return Err(Stop::Abort(
                "no property could be completed within one invocation's time budget; raise SYNC_MAX_RUN_SECONDS or lower the retries".into(),
            ));
        }
        Ok(Progress::Continue)
    }
}
