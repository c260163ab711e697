//! Request and response bodies shared by the handlers and their clients (the CLI), so neither
//! side copies the other's structs.

use serde::{Deserialize, Serialize};

/// Every answer: `{"success": true, "data": …}` or `{"success": false, "error": …}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Envelope<T> {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// An API error as clients read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// `PUT /api/v1/admin/properties`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackRequest {
    pub hotel_ids: Vec<i64>,
}

/// What a bulk track did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackResponse {
    /// Distinct ids in the request.
    pub requested: usize,
    /// `new + retracked`.
    pub newly_tracked: usize,
    /// Ids never seen before.
    pub new: usize,
    /// Ids that were untracked and are tracked again.
    pub retracked: usize,
    pub already_tracked: usize,
}

/// `GET /api/v1/admin/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    /// Whether the schedule is enabled (the seed's name for it; a run in progress is
    /// `current_run`).
    pub is_running: bool,
    /// When the newest successful run finished.
    pub last_sync: Option<String>,
    /// The next scheduled run; null while the schedule is off.
    pub next_sync: Option<String>,
    pub total_properties: u64,
    /// Tracked properties per sync status (maintained counts).
    pub properties_by_status: std::collections::BTreeMap<String, u64>,
    pub counts_recounted_at: Option<String>,
    pub total_runs: u64,
    /// Of the newest finished run.
    pub updated_properties: u64,
    pub failed_properties: u64,
    pub sync_interval: String,
    pub last_error: Option<String>,
    pub last_run: Option<LastRun>,
    pub current_run: Option<CurrentRun>,
    /// Set while the schedule has paused itself (auto-pause): since when and why.
    pub paused: Option<Paused>,
}

/// The newest finished run, in status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastRun {
    pub sync_id: String,
    /// `halted` means the circuit breaker stopped it.
    pub status: String,
    pub completed_at: Option<String>,
    pub quarantined_properties: u64,
    /// Paths changed per kind of document (the run log has the paths).
    pub schema_drift: Vec<crate::domain::drift::DriftCount>,
}

/// The run in progress, in status: progress as of its last checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrentRun {
    pub sync_id: String,
    pub status: String,
    pub processed: u64,
    pub total: u64,
    /// Upstream requests sent and to send (a property costs one per facet).
    pub requests_done: u64,
    pub requests_total: u64,
    pub started_at: String,
    /// At the configured rate limit.
    pub eta: String,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub quarantined: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paused {
    pub since: String,
    pub reason: String,
}

/// `GET /api/v1/admin/sync/logs`: runs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunPage {
    pub items: Vec<crate::api::app::RunView>,
    pub limit: usize,
    pub offset: usize,
    pub total: u64,
    /// Pass as `?cursor=` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/admin/sync/logs/{sync_id}`: the run and one page of its details.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunLogDetail {
    #[serde(flatten)]
    pub run: crate::api::app::RunView,
    /// This page's failed properties, one row per reason.
    pub failures: Vec<crate::domain::run::Failure>,
    /// This page's changed facets with their changed paths.
    pub changes: Vec<crate::domain::run::Change>,
    pub details: Vec<crate::domain::run::RunDetail>,
    /// Changed or failed properties in the whole run.
    pub details_total: u64,
    /// Pass as `?after=` for the next page; null on the last.
    pub next_after: Option<i64>,
    pub document_writes: u64,
    pub invocations: u32,
}

/// `POST /api/v1/admin/sync` (202).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Triggered {
    pub status: String,
    pub sync_id: String,
    pub message: String,
    /// At the configured rate limit (Go duration).
    pub estimated_duration: String,
    pub triggered_at: String,
}

/// `POST /api/v1/admin/sync/start` and `/stop`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub enabled: bool,
    /// The seed's name for `enabled`.
    pub is_running: bool,
    pub sync_interval: String,
    pub schedule_expression: String,
    pub next_sync: Option<String>,
}

/// `POST /api/v1/admin/sync` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TriggerRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotel_ids: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// One facet held back: which content, and the rules it broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeldFacetView {
    /// `property`, `lang#fr`, `reviews`.
    pub facet: String,
    /// The canonical content hash of the held payload.
    pub content_hash: String,
    /// The first violations in document order.
    pub violations: Vec<crate::domain::contract::Violation>,
    /// All violations, also those beyond the ones listed.
    pub violation_count: usize,
    /// Whether the payload was kept (one over an item's size is not).
    pub payload_kept: bool,
}

/// An operator's acceptance of one held facet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AcceptedView {
    pub facet: String,
    pub content_hash: String,
    pub by: String,
    pub at: String,
}

/// A quarantined property (`GET /admin/quarantine`, `GET /admin/quarantine/{hotel_id}`,
/// the answer to an accept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineEntry {
    pub hotel_id: i64,
    /// Always `quarantined`.
    pub sync_status: String,
    /// The run that first held this content (name it to accept it).
    pub quarantined_by_sync: String,
    /// Since when this content is held.
    pub quarantined_at: String,
    /// The rules broken, in a fixed order.
    pub rules: Vec<crate::domain::contract::Rule>,
    pub facets: Vec<HeldFacetView>,
    pub accepted: Vec<AcceptedView>,
    /// One property only: each held payload (the canonical JSON that would have been
    /// stored) by facet; null once expired or no longer the one held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payloads: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// After an accept: how to store it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /admin/quarantine`: one page, by hotel id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<QuarantineEntry>,
    /// Pass as `after` for the next page; null on the last.
    pub next_after: Option<i64>,
    /// The rule filtered by, if any.
    pub rule: Option<crate::domain::contract::Rule>,
}

/// `DELETE /admin/quarantine/{hotel_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discarded {
    pub hotel_id: i64,
    /// Always `pending`: the next sync checks it again.
    pub sync_status: String,
    pub discarded: bool,
}
