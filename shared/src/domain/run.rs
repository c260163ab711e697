//! Sync runs, sync records and the inputs of the sync function.

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
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed_with_errors",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
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
}

/// Most failures / changes kept on one run item (the item must stay far below 400 KB).
pub const MAX_DETAILS: usize = 200;
/// Most changed paths kept per property.
pub const MAX_PATHS: usize = 20;

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
    pub document_writes: u64,
    pub consumed_rcu: f64,
    pub consumed_wcu: f64,
    pub upstream_requests: u64,
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
        self.document_writes += d.document_writes;
        self.consumed_rcu += d.consumed_rcu;
        self.consumed_wcu += d.consumed_wcu;
        self.upstream_requests += d.upstream_requests;
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
    pub failures: Vec<Failure>,
    pub changes: Vec<Change>,
    /// How many failures / changes did not fit on the item.
    pub details_dropped: u64,
    /// Upstream requests one property costs in this run (property + translations + reviews).
    pub requests_per_property: u64,
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
            failures: Vec::new(),
            changes: Vec::new(),
            details_dropped: 0,
            requests_per_property: 1,
        }
    }

    pub fn record_failure(&mut self, hotel_id: i64, reason: String) {
        if self.failures.len() < MAX_DETAILS {
            self.failures.push(Failure { hotel_id, reason });
        } else {
            self.details_dropped += 1;
        }
    }

    pub fn record_change(&mut self, change: Change) {
        if self.changes.len() < MAX_DETAILS {
            self.changes.push(change);
        } else {
            self.details_dropped += 1;
        }
    }

    /// The final status from the counters.
    pub fn final_status(&self) -> RunStatus {
        if self.counters.failed > 0 || self.counters.partial > 0 {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Completed
        }
    }

    pub fn duration_secs(&self) -> Option<i64> {
        self.completed_at.map(|c| c.secs() - self.started_at.secs())
    }
}

/// The sync state of one tracked property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Pending,
    Synced,
    Partial,
    Failed,
    NotFound,
    Untracked,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Partial => "partial",
            SyncStatus::Failed => "failed",
            SyncStatus::NotFound => "not_found",
            SyncStatus::Untracked => "untracked",
        }
    }
}

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
            name: None,
            city: None,
            country: None,
            stars: None,
            rating: None,
            facets: Default::default(),
            fence: None,
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
            synced: self.sync_status == SyncStatus::Synced,
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
    /// The stored sync_status is `synced` (an unchanged property needs no status write).
    pub synced: bool,
}

impl Tracked {
    pub fn new(hotel_id: i64) -> Self {
        Tracked {
            hotel_id,
            ..Default::default()
        }
    }
    pub fn hash(&self, facet: &str) -> Option<&str> {
        self.facets.get(facet).map(|f| f.hash.as_str())
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
mod tests {
    use super::*;

    #[test]
    fn sync_requests_parse_each_input() {
        let s: SyncRequest = serde_json::from_str(r#"{"sync_type":"scheduled"}"#).unwrap();
        assert_eq!(s, SyncRequest::scheduled());
        let s: SyncRequest = serde_json::from_str(
            r#"{"sync_type":"scheduled","scheduled_time":"2026-11-30T12:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            SyncRequest::Scheduled {
                scheduled_time: Some("2026-11-30T12:00:00Z".into())
            }
        );
        let m: SyncRequest = serde_json::from_str(
            r#"{"sync_type":"manual","sync_id":"X","hotel_ids":[1,2],"dry_run":true}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            SyncRequest::Manual {
                sync_id: "X".into(),
                lease: None,
                hotel_ids: Some(vec![1, 2]),
                dry_run: true
            }
        );
        let r: SyncRequest =
            serde_json::from_str(r#"{"sync_type":"resume","sync_id":"X","lease":4}"#).unwrap();
        assert_eq!(
            r,
            SyncRequest::Resume {
                sync_id: "X".into(),
                lease: Some(4)
            }
        );
        assert!(serde_json::from_str::<SyncRequest>(r#"{"sync_type":"other"}"#).is_err());
    }

    #[test]
    fn details_are_bounded() {
        let mut run = SyncRun::new("a".into(), SyncType::Manual, Timestamp(0));
        for i in 0..(MAX_DETAILS as i64 + 5) {
            run.record_failure(i, "x".into());
        }
        assert_eq!(run.failures.len(), MAX_DETAILS);
        assert_eq!(run.details_dropped, 5);
    }

    #[test]
    fn a_slot_always_names_the_same_run_and_slots_sort_by_time() {
        let a = slot_sync_id(Timestamp(1_700_000_000));
        assert_eq!(a, slot_sync_id(Timestamp(1_700_000_000)));
        assert!(a < slot_sync_id(Timestamp(1_700_000_060)));
        assert!(a < new_sync_id(1_700_000_000_500));
    }

    #[test]
    fn slots_alternate_and_legacy_documents_keep_their_key() {
        assert_eq!(FacetState::next_slot(None), "a");
        let st = |slot: Option<&str>| FacetState {
            hash: "h".into(),
            version: 1,
            slot: slot.map(String::from),
        };
        assert_eq!(FacetState::next_slot(Some(&st(Some("a")))), "b");
        assert_eq!(FacetState::next_slot(Some(&st(Some("b")))), "a");
        assert_eq!(FacetState::next_slot(Some(&st(None))), "a");
        assert_eq!(st(None).key("property"), "property");
        assert_eq!(st(Some("b")).key("lang#fr"), "lang#fr@b");
    }

    #[test]
    fn sync_ids_sort_by_time() {
        let a = new_sync_id(1_700_000_000_000);
        let b = new_sync_id(1_700_000_001_000);
        assert!(a < b);
        assert_eq!(a.len(), 26);
    }
}
