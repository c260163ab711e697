//! Builds each function's dependencies from the environment, once per cold start.

use crate::adapters::aws::{EventBus, LambdaDispatch, Scheduler, sdk_config};
use crate::adapters::cupid::CupidHttp;
use crate::adapters::dynamo::{
    DynamoLease, DynamoProperties, DynamoRunLog, DynamoSchema, DynamoSettings, DynamoStats,
    DynamoWebhooks,
};
use crate::adapters::webhook_http::HttpWebhookSender;
use crate::api::app::App;
use crate::config::Secret;
use crate::config::{Config, DispatchMode};
use crate::domain::interval::Interval;
use crate::domain::run::SyncRequest;
use crate::domain::time::Timestamp;
use crate::domain::webhook::TargetPolicy;
use crate::engine::{Engine, EngineConfig, EngineDeps, Outcome};
use crate::ports::{
    Clock, Dispatch, PortError, PortErrorKind, PortResult, Schedule, ScheduleState, SystemClock,
};
use std::sync::Arc;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Loads logging and config; a bad value is one clear log line and a failed start.
pub fn start() -> Result<Config, BoxError> {
    if let Err(e) = crate::telemetry::init() {
        eprintln!("{{\"level\":\"ERROR\",\"message\":\"startup failed: {e}\"}}");
        return Err(Box::new(e));
    }
    Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "startup failed: {e}");
        Box::new(e) as BoxError
    })
}

/// A port this function never uses (it serves no route that needs it). Wiring only what each
/// function uses keeps the other AWS SDK clients out of its binary.
struct Unwired(&'static str);

impl Unwired {
    fn err(&self) -> PortError {
        PortError::new(
            self.0,
            PortErrorKind::Unavailable,
            "not wired in this function",
        )
    }
}

#[async_trait::async_trait]
impl Schedule for Unwired {
    async fn get(&self) -> PortResult<Option<ScheduleState>> {
        Err(self.err())
    }
    async fn put(&self, _: bool, _: Interval, _: Timestamp) -> PortResult<ScheduleState> {
        Err(self.err())
    }
}

#[async_trait::async_trait]
impl Dispatch for Unwired {
    async fn dispatch(&self, _: &SyncRequest) -> PortResult<()> {
        Err(self.err())
    }
}

/// The admin handler over DynamoDB, with the schedule and dispatch adapters the caller wires.
fn app(
    cfg: &Config,
    conf: &aws_config::SdkConfig,
    schedule: Arc<dyn Schedule>,
    dispatch: Arc<dyn Dispatch>,
) -> App {
    let ddb = aws_sdk_dynamodb::Client::new(conf);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let props = Arc::new(DynamoProperties::new(ddb.clone(), &cfg.tables));
    App {
        reader: props.clone(),
        quarantine: props.clone(),
        tracking: props,
        runs: Arc::new(DynamoRunLog::new(ddb.clone(), &cfg.tables)),
        stats: Arc::new(DynamoStats::new(ddb.clone(), &cfg.tables)),
        lease: Arc::new(DynamoLease::new(ddb.clone(), &cfg.tables, clock.clone())),
        settings: Arc::new(DynamoSettings::new(ddb.clone(), &cfg.tables)),
        schedule,
        dispatch,
        clock,
        defaults: cfg.settings.clone(),
        lease_ttl: cfg.lease_ttl,
        webhooks: Some(Arc::new(DynamoWebhooks::new(ddb, &cfg.tables))),
        webhook_policy: policy(cfg),
    }
}

fn policy(cfg: &Config) -> TargetPolicy {
    TargetPolicy {
        allow_loopback: cfg.webhooks_allow_loopback,
    }
}

/// Every adapter wired (local tools: the API Gateway stand-in serves all routes).
pub async fn admin_app(cfg: &Config) -> Result<App, BoxError> {
    let conf = sdk_config().await;
    let schedule = Arc::new(Scheduler::new(&conf, cfg)?);
    let dispatch = Arc::new(LambdaDispatch::new(
        &conf,
        &cfg.sync_function,
        cfg.dispatch_mode == DispatchMode::Detached,
    ));
    Ok(app(cfg, &conf, schedule, dispatch))
}

fn token(cfg: &Config) -> Result<Secret, BoxError> {
    cfg.require_admin_token().map_err(|e| {
        tracing::error!(error = %e, "startup failed: {e}");
        Box::new(e) as BoxError
    })
}

/// logs, properties: DynamoDB only.
pub async fn run_store_function(function: &'static str) -> Result<(), BoxError> {
    let cfg = start()?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let app = app(
        &cfg,
        &conf,
        Arc::new(Unwired("schedule")),
        Arc::new(Unwired("dispatch")),
    );
    crate::api::run_lambda(function, Some(token), Arc::new(app)).await
}

/// status, health, settings, schedule: DynamoDB + EventBridge Scheduler.
pub async fn run_schedule_function(function: &'static str) -> Result<(), BoxError> {
    let cfg = start()?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let schedule = Arc::new(Scheduler::new(&conf, &cfg).map_err(|e| {
        tracing::error!(error = %e, "startup failed: {e}");
        Box::new(e) as BoxError
    })?);
    let app = app(&cfg, &conf, schedule, Arc::new(Unwired("dispatch")));
    crate::api::run_lambda(function, Some(token), Arc::new(app)).await
}

/// trigger: DynamoDB + Lambda Invoke.
pub async fn run_trigger_function(function: &'static str) -> Result<(), BoxError> {
    let cfg = start()?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let dispatch = Arc::new(LambdaDispatch::new(
        &conf,
        &cfg.sync_function,
        cfg.dispatch_mode == DispatchMode::Detached,
    ));
    let app = app(&cfg, &conf, Arc::new(Unwired("schedule")), dispatch);
    crate::api::run_lambda(function, Some(token), Arc::new(app)).await
}

/// docs: no AWS at all; the only binary that carries the Swagger UI assets.
pub async fn run_docs_function() -> Result<(), BoxError> {
    let cfg = start()?;
    crate::api::run_lambda(
        "docs",
        cfg.admin_token.clone(),
        Arc::new(crate::api::openapi::DocsHandler),
    )
    .await
}

pub async fn engine(cfg: &Config) -> Result<Engine, BoxError> {
    let key = cfg.require_cupid_key()?;
    let conf = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let props = Arc::new(DynamoProperties::new(ddb.clone(), &cfg.tables));
    let deps = EngineDeps {
        reader: props.clone(),
        writer: props,
        runs: Arc::new(DynamoRunLog::new(ddb.clone(), &cfg.tables)),
        stats: Arc::new(DynamoStats::new(ddb.clone(), &cfg.tables)),
        schemas: Arc::new(DynamoSchema::new(ddb.clone(), &cfg.tables)),
        lease: Arc::new(DynamoLease::new(ddb.clone(), &cfg.tables, clock.clone())),
        upstream: Arc::new(CupidHttp::new(&cfg.cupid_base_url, key, cfg.cupid_timeout)?),
        // A continuation is always a real asynchronous invoke (never detached): the current
        // invocation has finished its share.
        dispatch: Arc::new(LambdaDispatch::new(
            &conf,
            &cfg.sync_function,
            cfg.dispatch_mode == DispatchMode::Detached,
        )),
        events: Arc::new(match &cfg.local_event_target {
            Some(f) => EventBus::new(&conf, &cfg.event_bus).with_local_target(&conf, f),
            None => EventBus::new(&conf, &cfg.event_bus),
        }),
        settings: Arc::new(DynamoSettings::new(ddb, &cfg.tables)),
        schedule: Arc::new(Scheduler::new(&conf, cfg)?),
        clock,
    };
    Ok(Engine::new(deps, EngineConfig::from_config(cfg)))
}

/// The deliver function: one bus event per invocation, sent to every webhook that wants it.
pub async fn run_deliver() -> Result<(), BoxError> {
    use crate::webhooks::{BusEvent, Deliverer, RetryPolicy};
    use lambda_runtime::{LambdaEvent, service_fn};
    let cfg = start()?;
    let conf = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let deliverer = Arc::new(Deliverer {
        hooks: Arc::new(DynamoWebhooks::new(ddb, &cfg.tables)),
        sender: Arc::new(HttpWebhookSender::new(policy(&cfg))?),
        clock: Arc::new(SystemClock),
        policy: RetryPolicy::default(),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let deliverer = deliverer.clone();
        async move {
            let ev: BusEvent = serde_json::from_value(event.payload.clone()).map_err(|e| {
                tracing::error!(error = %e, "not an EventBridge event");
                format!("not an EventBridge event (id, detail-type, detail): {e}")
            })?;
            let summary = deliverer.deliver(&ev).await.map_err(|e| {
                tracing::error!(error = %e, event_id = %ev.id, "could not read the webhooks");
                e.to_string()
            })?;
            Ok::<_, String>(serde_json::to_value(summary).unwrap_or_default())
        }
    }))
    .await
}

/// The sync function: one SyncRequest per invocation.
pub async fn run_sync() -> Result<(), BoxError> {
    use lambda_runtime::{LambdaEvent, service_fn};
    let cfg = start()?;
    let engine = Arc::new(
        engine(&cfg)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "startup failed: {e}"))?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let engine = engine.clone();
        async move {
            let req: SyncRequest = serde_json::from_value(event.payload.clone()).map_err(|e| {
                tracing::error!(error = %e, payload = %event.payload, "invalid sync input");
                format!("invalid sync input (expected {{\"sync_type\":\"scheduled\"|\"manual\"|\"resume\",...}}): {e}")
            })?;
            let deadline = {
                let now_ms = SystemClock.now_ms();
                let left = event.context.deadline.saturating_sub(now_ms);
                tokio::time::Instant::now() + Duration::from_millis(left)
            };
            let outcome = engine.handle(req, Some(deadline)).await.map_err(|e| {
                tracing::error!(error = %e, "sync failed");
                e.to_string()
            })?;
            Ok::<_, String>(match outcome {
                Outcome::Finished(run) => crate::engine::run_summary(&run),
                Outcome::Continued { sync_id, processed } => {
                    serde_json::json!({"sync_id": sync_id, "status": "continuing", "processed": processed})
                }
                Outcome::Skipped { reason } => serde_json::json!({"status": "skipped", "reason": reason}),
            })
        }
    }))
    .await
}
