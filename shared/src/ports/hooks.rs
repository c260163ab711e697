//! Webhooks: where they are kept (with their delivery log) and how a body reaches a receiver.

use super::PortResult;
use crate::domain::webhook::{Delivery, Webhook};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a new webhook (ids are fresh: a put never replaces one).
    async fn create(&self, hook: &Webhook) -> PortResult<()>;
    /// Every webhook, oldest first.
    async fn list(&self) -> PortResult<Vec<Webhook>>;
    async fn get(&self, id: &str) -> PortResult<Option<Webhook>>;
    /// Removes it and reports whether it existed (its delivery log expires on its own).
    async fn delete(&self, id: &str) -> PortResult<bool>;
    /// Appends one attempt to the webhook's delivery log.
    async fn record(&self, delivery: &Delivery) -> PortResult<()>;
    /// The newest `limit` attempts, newest first.
    async fn deliveries(&self, id: &str, limit: usize) -> PortResult<Vec<Delivery>>;
}

/// What a receiver answered, or why it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Answered(u16),
    /// Timed out, connection refused, unresolvable (worth another try).
    NoAnswer(String),
    /// The address policy refuses the target (private, loopback, link-local...): final.
    Refused(String),
}

#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` (JSON) with these headers; no redirects are followed.
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> SendResult;
}
