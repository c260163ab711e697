//! Status, health and the run log: what operators read.

use super::*;
use crate::api::wire::{CurrentRun, LastRun, Paused, RunLogDetail, RunPage, StatusView};

/// Newest runs read for status and health (a bounded page, whatever the history).
pub(super) const RECENT_RUNS: usize = 10;
/// How far back health looks for the newest run of the whole catalogue when the newest
/// [`RECENT_RUNS`] are all subsets or dry runs.
const CATALOGUE_LOOKBACK: usize = 100;

/// What status and health read, all at once (independent calls run concurrently).
pub(super) struct Snapshot {
    pub(super) settings: Settings,
    pub(super) input: HealthInput,
    pub(super) finished: Option<SyncRun>,
    pub(super) stats: CatalogueStats,
    /// The newest runs ([`RECENT_RUNS`]), newest first.
    pub(super) recent: Vec<SyncRun>,
}

impl App {
    pub(super) async fn current_run(&self) -> Result<Option<SyncRun>, ApiError> {
        let now = self.clock.now_ms();
        let Some(lease) = self.lease.current().await? else {
            return Ok(None);
        };
        match lease.owner {
            // A run whose lease expired is not current, whatever its item says.
            Some(owner) if lease.expires_at_ms > now => Ok(self
                .runs
                .get(&owner)
                .await?
                .filter(|r| r.status.is_active())),
            _ => Ok(None),
        }
    }
}

impl Scheduled {
    /// Settings, schedule, counts and the newest runs: constant work whatever the number of
    /// properties and runs.
    pub(super) async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let (settings, sched, stats, recent) = tokio::join!(
            self.effective_settings(),
            self.schedule.get(),
            self.stats.get(),
            self.runs.list(RECENT_RUNS, RunsFrom::Offset(0)),
        );
        let (settings, _) = settings?;
        let (sched, stats, (recent, _)) = (sched?, stats?, recent?);
        let finished = recent.iter().find(|r| !r.status.is_active()).cloned();
        // Health judges the catalogue's runs: a dry run or a subset an operator named (the
        // sync an acceptance asks for, say) says nothing of a halt or a failure the next
        // scheduled run will meet again.
        let of_catalogue =
            |r: &&SyncRun| !r.status.is_active() && !r.dry_run && r.hotel_ids.is_none();
        let mut judged = recent.iter().find(of_catalogue).map(|r| r.status);
        // Many subset or dry runs in a row (one per acceptance, say) can push it out of the
        // newest few: look further back, once, in that case only.
        if judged.is_none() && recent.len() >= RECENT_RUNS {
            let (older, _) = self
                .runs
                .list(CATALOGUE_LOOKBACK, RunsFrom::Offset(0))
                .await?;
            judged = older.iter().find(of_catalogue).map(|r| r.status);
        }
        // The newest success: as recorded when it finished, or among the newest runs (should
        // that record have been lost to a crash).
        let recent_success = recent
            .iter()
            .filter(|r| r.is_catalogue_success())
            .filter_map(|r| r.completed_at)
            .max();
        let last_success = recent_success.max(stats.last_success.as_ref().map(|(_, t)| *t));
        let input = HealthInput {
            now: self.clock.now(),
            schedule_enabled: sched.as_ref().is_some_and(|s| s.enabled),
            schedule_anchor: sched.as_ref().and_then(|s| s.anchor),
            interval: sched
                .as_ref()
                .map(|s| s.interval)
                .unwrap_or(settings.interval),
            last_success,
            last_finished: judged,
            paused: stats.paused.clone(),
        };
        Ok(Snapshot {
            settings,
            input,
            finished,
            stats,
            recent,
        })
    }

    pub(super) async fn status(&self) -> Result<ApiResponse, ApiError> {
        let (snap, current) = tokio::join!(self.snapshot(), self.current_run());
        let (
            Snapshot {
                settings,
                input,
                finished,
                stats,
                ..
            },
            current,
        ) = (snap?, current?);
        let next = match (input.schedule_enabled, input.schedule_anchor) {
            (true, Some(a)) => Some(health::next_sync(a, input.interval, input.now).rfc3339()),
            _ => None,
        };
        let current_run = current.map(|r| {
            // Progress and ETA count upstream requests (a property costs one per facet).
            let requests_total = r.total * r.requests_per_property.max(1);
            let requests_done = r.counters.upstream_requests;
            let remaining = requests_total.saturating_sub(requests_done) as f64;
            let wait = Duration::try_from_secs_f64(remaining / settings.rate_limit)
                .unwrap_or(Duration::ZERO);
            CurrentRun {
                sync_id: r.sync_id.clone(),
                status: r.status.as_str().into(),
                processed: r.counters.processed,
                total: r.total,
                requests_done,
                requests_total,
                started_at: r.started_at.rfc3339(),
                eta: input.now.plus(wait).rfc3339(),
                updated: r.counters.updated,
                unchanged: r.counters.unchanged,
                failed: r.counters.failed,
                quarantined: r.counters.quarantined,
            }
        });
        let data = StatusView {
            is_running: input.schedule_enabled,
            last_sync: input.last_success.map(|t| t.rfc3339()),
            next_sync: next,
            total_properties: stats.counts.tracked(),
            properties_by_status: stats
                .counts
                .pairs()
                .map(|(k, v)| (k.to_string(), v.max(0) as u64))
                .collect(),
            counts_recounted_at: stats.recounted.as_ref().map(|(_, t)| t.rfc3339()),
            total_runs: stats.runs,
            updated_properties: finished.as_ref().map(|r| r.counters.updated).unwrap_or(0),
            failed_properties: finished.as_ref().map(|r| r.counters.failed).unwrap_or(0),
            sync_interval: input.interval.to_string(),
            last_error: finished.as_ref().and_then(|r| r.error_message.clone()),
            last_run: finished.as_ref().map(|r| LastRun {
                sync_id: r.sync_id.clone(),
                status: r.status.as_str().into(),
                completed_at: r.completed_at.map(|t| t.rfc3339()),
                quarantined_properties: r.counters.quarantined,
                schema_drift: crate::domain::drift::drift_counts(&r.drift),
            }),
            current_run,
            paused: input
                .paused
                .as_ref()
                .filter(|_| !input.schedule_enabled)
                .map(|(why, at)| Paused {
                    since: at.rfc3339(),
                    reason: why.clone(),
                }),
        };
        Ok(ApiResponse::ok(200, &data))
    }

    pub(super) async fn admin_health(&self) -> Result<ApiResponse, ApiError> {
        let snap = self.snapshot().await?;
        let h = health::compute(&snap.input);
        let status = if h.status == health::HealthStatus::Unhealthy {
            503
        } else {
            200
        };
        Ok(ApiResponse::ok(status, &h))
    }
}

impl App {
    pub(super) fn paging(req: &ApiRequest) -> Result<(usize, usize), ApiError> {
        Self::paging_with(req, 10)
    }

    pub(super) fn paging_with(
        req: &ApiRequest,
        default_limit: usize,
    ) -> Result<(usize, usize), ApiError> {
        let num = |name: &str, default: usize, lo: usize, hi: usize| -> Result<usize, ApiError> {
            match req.query.get(name) {
                None => Ok(default),
                Some(raw) => match raw.trim().parse::<usize>() {
                    Ok(v) if v >= lo && v <= hi => Ok(v),
                    _ => Err(ApiError::bad_request(
                        if name == "limit" {
                            "invalid_limit"
                        } else {
                            "invalid_offset"
                        },
                        format!("{name} must be a whole number from {lo} to {hi} (got `{raw}`)"),
                        name,
                    )),
                },
            }
        };
        Ok((
            num("limit", default_limit, 1, 100)?,
            num("offset", 0, 0, 1_000_000)?,
        ))
    }

    /// Runs newest first: `?cursor=` (from the previous page's `next_cursor`) reads only the
    /// page; `?offset=` also reads the skipped runs' keys. `total` is the maintained run count.
    pub(super) async fn logs(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (limit, offset) = Self::paging(req)?;
        let cursor = match req.query.get("cursor") {
            Some(c)
                if c.is_empty()
                    || c.len() > 64
                    || !c.chars().all(|ch| ch.is_ascii_alphanumeric()) =>
            {
                return Err(ApiError::bad_request(
                    "invalid_cursor",
                    format!("cursor must be a next_cursor from a previous page (got `{c}`)"),
                    "cursor",
                ));
            }
            Some(c) => Some(c.clone()),
            None => None,
        };
        if cursor.is_some() && req.query.contains_key("offset") {
            return Err(ApiError::bad_request(
                "invalid_cursor",
                "give cursor or offset, not both",
                "cursor",
            ));
        }
        let from = match cursor {
            Some(c) => RunsFrom::After(c),
            None => RunsFrom::Offset(offset),
        };
        let (page, stats) = tokio::join!(self.runs.list(limit, from), self.stats.get());
        let ((runs, next), stats) = (page?, stats?);
        let items: Vec<RunView> = runs.iter().map(RunView::of).collect();
        let total = stats.runs.max((offset + items.len()) as u64);
        Ok(ApiResponse::ok(
            200,
            &RunPage {
                items,
                limit,
                offset,
                total,
                next_cursor: next,
            },
        ))
    }

    /// One run, and one page of its details (`?limit=` up to 100, `?after=` a hotel id from the
    /// previous page's `next_after`): every property it changed or that failed.
    pub(super) async fn log_detail(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = req.param("sync_id");
        if id.len() > 64 || id.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_sync_id",
                "sync_id is not a sync id",
                "sync_id",
            ));
        }
        let (limit, _) = Self::paging_with(req, 100)?;
        let after = Self::after_param(req)?;
        let (run, page) = tokio::join!(self.runs.get(id), self.runs.details(id, limit, after));
        let run = run?.ok_or_else(|| ApiError::NotFound(format!("no sync with id {id}")))?;
        let page = page?;
        // Flat lists of this page (and what runs of earlier versions kept on their item).
        let mut failures: Vec<Failure> = if after.is_none() {
            run.legacy_failures.clone()
        } else {
            Vec::new()
        };
        let mut changes: Vec<Change> = if after.is_none() {
            run.legacy_changes.clone()
        } else {
            Vec::new()
        };
        for d in &page.items {
            failures.extend(d.failures.iter().map(|r| Failure {
                hotel_id: d.hotel_id,
                reason: r.clone(),
            }));
            changes.extend(d.changes.iter().cloned());
        }
        let v = RunLogDetail {
            run: RunView::of(&run),
            failures,
            changes,
            details: page.items,
            details_total: run.details,
            next_after: page.next,
            document_writes: run.counters.document_writes,
            invocations: run.invocations,
        };
        Ok(ApiResponse::ok(200, &v))
    }
}
