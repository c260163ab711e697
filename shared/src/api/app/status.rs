//! Status, health and the run log: what operators read.

use super::*;

impl App {
    /// Newest finished run and newest successful run (scans at most 50 runs).
    pub(super) async fn last_runs(&self) -> Result<(Option<SyncRun>, Option<SyncRun>), ApiError> {
        let (runs, _) = self.runs.list(50, 0).await?;
        let finished = runs.iter().find(|r| !r.status.is_active()).cloned();
        let success = runs
            .iter()
            .find(|r| {
                matches!(
                    r.status,
                    RunStatus::Completed | RunStatus::CompletedWithErrors
                ) && !r.dry_run
            })
            .cloned();
        Ok((finished, success))
    }

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

    pub(super) async fn health_input(&self) -> Result<(HealthInput, Option<SyncRun>), ApiError> {
        let (settings, _) = self.effective_settings().await?;
        let sched = self.schedule.get().await?;
        let (finished, success) = self.last_runs().await?;
        Ok((
            HealthInput {
                now: self.clock.now(),
                schedule_enabled: sched.as_ref().is_some_and(|s| s.enabled),
                schedule_anchor: sched.as_ref().and_then(|s| s.anchor),
                interval: sched
                    .as_ref()
                    .map(|s| s.interval)
                    .unwrap_or(settings.interval),
                last_success: success.and_then(|r| r.completed_at),
                last_finished: finished.as_ref().map(|r| r.status),
            },
            finished,
        ))
    }

    pub(super) async fn status(&self) -> Result<ApiResponse, ApiError> {
        let (input, finished) = self.health_input().await?;
        let (total, _) = self.reader.count_tracked().await?;
        let current = self.current_run().await?;
        let (settings, _) = self.effective_settings().await?;
        let next = match (input.schedule_enabled, input.schedule_anchor) {
            (true, Some(a)) => Some(health::next_sync(a, input.interval, input.now).rfc3339()),
            _ => None,
        };
        let current_run = current.map(|r| {
            // Progress and ETA count upstream requests (a property costs one per facet).
            let requests_total = r.total * r.requests_per_property.max(1);
            let requests_done = r.counters.upstream_requests;
            let remaining = requests_total.saturating_sub(requests_done) as f64;
            let wait = Duration::try_from_secs_f64(remaining / settings.rate_limit).unwrap_or(Duration::ZERO);
            let eta = input.now.plus(wait).rfc3339();
            serde_json::json!({
                "sync_id": r.sync_id, "status": r.status.as_str(), "processed": r.counters.processed, "total": r.total,
                "requests_done": requests_done, "requests_total": requests_total,
                "started_at": r.started_at.rfc3339(), "eta": eta,
            })
        });
        let data = serde_json::json!({
            "is_running": input.schedule_enabled,
            "last_sync": input.last_success.map(|t| t.rfc3339()),
            "next_sync": next,
            "total_properties": total,
            "updated_properties": finished.as_ref().map(|r| r.counters.updated).unwrap_or(0),
            "failed_properties": finished.as_ref().map(|r| r.counters.failed).unwrap_or(0),
            "sync_interval": input.interval.to_string(),
            "last_error": finished.as_ref().and_then(|r| r.error_message.clone()),
            "current_run": current_run,
        });
        Ok(ApiResponse::ok(200, &data))
    }

    pub(super) async fn admin_health(&self) -> Result<ApiResponse, ApiError> {
        let (input, _) = self.health_input().await?;
        let h = health::compute(&input);
        let status = if h.status == health::HealthStatus::Unhealthy {
            503
        } else {
            200
        };
        Ok(ApiResponse::ok(status, &h))
    }

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

    pub(super) async fn logs(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (limit, offset) = Self::paging(req)?;
        let (runs, total) = self.runs.list(limit, offset).await?;
        let items: Vec<RunView> = runs.iter().map(RunView::of).collect();
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({ "items": items, "limit": limit, "offset": offset, "total": total }),
        ))
    }

    pub(super) async fn log_detail(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = req.param("sync_id");
        if id.len() > 64 || id.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_sync_id",
                "sync_id is not a sync id",
                "sync_id",
            ));
        }
        let run = self
            .runs
            .get(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no sync with id {id}")))?;
        let mut v = serde_json::to_value(RunView::of(&run))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        v["failures"] = serde_json::to_value(&run.failures).unwrap_or_default();
        v["changes"] = serde_json::to_value(&run.changes).unwrap_or_default();
        v["details_dropped"] = run.details_dropped.into();
        v["document_writes"] = run.counters.document_writes.into();
        v["upstream_requests"] = run.counters.upstream_requests.into();
        v["invocations"] = run.invocations.into();
        Ok(ApiResponse::ok(200, &v))
    }
}
