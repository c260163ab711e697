//! Catalogue counts that admin reads take in constant time: properties per sync status and runs
//! kept. They are maintained as the data changes and recounted by every clean full run; the
//! consistency rules are in ARCHITECTURE.md ("Counts").

use super::status::SyncStatus;
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Properties per sync status (or, as a delta, the change of each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub pending: i64,
    pub synced: i64,
    pub partial: i64,
    pub failed: i64,
    pub not_found: i64,
    #[serde(default)]
    pub quarantined: i64,
    pub untracked: i64,
}

impl StatusCounts {
    pub const STATUSES: [SyncStatus; 7] = SyncStatus::ALL;

    pub fn get_mut(&mut self, s: SyncStatus) -> &mut i64 {
        match s {
            SyncStatus::Pending => &mut self.pending,
            SyncStatus::Synced => &mut self.synced,
            SyncStatus::Partial => &mut self.partial,
            SyncStatus::Failed => &mut self.failed,
            SyncStatus::NotFound => &mut self.not_found,
            SyncStatus::Quarantined => &mut self.quarantined,
            SyncStatus::Untracked => &mut self.untracked,
        }
    }

    pub fn get(&self, s: SyncStatus) -> i64 {
        let mut c = *self;
        *c.get_mut(s)
    }

    /// One property more with status `s` (or fewer, with a negative `n`).
    pub fn add(&mut self, s: SyncStatus, n: i64) {
        *self.get_mut(s) += n;
    }

    /// A property moved from `from` to `to` (nothing when they are equal).
    pub fn moved(&mut self, from: SyncStatus, to: SyncStatus) {
        if from != to {
            self.add(from, -1);
            self.add(to, 1);
        }
    }

    pub fn plus(&mut self, d: &StatusCounts) {
        for s in Self::STATUSES {
            self.add(s, d.get(s));
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == StatusCounts::default()
    }

    /// Properties tracked: every status but `untracked`.
    pub fn tracked(&self) -> u64 {
        Self::STATUSES
            .iter()
            .filter(|s| **s != SyncStatus::Untracked)
            .map(|s| self.get(*s).max(0) as u64)
            .sum()
    }

    /// Each (status name, count) pair, in a fixed order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        Self::STATUSES.iter().map(|s| (s.as_str(), self.get(*s)))
    }
}

/// The stats item as admin reads see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogueStats {
    pub counts: StatusCounts,
    /// Bumped by every tracking change (track, untrack): a run recounts only if none happened
    /// while it worked.
    pub epoch: u64,
    /// Runs in the log (created within the retention period).
    pub runs: u64,
    /// The newest successful, non-dry run as recorded when it finished.
    pub last_success: Option<(String, Timestamp)>,
    /// The run that last recounted, and when.
    pub recounted: Option<(String, Timestamp)>,
    /// Set when the schedule paused itself (auto-pause): why, and since when. Cleared when it
    /// is started again.
    pub paused: Option<(String, Timestamp)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_total_and_tracked_excludes_untracked() {
        let mut c = StatusCounts::default();
        c.add(SyncStatus::Pending, 3);
        c.moved(SyncStatus::Pending, SyncStatus::Synced);
        c.moved(SyncStatus::Pending, SyncStatus::Untracked);
        c.moved(SyncStatus::Synced, SyncStatus::Synced);
        assert_eq!((c.pending, c.synced, c.untracked), (1, 1, 1));
        assert_eq!(c.tracked(), 2);
        let mut d = StatusCounts::default();
        d.plus(&c);
        d.plus(&c);
        assert_eq!(d.tracked(), 4);
        assert!(!d.is_zero());
    }
}
