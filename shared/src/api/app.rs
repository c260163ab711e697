//! The admin API's behaviour, written against the ports. Each function binary serves its own
//! routes of the table with this one handler.

use super::routes::Op;
use super::{ApiError, ApiRequest, ApiResponse, Handler};
use crate::domain::facet;
use crate::domain::health::{self, HealthInput};
use crate::domain::interval::Interval;
use crate::domain::lease::{LeaseRequest, Refused};
use crate::domain::run::{FacetState, RunStatus, SyncRequest, SyncRun, SyncType};
use crate::domain::settings::{SettingChange, SettingKey, SettingRow, Settings, validate_changes};
use crate::domain::time::{Timestamp, format_go_duration};
use crate::ports::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Most ids one PUT /admin/properties may carry.
pub const MAX_TRACK_IDS: usize = 1000;

#[derive(Clone)]
pub struct App {
    pub reader: Arc<dyn PropertyReader>,
    pub tracking: Arc<dyn Tracking>,
    pub runs: Arc<dyn RunLog>,
    pub lease: Arc<dyn Lease>,
    pub settings: Arc<dyn SettingsStore>,
    pub schedule: Arc<dyn Schedule>,
    pub dispatch: Arc<dyn Dispatch>,
    pub clock: Arc<dyn Clock>,
    pub defaults: Settings,
    pub lease_ttl: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    hotel_ids: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackBody {
    hotel_ids: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub sync_id: String,
    pub sync_type: String,
    pub status: String,
    pub dry_run: bool,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub duration: Option<String>,
    pub total_properties: u64,
    pub processed_properties: u64,
    pub updated_properties: u64,
    pub unchanged_properties: u64,
    pub failed_properties: u64,
    pub not_found_properties: u64,
    pub error_message: Option<String>,
    pub created_at: String,
    pub consumed_rcu: f64,
    pub consumed_wcu: f64,
}

impl RunView {
    pub fn of(r: &SyncRun) -> Self {
        RunView {
            sync_id: r.sync_id.clone(),
            sync_type: r.sync_type.as_str().into(),
            status: r.status.as_str().into(),
            dry_run: r.dry_run,
            started_at: r.started_at.rfc3339(),
            completed_at: r.completed_at.map(|t| t.rfc3339()),
            duration: r
                .duration_secs()
                .map(|s| format_go_duration(Duration::from_secs(s.max(0) as u64))),
            total_properties: r.total,
            processed_properties: r.counters.processed,
            updated_properties: r.counters.updated,
            unchanged_properties: r.counters.unchanged,
            failed_properties: r.counters.failed,
            not_found_properties: r.counters.not_found,
            error_message: r.error_message.clone(),
            created_at: r.started_at.rfc3339(),
            consumed_rcu: r.counters.consumed_rcu,
            consumed_wcu: r.counters.consumed_wcu,
        }
    }
}

/// Parses a JSON array of positive hotel ids; errors name the field and index.
fn parse_ids(raw: &[serde_json::Value], field: &str) -> Result<Vec<i64>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_hotel_ids",
            format!("{field} must not be empty"),
            field,
        ));
    }
    if raw.len() > MAX_TRACK_IDS {
        return Err(ApiError::bad_request(
            "invalid_hotel_ids",
            format!(
                "{field} has {} ids; at most {MAX_TRACK_IDS} per call",
                raw.len()
            ),
            field,
        ));
    }
    let ids: Vec<i64> = raw
        .iter()
        .enumerate()
        .map(|(i, v)| match v.as_i64() {
            Some(id) if id > 0 && id < (1 << 53) => Ok(id),
            _ => Err(ApiError::bad_request(
                "invalid_hotel_ids",
                format!("{field}[{i}] = {v} is not a positive integer hotel id"),
                format!("{field}[{i}]"),
            )),
        })
        .collect::<Result<_, _>>()?;
    // Duplicates are harmless to the caller and would make BatchGetItem refuse the request.
    let mut seen = std::collections::HashSet::new();
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

impl App {
    /// The settings a run would use: a stored value that does not validate is an error naming
    /// it (never a silent fallback).
    async fn effective_settings(
        &self,
    ) -> Result<(Settings, std::collections::BTreeMap<String, StoredSetting>), ApiError> {
        let stored = self.settings.load().await?;
        let mut s = self.defaults.clone();
        s.overlay(
            &stored
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        )?;
        Ok((s, stored))
    }

    /// The settings with any invalid stored value skipped: for the settings routes, which must
    /// still show and replace it.
    async fn valid_settings(
        &self,
    ) -> Result<(Settings, std::collections::BTreeMap<String, StoredSetting>), ApiError> {
        let stored = self.settings.load().await?;
        let mut s = self.defaults.clone();
        s.overlay_valid(
            &stored
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        );
        Ok((s, stored))
    }

    /// Closes a run the trigger could not start, then frees the lease. When the run's state
    /// cannot be known (the store fails), the lease is kept: it expires, and the next sync
    /// closes the run as an orphan. Releasing first could leave a run `queued` for good.
    async fn close_and_release(&self, run: &SyncRun, fence: u64) {
        let closed = match self.runs.get(&run.sync_id).await {
            Ok(None) => true,
            Ok(Some(_)) => self.runs.save(run, fence).await.is_ok(),
            Err(_) => false,
        };
        if closed {
            self.release(&run.sync_id, fence).await;
        } else {
            tracing::error!(sync_id = %run.sync_id, "could not close a run that failed to start; its lease will expire and the next sync closes it");
        }
    }

    async fn release(&self, sync_id: &str, fence: u64) {
        let req = LeaseRequest::Release {
            owner: sync_id.to_string(),
            fence,
        };
        if let Err(e) = self.lease.apply(&req, self.lease_ttl).await {
            tracing::warn!(sync_id, error = %e, "could not release the lease; it will expire");
        }
    }

    /// Newest finished run and newest successful run (scans at most 50 runs).
    async fn last_runs(&self) -> Result<(Option<SyncRun>, Option<SyncRun>), ApiError> {
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

    async fn current_run(&self) -> Result<Option<SyncRun>, ApiError> {
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

    async fn health_input(&self) -> Result<(HealthInput, Option<SyncRun>), ApiError> {
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

    async fn status(&self) -> Result<ApiResponse, ApiError> {
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

    async fn admin_health(&self) -> Result<ApiResponse, ApiError> {
        let (input, _) = self.health_input().await?;
        let h = health::compute(&input);
        let status = if h.status == health::HealthStatus::Unhealthy {
            503
        } else {
            200
        };
        Ok(ApiResponse::ok(status, &h))
    }

    /// Starts a manual run: reserves the lease for it (one run at a time: 409 otherwise),
    /// creates the run, dispatches the sync function with the reserved token. Any failure after
    /// the reservation releases it and closes the run, so nothing is left holding the lease.
    async fn trigger(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body: TriggerBody = req.json()?.unwrap_or(TriggerBody {
            hotel_ids: None,
            dry_run: None,
        });
        let hotel_ids = body
            .hotel_ids
            .as_deref()
            .map(|ids| parse_ids(ids, "hotel_ids"))
            .transpose()?;
        let (settings, _) = self.effective_settings().await?;
        let listed = match &hotel_ids {
            None => None,
            Some(ids) => {
                let (found, _) = self.reader.get_tracked(ids).await?;
                let tracked: std::collections::BTreeSet<i64> =
                    found.iter().map(|t| t.hotel_id).collect();
                let missing: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| !tracked.contains(id))
                    .collect();
                if !missing.is_empty() {
                    let shown: Vec<String> =
                        missing.iter().take(20).map(|id| id.to_string()).collect();
                    return Err(ApiError::bad_request(
                        "untracked_hotel_ids",
                        format!(
                            "hotel_ids: {} of them are not tracked ({}{}); track them first with PUT /api/v1/admin/properties",
                            missing.len(),
                            shown.join(", "),
                            if missing.len() > 20 { ", ..." } else { "" }
                        ),
                        "hotel_ids",
                    ));
                }
                Some(found.len() as u64)
            }
        };
        let sync_id = self.clock.new_id();
        let take = LeaseRequest::Take {
            owner: sync_id.clone(),
            handoff: true,
        };
        let fence = match self.lease.apply(&take, self.lease_ttl).await? {
            Ok(state) => state.fence,
            Err(Refused::Held { owner, .. }) => {
                return Err(ApiError::Conflict {
                    code: "sync_in_progress",
                    message: format!("a sync is already running ({owner})"),
                    details: serde_json::json!({ "sync_id": owner }),
                });
            }
            Err(Refused::Fenced) => {
                return Err(ApiError::Conflict {
                    code: "sync_in_progress",
                    message: "a sync is already running".into(),
                    details: serde_json::Value::Null,
                });
            }
        };
        let total = match listed {
            Some(n) => n,
            None => match self.reader.count_tracked().await {
                Ok((n, _)) => n,
                Err(e) => {
                    self.release(&sync_id, fence).await;
                    return Err(e.into());
                }
            },
        };
        let mut run = SyncRun::new(sync_id.clone(), SyncType::Manual, self.clock.now());
        run.hotel_ids = hotel_ids.clone();
        run.dry_run = body.dry_run.unwrap_or(false);
        run.total = total;
        if let Err(e) = self.runs.create(&run, fence).await {
            // The create may have applied despite the error: close the run if it exists.
            run.status = RunStatus::Failed;
            run.error_message = Some(format!("could not start: {e}"));
            run.completed_at = Some(self.clock.now());
            self.close_and_release(&run, fence).await;
            return Err(e.into());
        }
        let dispatch = SyncRequest::Manual {
            sync_id: sync_id.clone(),
            lease: Some(fence),
            hotel_ids,
            dry_run: run.dry_run,
        };
        if let Err(e) = self.dispatch.dispatch(&dispatch).await {
            run.status = RunStatus::Failed;
            run.error_message = Some(format!("could not start the sync function: {e}"));
            run.completed_at = Some(self.clock.now());
            self.close_and_release(&run, fence).await;
            return Err(e.into());
        }
        tracing::info!(sync_id = %sync_id, total, dry_run = run.dry_run, "manual sync dispatched");
        let requests = total * settings.requests_per_property();
        let estimate = Duration::try_from_secs_f64((requests as f64 / settings.rate_limit).ceil())
            .unwrap_or(Duration::ZERO);
        Ok(ApiResponse::ok(
            202,
            &serde_json::json!({
                "status": "running",
                "sync_id": sync_id,
                "message": "Synchronization started in background",
                "estimated_duration": format_go_duration(estimate),
                "triggered_at": run.started_at.rfc3339(),
            }),
        ))
    }

    fn paging(req: &ApiRequest) -> Result<(usize, usize), ApiError> {
        Self::paging_with(req, 10)
    }

    fn paging_with(req: &ApiRequest, default_limit: usize) -> Result<(usize, usize), ApiError> {
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

    async fn logs(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (limit, offset) = Self::paging(req)?;
        let (runs, total) = self.runs.list(limit, offset).await?;
        let items: Vec<RunView> = runs.iter().map(RunView::of).collect();
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({ "items": items, "limit": limit, "offset": offset, "total": total }),
        ))
    }

    async fn log_detail(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
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

    async fn settings_rows(&self) -> Result<Vec<SettingRow>, ApiError> {
        let (effective, stored) = self.valid_settings().await?;
        Ok(SettingKey::ALL
            .iter()
            .map(|k| SettingRow {
                setting_key: k.as_str().into(),
                setting_value: effective.value(*k).render(),
                description: k.description().into(),
                updated_at: stored.get(k.as_str()).map(|s| s.updated_at.rfc3339()),
            })
            .collect())
    }

    async fn settings_put(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let changes: Vec<SettingChange> = req.json()?.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "body must be a JSON array of {setting_key, setting_value}",
                "body",
            )
        })?;
        if changes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "body must list at least one setting",
                "body",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &changes {
            if !seen.insert(c.setting_key.clone()) {
                return Err(ApiError::bad_request(
                    "duplicate_setting",
                    format!("setting `{}` appears twice", c.setting_key),
                    c.setting_key.clone(),
                ));
            }
        }
        let values = validate_changes(&changes)
            .map_err(|e| ApiError::bad_request("invalid_setting", e.to_string(), e.key()))?;
        let (before, _) = self.valid_settings().await?;
        let mut after = before.clone();
        for (k, v) in &values {
            after.apply(*k, v.clone());
        }
        let now = self.clock.now();
        self.settings.put_all(&values, now).await?;
        if before.interval != after.interval || before.enable_auto != after.enable_auto {
            let anchor = match self.schedule.get().await? {
                Some(s) if s.interval == after.interval => s.anchor.unwrap_or(now),
                _ => now,
            };
            self.schedule
                .put(after.enable_auto, after.interval, anchor)
                .await?;
            tracing::info!(enabled = after.enable_auto, interval = %after.interval, "schedule reconciled with settings");
        }
        Ok(ApiResponse::ok(200, &self.settings_rows().await?))
    }

    async fn schedule_view(&self, s: &ScheduleState) -> serde_json::Value {
        let now = self.clock.now();
        serde_json::json!({
            "enabled": s.enabled,
            "is_running": s.enabled,
            "sync_interval": s.interval.to_string(),
            "schedule_expression": s.interval.rate_expression(),
            "next_sync": match (s.enabled, s.anchor) { (true, Some(a)) => Some(health::next_sync(a, s.interval, now).rfc3339()), _ => None },
        })
    }

    async fn schedule_start(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (settings, _) = self.valid_settings().await?;
        let interval = match req.query.get("interval") {
            None => settings.interval,
            Some(raw) => Interval::parse(raw).map_err(|e| {
                ApiError::bad_request("invalid_interval", format!("interval: {e}"), "interval")
            })?,
        };
        let now = self.clock.now();
        let anchor = match self.schedule.get().await? {
            Some(s) if s.enabled && s.interval == interval => s.anchor.unwrap_or(now),
            _ => now,
        };
        let state = self.schedule.put(true, interval, anchor).await?;
        let values = [
            (
                SettingKey::SyncInterval,
                crate::domain::settings::SettingValue::Interval(interval),
            ),
            (
                SettingKey::SyncEnableAuto,
                crate::domain::settings::SettingValue::Flag(true),
            ),
        ];
        self.settings.put_all(&values, now).await?;
        Ok(ApiResponse::ok(200, &self.schedule_view(&state).await))
    }

    async fn schedule_stop(&self) -> Result<ApiResponse, ApiError> {
        let (settings, _) = self.valid_settings().await?;
        let now = self.clock.now();
        let current = self.schedule.get().await?;
        let state = match current {
            Some(s) if !s.enabled => s,
            Some(s) => {
                self.schedule
                    .put(false, s.interval, s.anchor.unwrap_or(now))
                    .await?
            }
            None => self.schedule.put(false, settings.interval, now).await?,
        };
        let values = [(
            SettingKey::SyncEnableAuto,
            crate::domain::settings::SettingValue::Flag(false),
        )];
        self.settings.put_all(&values, now).await?;
        Ok(ApiResponse::ok(200, &self.schedule_view(&state).await))
    }

    fn id_param(req: &ApiRequest) -> Result<i64, ApiError> {
        let raw = req.param("id");
        raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!("id `{raw}` is not a positive integer hotel id"),
                "id",
            )
        })
    }

    async fn track(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body: TrackBody = req.json()?.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "body must be {\"hotel_ids\": [..]}",
                "hotel_ids",
            )
        })?;
        let ids = parse_ids(&body.hotel_ids, "hotel_ids")?;
        let done = self.tracking.track(&ids).await?;
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({
                "requested": ids.len(),
                "newly_tracked": done.new + done.retracked,
                "new": done.new,
                "retracked": done.retracked,
            }),
        ))
    }

    async fn untrack(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        match self.tracking.untrack(id).await {
            Ok(()) => Ok(ApiResponse::ok(
                200,
                &serde_json::json!({ "hotel_id": id, "sync_status": "untracked", "data_kept": true }),
            )),
            Err(e) if e.kind == PortErrorKind::NotFound => {
                Err(ApiError::NotFound(format!("hotel {id} is not tracked")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A stored facet document, decompressed: the version the record points at.
    async fn facet_doc(
        &self,
        record: &crate::domain::run::SyncRecord,
        facet: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let id = record.hotel_id;
        let Some(state) = record.facet_states().get(facet).cloned() else {
            return Ok(None);
        };
        let (doc, _) = self.reader.get_document(id, &state.key(facet)).await?;
        if let Some(d) = &doc
            && d.content_hash != state.hash
        {
            // Never serve a document under a record that describes another version.
            return Err(ApiError::Internal(format!(
                "hotel {id}: the stored {facet} document does not match its record"
            )));
        }
        match doc {
            None => Err(ApiError::Internal(format!(
                "hotel {id}: the record points at {} but that document is missing",
                FacetState::doc_key(facet, state.slot.as_deref())
            ))),
            Some(d) => crate::domain::document::decompress(&d.compressed)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::Internal(format!(
                        "stored {facet} document of hotel {id} could not be decoded"
                    ))
                }),
        }
    }

    async fn property(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        let lang = match req.query.get("lang").map(|l| l.trim().to_ascii_lowercase()) {
            None => None,
            Some(l) if crate::domain::settings::LANGUAGES.contains(&l.as_str()) => Some(l),
            Some(l) => {
                return Err(ApiError::bad_request(
                    "invalid_lang",
                    format!(
                        "lang `{l}` is not a supported ISO 639-1 code ({})",
                        crate::domain::settings::LANGUAGES.join(", ")
                    ),
                    "lang",
                ));
            }
        };
        let record = self
            .reader
            .get_record(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("hotel {id} is not known")))?;
        let (language, document, note) = match lang.as_deref() {
            None | Some("en") => (
                "en".to_string(),
                self.facet_doc(&record, facet::PROPERTY).await?,
                None,
            ),
            Some(l) => match self.facet_doc(&record, &format!("lang#{l}")).await? {
                Some(doc) => (l.to_string(), Some(doc), None),
                None => (
                    "en".to_string(),
                    self.facet_doc(&record, facet::PROPERTY).await?,
                    Some(format!(
                        "no `{l}` translation has been synced for this property; showing English"
                    )),
                ),
            },
        };
        let ts = |t: Option<i64>| t.map(|s| Timestamp(s).rfc3339());
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({
                "hotel_id": id,
                "sync_status": record.sync_status.as_str(),
                "data_version": record.data_version,
                "content_hash": record.content_hash,
                "last_synced": ts(record.last_synced),
                "last_updated": ts(record.last_updated),
                "last_error": record.last_error,
                "last_sync_id": record.last_sync_id,
                "language": language,
                "note": note,
                "document": document,
            }),
        ))
    }

    async fn reviews(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let id = Self::id_param(req)?;
        let (limit, offset) = Self::paging_with(req, 20)?;
        let Some(record) = self.reader.get_record(id).await? else {
            return Err(ApiError::NotFound(format!("hotel {id} is not known")));
        };
        let all = self.facet_doc(&record, facet::REVIEWS).await?;
        let items: Vec<serde_json::Value> = all
            .as_ref()
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let total = items.len();
        let page: Vec<serde_json::Value> = items.into_iter().skip(offset).take(limit).collect();
        Ok(ApiResponse::ok(
            200,
            &serde_json::json!({ "hotel_id": id, "items": page, "limit": limit, "offset": offset, "total": total, "synced": all.is_some() }),
        ))
    }
}

#[async_trait]
impl Handler for App {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::PublicHealth => Ok(ApiResponse::ok(
                200,
                &serde_json::json!({ "status": "ok", "checked_at": self.clock.now().rfc3339() }),
            )),
            Op::AdminHealth => self.admin_health().await,
            Op::Status => self.status().await,
            Op::Trigger => self.trigger(req).await,
            Op::Logs => self.logs(req).await,
            Op::LogDetail => self.log_detail(req).await,
            Op::SettingsGet => Ok(ApiResponse::ok(200, &self.settings_rows().await?)),
            Op::SettingsPut => self.settings_put(req).await,
            Op::ScheduleStart => self.schedule_start(req).await,
            Op::ScheduleStop => self.schedule_stop().await,
            Op::Track => self.track(req).await,
            Op::Untrack => self.untrack(req).await,
            Op::PropertyGet => self.property(req).await,
            Op::PropertyReviews => self.reviews(req).await,
            // Served by the docs function's own handler (api::openapi::DocsHandler).
            Op::DocsPage | Op::DocsSpec => Err(ApiError::NotFound(
                "the docs are served by the docs function".into(),
            )),
        }
    }
}
