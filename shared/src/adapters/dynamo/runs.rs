//! The run log (`sync_logs`): one item per run, listed newest first through the runs index.
//! Saves are fenced: the item carries the token of its last writer.

use super::{RUN_RETENTION, get_s, n, pack, s, units, unpack};
use crate::adapters::port_err;
use crate::adapters::tables;
use crate::config::Tables;
use crate::domain::drift::FacetDrift;
use crate::domain::run::{Change, Counters, Failure, RunDetail, RunStatus, SyncRun, SyncType};
use crate::domain::stats::StatusCounts;
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ReturnConsumedCapacity};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The attribute keeping a run's observed shapes.
const SHAPE: &str = "shape";

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
    quarantined_properties: u64,
    #[serde(default)]
    processed_properties: u64,
    #[serde(default)]
    document_writes: u64,
    #[serde(default)]
    upstream_requests: u64,
    #[serde(default)]
    upstream_throttled: u64,
    #[serde(default)]
    upstream_server_errors: u64,
    #[serde(default)]
    upstream_unreachable: u64,
    #[serde(default)]
    upstream_retries: u64,
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
    /// Written by earlier versions only (details now have their own items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<Change>,
    #[serde(default)]
    details: u64,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    breaker: crate::domain::breaker::BreakerCounts,
    #[serde(default)]
    tally: StatusCounts,
    #[serde(default)]
    tally_unknown: u64,
    #[serde(default)]
    stats_epoch: Option<u64>,
    #[serde(default = "one")]
    requests_per_property: u64,
    expires_at: i64,
    /// The fencing token of the last invocation that saved this run.
    #[serde(default)]
    fence: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    schema_drift: Vec<FacetDrift>,
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
            quarantined_properties: r.counters.quarantined,
            processed_properties: r.counters.processed,
            document_writes: r.counters.document_writes,
            upstream_requests: r.counters.upstream_requests,
            upstream_throttled: r.counters.upstream_throttled,
            upstream_server_errors: r.counters.upstream_server_errors,
            upstream_unreachable: r.counters.upstream_unreachable,
            upstream_retries: r.counters.upstream_retries,
            error_message: r.error_message.clone(),
            created_at: r.started_at.rfc3339(),
            cursor: r.cursor,
            skip: r.skip.clone(),
            hotel_ids: r.hotel_ids.clone(),
            consumed_rcu: r.counters.consumed_rcu,
            consumed_wcu: r.counters.consumed_wcu,
            invocations: r.invocations,
            failures: r.legacy_failures.clone(),
            changes: r.legacy_changes.clone(),
            details: r.details,
            force: r.force,
            breaker: r.breaker.clone(),
            tally: r.tally,
            tally_unknown: r.tally_unknown,
            stats_epoch: r.stats_epoch,
            requests_per_property: r.requests_per_property,
            expires_at: r.started_at.plus(RUN_RETENTION).secs(),
            fence: Some(fence),
            schema_drift: r.drift.clone(),
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
                quarantined: self.quarantined_properties,
                document_writes: self.document_writes,
                consumed_rcu: self.consumed_rcu,
                consumed_wcu: self.consumed_wcu,
                upstream_requests: self.upstream_requests,
                upstream_throttled: self.upstream_throttled,
                upstream_server_errors: self.upstream_server_errors,
                upstream_unreachable: self.upstream_unreachable,
                upstream_retries: self.upstream_retries,
            },
            error_message: self.error_message,
            cursor: self.cursor,
            skip: self.skip,
            hotel_ids: self.hotel_ids,
            invocations: self.invocations,
            details: self.details,
            force: self.force,
            breaker: self.breaker,
            tally: self.tally,
            tally_unknown: self.tally_unknown,
            stats_epoch: self.stats_epoch,
            legacy_failures: self.failures,
            legacy_changes: self.changes,
            requests_per_property: self.requests_per_property,
            shape: Default::default(),
            drift: self.schema_drift,
        }
    }
}

#[derive(Clone)]
pub struct DynamoRunLog {
    client: Client,
    table: String,
    stats: super::DynamoStats,
}

/// The stored shape of a detail item.
#[derive(Debug, Serialize, Deserialize)]
struct DetailItem {
    sync_id: String,
    log_kind: String,
    #[serde(flatten)]
    detail: RunDetail,
    expires_at: i64,
}

impl DynamoRunLog {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoRunLog {
            stats: super::DynamoStats::new(client.clone(), tables),
            client,
            table: tables.sync_logs.clone(),
        }
    }

    /// The run's item; the shapes it observed (large, read whole) as compressed JSON.
    fn encode(run: &SyncRun, fence: u64) -> PortResult<HashMap<String, AV>> {
        let mut item: HashMap<String, AV> = serde_dynamo::to_item(RunItem::of(run, fence))
            .map_err(|e| {
                PortError::new(
                    format!("encode run {}", run.sync_id),
                    PortErrorKind::Invalid,
                    e.to_string(),
                )
            })?;
        if !run.shape.is_empty() {
            let what = format!("the shapes of run {}", run.sync_id);
            item.insert(SHAPE.into(), pack(&what, &run.shape)?);
        }
        Ok(item)
    }

    fn decode(mut item: HashMap<String, AV>) -> PortResult<SyncRun> {
        let id = get_s(&item, "sync_id").unwrap_or_default();
        let shape = item.remove(SHAPE);
        let mut run = serde_dynamo::from_item::<_, RunItem>(item)
            .map(RunItem::into_run)
            .map_err(|e| {
                PortError::new(
                    format!("decode run {id}"),
                    PortErrorKind::Invalid,
                    e.to_string(),
                )
            })?;
        if let Some(av) = shape {
            run.shape = unpack(&format!("the shapes of run {id}"), &av)?;
        }
        Ok(run)
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
        self.client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY))
            .update_expression("ADD runs :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| port_err(&format!("UpdateItem count run {}", run.sync_id), e))?;
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
            Ok(out) => {
                if let Some(done) = run.completed_at
                    && run.is_catalogue_success()
                {
                    self.stats.succeeded(&run.sync_id, done).await?;
                }
                Ok(Usage {
                    rcu: 0.0,
                    wcu: units(out.consumed_capacity()),
                })
            }
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

    async fn list(
        &self,
        limit: usize,
        from: RunsFrom,
    ) -> PortResult<(Vec<SyncRun>, Option<String>)> {
        let call = format!("Query {} {}", self.table, tables::RUNS_GSI);
        // An offset reads the skipped runs' keys only; a cursor starts right at the page.
        let (mut start, mut skip) = match from {
            RunsFrom::After(id) => (
                Some(HashMap::from([
                    ("sync_id".to_string(), s(id)),
                    ("log_kind".to_string(), s(tables::RUN_KIND)),
                ])),
                0,
            ),
            RunsFrom::Offset(n) => (None, n),
        };
        // The runs index, newest first.
        let newest = || {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(tables::RUNS_GSI)
                .key_condition_expression("log_kind = :k")
                .expression_attribute_values(":k", s(tables::RUN_KIND))
                .scan_index_forward(false)
        };
        while skip > 0 {
            let resp = newest()
                .projection_expression("sync_id, log_kind")
                .limit(skip.min(1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&call, e))?;
            skip -= resp.items().len().min(skip);
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok((Vec::new(), None)),
            }
        }
        let mut items = Vec::new();
        let mut more = false;
        // One more than asked: whether a next page exists without a second call.
        while items.len() <= limit {
            let resp = newest()
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&call, e))?;
            for item in resp.items() {
                items.push(Self::decode(item.clone())?);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        if items.len() > limit {
            items.truncate(limit);
            more = true;
        }
        let next = more
            .then(|| items.last().map(|r| r.sync_id.clone()))
            .flatten();
        Ok((items, next))
    }

    async fn put_details(&self, run: &SyncRun, details: &[RunDetail]) -> PortResult<Usage> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let expires_at = run.started_at.plus(RUN_RETENTION).secs();
        let requests: Vec<WriteRequest> = details
            .iter()
            .map(|d| {
                let item = serde_dynamo::to_item(DetailItem {
                    sync_id: tables::detail_key(&run.sync_id, d.hotel_id),
                    log_kind: tables::detail_kind(&run.sync_id),
                    detail: d.clone(),
                    expires_at,
                })
                .map_err(|e| {
                    PortError::new(
                        format!("encode detail of hotel {}", d.hotel_id),
                        PortErrorKind::Invalid,
                        e.to_string(),
                    )
                })?;
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| {
                        PortError::new("BatchWriteItem", PortErrorKind::Invalid, e.to_string())
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut usage = Usage::default();
        for chunk in requests.chunks(25) {
            usage += super::properties::batch_write(
                self.client.clone(),
                self.table.clone(),
                chunk.to_vec(),
            )
            .await?;
        }
        Ok(usage)
    }

    async fn details(
        &self,
        sync_id: &str,
        limit: usize,
        after: Option<i64>,
    ) -> PortResult<DetailPage> {
        let kind = tables::detail_kind(sync_id);
        let start = after.map(|a| {
            HashMap::from([
                ("sync_id".to_string(), s(tables::detail_key(sync_id, a))),
                ("log_kind".to_string(), s(kind.clone())),
            ])
        });
        let resp = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(tables::RUNS_GSI)
            .key_condition_expression("log_kind = :k")
            .expression_attribute_values(":k", s(kind.clone()))
            .limit(limit as i32 + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_err(&format!("Query details of run {sync_id}"), e))?;
        let mut items: Vec<RunDetail> = resp
            .items()
            .iter()
            .map(|i| {
                serde_dynamo::from_item::<_, DetailItem>(i.clone())
                    .map(|d| d.detail)
                    .map_err(|e| {
                        PortError::new(
                            format!("decode a detail of run {sync_id}"),
                            PortErrorKind::Invalid,
                            e.to_string(),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        // One more than asked tells whether a next page exists.
        let more = items.len() > limit
            || resp.last_evaluated_key().is_some_and(|k| !k.is_empty()) && items.len() == limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|d| d.hotel_id)
        } else {
            None
        };
        Ok(DetailPage { items, next })
    }

    async fn count(&self) -> PortResult<u64> {
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
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&format!("Query count {}", tables::RUNS_GSI), e))?;
            total += resp.count() as u64;
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(total)
    }
}
