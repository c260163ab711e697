//! The platform around the functions: starting the sync function, publishing events, the
//! schedule.

use super::PortResult;
use crate::domain::interval::Interval;
use crate::domain::run::SyncRequest;
use crate::domain::time::Timestamp;
use async_trait::async_trait;

#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Starts the sync function asynchronously with this input (at-least-once delivery).
    async fn dispatch(&self, req: &SyncRequest) -> PortResult<()>;
}

/// SyncCompleted / SyncFailed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunEvent {
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
}

#[async_trait]
pub trait Events: Send + Sync {
    async fn publish(&self, event: &RunEvent) -> PortResult<()>;
}

/// The schedule as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleState {
    pub enabled: bool,
    pub interval: Interval,
    pub anchor: Option<Timestamp>,
}

#[async_trait]
pub trait Schedule: Send + Sync {
    async fn get(&self) -> PortResult<Option<ScheduleState>>;
    /// Creates or replaces the schedule.
    async fn put(
        &self,
        enabled: bool,
        interval: Interval,
        anchor: Timestamp,
    ) -> PortResult<ScheduleState>;
}
