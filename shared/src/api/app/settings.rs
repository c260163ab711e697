//! Settings (validated all or nothing) and the schedule.

use super::*;

impl App {
    pub(super) async fn settings_rows(&self) -> Result<Vec<SettingRow>, ApiError> {
        let (effective, stored) = self.valid_settings().await?;
        Ok(SettingKey::ALL
            .iter()
            .map(|k| SettingRow {
                setting_key: k.as_str().into(),
                setting_value: effective.value(*k).render(),
                description: k.description().into(),
                updated_at: stored.get(k.as_str()).map(|s| s.updated_at.rfc3339()),
            })
            .collect())
    }
}

impl Scheduled {
    pub(super) async fn settings_put(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let changes: Vec<SettingChange> = req.json()?.ok_or_else(|| {
            ApiError::bad_request(
                "invalid_body",
                "body must be a JSON array of {setting_key, setting_value}",
                "body",
            )
        })?;
        if changes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "body must list at least one setting",
                "body",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &changes {
            if !seen.insert(c.setting_key.clone()) {
                return Err(ApiError::bad_request(
                    "duplicate_setting",
                    format!("setting `{}` appears twice", c.setting_key),
                    c.setting_key.clone(),
                ));
            }
        }
        let values = validate_changes(&changes)
            .map_err(|e| ApiError::bad_request("invalid_setting", e.to_string(), e.key()))?;
        let (before, _) = self.valid_settings().await?;
        let mut after = before.clone();
        for (k, v) in &values {
            after.apply(*k, v.clone());
        }
        let now = self.clock.now();
        self.settings.put_all(&values, now).await?;
        if before.interval != after.interval || before.enable_auto != after.enable_auto {
            // As /sync/start: a schedule turned on (or onto another interval) starts from now,
            // and auto-pause counts only the runs since.
            let anchor = match self.schedule.get().await? {
                Some(s) if s.enabled && s.interval == after.interval => s.anchor.unwrap_or(now),
                _ => now,
            };
            self.schedule
                .put(after.enable_auto, after.interval, anchor)
                .await?;
            if after.enable_auto && !before.enable_auto {
                // Turned on again this way too: a pause note of the schedule's own is over.
                self.stats.set_paused(None).await?;
            }
            tracing::info!(enabled = after.enable_auto, interval = %after.interval, "schedule reconciled with settings");
        }
        Ok(ApiResponse::ok(200, &self.settings_rows().await?))
    }

    pub(super) async fn schedule_view(&self, s: &ScheduleState) -> crate::api::wire::ScheduleView {
        let now = self.clock.now();
        crate::api::wire::ScheduleView {
            enabled: s.enabled,
            is_running: s.enabled,
            sync_interval: s.interval.to_string(),
            schedule_expression: s.interval.rate_expression(),
            next_sync: match (s.enabled, s.anchor) {
                (true, Some(a)) => Some(health::next_sync(a, s.interval, now).rfc3339()),
                _ => None,
            },
        }
    }

    pub(super) async fn schedule_start(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let (settings, _) = self.valid_settings().await?;
        let interval = match req.query.get("interval") {
            None => settings.interval,
            Some(raw) => Interval::parse(raw).map_err(|e| {
                ApiError::bad_request("invalid_interval", format!("interval: {e}"), "interval")
            })?,
        };
        let now = self.clock.now();
        let anchor = match self.schedule.get().await? {
            Some(s) if s.enabled && s.interval == interval => s.anchor.unwrap_or(now),
            _ => now,
        };
        let state = self.schedule.put(true, interval, anchor).await?;
        // Started again: a pause note of the schedule's own is over.
        self.stats.set_paused(None).await?;
        let values = [
            (
                SettingKey::SyncInterval,
                crate::domain::settings::SettingValue::Interval(interval),
            ),
            (
                SettingKey::SyncEnableAuto,
                crate::domain::settings::SettingValue::Flag(true),
            ),
        ];
        self.settings.put_all(&values, now).await?;
        Ok(ApiResponse::ok(200, &self.schedule_view(&state).await))
    }

    pub(super) async fn schedule_stop(&self) -> Result<ApiResponse, ApiError> {
        let (settings, _) = self.valid_settings().await?;
        let now = self.clock.now();
        let current = self.schedule.get().await?;
        let state = match current {
            Some(s) if !s.enabled => s,
            Some(s) => {
                self.schedule
                    .put(false, s.interval, s.anchor.unwrap_or(now))
                    .await?
            }
            None => self.schedule.put(false, settings.interval, now).await?,
        };
        let values = [(
            SettingKey::SyncEnableAuto,
            crate::domain::settings::SettingValue::Flag(false),
        )];
        self.settings.put_all(&values, now).await?;
        Ok(ApiResponse::ok(200, &self.schedule_view(&state).await))
    }
}
