//! The sync status of one tracked property (on its record, counted in the catalogue counts).

use serde::{Deserialize, Serialize};

/// The sync state of one tracked property.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    #[default]
    Pending,
    Synced,
    Partial,
    Failed,
    NotFound,
    /// A changed document broke its contract: held back, the previous version kept.
    Quarantined,
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
            SyncStatus::Quarantined => "quarantined",
            SyncStatus::Untracked => "untracked",
        }
    }

    /// Every status, in a fixed order.
    pub const ALL: [SyncStatus; 7] = [
        SyncStatus::Pending,
        SyncStatus::Synced,
        SyncStatus::Partial,
        SyncStatus::Failed,
        SyncStatus::NotFound,
        SyncStatus::Quarantined,
        SyncStatus::Untracked,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}
