//! Sync runs, sync records and the inputs of the sync function.

use super::quarantine::{Accepted, HeldFacet, QuarantineNote};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the sync function receives (schedule, manual trigger, continuation). Every input may
/// be delivered more than once (Lambda async invokes and Scheduler are at-least-once): the
/// engine makes a duplicate do nothing (see `domain::lease`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sync_type", rename_all = "snake_case")]
pub enum SyncRequest {
    /// One schedule slot. `scheduled_time` (`<aws.scheduler.scheduled-time>`, RFC 3339) names
    /// the slot: its run id is derived from it, so a slot runs once however often it is
    /// delivered. Absent (a hand-made invocation): the slot is "now".
    Scheduled {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_time: Option<String>,
    },
    /// A run the trigger created and reserved the lease for (`lease` = the reserved token).
    /// The run item holds what to sync; ids and dry_run here are informational.
    Manual {
        sync_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hotel_ids: Option<Vec<i64>>,
        #[serde(default)]
        dry_run: bool,
    },
    /// A continuation: `lease` is the token of the invocation that handed the run over.
    Resume {
        sync_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<u64>,
    },
}

impl SyncRequest {
    pub fn scheduled() -> Self {
        SyncRequest::Scheduled {
            scheduled_time: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncType {
    Scheduled,
    Manual,
}

impl SyncType {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncType::Scheduled => "scheduled",
            SyncType::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created by the trigger, not yet picked up by the sync function.
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    /// Its lease expired without completion (process killed); marked by the next run.
    Abandoned,
    /// Stopped by the circuit breaker (`domain::breaker`): too much would change at once.
    Halted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::CompletedWithErrors,
        RunStatus::Failed,
        RunStatus::Abandoned,
        RunStatus::Halted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed_with_errors",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Halted => "halted",
        }
    }
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one property failed in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    pub hotel_id: i64,
    pub reason: String,
}

fn property_facet() -> String {
    "property".into()
}

/// What changed for one property facet in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub hotel_id: i64,
    /// `property`, `lang#fr`, `reviews`, ...
    #[serde(default = "property_facet")]
    pub facet: String,
    /// Changed JSON paths; `["$"]` for a first sync.
    pub paths: Vec<String>,
    #[serde(default)]
    pub paths_truncated: bool,
    /// Stored despite its contract: who accepted the held payload, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
}

/// What one run did to one property that changed or failed: its own item in the run log
/// (`RunLog::put_details`), so the run item stays small whatever the run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub hotel_id: i64,
    /// Why the property (or some of its facets) failed; the previous data was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// The facets written, with their changed paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// Most changed paths kept per facet change.
pub const MAX_PATHS: usize = 20;
/// Longest changed path kept (upstream keys are not ours to bound).
pub const MAX_PATH_CHARS: usize = 200;
/// Longest failure reason kept.
pub const MAX_REASON_CHARS: usize = 1000;

/// Cuts `s` to at most `max` characters (on a char boundary), marking the cut.
pub fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
        s.push('…');
    }
}

impl RunDetail {
    /// Bounds the item: paths and reasons cut to their maximum lengths.
    pub fn bounded(mut self) -> Self {
        for f in &mut self.failures {
            truncate_chars(f, MAX_REASON_CHARS);
        }
        for c in &mut self.changes {
            if c.paths.len() > MAX_PATHS {
                c.paths.truncate(MAX_PATHS);
                c.paths_truncated = true;
            }
            for p in &mut c.paths {
                truncate_chars(p, MAX_PATH_CHARS);
            }
        }
        self
    }
}

/// Counters of a run (checkpointed after every batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub processed: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub not_found: u64,
    /// Properties whose property facet synced but some other facet failed.
    #[serde(default)]
    pub partial: u64,
    /// Properties untracked while the run was working on them (left alone).
    #[serde(default)]
    pub untracked: u64,
    /// Properties whose changed documents broke their contracts (held back, previous kept).
    #[serde(default)]
    pub quarantined: u64,
    pub document_writes: u64,
    pub consumed_rcu: f64,
    pub consumed_wcu: f64,
    pub upstream_requests: u64,
    /// Upstream attempts answered 429, answered 5xx, or that timed out or could not connect;
    /// and the retries made (each also counts in `upstream_requests`).
    #[serde(default)]
    pub upstream_throttled: u64,
    #[serde(default)]
    pub upstream_server_errors: u64,
    #[serde(default)]
    pub upstream_unreachable: u64,
    #[serde(default)]
    pub upstream_retries: u64,
}

impl Counters {
    pub fn add(&mut self, d: &Counters) {
        self.processed += d.processed;
        self.updated += d.updated;
        self.unchanged += d.unchanged;
        self.failed += d.failed;
        self.not_found += d.not_found;
        self.partial += d.partial;
        self.untracked += d.untracked;
        self.quarantined += d.quarantined;
        self.document_writes += d.document_writes;
        self.consumed_rcu += d.consumed_rcu;
        self.consumed_wcu += d.consumed_wcu;
        self.upstream_requests += d.upstream_requests;
        self.upstream_throttled += d.upstream_throttled;
        self.upstream_server_errors += d.upstream_server_errors;
        self.upstream_unreachable += d.upstream_unreachable;
        self.upstream_retries += d.upstream_retries;
    }
}

/// One sync run as stored in `sync_logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub sync_id: String,
    pub sync_type: SyncType,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub total: u64,
    pub counters: Counters,
    pub error_message: Option<String>,
    /// Where a continuation resumes: the last id of the done prefix, in the order the run
    /// reads its properties (scan order, or ascending for requested ids).
    pub cursor: Option<i64>,
    /// Ids after the cursor that are already done (they finished out of order).
    pub skip: Vec<i64>,
    /// A requested subset (manual trigger); `None` = every tracked property.
    pub hotel_ids: Option<Vec<i64>>,
    pub invocations: u32,
    /// Properties with a detail item (changed or failed) recorded for this run.
    pub details: u64,
    /// The sync status each property of the run ended with (checkpointed with the cursor, so
    /// exact across continuations); a clean full run stores it as the catalogue counts.
    pub tally: crate::domain::stats::StatusCounts,
    /// Properties whose final status the run cannot know (a write failed); no recount then.
    pub tally_unknown: u64,
    /// The catalogue counts' epoch when the run started (see `ports::Stats::recount`).
    pub stats_epoch: Option<u64>,
    /// Failures and changes kept on the run item by earlier versions (read only: runs now
    /// keep them in detail items).
    pub legacy_failures: Vec<Failure>,
    pub legacy_changes: Vec<Change>,
    /// Upstream requests one property costs in this run (property + translations + reviews).
    pub requests_per_property: u64,
    /// An operator accepted a mass change: the circuit breaker is off for this run.
    pub force: bool,
    /// What the circuit breaker counted so far (done properties only).
    pub breaker: crate::domain::breaker::BreakerCounts,
    /// The shapes of the documents observed so far (`domain::shape`; saved with checkpoints,
    /// cleared when the run ends and has reported its drift).
    pub shape: crate::domain::shape::Shapes,
    /// How the documents' shapes changed against the baseline (set when the run ends).
    pub drift: Vec<crate::domain::drift::FacetDrift>,
}

impl SyncRun {
    pub fn new(sync_id: String, sync_type: SyncType, now: Timestamp) -> Self {
        SyncRun {
            sync_id,
            sync_type,
            status: RunStatus::Queued,
            dry_run: false,
            started_at: now,
            completed_at: None,
            total: 0,
            counters: Counters::default(),
            error_message: None,
            cursor: None,
            skip: Vec::new(),
            hotel_ids: None,
            invocations: 0,
            details: 0,
            tally: Default::default(),
            tally_unknown: 0,
            stats_epoch: None,
            legacy_failures: Vec::new(),
            legacy_changes: Vec::new(),
            requests_per_property: 1,
            force: false,
            breaker: Default::default(),
            shape: Default::default(),
            drift: Vec::new(),
        }
    }

    pub fn final_status(&self) -> RunStatus {
        if self.counters.failed > 0 || self.counters.partial > 0 {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Completed
        }
    }

    /// A finished run that synced the whole catalogue (not a dry run, not a subset an
    /// operator named, and not one where every property failed): what `last_sync` and the
    /// health's overdue clock count.
    pub fn is_catalogue_success(&self) -> bool {
        self.completed_at.is_some()
            && matches!(
                self.status,
                RunStatus::Completed | RunStatus::CompletedWithErrors
            )
            && !self.dry_run
            && self.hotel_ids.is_none()
            && !super::pause::ended_badly(self)
    }

    pub fn duration_secs(&self) -> Option<i64> {
        self.completed_at.map(|c| c.secs() - self.started_at.secs())
    }
}

pub use super::status::SyncStatus;

/// The small per-property record (`properties` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub hotel_id: i64,
    pub sync_status: SyncStatus,
    pub data_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_id: Option<String>,
    /// The sync whose commit stored the current data (the circuit breaker counts a property
    /// its own run changed as a change, even when a continuation finds it unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stars: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// Facet key → the stored version of that facet (which document item holds it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub facets: std::collections::BTreeMap<String, FacetState>,
    /// The fencing token of the last sync invocation that wrote this record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
    /// While `quarantined`: what was held back and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineNote>,
    /// Held payloads an operator accepted (facet → content hash, who, when): the next sync
    /// stores exactly those.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub accepted: Accepted,
}

impl SyncRecord {
    pub fn pending(hotel_id: i64) -> Self {
        SyncRecord {
            hotel_id,
            sync_status: SyncStatus::Pending,
            data_version: 0,
            content_hash: None,
            last_synced: None,
            last_updated: None,
            last_error: None,
            last_checked: None,
            last_sync_id: None,
            changed_by: None,
            name: None,
            city: None,
            country: None,
            stars: None,
            rating: None,
            facets: Default::default(),
            fence: None,
            quarantine: None,
            accepted: Default::default(),
        }
    }

    /// The facet states, reading a record written before facets existed (only
    /// `content_hash`) as its property facet.
    pub fn facet_states(&self) -> std::collections::BTreeMap<String, FacetState> {
        let mut f = self.facets.clone();
        if f.is_empty()
            && let Some(h) = &self.content_hash
        {
            f.insert(
                crate::domain::facet::PROPERTY.into(),
                FacetState {
                    hash: h.clone(),
                    version: self.data_version,
                    slot: None,
                    raw: None,
                },
            );
        }
        f
    }

    pub fn is_tracked(&self) -> bool {
        self.sync_status != SyncStatus::Untracked
    }

    /// What a sync needs of this record.
    pub fn tracked(&self) -> Tracked {
        Tracked {
            hotel_id: self.hotel_id,
            data_version: self.data_version,
            facets: self.facet_states(),
            status: self.sync_status,
            accepted: self.accepted.clone(),
            changed_by: self.changed_by.clone(),
            held: match (&self.quarantine, self.sync_status) {
                (Some(note), SyncStatus::Quarantined) => Some(Held::of(note)),
                _ => None,
            },
        }
    }
}

/// The stored state of one facet: its content hash, the record version it was written at, and
/// the document slot that holds it. Each facet has two slots (`a`, `b`): a new version is
/// written into the slot the record does not point at, then the record is switched to it, so
/// a reader following the record never sees a half-written or mismatched document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetState {
    pub hash: String,
    pub version: u64,
    /// `None`: a document written before slots existed (its key is the facet key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Digest of the raw upstream body this version came from: the same bytes again are
    /// unchanged without parsing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl FacetState {
    /// The slot the next version of this facet goes to.
    pub fn next_slot(current: Option<&FacetState>) -> &'static str {
        match current.and_then(|c| c.slot.as_deref()) {
            Some("a") => "b",
            _ => "a",
        }
    }

    /// The document item key (`property@a`, `lang#fr@b`; legacy: `property`).
    pub fn doc_key(facet: &str, slot: Option<&str>) -> String {
        match slot {
            Some(s) => format!("{facet}@{s}"),
            None => facet.to_string(),
        }
    }

    pub fn key(&self, facet: &str) -> String {
        Self::doc_key(facet, self.slot.as_deref())
    }
}

/// What the engine needs of a tracked record to decide (kept compact in memory).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracked {
    pub hotel_id: i64,
    pub data_version: u64,
    /// Facet key → state.
    pub facets: std::collections::BTreeMap<String, FacetState>,
    /// The stored sync status when read.
    pub status: SyncStatus,
    /// Held payloads an operator accepted.
    pub accepted: Accepted,
    /// The sync whose commit stored the current data.
    pub changed_by: Option<String>,
    /// While quarantined: what is held, by which run, since when.
    pub held: Option<Held>,
}

/// What a quarantined record holds: the run that first held it, when, and each facet held
/// back (its content hash and what it broke).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    pub sync_id: String,
    pub at: i64,
    pub facets: Vec<HeldFacet>,
}

impl Held {
    pub fn of(note: &QuarantineNote) -> Self {
        Held {
            sync_id: note.sync_id.clone(),
            at: note.at,
            facets: note.facets.clone(),
        }
    }
    /// The content hash held of `facet`.
    pub fn hash(&self, facet: &str) -> Option<&str> {
        self.facets
            .iter()
            .find(|f| f.facet == facet)
            .map(|f| f.hash.as_str())
    }
}

impl Tracked {
    pub fn new(hotel_id: i64) -> Self {
        Tracked {
            hotel_id,
            ..Default::default()
        }
    }
    /// The stored status is `synced` (an unchanged property then needs no status write).
    pub fn synced(&self) -> bool {
        self.status == SyncStatus::Synced
    }
    pub fn hash(&self, facet: &str) -> Option<&str> {
        self.facets.get(facet).map(|f| f.hash.as_str())
    }
    /// The record already holds exactly this content (every facet of `held`, same hash):
    /// holding it again is nothing new. Returns what it holds.
    pub fn already_held(&self, held: &[HeldFacet]) -> Option<&Held> {
        self.held.as_ref().filter(|h| {
            held.iter()
                .all(|f| h.hash(&f.facet) == Some(f.hash.as_str()))
        })
    }
    /// The raw-body digest of the stored version of `facet`, if known.
    pub fn raw(&self, facet: &str) -> Option<&str> {
        self.facets.get(facet).and_then(|f| f.raw.as_deref())
    }
}

/// A new time-sortable run id (ULID).
pub fn new_sync_id(now_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
    ulid::Ulid::from_datetime(t).to_string()
}

/// The run id of one schedule slot: a ULID of the slot's time with no random part, so every
/// delivery of the same slot names the same run (and sorts with the other runs by time).
pub fn slot_sync_id(slot: Timestamp) -> String {
    ulid::Ulid::from_parts((slot.secs().max(0) as u64) * 1000, 0).to_string()
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
