//! The catalogue counts: one small item (`sync_id = "stats#catalogue"`) in the run log table,
//! changed by atomic ADDs and replaced by recounts. Not in the runs index (no `log_kind`).

use super::{get_n, get_s, n, s};
use crate::adapters::port_err;
use crate::adapters::tables;
use crate::config::Tables;
use crate::domain::run::SyncStatus;
use crate::domain::stats::{CatalogueStats, StatusCounts};
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use std::collections::HashMap;

fn attr(st: SyncStatus) -> String {
    format!("n_{}", st.as_str())
}

#[derive(Clone)]
pub struct DynamoStats {
    client: Client,
    table: String,
}

impl DynamoStats {
    pub fn new(client: Client, tables: &Tables) -> Self {
        DynamoStats {
            client,
            table: tables.sync_logs.clone(),
        }
    }

    /// Adds `delta` (and one to the epoch when `tracking` changed) in one atomic UpdateItem.
    pub(super) async fn apply(&self, delta: &StatusCounts, tracking: bool) -> PortResult<()> {
        let mut adds = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, st) in StatusCounts::STATUSES.iter().enumerate() {
            let d = delta.get(*st);
            if d != 0 {
                adds.push(format!("#c{i} :c{i}"));
                names.insert(format!("#c{i}"), attr(*st));
                values.insert(format!(":c{i}"), n(d));
            }
        }
        if tracking {
            adds.push("epoch :one".into());
            values.insert(":one".into(), n(1));
        }
        if adds.is_empty() {
            return Ok(());
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY))
            .update_expression(format!("ADD {}", adds.join(", ")))
            .set_expression_attribute_values(Some(values));
        if !names.is_empty() {
            req = req.set_expression_attribute_names(Some(names));
        }
        req.send()
            .await
            .map_err(|e| port_err("UpdateItem add to the catalogue counts", e))?;
        Ok(())
    }

    /// Records a successful run as the last success, unless a later one is recorded.
    pub(super) async fn succeeded(&self, sync_id: &str, at: Timestamp) -> PortResult<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY))
            .update_expression("SET last_success_id = :id, last_success_at = :t")
            .condition_expression("attribute_not_exists(last_success_at) OR last_success_at <= :t")
            .expression_attribute_values(":id", s(sync_id))
            .expression_attribute_values(":t", n(at.0))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let pe = port_err(&format!("UpdateItem last success {sync_id}"), e);
                if pe.kind == PortErrorKind::Conflict {
                    Ok(())
                } else {
                    Err(pe)
                }
            }
        }
    }

    fn decode(item: &HashMap<String, AV>) -> CatalogueStats {
        let mut counts = StatusCounts::default();
        for st in StatusCounts::STATUSES {
            counts.add(st, get_n::<i64>(item, &attr(st)).unwrap_or(0));
        }
        let pair =
            |id: &str, at: &str| Some((get_s(item, id)?, Timestamp(get_n::<i64>(item, at)?)));
        CatalogueStats {
            counts,
            epoch: get_n(item, "epoch").unwrap_or(0),
            runs: get_n::<i64>(item, "runs").unwrap_or(0).max(0) as u64,
            last_success: pair("last_success_id", "last_success_at"),
            recounted: pair("recounted_by", "recounted_at"),
            paused: pair("paused_reason", "paused_at"),
        }
    }
}

#[async_trait]
impl Stats for DynamoStats {
    async fn get(&self) -> PortResult<CatalogueStats> {
        let r = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_err("GetItem catalogue counts", e))?;
        Ok(r.item().map(Self::decode).unwrap_or_default())
    }

    async fn add(&self, delta: &StatusCounts) -> PortResult<()> {
        self.apply(delta, false).await
    }

    async fn set_paused(&self, paused: Option<(String, Timestamp)>) -> PortResult<()> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY));
        let req = match paused {
            Some((reason, at)) => req
                .update_expression("SET paused_reason = :r, paused_at = :t")
                .expression_attribute_values(":r", s(reason))
                .expression_attribute_values(":t", n(at.0)),
            None => req.update_expression("REMOVE paused_reason, paused_at"),
        };
        req.send()
            .await
            .map_err(|e| port_err("UpdateItem schedule pause note", e))?;
        Ok(())
    }

    async fn recount(
        &self,
        counts: &StatusCounts,
        runs: u64,
        epoch: u64,
        by: &str,
        now: Timestamp,
    ) -> PortResult<bool> {
        let mut sets = vec![
            "runs = :runs".to_string(),
            "recounted_by = :by".into(),
            "recounted_at = :at".into(),
        ];
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":runs".to_string(), n(runs)),
            (":by".to_string(), s(by)),
            (":at".to_string(), n(now.0)),
            (":e".to_string(), n(epoch)),
        ]);
        for (i, st) in StatusCounts::STATUSES.iter().enumerate() {
            if *st == SyncStatus::Untracked {
                continue; // maintained by tracking alone (a sync never reads untracked records)
            }
            sets.push(format!("#c{i} = :c{i}"));
            names.insert(format!("#c{i}"), attr(*st));
            values.insert(format!(":c{i}"), n(counts.get(*st)));
        }
        let condition = if epoch == 0 {
            "attribute_not_exists(epoch) OR epoch = :e"
        } else {
            "epoch = :e"
        };
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("sync_id", s(tables::STATS_KEY))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let pe = port_err(&format!("UpdateItem recount by {by}"), e);
                if pe.kind == PortErrorKind::Conflict {
                    Ok(false)
                } else {
                    Err(pe)
                }
            }
        }
    }
}
