//! Sync runs, sync records and the inputs of the sync function.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What the sync function receives (schedule, manual trigger, continuation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sync_type", rename_all = "snake_case")]
pub enum SyncRequest {
    Scheduled {},
    Manual {
        sync_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hotel_ids: Option<Vec<i64>>,
        #[serde(default)]
        dry_run: bool,
    },
    Resume {
        sync_id: String,
    },
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
    pub document_writes: u64,
    pub consumed_rcu: f64,
    pub consumed_wcu: f64,
    pub upstream_requests: u64,
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
    /// Properties are processed in ascending hotel_id order; all ids ≤ cursor are done.
    pub cursor: Option<i64>,
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
            last_sync_id: None,
            name: None,
            city: None,
            country: None,
            stars: None,
            rating: None,
        }
    }
}

/// The stored state of one facet: its content hash and the record version it was written at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetState {
    pub hash: String,
    pub version: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_requests_parse_each_input() {
        let s: SyncRequest = serde_json::from_str(r#"{"sync_type":"scheduled"}"#).unwrap();
        assert_eq!(s, SyncRequest::Scheduled {});
        let m: SyncRequest = serde_json::from_str(
            r#"{"sync_type":"manual","sync_id":"X","hotel_ids":[1,2],"dry_run":true}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            SyncRequest::Manual {
                sync_id: "X".into(),
                hotel_ids: Some(vec![1, 2]),
                dry_run: true
            }
        );
        let r: SyncRequest =
            serde_json::from_str(r#"{"sync_type":"resume","sync_id":"X"}"#).unwrap();
        assert_eq!(
            r,
            SyncRequest::Resume {
                sync_id: "X".into()
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
    fn sync_ids_sort_by_time() {
        let a = new_sync_id(1_700_000_000_000);
        let b = new_sync_id(1_700_000_001_000);
        assert!(a < b);
        assert_eq!(a.len(), 26);
    }
}
