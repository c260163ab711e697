//! DynamoDB adapters: properties + documents, run log + lease, settings; and table creation.

use super::port_err;
use super::tables::{self, TableDef};
use crate::config::Tables;
use crate::domain::facet;
use crate::domain::lease::{self, Acquired, LeaseState};
use crate::domain::run::{
    Change, Counters, FacetState, Failure, RunStatus, SyncRecord, SyncRun, SyncStatus, SyncType,
    Tracked,
};
use crate::domain::settings::{SettingKey, SettingValue};
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue as AV, ConsumedCapacity, KeysAndAttributes, Put, PutRequest,
    ReturnConsumedCapacity, ReturnValue, Select, TransactWriteItem, WriteRequest,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long finished runs stay in the log (TTL).
pub const RUN_RETENTION: Duration = Duration::from_secs(90 * 86_400);

fn units(c: Option<&ConsumedCapacity>) -> f64 {
    c.and_then(|c| c.capacity_units()).unwrap_or(0.0)
}

fn n(v: impl ToString) -> AV {
    AV::N(v.to_string())
}
fn s(v: impl Into<String>) -> AV {
    AV::S(v.into())
}

fn get_n<T: std::str::FromStr>(item: &HashMap<String, AV>, k: &str) -> Option<T> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|x| x.parse().ok())
}
fn get_s(item: &HashMap<String, AV>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

/// Waits before retrying unprocessed batch items (throttling), at most 8 times.
async fn backoff_unprocessed(attempt: &mut u32, call: &str) -> PortResult<()> {
    *attempt += 1;
    if *attempt > 8 {
        return Err(PortError::new(
            call,
            PortErrorKind::Unavailable,
            "unprocessed items after 8 retries",
        ));
    }
    tokio::time::sleep(Duration::from_millis(50 << (*attempt).min(6))).await;
    Ok(())
}

/// BatchGetItem refuses duplicate keys: ask for each id once, in order.
fn unique(ids: &[i64]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Creates the tables (and TTL) if they do not exist; used by the local bootstrap and tests.
pub async fn ensure_tables(client: &Client, names: &Tables) -> PortResult<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType as KT,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let attr = |k: tables::Key| {
        AttributeDefinition::builder()
            .attribute_name(k.name)
            .attribute_type(match k.kind {
                tables::KeyType::S => ScalarAttributeType::S,
                tables::KeyType::N => ScalarAttributeType::N,
            })
            .build()
            .map_err(|e| PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string()))
    };
    let key = |name: &str, t: KT| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .map_err(|e| PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string()))
    };
    for (def, name) in [
        (tables::PROPERTIES, &names.properties),
        (tables::DOCUMENTS, &names.documents),
        (tables::SYNC_LOGS, &names.sync_logs),
        (tables::SETTINGS, &names.settings),
    ] {
        if client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .is_ok()
        {
            continue;
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(def.pk)?)
            .key_schema(key(def.pk.name, KT::Hash)?);
        if let Some(sk) = def.sk {
            req = req
                .attribute_definitions(attr(sk)?)
                .key_schema(key(sk.name, KT::Range)?);
        }
        if let Some(g) = def.gsi {
            let mut defined: Vec<&str> = vec![def.pk.name];
            defined.extend(def.sk.map(|k| k.name));
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(g.name)
                .key_schema(key(g.pk.name, KT::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                );
            if !defined.contains(&g.pk.name) {
                req = req.attribute_definitions(attr(g.pk)?);
                defined.push(g.pk.name);
            }
            if let Some(sk) = g.sk {
                gsi = gsi.key_schema(key(sk.name, KT::Range)?);
                if !defined.contains(&sk.name) {
                    req = req.attribute_definitions(attr(sk)?);
                }
            }
            req = req.global_secondary_indexes(gsi.build().map_err(|e| {
                PortError::new("CreateTable", PortErrorKind::Invalid, e.to_string())
            })?);
        }
        req.send()
            .await
            .map_err(|e| port_err(&format!("CreateTable {name}"), e))?;
        if let Some(ttl) = def.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(ttl)
                        .build()
                        .map_err(|e| {
                            PortError::new(
                                "UpdateTimeToLive",
                                PortErrorKind::Invalid,
                                e.to_string(),
                            )
                        })?,
                )
                .send()
                .await
                .map_err(|e| port_err(&format!("UpdateTimeToLive {name}"), e))?;
        }
    }
    Ok(())
}

/// Table names from the env, as the functions see them.
pub fn table_def_name(def: &TableDef, t: &Tables) -> String {
    match def.logical_id {
        "PropertiesTable" => t.properties.clone(),
        "PropertyDocumentsTable" => t.documents.clone(),
        "SyncLogsTable" => t.sync_logs.clone(),
        _ => t.settings.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Properties and documents

#[derive(Clone)]
pub struct DynamoProperties {
    client: Client,
    properties: String,
    documents: String,
}

impl DynamoProperties {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoProperties {
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
                let mut ka = KeysAndAttributes::builder().set_keys(Some(pending.clone()));
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

    /// BatchWriteItem puts in chunks of 25, retrying UnprocessedItems with backoff.
    pub async fn batch_put(
        &self,
        table: &str,
        items: Vec<HashMap<String, AV>>,
    ) -> PortResult<Usage> {
        let mut usage = Usage::default();
        for chunk in items.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| {
                            PortError::new("BatchWriteItem", PortErrorKind::Invalid, e.to_string())
                        })
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(table, pending.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| port_err(&format!("BatchWriteItem {table}"), e))?;
                for c in resp.consumed_capacity() {
                    usage.wcu += c.capacity_units().unwrap_or(0.0);
                }
                pending = resp
                    .unprocessed_items()
                    .and_then(|u| u.get(table))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff_unprocessed(&mut attempt, &format!("BatchWriteItem {table}")).await?;
                }
            }
        }
        Ok(usage)
    }

    fn tracked_of(item: &HashMap<String, AV>) -> Option<Tracked> {
        let hotel_id = get_n(item, "hotel_id")?;
        let data_version = get_n(item, "data_version").unwrap_or(0);
        let mut facets = BTreeMap::new();
        if let Some(AV::M(m)) = item.get("facets") {
            for (k, v) in m {
                if let AV::M(f) = v
                    && let (Some(hash), Some(version)) = (get_s(f, "hash"), get_n(f, "version"))
                {
                    facets.insert(k.clone(), FacetState { hash, version });
                }
            }
        } else if let Some(hash) = get_s(item, "content_hash") {
            // Records written before facets existed: the property facet only.
            facets.insert(
                facet::PROPERTY.to_string(),
                FacetState {
                    hash,
                    version: data_version,
                },
            );
        }
        let synced = get_s(item, "sync_status").as_deref() == Some(SyncStatus::Synced.as_str());
        Some(Tracked {
            hotel_id,
            data_version,
            facets,
            synced,
        })
    }
}

const TRACKED_PROJECTION: &str = "hotel_id, data_version, content_hash, sync_status, facets";

#[async_trait]
impl PropertyStore for DynamoProperties {
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage> {
        let start = after.map(|id| HashMap::from([("hotel_id".to_string(), n(id))]));
        let resp = self
            .client
            .scan()
            .table_name(&self.properties)
            .projection_expression(TRACKED_PROJECTION)
            .filter_expression("sync_status <> :u")
            .expression_attribute_values(":u", s("untracked"))
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
        Ok((items.iter().filter_map(Self::tracked_of).collect(), usage))
    }

    async fn get_documents(
        &self,
        ids: &[i64],
        facet: &str,
    ) -> PortResult<(HashMap<i64, StoredDoc>, Usage)> {
        let ids = unique(ids);
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([
                    ("hotel_id".to_string(), n(id)),
                    ("facet".to_string(), s(facet)),
                ])
            })
            .collect();
        let (items, usage) = self.batch_get(&self.documents, keys, None).await?;
        let mut out = HashMap::new();
        for item in items {
            let Some(id) = get_n::<i64>(&item, "hotel_id") else {
                continue;
            };
            let compressed = item
                .get("doc")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            out.insert(
                id,
                StoredDoc {
                    hotel_id: id,
                    facet: get_s(&item, "facet").unwrap_or_default(),
                    data_version: get_n(&item, "data_version").unwrap_or(0),
                    content_hash: get_s(&item, "content_hash").unwrap_or_default(),
                    compressed,
                },
            );
        }
        Ok((out, usage))
    }

    /// Documents first (each conditional on its stored version, or on already holding this very
    /// content, so a retry after a crash is idempotent), then the record (conditional on its
    /// data_version). No transaction: DynamoDB bills transactional writes double, and the lease
    /// already makes this the only writer. A crash between the two leaves a document newer than
    /// its record; the next run sees the record's old hash, rewrites the same content (allowed by
    /// the hash condition) and completes the record.
    async fn write_property(&self, w: &PropertyWrite) -> PortResult<Usage> {
        let new_version = w.expected_version + 1;
        let mut usage = Usage::default();
        let puts = w.docs.iter().map(|d| {
            let call = format!("PutItem document hotel {} facet {}", w.hotel_id, d.facet);
            let mut put = self
                .client
                .put_item()
                .table_name(&self.documents)
                .item("hotel_id", n(w.hotel_id))
                .item("facet", s(&d.facet))
                .item("doc", AV::B(Blob::new(d.compressed.clone())))
                .item("encoding", s("zstd+json"))
                .item("data_version", n(new_version))
                .item("content_hash", s(&d.content_hash))
                .item("updated_at", s(w.now.rfc3339()))
                .item("sync_id", s(&w.sync_id))
                .expression_attribute_values(":h", s(&d.content_hash))
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            put = match d.expected_version {
                Some(v) => put
                    .condition_expression("attribute_not_exists(hotel_id) OR data_version = :expected OR content_hash = :h")
                    .expression_attribute_values(":expected", n(v)),
                None => put.condition_expression("attribute_not_exists(hotel_id) OR content_hash = :h"),
            };
            async move { put.send().await.map_err(|e| port_err(&call, e)) }
        });
        for r in futures::future::join_all(puts).await {
            usage.wcu += units(r?.consumed_capacity());
        }

        let facets_av = AV::M(
            w.facets
                .iter()
                .map(|(k, f)| {
                    (
                        k.clone(),
                        AV::M(HashMap::from([
                            ("hash".to_string(), s(&f.hash)),
                            ("version".to_string(), n(f.version)),
                        ])),
                    )
                })
                .collect(),
        );
        let mut set = vec![
            "data_version = :new".to_string(),
            "facets = :facets".to_string(),
            "last_updated = :now".to_string(),
            "last_synced = :now".to_string(),
            "sync_status = :st".to_string(),
            "last_sync_id = :sid".to_string(),
        ];
        let mut values = HashMap::from([
            (":new".to_string(), n(new_version)),
            (":expected".to_string(), n(w.expected_version)),
            (":facets".to_string(), facets_av),
            (":now".to_string(), n(w.now.secs())),
            (":st".to_string(), s(w.status.as_str())),
            (":sid".to_string(), s(&w.sync_id)),
        ]);
        if let Some(p) = w.facets.get(facet::PROPERTY) {
            set.push("content_hash = :h".into());
            values.insert(":h".into(), s(&p.hash));
        }
        // Summary fields go through #names: `name` (and others) are DynamoDB reserved words.
        let mut names = HashMap::new();
        if let Some(sum) = &w.summary {
            let fields = [
                ("name", sum.name.clone().map(s)),
                ("city", sum.city.clone().map(s)),
                ("country", sum.country.clone().map(s)),
                ("stars", sum.stars.map(n)),
                ("rating", sum.rating.map(n)),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    set.push(format!("#{k} = :{k}"));
                    names.insert(format!("#{k}"), k.to_string());
                    values.insert(format!(":{k}"), v);
                }
            }
        }
        let mut expr = format!("SET {}", set.join(", "));
        match &w.error {
            Some(e) => {
                expr = format!("{expr}, last_error = :err");
                values.insert(":err".into(), s(e));
            }
            None => expr.push_str(" REMOVE last_error"),
        }
        let r = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(w.hotel_id))
            .update_expression(expr)
            .condition_expression("attribute_not_exists(data_version) OR data_version = :expected")
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| {
                port_err(
                    &format!(
                        "UpdateItem record hotel {} to data_version {new_version}",
                        w.hotel_id
                    ),
                    e,
                )
            })?;
        usage.wcu += units(r.consumed_capacity());
        Ok(usage)
    }

    async fn touch(&self, t: &Touch) -> PortResult<Usage> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(t.hotel_id))
            .condition_expression("attribute_exists(hotel_id)")
            .expression_attribute_values(":now", n(t.now.secs()))
            .expression_attribute_values(":sid", s(&t.sync_id))
            .expression_attribute_values(":st", s(t.status.as_str()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        req = match &t.error {
            Some(e) => req
                .update_expression("SET last_synced = :now, last_sync_id = :sid, sync_status = :st, last_error = :err")
                .expression_attribute_values(":err", s(e)),
            None => req.update_expression("SET last_synced = :now, last_sync_id = :sid, sync_status = :st REMOVE last_error"),
        };
        let r = req
            .send()
            .await
            .map_err(|e| port_err(&format!("UpdateItem touch hotel {}", t.hotel_id), e))?;
        Ok(Usage {
            rcu: 0.0,
            wcu: units(r.consumed_capacity()),
        })
    }

    async fn mark(&self, m: &RecordMark) -> PortResult<Usage> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(m.hotel_id))
            .expression_attribute_values(":st", s(m.status.as_str()))
            .expression_attribute_values(":sid", s(&m.sync_id))
            .expression_attribute_values(":now", n(m.now.secs()))
            .expression_attribute_values(":zero", n(0))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        req = match &m.error {
            Some(err) => req
                .update_expression("SET sync_status = :st, last_sync_id = :sid, last_checked = :now, last_error = :err, data_version = if_not_exists(data_version, :zero)")
                .expression_attribute_values(":err", s(err)),
            None => req.update_expression("SET sync_status = :st, last_sync_id = :sid, last_checked = :now, data_version = if_not_exists(data_version, :zero) REMOVE last_error"),
        };
        let r = req.send().await.map_err(|e| {
            port_err(
                &format!("UpdateItem mark hotel {} {}", m.hotel_id, m.status.as_str()),
                e,
            )
        })?;
        Ok(Usage {
            rcu: 0.0,
            wcu: units(r.consumed_capacity()),
        })
    }

    async fn track(&self, ids: &[i64]) -> PortResult<usize> {
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
        let mut changed = new_items.len();
        self.batch_put(&self.properties, new_items).await?;
        for (id, status) in &known {
            if status.as_deref() == Some(SyncStatus::Untracked.as_str()) {
                self.client
                    .update_item()
                    .table_name(&self.properties)
                    .key("hotel_id", n(id))
                    .update_expression("SET sync_status = :p")
                    .expression_attribute_values(":p", s(SyncStatus::Pending.as_str()))
                    .send()
                    .await
                    .map_err(|e| port_err(&format!("UpdateItem re-track hotel {id}"), e))?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn untrack(&self, hotel_id: i64) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .update_expression("SET sync_status = :u")
            .condition_expression("attribute_exists(hotel_id)")
            .expression_attribute_values(":u", s(SyncStatus::Untracked.as_str()))
            .send()
            .await
            .map_err(|e| {
                let mut pe = port_err(&format!("UpdateItem untrack hotel {hotel_id}"), e);
                if pe.kind == PortErrorKind::Conflict {
                    pe.kind = PortErrorKind::NotFound;
                }
                pe
            })?;
        Ok(())
    }

    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .send()
            .await
            .map_err(|e| port_err(&format!("GetItem hotel {hotel_id}"), e))?;
        match r.item {
            None => Ok(None),
            Some(item) => serde_dynamo::from_item(item).map(Some).map_err(|e| {
                PortError::new(
                    format!("decode record hotel {hotel_id}"),
                    PortErrorKind::Invalid,
                    e.to_string(),
                )
            }),
        }
    }

    async fn count_tracked(&self) -> PortResult<(u64, Usage)> {
        let mut total = 0u64;
        let mut usage = Usage::default();
        let mut start: Option<HashMap<String, AV>> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.properties)
                .select(Select::Count)
                .filter_expression("sync_status <> :u")
                .expression_attribute_values(":u", s("untracked"))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&format!("Scan count {}", self.properties), e))?;
            total += resp.count() as u64;
            usage.rcu += units(resp.consumed_capacity());
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok((total, usage))
    }
}

// ---------------------------------------------------------------------------------------------
// Run log

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
}

impl RunItem {
    fn of(r: &SyncRun) -> Self {
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
            processed_properties: r.counters.processed,
            document_writes: r.counters.document_writes,
            upstream_requests: r.counters.upstream_requests,
            error_message: r.error_message.clone(),
            created_at: r.started_at.rfc3339(),
            cursor: r.cursor,
            hotel_ids: r.hotel_ids.clone(),
            consumed_rcu: r.counters.consumed_rcu,
            consumed_wcu: r.counters.consumed_wcu,
            invocations: r.invocations,
            failures: r.failures.clone(),
            changes: r.changes.clone(),
            details_dropped: r.details_dropped,
            requests_per_property: r.requests_per_property,
            expires_at: r.started_at.plus(RUN_RETENTION).secs(),
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
                document_writes: self.document_writes,
                consumed_rcu: self.consumed_rcu,
                consumed_wcu: self.consumed_wcu,
                upstream_requests: self.upstream_requests,
            },
            error_message: self.error_message,
            cursor: self.cursor,
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

    fn encode(run: &SyncRun) -> PortResult<HashMap<String, AV>> {
        serde_dynamo::to_item(RunItem::of(run)).map_err(|e| {
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
    async fn create(&self, run: &SyncRun) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::encode(run)?))
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

    async fn save(&self, run: &SyncRun) -> PortResult<Usage> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::encode(run)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| port_err(&format!("PutItem checkpoint run {}", run.sync_id), e))?;
        Ok(Usage {
            rcu: 0.0,
            wcu: units(r.consumed_capacity()),
        })
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

// ---------------------------------------------------------------------------------------------
// Lease (one item in sync_logs, key `lease#sync`, not in the runs index)

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
}

fn lease_of(item: &HashMap<String, AV>) -> LeaseState {
    LeaseState {
        owner: get_s(item, "owner").filter(|o| !o.is_empty()),
        fence: get_n(item, "fence").unwrap_or(0),
        expires_at: Timestamp(get_n(item, "lease_expires_at").unwrap_or(0)),
    }
}

#[async_trait]
impl Lease for DynamoLease {
    async fn acquire(&self, owner: &str, ttl: Duration) -> PortResult<Acquired> {
        // The rule of domain::lease::can_acquire, enforced atomically in two conditional writes:
        // renew when it is already ours (fence unchanged), else take it when free or expired
        // (fence + 1, and the previous owner is reported for the abandoned-run check).
        let now = self.clock.now();
        let expires = now.plus(ttl);
        let renew = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .update_expression("SET lease_expires_at = :exp")
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":exp", n(expires.secs()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match renew {
            Ok(out) => {
                let fence = out
                    .attributes
                    .as_ref()
                    .map(lease_of)
                    .map(|l| l.fence)
                    .unwrap_or(0);
                return Ok(Acquired::Granted {
                    fence,
                    took_over: None,
                });
            }
            Err(e) => {
                let pe = port_err("UpdateItem renew lease", e);
                if pe.kind != PortErrorKind::Conflict {
                    return Err(pe);
                }
            }
        }
        let take = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .update_expression(
                "SET #o = :me, lease_expires_at = :exp, fence = if_not_exists(fence, :zero) + :one",
            )
            .condition_expression(
                "attribute_not_exists(#o) OR #o = :empty OR lease_expires_at <= :now",
            )
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":exp", n(expires.secs()))
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match take {
            Ok(out) => {
                let old = out.attributes.as_ref().map(lease_of);
                let (_, acquired) = lease::acquire(old.as_ref(), owner, now, ttl.as_secs());
                Ok(acquired)
            }
            Err(e) => {
                let pe = port_err("UpdateItem take lease", e);
                if pe.kind != PortErrorKind::Conflict {
                    return Err(pe);
                }
                let cur = self.current().await?.unwrap_or(LeaseState {
                    owner: None,
                    fence: 0,
                    expires_at: now,
                });
                Ok(Acquired::Held {
                    owner: cur.owner.unwrap_or_default(),
                    expires_at: cur.expires_at,
                })
            }
        }
    }

    async fn heartbeat(&self, owner: &str, fence: u64, ttl: Duration) -> PortResult<bool> {
        let expires = self.clock.now().plus(ttl);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .update_expression("SET lease_expires_at = :exp")
            .condition_expression("#o = :me AND fence = :f")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":f", n(fence))
            .expression_attribute_values(":exp", n(expires.secs()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let pe = port_err("UpdateItem heartbeat lease", e);
                if pe.kind == PortErrorKind::Conflict {
                    Ok(false)
                } else {
                    Err(pe)
                }
            }
        }
    }

    async fn release(&self, owner: &str, fence: u64) -> PortResult<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .update_expression("SET #o = :empty, lease_expires_at = :zero")
            .condition_expression("#o = :me AND fence = :f")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":f", n(fence))
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let pe = port_err("UpdateItem release lease", e);
                if pe.kind == PortErrorKind::Conflict {
                    Ok(())
                } else {
                    Err(pe)
                }
            }
        }
    }

    async fn current(&self) -> PortResult<Option<LeaseState>> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::LEASE_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err("GetItem lease", e))?;
        Ok(r.item.as_ref().map(lease_of))
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Clone)]
pub struct DynamoSettings {
    client: Client,
    table: String,
}

impl DynamoSettings {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoSettings {
            client,
            table: tables.settings.clone(),
        }
    }
}

#[async_trait]
impl SettingsStore for DynamoSettings {
    async fn load(&self) -> PortResult<BTreeMap<String, StoredSetting>> {
        let mut out = BTreeMap::new();
        let mut start: Option<HashMap<String, AV>> = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_err(&format!("Scan {}", self.table), e))?;
            for item in resp.items() {
                if let (Some(k), Some(v)) =
                    (get_s(item, "setting_key"), get_s(item, "setting_value"))
                {
                    let at = get_s(item, "updated_at")
                        .and_then(|t| Timestamp::parse_rfc3339(&t))
                        .unwrap_or(Timestamp(0));
                    out.insert(
                        k,
                        StoredSetting {
                            value: v,
                            updated_at: at,
                        },
                    );
                }
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn put_all(
        &self,
        values: &[(SettingKey, SettingValue)],
        now: Timestamp,
    ) -> PortResult<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut req = self.client.transact_write_items();
        for (k, v) in values {
            let put = Put::builder()
                .table_name(&self.table)
                .item("setting_key", s(k.as_str()))
                .item("setting_value", s(v.render()))
                .item("description", s(k.description()))
                .item("updated_at", s(now.rfc3339()))
                .build()
                .map_err(|e| {
                    PortError::new(
                        format!("PutItem setting {k}"),
                        PortErrorKind::Invalid,
                        e.to_string(),
                    )
                })?;
            req = req.transact_items(TransactWriteItem::builder().put(put).build());
        }
        req.send()
            .await
            .map_err(|e| port_err("TransactWriteItems settings", e))?;
        Ok(())
    }
}
