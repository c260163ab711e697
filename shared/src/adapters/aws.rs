//! AWS SDK clients: Lambda dispatch, EventBridge events, EventBridge Scheduler; shared config.

use super::port_err;
use crate::domain::interval::Interval;
use crate::domain::run::SyncRequest;
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;

/// The schedule target's input: Scheduler fills in the slot's time.
pub const SCHEDULED_INPUT: &str =
    r#"{"sync_type":"scheduled","scheduled_time":"<aws.scheduler.scheduled-time>"}"#;

/// The SDK config from the environment (region, credentials, AWS_ENDPOINT_URL[_SERVICE]).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Starts the sync function with Lambda `Invoke` (InvocationType Event).
#[derive(Clone)]
pub struct LambdaDispatch {
    client: aws_sdk_lambda::Client,
    function: String,
    detached: bool,
}

impl LambdaDispatch {
    /// Retries are off: under `cargo lambda watch` a function error is an HTTP 500 and the
    /// SDK would run the sync again.
    pub fn new(conf: &aws_config::SdkConfig, function: &str, detached: bool) -> Self {
        let lc = aws_sdk_lambda::config::Builder::from(conf)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build();
        LambdaDispatch {
            client: aws_sdk_lambda::Client::from_conf(lc),
            function: function.to_string(),
            detached,
        }
    }

    async fn invoke(
        client: aws_sdk_lambda::Client,
        function: String,
        payload: Vec<u8>,
    ) -> PortResult<()> {
        client
            .invoke()
            .function_name(&function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| port_err(&format!("Lambda Invoke {function}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl Dispatch for LambdaDispatch {
    async fn dispatch(&self, req: &SyncRequest) -> PortResult<()> {
        let payload = serde_json::to_vec(req).map_err(|e| {
            PortError::new("encode sync request", PortErrorKind::Invalid, e.to_string())
        })?;
        if self.detached {
            let (client, function) = (self.client.clone(), self.function.clone());
            tokio::spawn(async move {
                if let Err(e) = Self::invoke(client, function, payload).await {
                    // Under watch the invoke returns when the sync ends; a failure shows in its logs too.
                    tracing::warn!(error = %e, "detached sync invocation ended with an error");
                }
            });
            return Ok(());
        }
        Self::invoke(self.client.clone(), self.function.clone(), payload).await
    }
}

/// Publishes run events on the custom bus. Locally (moto delivers no events) it also hands
/// each one to a function, shaped as an EventBridge rule would deliver it.
#[derive(Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    local_target: Option<LambdaDispatch>,
}

impl EventBus {
    pub fn new(conf: &aws_config::SdkConfig, bus: &str) -> Self {
        EventBus {
            client: aws_sdk_eventbridge::Client::new(conf),
            bus: bus.to_string(),
            local_target: None,
        }
    }

    /// Also invoke `function` (asynchronously, not waited for) with every published event.
    pub fn with_local_target(mut self, conf: &aws_config::SdkConfig, function: &str) -> Self {
        self.local_target = Some(LambdaDispatch::new(conf, function, true));
        self
    }

    fn hand_over(&self, event: &RunEvent, id: &str) {
        let Some(target) = &self.local_target else {
            return;
        };
        let envelope = serde_json::json!({
            "version": "0",
            "id": id,
            "detail-type": event.detail_type,
            "source": "cupid-sync",
            "time": crate::domain::time::Timestamp::from_system(std::time::SystemTime::now()).rfc3339(),
            "resources": [],
            "detail": event.detail,
        });
        let (client, function) = (target.client.clone(), target.function.clone());
        let payload = envelope.to_string().into_bytes();
        tokio::spawn(async move {
            if let Err(e) = LambdaDispatch::invoke(client, function, payload).await {
                tracing::warn!(error = %e, "the local event target did not take the event");
            }
        });
    }
}

#[async_trait]
impl Events for EventBus {
    async fn publish(&self, event: &RunEvent) -> PortResult<()> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source("cupid-sync")
            .detail_type(event.detail_type)
            .detail(event.detail.to_string())
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| port_err(&format!("PutEvents {}", self.bus), e))?;
        if out.failed_entry_count() > 0 {
            let reason = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(PortError::new(
                format!("PutEvents {}", self.bus),
                PortErrorKind::Unavailable,
                reason,
            ));
        }
        let id = out
            .entries()
            .first()
            .and_then(|e| e.event_id())
            .unwrap_or_default()
            .to_string();
        self.hand_over(event, &id);
        Ok(())
    }
}

/// The EventBridge Scheduler schedule that starts the sync function.
#[derive(Clone)]
pub struct Scheduler {
    client: aws_sdk_scheduler::Client,
    name: String,
    group: String,
    target_arn: String,
    role_arn: String,
    dlq_arn: Option<String>,
}

impl Scheduler {
    /// Refuses to build without the target and role ARNs (`SCHEDULE_TARGET_ARN`,
    /// `SCHEDULE_ROLE_ARN`): the error names the missing variable.
    pub fn new(
        conf: &aws_config::SdkConfig,
        c: &crate::config::Config,
    ) -> Result<Self, crate::config::ConfigError> {
        let (target_arn, role_arn) = c.require_schedule_target()?;
        Ok(Scheduler {
            client: aws_sdk_scheduler::Client::new(conf),
            name: c.schedule_name.clone(),
            group: c.schedule_group.clone(),
            target_arn,
            role_arn,
            dlq_arn: c.schedule_dlq_arn.clone(),
        })
    }
}

fn to_system(t: Timestamp) -> aws_sdk_scheduler::primitives::DateTime {
    aws_sdk_scheduler::primitives::DateTime::from_secs(t.secs())
}

#[async_trait]
impl Schedule for Scheduler {
    async fn get(&self) -> PortResult<Option<ScheduleState>> {
        let r = self
            .client
            .get_schedule()
            .name(&self.name)
            .group_name(&self.group)
            .send()
            .await;
        let out = match r {
            Ok(o) => o,
            Err(e) => {
                let pe = port_err(&format!("GetSchedule {}", self.name), e);
                return if pe.kind == PortErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(pe)
                };
            }
        };
        let interval = out
            .schedule_expression()
            .and_then(Interval::from_rate_expression)
            .ok_or_else(|| {
                PortError::new(
                    "GetSchedule",
                    PortErrorKind::Invalid,
                    format!("unexpected expression {:?}", out.schedule_expression()),
                )
            })?;
        let enabled = out
            .state()
            .map(|s| s.as_str() == "ENABLED")
            .unwrap_or(false);
        let anchor = out.start_date().map(|d| Timestamp(d.secs()));
        Ok(Some(ScheduleState {
            enabled,
            interval,
            anchor,
        }))
    }

    async fn put(
        &self,
        enabled: bool,
        interval: Interval,
        anchor: Timestamp,
    ) -> PortResult<ScheduleState> {
        use aws_sdk_scheduler::types::{
            FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState as St, Target,
        };
        let target = Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            // The slot's time names its run: a slot delivered twice runs once.
            .input(SCHEDULED_INPUT)
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_retry_attempts(2)
                    .maximum_event_age_in_seconds(3600)
                    .build(),
            )
            .set_dead_letter_config(self.dlq_arn.as_ref().map(|arn| {
                aws_sdk_scheduler::types::DeadLetterConfig::builder()
                    .arn(arn)
                    .build()
            }))
            .build()
            .map_err(|e| {
                PortError::new("Scheduler target", PortErrorKind::Invalid, e.to_string())
            })?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| {
                PortError::new("Scheduler window", PortErrorKind::Invalid, e.to_string())
            })?;
        let state = if enabled { St::Enabled } else { St::Disabled };
        let exists = self.get().await?.is_some();
        if exists {
            self.client
                .update_schedule()
                .name(&self.name)
                .group_name(&self.group)
                .schedule_expression(interval.rate_expression())
                .start_date(to_system(anchor))
                .state(state)
                .flexible_time_window(window)
                .target(target)
                .send()
                .await
                .map_err(|e| port_err(&format!("UpdateSchedule {}", self.name), e))?;
        } else {
            self.client
                .create_schedule()
                .name(&self.name)
                .group_name(&self.group)
                .schedule_expression(interval.rate_expression())
                .start_date(to_system(anchor))
                .state(state)
                .flexible_time_window(window)
                .target(target)
                .description("cupid-sync: starts the sync function")
                .send()
                .await
                .map_err(|e| port_err(&format!("CreateSchedule {}", self.name), e))?;
        }
        Ok(ScheduleState {
            enabled,
            interval,
            anchor: Some(anchor),
        })
    }
}
