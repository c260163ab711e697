//! The schedule, in memory: for the engine cases, the simulation and the admin API tests (the
//! EventBridge Scheduler adapter has its own test against moto).

use crate::domain::interval::Interval;
use crate::domain::time::Timestamp;
use crate::ports::{PortResult, Schedule, ScheduleState};
use async_trait::async_trait;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemorySchedule(Mutex<Option<ScheduleState>>);

#[async_trait]
impl Schedule for MemorySchedule {
    async fn get(&self) -> PortResult<Option<ScheduleState>> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    async fn put(
        &self,
        enabled: bool,
        interval: Interval,
        anchor: Timestamp,
    ) -> PortResult<ScheduleState> {
        let s = ScheduleState {
            enabled,
            interval,
            anchor: Some(anchor),
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.clone());
        Ok(s)
    }
}
