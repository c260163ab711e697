//! The admin API's behaviour, written against the ports. Each function binary serves its own
//! routes of the table with this one handler. By concern: `status` (status, health, logs),
//! `trigger` (starting a run), `settings` (settings and schedule), `properties` (tracking and
//! reading properties).

mod metrics;
mod properties;
mod quarantine;
mod settings;
mod status;
mod trigger;
mod webhooks;

pub use webhooks::{CreatedWebhook, DeliveryLog, WebhookList, WebhookView};

use super::routes::Op;
use super::{ApiError, ApiRequest, ApiResponse, Handler};
use crate::domain::facet;
use crate::domain::health::{self, HealthInput};
use crate::domain::interval::Interval;
use crate::domain::lease::{LeaseRequest, Refused};
use crate::domain::run::{Change, FacetState, Failure, RunStatus, SyncRequest, SyncRun, SyncType};
use crate::domain::settings::{SettingChange, SettingKey, SettingRow, Settings, validate_changes};
use crate::domain::stats::CatalogueStats;
use crate::domain::time::{Timestamp, format_go_duration};
use crate::ports::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Most ids one PUT /admin/properties may carry.
pub const MAX_TRACK_IDS: usize = 10_000;
/// Most ids one subset sync may name (they are kept on the run item).
pub const MAX_SYNC_IDS: usize = 1000;

#[derive(Clone)]
pub struct App {
    pub reader: Arc<dyn PropertyReader>,
    pub tracking: Arc<dyn Tracking>,
    pub quarantine: Arc<dyn QuarantineDesk>,
    pub runs: Arc<dyn RunLog>,
    pub stats: Arc<dyn Stats>,
    pub lease: Arc<dyn Lease>,
    pub settings: Arc<dyn SettingsStore>,
    pub clock: Arc<dyn Clock>,
    pub defaults: Settings,
    pub lease_ttl: Duration,
}

/// The store's routes plus those that read or write the schedule (health, status, metrics,
/// settings, start / stop).
#[derive(Clone)]
pub struct Scheduled {
    pub app: App,
    pub schedule: Arc<dyn Schedule>,
}

/// The settings function: the scheduled routes plus webhooks.
#[derive(Clone)]
pub struct WithHooks {
    pub scheduled: Scheduled,
    pub webhooks: Arc<dyn Webhooks>,
    /// Where webhooks may point (loopback only in local mode).
    pub webhook_policy: crate::domain::webhook::TargetPolicy,
}

/// The trigger function: the store's routes plus starting the sync function.
#[derive(Clone)]
pub struct WithDispatch {
    pub app: App,
    pub dispatch: Arc<dyn Dispatch>,
}

/// Every route in one handler: for the local API Gateway stand-in and the tests.
#[derive(Clone)]
pub struct AllRoutes {
    pub hooks: WithHooks,
    pub trigger: WithDispatch,
}

impl AllRoutes {
    pub fn new(
        app: App,
        schedule: Arc<dyn Schedule>,
        dispatch: Arc<dyn Dispatch>,
        webhooks: Arc<dyn Webhooks>,
        webhook_policy: crate::domain::webhook::TargetPolicy,
    ) -> Self {
        AllRoutes {
            hooks: WithHooks {
                scheduled: Scheduled {
                    app: app.clone(),
                    schedule,
                },
                webhooks,
                webhook_policy,
            },
            trigger: WithDispatch { app, dispatch },
        }
    }
}

impl std::ops::Deref for Scheduled {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl std::ops::Deref for WithHooks {
    type Target = Scheduled;
    fn deref(&self) -> &Scheduled {
        &self.scheduled
    }
}

impl std::ops::Deref for WithDispatch {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

/// Which handler each HTTP function runs. Wiring builds it from this; a test proves each
/// serves every route the table gives its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// `App`: the store alone.
    Store,
    /// `Scheduled`.
    Schedule,
    /// `WithHooks`.
    Hooks,
    /// `WithDispatch`.
    Dispatch,
    /// `api::openapi::DocsHandler`.
    Docs,
}

pub fn handler_for(function: &str) -> Option<Serves> {
    Some(match function {
        "logs" | "properties" => Serves::Store,
        "status" | "health" | "schedule" => Serves::Schedule,
        "settings" => Serves::Hooks,
        "trigger" => Serves::Dispatch,
        "docs" => Serves::Docs,
        _ => return None,
    })
}

fn not_served(op: Op) -> ApiError {
    ApiError::NotImplemented(format!("{op:?} is not served by this function"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    hotel_ids: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    dry_run: Option<bool>,
    /// Accept a change the circuit breaker would halt (`domain::breaker`).
    #[serde(default)]
    force: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackBody {
    hotel_ids: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunView {
    pub sync_id: String,
    pub sync_type: String,
    pub status: String,
    pub dry_run: bool,
    pub started_at: String,
    pub completed_at: Option<String>,
    pub duration: Option<String>,
    pub total_properties: u64,
    pub processed_properties: u64,
    pub updated_properties: u64,
    pub unchanged_properties: u64,
    pub failed_properties: u64,
    pub not_found_properties: u64,
    /// Properties whose changed content broke its contract (or a frozen schema): held.
    pub quarantined_properties: u64,
    /// Upstream attempts: sent, answered 429 / 5xx, timed out or unreachable, and retries.
    pub upstream_requests: u64,
    pub upstream_throttled: u64,
    pub upstream_server_errors: u64,
    pub upstream_unreachable: u64,
    pub upstream_retries: u64,
    pub error_message: Option<String>,
    pub created_at: String,
    pub consumed_rcu: f64,
    pub consumed_wcu: f64,
    /// How the documents' shapes changed against the schema baseline (one entry per kind of
    /// document that changed; empty: none, or the run set the first baseline).
    pub schema_drift: Vec<crate::domain::drift::FacetDrift>,
}

impl RunView {
    pub fn of(r: &SyncRun) -> Self {
        RunView {
            sync_id: r.sync_id.clone(),
            sync_type: r.sync_type.as_str().into(),
            status: r.status.as_str().into(),
            dry_run: r.dry_run,
            started_at: r.started_at.rfc3339(),
            completed_at: r.completed_at.map(|t| t.rfc3339()),
            duration: r
                .duration_secs()
                .map(|s| format_go_duration(Duration::from_secs(s.max(0) as u64))),
            total_properties: r.total,
            processed_properties: r.counters.processed,
            updated_properties: r.counters.updated,
            unchanged_properties: r.counters.unchanged,
            failed_properties: r.counters.failed,
            not_found_properties: r.counters.not_found,
            quarantined_properties: r.counters.quarantined,
            upstream_requests: r.counters.upstream_requests,
            upstream_throttled: r.counters.upstream_throttled,
            upstream_server_errors: r.counters.upstream_server_errors,
            upstream_unreachable: r.counters.upstream_unreachable,
            upstream_retries: r.counters.upstream_retries,
            error_message: r.error_message.clone(),
            created_at: r.started_at.rfc3339(),
            consumed_rcu: r.counters.consumed_rcu,
            consumed_wcu: r.counters.consumed_wcu,
            schema_drift: r.drift.clone(),
        }
    }
}

/// Parses a JSON array of positive hotel ids; errors name the field and index.
fn parse_ids(raw: &[serde_json::Value], field: &str, max: usize) -> Result<Vec<i64>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_hotel_ids",
            format!("{field} must not be empty"),
            field,
        ));
    }
    if raw.len() > max {
        return Err(ApiError::bad_request(
            "invalid_hotel_ids",
            format!("{field} has {} ids; at most {max} per call", raw.len()),
            field,
        ));
    }
    let ids: Vec<i64> = raw
        .iter()
        .enumerate()
        .map(|(i, v)| match v.as_i64() {
            Some(id) if id > 0 && id < (1 << 53) => Ok(id),
            _ => Err(ApiError::bad_request(
                "invalid_hotel_ids",
                format!("{field}[{i}] = {v} is not a positive integer hotel id"),
                format!("{field}[{i}]"),
            )),
        })
        .collect::<Result<_, _>>()?;
    // Duplicates are harmless to the caller and would make BatchGetItem refuse the request.
    let mut seen = std::collections::HashSet::new();
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}
impl App {
    /// The settings a run would use: a stored value that does not validate is an error naming
    /// it (never a silent fallback).
    pub(super) async fn effective_settings(
        &self,
    ) -> Result<(Settings, std::collections::BTreeMap<String, StoredSetting>), ApiError> {
        let stored = self.settings.load().await?;
        let mut s = self.defaults.clone();
        s.overlay(
            &stored
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        )?;
        Ok((s, stored))
    }

    /// The settings with any invalid stored value skipped: for the settings routes, which must
    /// still show and replace it.
    pub(super) async fn valid_settings(
        &self,
    ) -> Result<(Settings, std::collections::BTreeMap<String, StoredSetting>), ApiError> {
        let stored = self.settings.load().await?;
        let mut s = self.defaults.clone();
        s.overlay_valid(
            &stored
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        );
        Ok((s, stored))
    }

    pub(super) async fn release(&self, sync_id: &str, fence: u64) {
        let req = LeaseRequest::Release {
            owner: sync_id.to_string(),
            fence,
        };
        if let Err(e) = self.lease.apply(&req, self.lease_ttl).await {
            tracing::warn!(sync_id, error = %e, "could not release the lease; it will expire");
        }
    }
}

#[async_trait]
impl Handler for App {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::PublicHealth => Ok(ApiResponse::ok(
                200,
                &serde_json::json!({ "status": "ok", "checked_at": self.clock.now().rfc3339() }),
            )),
            Op::Logs => self.logs(req).await,
            Op::LogDetail => self.log_detail(req).await,
            Op::SettingsGet => Ok(ApiResponse::ok(200, &self.settings_rows().await?)),
            Op::Track => self.track(req).await,
            Op::Untrack => self.untrack(req).await,
            Op::PropertyGet => self.property(req).await,
            Op::PropertyReviews => self.reviews(req).await,
            Op::QuarantineList => self.quarantine_list(req).await,
            Op::QuarantineGet => self.quarantine_get(req).await,
            Op::QuarantineAccept => self.quarantine_accept(req).await,
            Op::QuarantineDiscard => self.quarantine_discard(req).await,
            // Served by the docs function's own handler (api::openapi::DocsHandler).
            Op::DocsPage | Op::DocsSpec | Op::Console => Err(ApiError::NotFound(
                "the docs are served by the docs function".into(),
            )),
            _ => Err(not_served(op)),
        }
    }
}

#[async_trait]
impl Handler for Scheduled {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::AdminHealth => self.admin_health().await,
            Op::Status => self.status().await,
            Op::Metrics => self.metrics().await,
            Op::SettingsPut => self.settings_put(req).await,
            Op::ScheduleStart => self.schedule_start(req).await,
            Op::ScheduleStop => self.schedule_stop().await,
            _ => self.app.handle(op, req).await,
        }
    }
}

#[async_trait]
impl Handler for WithHooks {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::WebhookList => self.webhook_list().await,
            Op::WebhookCreate => self.webhook_create(req).await,
            Op::WebhookDelete => self.webhook_delete(req).await,
            Op::WebhookDeliveries => self.webhook_deliveries(req).await,
            _ => self.scheduled.handle(op, req).await,
        }
    }
}

#[async_trait]
impl Handler for WithDispatch {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::Trigger => self.trigger(req).await,
            _ => self.app.handle(op, req).await,
        }
    }
}

#[async_trait]
impl Handler for AllRoutes {
    async fn handle(&self, op: Op, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        match op {
            Op::Trigger => self.trigger.handle(op, req).await,
            _ => self.hooks.handle(op, req).await,
        }
    }
}

#[cfg(test)]
mod serves_tests {
    use super::*;
    use crate::adapters::memory::{MemorySchedule, MemoryStore, MemoryWebhooks};
    use crate::api::routes::ROUTES;

    struct NoDispatch;
    #[async_trait]
    impl Dispatch for NoDispatch {
        async fn dispatch(&self, _: &SyncRequest) -> PortResult<()> {
            Ok(())
        }
    }

    fn app() -> App {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let m = Arc::new(MemoryStore::new(clock.clone()));
        App {
            reader: m.clone(),
            tracking: m.clone(),
            quarantine: m.clone(),
            runs: m.clone(),
            stats: m.clone(),
            lease: m.clone(),
            settings: m,
            clock,
            defaults: Settings::default(),
            lease_ttl: Duration::from_secs(60),
        }
    }

    fn handler(serves: Serves) -> Arc<dyn Handler> {
        let scheduled = Scheduled {
            app: app(),
            schedule: Arc::new(MemorySchedule::default()),
        };
        match serves {
            Serves::Store => Arc::new(app()),
            Serves::Schedule => Arc::new(scheduled),
            Serves::Hooks => Arc::new(WithHooks {
                scheduled,
                webhooks: Arc::new(MemoryWebhooks::default()),
                webhook_policy: crate::domain::webhook::TargetPolicy {
                    allow_loopback: false,
                },
            }),
            Serves::Dispatch => Arc::new(WithDispatch {
                app: app(),
                dispatch: Arc::new(NoDispatch),
            }),
            Serves::Docs => Arc::new(crate::api::openapi::DocsHandler),
        }
    }

    fn not_served(r: &Result<ApiResponse, ApiError>) -> bool {
        matches!(r, Err(e) if e.to_string().contains("not served by this function"))
    }

    /// Each function's handler holds only the ports its routes use, and serves every route the
    /// table gives it: a route moved to the wrong function fails here, not at run time.
    #[tokio::test]
    async fn each_function_serves_all_of_its_routes_and_only_holds_what_they_use() {
        for r in ROUTES {
            let serves =
                handler_for(r.function).unwrap_or_else(|| panic!("{} has no handler", r.function));
            let req = ApiRequest {
                method: r.method.into(),
                path: r.path.into(),
                ..Default::default()
            };
            let got = handler(serves).handle(r.op, &req).await;
            assert!(
                !not_served(&got),
                "{} {} -> {}: {got:?}",
                r.method,
                r.path,
                r.function
            );
        }
        // The store-only handler has no schedule or dispatch, and says so.
        let store = handler(Serves::Store);
        for op in [Op::Trigger, Op::Status, Op::ScheduleStart, Op::WebhookList] {
            assert!(
                not_served(&store.handle(op, &ApiRequest::default()).await),
                "{op:?}"
            );
        }
        let trigger = handler(Serves::Dispatch);
        assert!(not_served(
            &trigger
                .handle(Op::SettingsPut, &ApiRequest::default())
                .await
        ));
    }
}
