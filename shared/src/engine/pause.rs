//! Auto-pause (`domain::pause`): the schedule disables itself after too many failed
//! scheduled runs in a row.

use super::Engine;
use crate::domain::pause;
use crate::domain::run::SyncRun;
use crate::domain::settings::{SettingKey, SettingValue};
use crate::ports::*;
use tracing::{error, warn};

impl Engine {
    /// After too many failed scheduled runs in a row (`sync_max_consecutive_failures`), the
    /// schedule disables itself, says why and since when (on the counts item, which status and
    /// health read), and publishes `SyncPaused`. Best effort: a failure here is logged, and
    /// the next failed run tries again. `just`: the run just saved, as saved (the run log's
    /// time index is eventually consistent on DynamoDB and may still list it as running).
    pub(super) async fn auto_pause(&self, just: &SyncRun) {
        // A stored setting that does not validate must not stop the pause (it may be why every
        // run fails): the default applies then.
        let max = match self.settings().await {
            Ok(s) => s.max_consecutive_failures,
            Err(_) => self.cfg.defaults.max_consecutive_failures,
        };
        if max == 0 {
            return;
        }
        let sched = match self.deps.schedule.get().await {
            Ok(Some(s)) if s.enabled => s,
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, "could not read the schedule for auto-pause");
                return;
            }
        };
        // Manual runs may sit between the schedule's: read enough to see `max` of them. Only
        // runs since the schedule was (re)started count: starting it again starts afresh.
        let recent: Vec<_> = match self
            .deps
            .runs
            .list((max as usize * 3 + 10).min(100), RunsFrom::Offset(0))
            .await
        {
            Ok((mut runs, _)) => {
                match runs.iter_mut().find(|r| r.sync_id == just.sync_id) {
                    Some(listed) => *listed = just.clone(),
                    None => {
                        runs.push(just.clone());
                        runs.sort_by(|a, b| b.sync_id.cmp(&a.sync_id));
                    }
                }
                runs.into_iter()
                    .filter(|r| sched.anchor.is_none_or(|a| r.started_at >= a))
                    .collect()
            }
            Err(e) => {
                warn!(error = %e, "could not read the run log for auto-pause");
                return;
            }
        };
        if !pause::should_pause(&recent, max) {
            return;
        }
        let now = self.deps.clock.now();
        let reason = pause::reason(&recent, max);
        // The note first: it shows only while the schedule is off, so a pause that fails
        // half-way never leaves the schedule off without saying why.
        let paused = async {
            self.deps
                .stats
                .set_paused(Some((reason.clone(), now)))
                .await?;
            self.deps
                .settings
                .put_all(
                    &[(SettingKey::SyncEnableAuto, SettingValue::Flag(false))],
                    now,
                )
                .await?;
            self.deps
                .schedule
                .put(false, sched.interval, sched.anchor.unwrap_or(now))
                .await
                .map(|_| ())
        };
        match paused.await {
            Ok(()) => {
                error!(reason = %reason, "schedule paused itself");
                let event = RunEvent {
                    detail_type: "SyncPaused",
                    detail: serde_json::json!({ "reason": reason, "paused_at": now.rfc3339(), "consecutive_failures": max }),
                };
                if let Err(e) = self.deps.events.publish(&event).await {
                    warn!(error = %e, "could not publish SyncPaused");
                }
            }
            Err(e) => {
                warn!(error = %e, "could not pause the schedule; the next failed run tries again")
            }
        }
    }
}
