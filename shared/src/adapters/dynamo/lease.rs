//! The lease: one item in `sync_logs` (key `lease#sync`, no `log_kind`, so the runs index never
//! lists it). Every change is read → `domain::lease::apply` → a put conditional on the revision
//! read, so DynamoDB enforces exactly the domain's rules atomically.

use super::{get_n, get_s, n, s};
use crate::adapters::port_err;
use crate::adapters::tables;
use crate::config::Tables;
use crate::domain::lease::{self, LeaseRequest, LeaseState, Refused};
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a lease change is retried when another writer changed the lease in between.
const CAS_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct DynamoLease {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoLease {
    pub fn new(client: Client, tables: &Tables, clock: Arc<dyn Clock>) -> Self {
        DynamoLease {
            client,
            table: tables.sync_logs.clone(),
            clock,
        }
    }

    /// The stored state, and whether the item carries a revision (items written before
    /// revisions existed are replaced conditional on having none).
    async fn read(&self) -> PortResult<Option<(LeaseState, bool)>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err("GetItem lease", e))?;
        Ok(r.item
            .as_ref()
            .map(|item| (lease_of(item), item.contains_key("rev"))))
    }
}

impl DynamoLease {
    async fn nonce(&self) -> PortResult<Option<String>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .projection_expression("nonce")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err("GetItem lease nonce", e))?;
        Ok(r.item.as_ref().and_then(|i| get_s(i, "nonce")))
    }
}

fn lease_of(item: &HashMap<String, AV>) -> LeaseState {
    let orphans = match item.get("orphans") {
        Some(AV::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    };
    LeaseState {
        owner: get_s(item, "owner").filter(|o| !o.is_empty()),
        fence: get_n(item, "fence").unwrap_or(0),
        expires_at_ms: get_n(item, "lease_expires_ms").unwrap_or(0),
        handoff: matches!(item.get("handoff"), Some(AV::Bool(true))),
        orphans,
        rev: get_n(item, "rev").unwrap_or(0),
    }
}

fn item_of(l: &LeaseState, nonce: &str) -> HashMap<String, AV> {
    HashMap::from([
        ("nonce".to_string(), s(nonce)),
        ("sync_id".to_string(), s(tables::LEASE_KEY)),
        ("owner".to_string(), s(l.owner.clone().unwrap_or_default())),
        ("fence".to_string(), n(l.fence)),
        ("lease_expires_ms".to_string(), n(l.expires_at_ms)),
        ("handoff".to_string(), AV::Bool(l.handoff)),
        (
            "orphans".to_string(),
            AV::L(l.orphans.iter().map(|o| s(o.clone())).collect()),
        ),
        ("rev".to_string(), n(l.rev)),
    ])
}

#[async_trait]
impl Lease for DynamoLease {
    async fn current(&self) -> PortResult<Option<LeaseState>> {
        Ok(self.read().await?.map(|(l, _)| l))
    }

    async fn apply(
        &self,
        req: &LeaseRequest,
        ttl: Duration,
    ) -> PortResult<Result<LeaseState, Refused>> {
        let call = format!("PutItem lease {req:?}");
        // Marks our write: the SDK retries a put that timed out or got a 5xx, and a retry of a
        // put that had applied fails its condition on our own write. The nonce tells.
        let nonce = self.clock.new_id();
        for _ in 0..CAS_ATTEMPTS {
            let read = self.read().await?;
            let now = self.clock.now_ms();
            let next = match lease::apply(
                read.as_ref().map(|(l, _)| l),
                req,
                now,
                ttl.as_millis() as u64,
            ) {
                Ok(next) => next,
                Err(refused) => return Ok(Err(refused)),
            };
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item_of(&next, &nonce)));
            let put = match &read {
                None => put.condition_expression("attribute_not_exists(sync_id)"),
                Some((_, false)) => put.condition_expression("attribute_not_exists(rev)"),
                Some((l, true)) => put
                    .condition_expression("rev = :rev")
                    .expression_attribute_values(":rev", n(l.rev)),
            };
            match put.send().await {
                Ok(_) => return Ok(Ok(next)),
                Err(e) => {
                    let pe = port_err(&call, e);
                    if pe.kind != PortErrorKind::Conflict {
                        return Err(pe);
                    }
                    if self.nonce().await? == Some(nonce.clone()) {
                        return Ok(Ok(next));
                    }
                    // Someone changed the lease since our read: decide again on what is there.
                }
            }
        }
        Err(PortError::new(
            call,
            PortErrorKind::Unavailable,
            format!("the lease kept changing under {CAS_ATTEMPTS} attempts"),
        ))
    }
}
