//! The run log (`sync_logs`): one item per run, listed newest first through the runs index.
//! Saves are fenced: the item carries the token of its last writer.

use super::{RUN_RETENTION, get_s, n, s, units};
use crate::adapters::port_err;
use crate::adapters::tables;
use crate::config::Tables;
use crate::domain::run::{Change, Counters, Failure, RunStatus, SyncRun, SyncType};
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ReturnConsumedCapacity};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

fn one() -> u64 {
    1
}

/// The stored shape of a run (mirrors the seed's sync_logs columns plus ours).
#[derive(Debug, Serialize, Deserialize)]
struct RunItem {
    sync_id: String,
    log_kind: String,
    sync_type: SyncType,
    status: RunStatus,
    #[serde(default)]
    dry_run: bool,
    started_at: String,
    #[serde(default)]
    completed_at: Option<String>,
    total_properties: u64,
    updated_properties: u64,
    failed_properties: u64,
    unchanged_properties: u64,
    not_found_properties: u64,
    #[serde(default)]
    partial_properties: u64,
    #[serde(default)]
    untracked_properties: u64,
    #[serde(default)]
    processed_properties: u64,
    #[serde(default)]
    document_writes: u64,
    #[serde(default)]
    upstream_requests: u64,
    #[serde(default)]
    error_message: Option<String>,
    created_at: String,
    #[serde(default)]
    cursor: Option<i64>,
    #[serde(default)]
    skip: Vec<i64>,
    #[serde(default)]
    hotel_ids: Option<Vec<i64>>,
    consumed_rcu: f64,
    consumed_wcu: f64,
    #[serde(default)]
    invocations: u32,
    #[serde(default)]
    failures: Vec<Failure>,
    #[serde(default)]
    changes: Vec<Change>,
    #[serde(default)]
    details_dropped: u64,
    #[serde(default = "one")]
    requests_per_property: u64,
    expires_at: i64,
    /// The fencing token of the last invocation that saved this run.
    #[serde(default)]
    fence: Option<u64>,
}

impl RunItem {
    fn of(r: &SyncRun, fence: u64) -> Self {
        RunItem {
            sync_id: r.sync_id.clone(),
            log_kind: tables::RUN_KIND.into(),
            sync_type: r.sync_type,
            status: r.status,
            dry_run: r.dry_run,
            started_at: r.started_at.rfc3339(),
            completed_at: r.completed_at.map(|t| t.rfc3339()),
            total_properties: r.total,
            updated_properties: r.counters.updated,
            failed_properties: r.counters.failed,
            unchanged_properties: r.counters.unchanged,
            not_found_properties: r.counters.not_found,
            partial_properties: r.counters.partial,
            untracked_properties: r.counters.untracked,
            processed_properties: r.counters.processed,
            document_writes: r.counters.document_writes,
            upstream_requests: r.counters.upstream_requests,
            error_message: r.error_message.clone(),
            created_at: r.started_at.rfc3339(),
            cursor: r.cursor,
            skip: r.skip.clone(),
            hotel_ids: r.hotel_ids.clone(),
            consumed_rcu: r.counters.consumed_rcu,
            consumed_wcu: r.counters.consumed_wcu,
            invocations: r.invocations,
            failures: r.failures.clone(),
            changes: r.changes.clone(),
            details_dropped: r.details_dropped,
            requests_per_property: r.requests_per_property,
            expires_at: r.started_at.plus(RUN_RETENTION).secs(),
            fence: Some(fence),
        }
    }

    fn into_run(self) -> SyncRun {
        let ts = |s: &str| Timestamp::parse_rfc3339(s).unwrap_or(Timestamp(0));
        SyncRun {
            sync_id: self.sync_id,
            sync_type: self.sync_type,
            status: self.status,
            dry_run: self.dry_run,
            started_at: ts(&self.started_at),
            completed_at: self.completed_at.as_deref().map(ts),
            total: self.total_properties,
            counters: Counters {
                processed: self.processed_properties,
                updated: self.updated_properties,
                unchanged: self.unchanged_properties,
                failed: self.failed_properties,
                not_found: self.not_found_properties,
                partial: self.partial_properties,
                untracked: self.untracked_properties,
                document_writes: self.document_writes,
                consumed_rcu: self.consumed_rcu,
                consumed_wcu: self.consumed_wcu,
                upstream_requests: self.upstream_requests,
            },
            error_message: self.error_message,
            cursor: self.cursor,
            skip: self.skip,
            hotel_ids: self.hotel_ids,
            invocations: self.invocations,
            failures: self.failures,
            changes: self.changes,
            details_dropped: self.details_dropped,
            requests_per_property: self.requests_per_property,
        }
    }
}

#[derive(Clone)]
pub struct DynamoRunLog {
    client: Client,
    table: String,
}

impl DynamoRunLog {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoRunLog {
            client,
            table: tables.sync_logs.clone(),
        }
    }

    fn encode(run: &SyncRun, fence: u64) -> PortResult<HashMap<String, AV>> {
        serde_dynamo::to_item(RunItem::of(run, fence)).map_err(|e| {
            PortError::new(
                format!("encode run {}", run.sync_id),
                PortErrorKind::Invalid,
                e.to_string(),
            )
        })
    }

    fn decode(item: HashMap<String, AV>) -> PortResult<SyncRun> {
        let id = get_s(&item, "sync_id").unwrap_or_default();
        serde_dynamo::from_item::<_, RunItem>(item)
            .map(RunItem::into_run)
            .map_err(|e| {
                PortError::new(
                    format!("decode run {id}"),
                    PortErrorKind::Invalid,
                    e.to_string(),
                )
            })
    }
}

#[async_trait]
impl RunLog for DynamoRunLog {
    async fn create(&self, run: &SyncRun, fence: u64) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::encode(run, fence)?))
            .condition_expression("attribute_not_exists(sync_id)")
            .send()
            .await
            .map_err(|e| port_err(&format!("PutItem create run {}", run.sync_id), e))?;
        Ok(())
    }

    async fn get(&self, sync_id: &str) -> PortResult<Option<SyncRun>> {
        if sync_id == tables::LEASE_KEY {
            return Ok(None);
        }
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(sync_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err(&format!("GetItem run {sync_id}"), e))?;
        r.item.map(Self::decode).transpose()
    }

    async fn save(&self, run: &SyncRun, fence: u64) -> PortResult<Usage> {
        let call = format!("PutItem save run {} with token {fence}", run.sync_id);
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::encode(run, fence)?))
            .condition_expression(
                "attribute_exists(sync_id) AND (attribute_not_exists(fence) OR fence <= :f)",
            )
            .expression_attribute_values(":f", n(fence))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Usage {
                rcu: 0.0,
                wcu: units(out.consumed_capacity()),
            }),
            Err(e) => {
                let mut pe = port_err(&call, e);
                if pe.kind == PortErrorKind::Conflict {
                    (pe.kind, pe.message) = match self.get(&run.sync_id).await? {
                        None => (PortErrorKind::NotFound, "no such run".into()),
                        Some(_) => (
                            PortErrorKind::Fenced,
                            "a newer sync invocation saved this run".into(),
                        ),
                    };
                }
                Err(pe)
            }
        }
    }

    async fn list(&self, limit: usize, offset: usize) -> PortResult<(Vec<SyncRun>, u64)> {
        let mut items = Vec::new();
        let mut total = 0u64;
        let mut start: Option<HashMap<String, AV>> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(tables::RUNS_GSI)
                .key_condition_expression("log_kind = :k")
                .expression_attribute_values(":k", s(tables::RUN_KIND))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&format!("Query {} {}", self.table, tables::RUNS_GSI), e))?;
            for item in resp.items() {
                if (total as usize) >= offset && items.len() < limit {
                    items.push(Self::decode(item.clone())?);
                }
                total += 1;
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok((items, total))
    }
}
