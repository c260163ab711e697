//! Auto-pause: after `sync_max_consecutive_failures` scheduled runs in a row that failed (or
//! were halted by the circuit breaker, or abandoned, or finished with every property failing),
//! the schedule disables itself rather than keep failing every 12 hours unnoticed; starting it
//! again clears the note.

use super::run::{RunStatus, SyncRun, SyncType};

/// A finished run that did the catalogue no good: it failed, was halted or abandoned, or it
/// finished with every property it tried failing (upstream down or refusing: nothing synced).
pub fn ended_badly(r: &SyncRun) -> bool {
    let c = &r.counters;
    match r.status {
        RunStatus::Failed | RunStatus::Halted | RunStatus::Abandoned => true,
        RunStatus::CompletedWithErrors => {
            c.failed > 0 && c.updated + c.unchanged + c.partial + c.quarantined + c.not_found == 0
        }
        _ => false,
    }
}

/// Why a run ended badly, in a few words.
fn why(r: &SyncRun) -> String {
    match (&r.error_message, r.status) {
        (Some(m), _) => m.clone(),
        (None, RunStatus::CompletedWithErrors) => {
            format!("all {} properties it tried failed", r.counters.failed)
        }
        (None, _) => "no reason recorded".into(),
    }
}

/// Scheduled runs in a row, newest first, that ended badly, up to the newest scheduled run that
/// completed. Manual runs and dry runs are not the schedule's and do not count either way; runs
/// still active are skipped.
pub fn consecutive_failures(newest_first: &[SyncRun]) -> u32 {
    let mut n = 0;
    for r in newest_first {
        if r.sync_type != SyncType::Scheduled || r.dry_run || r.status.is_active() {
            continue;
        }
        if ended_badly(r) {
            n += 1;
        } else {
            break;
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
                why(r)
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
    fn a_run_where_every_property_failed_ended_badly_and_says_so() {
        let mut r = run(1, SyncType::Scheduled, RunStatus::CompletedWithErrors);
        r.error_message = None;
        r.counters.failed = 100;
        assert!(ended_badly(&r));
        assert!(
            reason(&[r.clone()], 1).contains("all 100 properties it tried failed"),
            "{}",
            reason(&[r.clone()], 1)
        );
        // One property synced: upstream answers, some properties are broken.
        r.counters.unchanged = 1;
        assert!(!ended_badly(&r));
        assert_eq!(consecutive_failures(&[r]), 0);
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
