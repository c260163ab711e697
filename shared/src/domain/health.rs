//! Status and health rules (pure; the clock is an input).
//!
//! - `stopped`: the schedule is disabled (automatic sync off) by an operator.
//! - `unhealthy` also when the schedule paused itself (auto-pause, `domain::pause`): nothing
//!   syncs and no operator chose it, so monitors must see it (HTTP 503, with why and since when).
//! - `unhealthy`: the schedule is enabled and the last successful sync is older than
//!   interval + grace (or there has been none for longer than interval + grace since the
//!   schedule started), i.e. *overdue*. Answered with HTTP 503.
//! - `degraded`: not overdue, but the latest finished run failed, was abandoned, was halted by
//!   the circuit breaker, or completed with errors.
//! - `healthy`: otherwise.
//!
//! grace = max(interval / 10, 5 minutes): a run takes time, and the scheduler fires within a
//! minute of its slot.

use super::interval::Interval;
use super::run::RunStatus;
use super::time::{Timestamp, format_go_duration};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    Stopped,
}

/// What health is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthInput {
    pub now: Timestamp,
    pub schedule_enabled: bool,
    /// When the schedule was (re)started: its anchor.
    pub schedule_anchor: Option<Timestamp>,
    pub interval: Interval,
    /// completed_at of the newest run that completed (with or without errors).
    pub last_success: Option<Timestamp>,
    /// Status of the newest finished run.
    pub last_finished: Option<RunStatus>,
    /// Why and since when the schedule paused itself, if it did (cleared by a start).
    pub paused: Option<(String, Timestamp)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub is_running: bool,
    pub is_healthy: bool,
    pub is_overdue: bool,
    /// Go duration since the last successful sync; null when there has been none.
    pub last_sync_age: Option<String>,
    /// Go duration until the next scheduled sync; null when stopped.
    pub next_sync_in: Option<String>,
    pub sync_interval: String,
    pub summary: String,
    pub checked_at: String,
    /// Set while the schedule has paused itself: since when, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
}

pub fn grace(interval: Interval) -> Duration {
    (interval.duration() / 10).max(Duration::from_secs(300))
}

/// The next slot strictly after `now` on the grid anchor + k·interval.
pub fn next_sync(anchor: Timestamp, interval: Interval, now: Timestamp) -> Timestamp {
    let step = interval.duration().as_secs() as i64;
    if now < anchor {
        return anchor;
    }
    let k = (now.secs() - anchor.secs()) / step + 1;
    Timestamp(anchor.secs() + k * step)
}

pub fn compute(h: &HealthInput) -> Health {
    let limit = h.interval.duration() + grace(h.interval);
    let reference = h.last_success.or(h.schedule_anchor);
    let is_overdue = h.schedule_enabled && reference.is_some_and(|r| h.now.since(r) > limit);
    let last_bad = matches!(
        h.last_finished,
        Some(
            RunStatus::Failed
                | RunStatus::Abandoned
                | RunStatus::CompletedWithErrors
                | RunStatus::Halted
        )
    );
    let paused = h.paused.as_ref().filter(|_| !h.schedule_enabled);
    let status = if paused.is_some() {
        HealthStatus::Unhealthy
    } else if !h.schedule_enabled {
        HealthStatus::Stopped
    } else if is_overdue {
        HealthStatus::Unhealthy
    } else if last_bad {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let age = h.last_success.map(|t| h.now.since(t));
    let next_in = match (h.schedule_enabled, h.schedule_anchor) {
        (true, Some(a)) => Some(next_sync(a, h.interval, h.now).since(h.now)),
        _ => None,
    };
    let summary = match status {
        HealthStatus::Stopped => {
            "Automatic sync is stopped; start it with POST /api/v1/admin/sync/start".to_string()
        }
        HealthStatus::Unhealthy if paused.is_some() => format!(
            "Automatic sync paused itself {} ago: {}",
            format_go_duration(h.now.since(paused.map(|p| p.1).unwrap_or(h.now))),
            paused.map(|p| p.0.as_str()).unwrap_or("")
        ),
        HealthStatus::Unhealthy => match age {
            Some(a) => format!(
                "Last successful sync was {} ago, more than the interval {} plus grace {}",
                format_go_duration(a),
                h.interval,
                format_go_duration(grace(h.interval))
            ),
            None => format!(
                "No successful sync since the schedule started more than {} ago",
                format_go_duration(limit)
            ),
        },
        HealthStatus::Degraded => format!(
            "Sync is on schedule, but the last run ended {}",
            h.last_finished.map(|s| s.as_str()).unwrap_or("badly")
        ),
        HealthStatus::Healthy => match age {
            Some(a) => format!(
                "Last successful sync {} ago; syncing every {}",
                format_go_duration(a),
                h.interval
            ),
            None => format!("Waiting for the first sync; syncing every {}", h.interval),
        },
    };
    Health {
        status,
        is_running: h.schedule_enabled,
        is_healthy: status != HealthStatus::Unhealthy,
        is_overdue,
        last_sync_age: age.map(format_go_duration),
        next_sync_in: next_in.map(format_go_duration),
        sync_interval: h.interval.to_string(),
        summary,
        checked_at: h.now.rfc3339(),
        paused_since: paused.map(|p| p.1.rfc3339()),
        paused_reason: paused.map(|p| p.0.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(now: i64) -> HealthInput {
        HealthInput {
            now: Timestamp(now),
            schedule_enabled: true,
            schedule_anchor: Some(Timestamp(0)),
            interval: Interval::parse("12h").unwrap(),
            last_success: Some(Timestamp(0)),
            last_finished: Some(RunStatus::Completed),
            paused: None,
        }
    }

    #[test]
    fn a_schedule_that_paused_itself_is_unhealthy_and_says_why_and_since_when() {
        let mut i = input(7200);
        i.schedule_enabled = false;
        i.last_finished = Some(RunStatus::Halted);
        i.paused = Some(("5 runs failed".into(), Timestamp(3600)));
        let h = compute(&i);
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert_eq!(h.paused_since.as_deref(), Some("1970-01-01T01:00:00Z"));
        assert!(
            h.summary.contains("paused itself 1h ago: 5 runs failed"),
            "{}",
            h.summary
        );
        // Started again (the note is cleared then; an enabled schedule ignores a stale one).
        i.schedule_enabled = true;
        assert_eq!(
            compute(&i).status,
            HealthStatus::Degraded,
            "the last run was halted"
        );
    }

    #[test]
    fn healthy_within_interval_plus_grace() {
        // grace for 12h = 72 min
        let h = compute(&input(12 * 3600 + 71 * 60));
        assert_eq!(h.status, HealthStatus::Healthy);
        assert!(h.is_healthy && !h.is_overdue);
        assert_eq!(h.last_sync_age.as_deref(), Some("13h11m"));
        assert_eq!(h.next_sync_in.as_deref(), Some("10h49m"));
    }

    #[test]
    fn overdue_is_unhealthy() {
        let h = compute(&input(12 * 3600 + 73 * 60));
        assert_eq!(h.status, HealthStatus::Unhealthy);
        assert!(!h.is_healthy && h.is_overdue);
        assert!(h.summary.contains("12h"), "{}", h.summary);
    }

    #[test]
    fn errors_degrade_and_stop_wins() {
        let mut i = input(3600);
        i.last_finished = Some(RunStatus::CompletedWithErrors);
        assert_eq!(compute(&i).status, HealthStatus::Degraded);
        i.schedule_enabled = false;
        let h = compute(&i);
        assert_eq!(h.status, HealthStatus::Stopped);
        assert!(!h.is_running && h.next_sync_in.is_none());
    }

    #[test]
    fn never_synced_counts_from_the_schedule_anchor() {
        let mut i = input(3600);
        i.last_success = None;
        i.last_finished = None;
        assert_eq!(compute(&i).status, HealthStatus::Healthy);
        i.now = Timestamp(14 * 3600);
        assert_eq!(compute(&i).status, HealthStatus::Unhealthy);
    }

    #[test]
    fn next_sync_follows_the_anchor_grid() {
        let i = Interval::parse("12h").unwrap();
        assert_eq!(next_sync(Timestamp(100), i, Timestamp(50)), Timestamp(100));
        assert_eq!(
            next_sync(Timestamp(100), i, Timestamp(100)),
            Timestamp(100 + 43_200)
        );
        assert_eq!(
            next_sync(Timestamp(100), i, Timestamp(50_000)),
            Timestamp(100 + 86_400)
        );
    }
}
