//! Webhooks in the run log table: one item per webhook (`sync_id = "webhook#<id>"`, listed
//! through the runs index under `log_kind = "webhooks"`), and one item per delivery attempt
//! (`log_kind = "deliveries#<id>"`, keys that sort by time, kept 30 days by TTL).

use crate::adapters::port_err;
use crate::config::Tables;
use crate::domain::webhook::{Delivery, Webhook};
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ReturnValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// How long delivery attempts stay in the log.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 86_400);
const HOOKS_KIND: &str = "webhooks";

fn hook_key(id: &str) -> String {
    format!("webhook#{id}")
}
fn deliveries_kind(id: &str) -> String {
    format!("deliveries#{id}")
}

#[derive(Serialize, Deserialize)]
struct HookItem {
    sync_id: String,
    log_kind: String,
    #[serde(flatten)]
    hook: Webhook,
}

#[derive(Serialize, Deserialize)]
struct DeliveryItem {
    sync_id: String,
    log_kind: String,
    at_ms: i64,
    expires_at: i64,
    #[serde(flatten)]
    delivery: Delivery,
}

#[derive(Clone)]
pub struct DynamoWebhooks {
    client: Client,
    table: String,
}

impl DynamoWebhooks {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoWebhooks {
            client,
            table: tables.sync_logs.clone(),
        }
    }

    fn invalid(call: &str, e: impl ToString) -> PortError {
        PortError::new(call, PortErrorKind::Invalid, e.to_string())
    }

    /// Items of one `log_kind` through the runs index, in key order (`forward`) or reversed.
    async fn query(
        &self,
        kind: &str,
        forward: bool,
        limit: Option<usize>,
    ) -> PortResult<Vec<HashMap<String, AV>>> {
        let call = format!("Query {} {kind}", self.table);
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(crate::adapters::tables::RUNS_GSI)
                .key_condition_expression("log_kind = :k")
                .expression_attribute_values(":k", AV::S(kind.to_string()))
                .scan_index_forward(forward)
                .set_limit(limit.map(|l| l.clamp(1, 1000) as i32))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&call, e))?;
            out.extend(resp.items().iter().cloned());
            if limit.is_some_and(|l| out.len() >= l) {
                out.truncate(limit.unwrap_or(usize::MAX));
                return Ok(out);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl Webhooks for DynamoWebhooks {
    async fn create(&self, hook: &Webhook) -> PortResult<()> {
        let call = format!("PutItem webhook {}", hook.id);
        let item = serde_dynamo::to_item(HookItem {
            sync_id: hook_key(&hook.id),
            log_kind: HOOKS_KIND.into(),
            hook: hook.clone(),
        })
        .map_err(|e| Self::invalid(&call, e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sync_id)")
            .send()
            .await
            .map_err(|e| port_err(&call, e))?;
        Ok(())
    }

    async fn list(&self) -> PortResult<Vec<Webhook>> {
        let items = self.query(HOOKS_KIND, true, None).await?;
        items
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item::<_, HookItem>(i)
                    .map(|h| h.hook)
                    .map_err(|e| Self::invalid("decode webhook", e))
            })
            .collect()
    }

    async fn get(&self, id: &str) -> PortResult<Option<Webhook>> {
        let call = format!("GetItem webhook {id}");
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", AV::S(hook_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err(&call, e))?;
        match out.item {
            None => Ok(None),
            Some(i) => serde_dynamo::from_item::<_, HookItem>(i)
                .map(|h| Some(h.hook))
                .map_err(|e| Self::invalid(&call, e)),
        }
    }

    async fn delete(&self, id: &str) -> PortResult<bool> {
        let call = format!("DeleteItem webhook {id}");
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("sync_id", AV::S(hook_key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_err(&call, e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn record(&self, d: &Delivery) -> PortResult<()> {
        let call = format!("PutItem delivery of {} to {}", d.event_id, d.webhook_id);
        let expires = d.at_ms / 1000 + DELIVERY_RETENTION.as_secs() as i64;
        let item = serde_dynamo::to_item(DeliveryItem {
            // Time first (zero-padded) so the index sorts attempts by when they started.
            sync_id: format!(
                "delivery#{}#{:015}#{}#{:03}",
                d.webhook_id, d.at_ms, d.event_id, d.attempt
            ),
            log_kind: deliveries_kind(&d.webhook_id),
            at_ms: d.at_ms,
            expires_at: expires,
            delivery: d.clone(),
        })
        .map_err(|e| Self::invalid(&call, e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_err(&call, e))?;
        Ok(())
    }

    async fn deliveries(&self, id: &str, limit: usize) -> PortResult<Vec<Delivery>> {
        let items = self
            .query(&deliveries_kind(id), false, Some(limit.max(1)))
            .await?;
        items
            .into_iter()
            .map(|i| {
                serde_dynamo::from_item::<_, DeliveryItem>(i)
                    .map(|d| Delivery {
                        at_ms: d.at_ms,
                        ..d.delivery
                    })
                    .map_err(|e| Self::invalid("decode delivery", e))
            })
            .collect()
    }
}
