//! Auto-pause: after `sync_max_consecutive_failures` scheduled runs in a row that failed (or
//! were halted by the circuit breaker, or abandoned), the schedule disables itself rather than
//! keep failing every 12 hours unnoticed; starting it again clears the note.

use super::run::{RunStatus, SyncRun, SyncType};

/// Scheduled runs in a row, newest first, that ended badly, up to the newest scheduled run that
/// completed. Manual runs and dry runs are not the schedule's and do not count either way; runs
/// still active are skipped.
pub fn consecutive_failures(newest_first: &[SyncRun]) -> u32 {
    let mut n = 0;
    for r in newest_first {
        if r.sync_type != SyncType::Scheduled || r.dry_run || r.status.is_active() {
            continue;
        }
        match r.status {
            RunStatus::Failed | RunStatus::Halted | RunStatus::Abandoned => n += 1,
            _ => break,
        }
    }
    n
}

/// Whether the schedule should pause after these runs (`max` = 0: never).
pub fn should_pause(newest_first: &[SyncRun], max: u32) -> bool {
    max > 0 && consecutive_failures(newest_first) >= max
}

/// The note status and health show while paused.
pub fn reason(newest_first: &[SyncRun], max: u32) -> String {
    let last = newest_first
        .iter()
        .find(|r| r.sync_type == SyncType::Scheduled && !r.status.is_active());
    let why = last
        .map(|r| {
            format!(
                "; the last, {}, ended {}: {}",
                r.sync_id,
                r.status.as_str(),
                r.error_message.as_deref().unwrap_or("no reason recorded")
            )
        })
        .unwrap_or_default();
    format!(
        "the schedule paused itself after {max} scheduled runs in a row failed or were halted{why}. Fix the cause, then POST /api/v1/admin/sync/start (make sync-start)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    fn run(i: u32, t: SyncType, s: RunStatus) -> SyncRun {
        let mut r = SyncRun::new(format!("r{i}"), t, Timestamp(i as i64));
        r.status = s;
        r.error_message = Some(format!("because {i}"));
        r
    }

    #[test]
    fn counts_the_schedules_bad_runs_in_a_row_up_to_its_last_success() {
        use RunStatus::*;
        use SyncType::*;
        let runs = vec![
            run(9, Scheduled, Running),
            run(8, Scheduled, Failed),
            run(7, Manual, Completed),
            run(6, Scheduled, Halted),
            run(5, Scheduled, Abandoned),
            run(4, Manual, Failed),
            run(3, Scheduled, Failed),
            run(2, Scheduled, CompletedWithErrors),
            run(1, Scheduled, Failed),
        ];
        assert_eq!(consecutive_failures(&runs), 4);
        assert!(should_pause(&runs, 4));
        assert!(!should_pause(&runs, 5));
        assert!(!should_pause(&runs, 0), "0 = never");
        let r = reason(&runs, 4);
        assert!(r.contains("after 4 scheduled runs") && r.contains("r8, ended failed: because 8"));
    }
}
