//! Builds each function's dependencies from the environment, once per cold start.

use crate::adapters::aws::{EventBus, LambdaDispatch, Scheduler, sdk_config};
use crate::adapters::cupid::CupidHttp;
use crate::adapters::dynamo::{
    DynamoLease, DynamoProperties, DynamoRunLog, DynamoSchema, DynamoSettings, DynamoStats,
    DynamoWebhooks,
};
use crate::adapters::webhook_http::HttpWebhookSender;
use crate::api::Handler;
use crate::api::app::{AllRoutes, App, Scheduled, Serves, WithDispatch, WithHooks, handler_for};
use crate::config::Secret;
use crate::config::{Config, DispatchMode};
use crate::domain::run::SyncRequest;
use crate::domain::webhook::TargetPolicy;
use crate::engine::{Engine, EngineConfig, EngineDeps, Outcome};
use crate::ports::{Clock, Dispatch, Schedule, SystemClock, Webhooks};
use crate::runtime_loop::keep_serving;
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

/// The store's ports over DynamoDB (every HTTP function but docs needs them).
fn app(cfg: &Config, conf: &aws_config::SdkConfig) -> App {
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
        settings: Arc::new(DynamoSettings::new(ddb, &cfg.tables)),
        clock,
        defaults: cfg.settings.clone(),
        lease_ttl: cfg.lease_ttl,
    }
}

fn policy(cfg: &Config) -> TargetPolicy {
    TargetPolicy {
        allow_loopback: cfg.webhooks_allow_loopback,
    }
}

fn scheduler(cfg: &Config, conf: &aws_config::SdkConfig) -> Result<Arc<dyn Schedule>, BoxError> {
    Ok(Arc::new(Scheduler::new(conf, cfg).map_err(|e| {
        tracing::error!(error = %e, "startup failed: {e}");
        Box::new(e) as BoxError
    })?))
}

fn dispatcher(cfg: &Config, conf: &aws_config::SdkConfig) -> Arc<dyn Dispatch> {
    Arc::new(LambdaDispatch::new(
        conf,
        &cfg.sync_function,
        cfg.dispatch_mode == DispatchMode::Detached,
    ))
}

fn webhook_store(cfg: &Config, conf: &aws_config::SdkConfig) -> Arc<dyn Webhooks> {
    Arc::new(DynamoWebhooks::new(
        aws_sdk_dynamodb::Client::new(conf),
        &cfg.tables,
    ))
}

/// Every route in one handler (local tools: the API Gateway stand-in).
pub async fn admin_app(cfg: &Config) -> Result<AllRoutes, BoxError> {
    let conf = sdk_config().await;
    Ok(AllRoutes::new(
        app(cfg, &conf),
        scheduler(cfg, &conf)?,
        dispatcher(cfg, &conf),
        webhook_store(cfg, &conf),
        policy(cfg),
    ))
}

fn token(cfg: &Config) -> Result<Secret, BoxError> {
    cfg.require_admin_token().map_err(|e| {
        tracing::error!(error = %e, "startup failed: {e}");
        Box::new(e) as BoxError
    })
}

/// Starts an HTTP function: logging and config, then a check that the handler this wiring
/// builds is the one `api::app::handler_for` names for the function (the route table's tests
/// drive every route through that handler). Each `run_*` below builds only its own handler,
/// so a function's binary links only the code its routes use: the docs function has no AWS
/// SDK, and only the docs function carries the Swagger UI.
fn start_http(function: &'static str, builds: Serves) -> Result<Config, BoxError> {
    let cfg = start()?;
    let named = handler_for(function);
    if named != Some(builds) {
        let e = format!(
            "the {function} function is wired with the {builds:?} handler, but the route table \
             names {named:?} (api::app::handler_for)"
        );
        tracing::error!(error = %e, "startup failed: {e}");
        return Err(e.into());
    }
    Ok(cfg)
}

/// A function whose routes need only the store (logs, properties).
async fn run_store_function(function: &'static str) -> Result<(), BoxError> {
    let cfg = start_http(function, Serves::Store)?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let handler: Arc<dyn Handler> = Arc::new(app(&cfg, &conf));
    crate::api::run_lambda(function, Some(token), handler).await
}

/// A function whose routes need the store and the schedule (status, health, schedule).
async fn run_scheduled_function(function: &'static str) -> Result<(), BoxError> {
    let cfg = start_http(function, Serves::Schedule)?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let handler: Arc<dyn Handler> = Arc::new(Scheduled {
        app: app(&cfg, &conf),
        schedule: scheduler(&cfg, &conf)?,
    });
    crate::api::run_lambda(function, Some(token), handler).await
}

/// The `status` function: status and metrics.
pub async fn run_status() -> Result<(), BoxError> {
    run_scheduled_function("status").await
}
/// The `health` function: public and admin health.
pub async fn run_health() -> Result<(), BoxError> {
    run_scheduled_function("health").await
}
/// The `schedule` function: start and stop.
pub async fn run_schedule() -> Result<(), BoxError> {
    run_scheduled_function("schedule").await
}
/// The `logs` function: the run log.
pub async fn run_logs() -> Result<(), BoxError> {
    run_store_function("logs").await
}
/// The `properties` function: tracking, properties, quarantine.
pub async fn run_properties() -> Result<(), BoxError> {
    run_store_function("properties").await
}
/// The `settings` function: settings and webhooks.
pub async fn run_settings() -> Result<(), BoxError> {
    let cfg = start_http("settings", Serves::Hooks)?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let handler: Arc<dyn Handler> = Arc::new(WithHooks {
        scheduled: Scheduled {
            app: app(&cfg, &conf),
            schedule: scheduler(&cfg, &conf)?,
        },
        webhooks: webhook_store(&cfg, &conf),
        webhook_policy: policy(&cfg),
    });
    crate::api::run_lambda("settings", Some(token), handler).await
}
/// The `trigger` function: starting a sync.
pub async fn run_trigger() -> Result<(), BoxError> {
    let cfg = start_http("trigger", Serves::Dispatch)?;
    let token = token(&cfg)?;
    let conf = sdk_config().await;
    let handler: Arc<dyn Handler> = Arc::new(WithDispatch {
        app: app(&cfg, &conf),
        dispatch: dispatcher(&cfg, &conf),
    });
    crate::api::run_lambda("trigger", Some(token), handler).await
}
/// The `docs` function: the console, Swagger UI and the OpenAPI document; no AWS at all.
pub async fn run_docs() -> Result<(), BoxError> {
    let cfg = start_http("docs", Serves::Docs)?;
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
    keep_serving("deliver", Duration::from_millis(200), |served| {
        let deliverer = deliverer.clone();
        lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
            served.mark();
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
    })
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
    keep_serving("sync", Duration::from_millis(200), |served| {
        let engine = engine.clone();
        lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
            served.mark();
            sync_invocation(engine.clone(), event)
        }))
    })
    .await
}

/// What the sync function expects; named in the error for anything else.
const SYNC_INPUT: &str = r#"{"sync_type":"scheduled"|"manual"|"resume",...}"#;

/// One invocation of the sync function: parse, run within the invocation's deadline, summarise.
async fn sync_invocation(
    engine: Arc<Engine>,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let req: SyncRequest = serde_json::from_value(event.payload.clone()).map_err(|e| {
        tracing::error!(error = %e, payload = %event.payload, "invalid sync input");
        format!("invalid sync input (expected {SYNC_INPUT}): {e}")
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
    Ok(match outcome {
        Outcome::Finished(run) => crate::engine::run_summary(&run),
        Outcome::Continued { sync_id, processed } => serde_json::json!({
            "sync_id": sync_id, "status": "continuing", "processed": processed
        }),
        Outcome::Skipped { reason } => serde_json::json!({"status": "skipped", "reason": reason}),
    })
}
