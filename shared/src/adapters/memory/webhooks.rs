//! Webhooks and their delivery log, in memory: for the delivery service's tests and the admin
//! API's handler tests (the DynamoDB adapter runs the same contract cases against moto).

use crate::domain::webhook::{Delivery, Webhook};
use crate::ports::{PortError, PortErrorKind, PortResult, Webhooks};
use async_trait::async_trait;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryWebhooks {
    hooks: Mutex<Vec<Webhook>>,
    log: Mutex<Vec<Delivery>>,
}

#[async_trait]
impl Webhooks for MemoryWebhooks {
    async fn create(&self, hook: &Webhook) -> PortResult<()> {
        let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        if hooks.iter().any(|h| h.id == hook.id) {
            return Err(PortError::new(
                format!("create webhook {}", hook.id),
                PortErrorKind::Conflict,
                "a webhook with this id exists",
            ));
        }
        hooks.push(hook.clone());
        Ok(())
    }

    async fn list(&self) -> PortResult<Vec<Webhook>> {
        let mut v = self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn get(&self, id: &str) -> PortResult<Option<Webhook>> {
        Ok(self
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|h| h.id == id)
            .cloned())
    }

    async fn delete(&self, id: &str) -> PortResult<bool> {
        let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        let before = hooks.len();
        hooks.retain(|h| h.id != id);
        Ok(hooks.len() != before)
    }

    async fn record(&self, d: &Delivery) -> PortResult<()> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(d.clone());
        Ok(())
    }

    async fn deliveries(&self, id: &str, limit: usize) -> PortResult<Vec<Delivery>> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        // Newest first: by start time, then by order of recording.
        let mut v: Vec<(usize, &Delivery)> = log
            .iter()
            .enumerate()
            .filter(|(_, d)| d.webhook_id == id)
            .collect();
        v.sort_by_key(|d| std::cmp::Reverse((d.1.at_ms, d.0)));
        Ok(v.into_iter().take(limit).map(|(_, d)| d.clone()).collect())
    }
}
