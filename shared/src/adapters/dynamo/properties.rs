//! The `properties` (small records) and `property_documents` tables: reads and tracking. The
//! sync's fenced writes are in `writes.rs`.

use super::{backoff_unprocessed, get_n, get_s, n, s, unique, units};
use crate::adapters::port_err;
use crate::config::Tables;
use crate::domain::facet;
use crate::domain::quarantine::QuarantineNote;
use crate::domain::run::{FacetState, Held, SyncRecord, SyncStatus, Tracked};
use crate::domain::stats::StatusCounts;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue as AV, KeysAndAttributes, PutRequest, ReturnConsumedCapacity, WriteRequest,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone)]
pub struct DynamoProperties {
    pub(super) client: Client,
    pub(super) properties: String,
    pub(super) documents: String,
    /// Tracking changes keep the catalogue counts (in the run log table) up to date.
    pub(super) stats: super::DynamoStats,
}

const TRACKED_PROJECTION: &str =
    "hotel_id, data_version, content_hash, sync_status, facets, accepted, changed_by, quarantine";
/// Tracked records only: the status is not `untracked`.
const TRACKED_FILTER: &str = "sync_status <> :untracked";
/// A fenced record write: the record exists, is tracked, and no newer token has written it.
pub(super) const RECORD_FENCE: &str = "attribute_exists(hotel_id) AND sync_status <> :untracked AND (attribute_not_exists(fence) OR fence <= :f)";

pub(super) fn untracked() -> AV {
    s(SyncStatus::Untracked.as_str())
}

impl DynamoProperties {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoProperties {
            stats: super::DynamoStats::new(client.clone(), tables),
            client,
            properties: tables.properties.clone(),
            documents: tables.documents.clone(),
        }
    }

    /// BatchGetItem in chunks of 100, retrying UnprocessedKeys with backoff.
    async fn batch_get(
        &self,
        table: &str,
        keys: Vec<HashMap<String, AV>>,
        projection: Option<&str>,
    ) -> PortResult<(Vec<HashMap<String, AV>>, Usage)> {
        let mut out = Vec::new();
        let mut usage = Usage::default();
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let mut ka = KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(true);
                if let Some(p) = projection {
                    ka = ka.projection_expression(p);
                }
                let ka = ka.build().map_err(|e| {
                    PortError::new("BatchGetItem", PortErrorKind::Invalid, e.to_string())
                })?;
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(table, ka)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| port_err(&format!("BatchGetItem {table}"), e))?;
                for c in resp.consumed_capacity() {
                    usage.rcu += c.capacity_units().unwrap_or(0.0);
                }
                if let Some(items) = resp.responses().and_then(|r| r.get(table)) {
                    out.extend(items.iter().cloned());
                }
                pending = resp
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff_unprocessed(&mut attempt, &format!("BatchGetItem {table}")).await?;
                }
            }
        }
        Ok((out, usage))
    }

    /// BatchWriteItem puts in chunks of 25 (8 in flight), retrying UnprocessedItems with
    /// backoff.
    pub async fn batch_put(
        &self,
        table: &str,
        items: Vec<HashMap<String, AV>>,
    ) -> PortResult<Usage> {
        let mut chunks: Vec<Vec<WriteRequest>> = Vec::new();
        for chunk in items.chunks(25) {
            let mut reqs = Vec::with_capacity(chunk.len());
            for item in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .map_err(|e| {
                        PortError::new("BatchWriteItem", PortErrorKind::Invalid, e.to_string())
                    })?;
                reqs.push(WriteRequest::builder().put_request(put).build());
            }
            chunks.push(reqs);
        }
        let table = table.to_string();
        let calls = chunks
            .into_iter()
            .map(|c| batch_write(self.client.clone(), table.clone(), c));
        let mut usage = Usage::default();
        for u in futures::stream::iter(calls)
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
        {
            usage += u?;
        }
        Ok(usage)
    }

    /// A full recount of the records per sync status (a parallel Scan of the whole table):
    /// what the maintained counts must equal at quiescence. For tests and benchmarks, never
    /// on an admin read.
    pub async fn recount(&self) -> PortResult<StatusCounts> {
        let segments = 4;
        let scans = (0..segments).map(|segment| async move {
            let mut c = StatusCounts::default();
            let mut start: Option<HashMap<String, AV>> = None;
            loop {
                let resp = self
                    .client
                    .scan()
                    .table_name(&self.properties)
                    .segment(segment)
                    .total_segments(segments)
                    .projection_expression("sync_status")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| port_err(&format!("Scan recount {}", self.properties), e))?;
                for item in resp.items() {
                    let st = get_s(item, "sync_status")
                        .as_deref()
                        .and_then(SyncStatus::parse)
                        .unwrap_or(SyncStatus::Pending);
                    c.add(st, 1);
                }
                match resp.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
            Ok::<_, PortError>(c)
        });
        let mut total = StatusCounts::default();
        for c in futures::future::try_join_all(scans).await? {
            total.plus(&c);
        }
        Ok(total)
    }

    fn facets_of(item: &HashMap<String, AV>) -> BTreeMap<String, FacetState> {
        let mut facets = BTreeMap::new();
        if let Some(AV::M(m)) = item.get("facets") {
            for (k, v) in m {
                if let AV::M(f) = v
                    && let (Some(hash), Some(version)) = (get_s(f, "hash"), get_n(f, "version"))
                {
                    facets.insert(
                        k.clone(),
                        FacetState {
                            hash,
                            version,
                            slot: get_s(f, "slot"),
                            raw: get_s(f, "raw"),
                        },
                    );
                }
            }
        } else if let Some(hash) = get_s(item, "content_hash") {
            // Records written before facets existed: the property facet only.
            facets.insert(
                facet::PROPERTY.to_string(),
                FacetState {
                    hash,
                    version: get_n(item, "data_version").unwrap_or(0),
                    slot: None,
                    raw: None,
                },
            );
        }
        facets
    }

    fn tracked_of(item: &HashMap<String, AV>) -> Option<Tracked> {
        let status = get_s(item, "sync_status");
        if status.as_deref() == Some(SyncStatus::Untracked.as_str()) {
            return None;
        }
        Some(Tracked {
            hotel_id: get_n(item, "hotel_id")?,
            data_version: get_n(item, "data_version").unwrap_or(0),
            facets: Self::facets_of(item),
            status: status
                .as_deref()
                .and_then(SyncStatus::parse)
                .unwrap_or(SyncStatus::Pending),
            accepted: item
                .get("accepted")
                .and_then(|a| serde_dynamo::from_attribute_value(a.clone()).ok())
                .unwrap_or_default(),
            changed_by: get_s(item, "changed_by"),
            held: match (status.as_deref(), item.get("quarantine")) {
                (Some(q), Some(note)) if q == SyncStatus::Quarantined.as_str() => {
                    serde_dynamo::from_attribute_value::<_, QuarantineNote>(note.clone())
                        .ok()
                        .map(|n| Held::of(&n))
                }
                _ => None,
            },
        })
    }

    /// After a refused record write: why (a consistent read of what refused it). `ours`
    /// recognises our own write already applied (the SDK retried a request that had applied
    /// and got a 5xx or timed out): then the write succeeded.
    pub(super) async fn classify(
        &self,
        call: &str,
        hotel_id: i64,
        fence: u64,
        ours: impl Fn(u64, u64) -> bool,
    ) -> PortResult<Usage> {
        let read = self
            .client
            .get_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .projection_expression("hotel_id, sync_status, fence, data_version")
            .consistent_read(true)
            .send()
            .await;
        let item = match read {
            Ok(r) => r.item,
            Err(e) => return Err(port_err(call, e)),
        };
        let stored = |i: &HashMap<String, AV>| {
            (
                get_n::<u64>(i, "fence").unwrap_or(0),
                get_n::<u64>(i, "data_version").unwrap_or(0),
            )
        };
        let (kind, why) = match item {
            None => (PortErrorKind::Untracked, "no such record".to_string()),
            Some(i) if stored(&i).0 > fence => (
                PortErrorKind::Fenced,
                format!(
                    "a newer sync invocation (token {}) wrote this record",
                    stored(&i).0
                ),
            ),
            Some(i) if get_s(&i, "sync_status").as_deref() == Some("untracked") => {
                (PortErrorKind::Untracked, "the property is untracked".into())
            }
            Some(i) if ours(stored(&i).0, stored(&i).1) => return Ok(Usage::default()),
            Some(i) => (
                PortErrorKind::Conflict,
                format!(
                    "data_version moved to {} (or the record is not claimed by token {fence})",
                    stored(&i).1
                ),
            ),
        };
        Err(PortError::new(call, kind, why))
    }
}

/// One BatchWriteItem call (≤ 25 requests), retrying its unprocessed items with backoff.
pub(super) async fn batch_write(
    client: Client,
    table: String,
    mut pending: Vec<WriteRequest>,
) -> PortResult<Usage> {
    let call = format!("BatchWriteItem {table}");
    let mut usage = Usage::default();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        let resp = client
            .batch_write_item()
            .request_items(&table, pending.clone())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_err(&call, e))?;
        for c in resp.consumed_capacity() {
            usage.wcu += c.capacity_units().unwrap_or(0.0);
        }
        pending = resp
            .unprocessed_items()
            .and_then(|u| u.get(&table))
            .cloned()
            .unwrap_or_default();
        if !pending.is_empty() {
            backoff_unprocessed(&mut attempt, &call).await?;
        }
    }
    Ok(usage)
}

pub(super) fn is_condition_failure(e: &PortError) -> bool {
    e.kind == PortErrorKind::Conflict
}

#[async_trait]
impl PropertyReader for DynamoProperties {
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage> {
        let start = after.map(|id| HashMap::from([("hotel_id".to_string(), n(id))]));
        let resp = self
            .client
            .scan()
            .table_name(&self.properties)
            .projection_expression(TRACKED_PROJECTION)
            .filter_expression(TRACKED_FILTER)
            .expression_attribute_values(":untracked", untracked())
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| port_err(&format!("Scan {} after {after:?}", self.properties), e))?;
        Ok(TrackedPage {
            items: resp.items().iter().filter_map(Self::tracked_of).collect(),
            next: resp
                .last_evaluated_key()
                .and_then(|k| get_n::<i64>(k, "hotel_id")),
            usage: Usage {
                rcu: units(resp.consumed_capacity()),
                wcu: 0.0,
            },
        })
    }

    async fn get_tracked(&self, ids: &[i64]) -> PortResult<(Vec<Tracked>, Usage)> {
        let ids = unique(ids);
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("hotel_id".to_string(), n(id))]))
            .collect();
        let (items, usage) = self
            .batch_get(&self.properties, keys, Some(TRACKED_PROJECTION))
            .await?;
        let found: HashMap<i64, Tracked> = items
            .iter()
            .filter_map(Self::tracked_of)
            .map(|t| (t.hotel_id, t))
            .collect();
        // In the order asked for.
        let out = ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        Ok((out, usage))
    }

    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err(&format!("GetItem hotel {hotel_id}"), e))?;
        match r.item {
            None => Ok(None),
            Some(item) => {
                let facets = Self::facets_of(&item);
                let mut rec: SyncRecord = serde_dynamo::from_item(item).map_err(|e| {
                    PortError::new(
                        format!("decode record hotel {hotel_id}"),
                        PortErrorKind::Invalid,
                        e.to_string(),
                    )
                })?;
                rec.facets = facets;
                Ok(Some(rec))
            }
        }
    }

    async fn get_document(
        &self,
        hotel_id: i64,
        key: &str,
    ) -> PortResult<(Option<StoredDoc>, Usage)> {
        let r = self
            .client
            .get_item()
            .table_name(&self.documents)
            .key("hotel_id", n(hotel_id))
            .key("facet", s(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_err(&format!("GetItem document hotel {hotel_id} {key}"), e))?;
        let usage = Usage {
            rcu: units(r.consumed_capacity()),
            wcu: 0.0,
        };
        let doc = r.item.map(|item| StoredDoc {
            hotel_id,
            key: key.to_string(),
            data_version: get_n(&item, "data_version").unwrap_or(0),
            content_hash: get_s(&item, "content_hash").unwrap_or_default(),
            compressed: item
                .get("doc")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
            parts: get_n(&item, "parts").unwrap_or(1),
        });
        Ok((doc, usage))
    }
}

#[async_trait]
impl Tracking for DynamoProperties {
    async fn track(&self, ids: &[i64]) -> PortResult<TrackResult> {
        let mut unique: Vec<i64> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let keys = unique
            .iter()
            .map(|id| HashMap::from([("hotel_id".to_string(), n(id))]))
            .collect();
        let (existing, _) = self
            .batch_get(&self.properties, keys, Some("hotel_id, sync_status"))
            .await?;
        let known: HashMap<i64, Option<String>> = existing
            .iter()
            .filter_map(|i| Some((get_n::<i64>(i, "hotel_id")?, get_s(i, "sync_status"))))
            .collect();
        // New ids in batches of 25 (a batch write cannot be conditional: an id tracked by two
        // concurrent calls is written by both, as the same `pending` record).
        let new_items: Vec<HashMap<String, AV>> = unique
            .iter()
            .filter(|id| !known.contains_key(id))
            .map(|id| {
                HashMap::from([
                    ("hotel_id".to_string(), n(id)),
                    ("sync_status".to_string(), s(SyncStatus::Pending.as_str())),
                    ("data_version".to_string(), n(0)),
                ])
            })
            .collect();
        let mut out = TrackResult {
            new: new_items.len(),
            retracked: 0,
        };
        let table = self.properties.clone();
        self.batch_put(&table, new_items).await?;
        // Untracked ids tracked again, each only if it is still untracked.
        let retrack_ids: Vec<i64> = known
            .iter()
            .filter(|(_, st)| st.as_deref() == Some(SyncStatus::Untracked.as_str()))
            .map(|(id, _)| *id)
            .collect();
        let retrack = retrack_ids.into_iter().map(|id| async move {
            let r = self
                .client
                .update_item()
                .table_name(&self.properties)
                .key("hotel_id", n(id))
                .update_expression("SET sync_status = :p")
                .condition_expression("sync_status = :u")
                .expression_attribute_values(":p", s(SyncStatus::Pending.as_str()))
                .expression_attribute_values(":u", untracked())
                .send()
                .await;
            match r {
                Ok(_) => Ok(true),
                Err(e) => {
                    let pe = port_err(&format!("UpdateItem re-track hotel {id}"), e);
                    if pe.kind == PortErrorKind::Conflict {
                        Ok(false)
                    } else {
                        Err(pe)
                    }
                }
            }
        });
        for r in futures::stream::iter(retrack)
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
        {
            out.retracked += usize::from(r?);
        }
        if out.new + out.retracked > 0 {
            let mut d = StatusCounts::default();
            d.add(SyncStatus::Pending, (out.new + out.retracked) as i64);
            d.add(SyncStatus::Untracked, -(out.retracked as i64));
            self.stats.apply(&d, true).await?;
        }
        Ok(out)
    }

    async fn untrack(&self, hotel_id: i64) -> PortResult<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .update_expression(format!(
                "SET sync_status = :u REMOVE {}",
                super::writes::OUT_OF_QUARANTINE
            ))
            .condition_expression("attribute_exists(hotel_id)")
            .expression_attribute_values(":u", untracked())
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| {
                let mut pe = port_err(&format!("UpdateItem untrack hotel {hotel_id}"), e);
                if pe.kind == PortErrorKind::Conflict {
                    pe.kind = PortErrorKind::NotFound;
                }
                pe
            })?;
        let was = r
            .attributes()
            .and_then(|a| get_s(a, "sync_status"))
            .as_deref()
            .and_then(SyncStatus::parse)
            .unwrap_or(SyncStatus::Pending);
        if was != SyncStatus::Untracked {
            let mut d = StatusCounts::default();
            d.moved(was, SyncStatus::Untracked);
            self.stats.apply(&d, true).await?;
        }
        Ok(())
    }
}
