//! Quarantine on DynamoDB: the note and acceptances are attributes of the record (written with
//! the record's own fenced updates, so never out of step with its status); quarantined records
//! alone carry `q_list`, the key of the sparse `quarantined` index the listing queries; held
//! payloads are document items `quarantine#<facet>` with an expiry (TTL).

use super::properties::is_condition_failure;
use super::writes::OUT_OF_QUARANTINE;
use super::{DynamoProperties, n, s};
use crate::adapters::{port_err, tables};
use crate::domain::contract::Rule;
use crate::domain::quarantine::{Accepted, QuarantineNote, payload_key};
use crate::domain::run::{SyncRecord, SyncStatus};
use crate::domain::stats::StatusCounts;
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue as AV;
use std::collections::HashMap;

/// A listed item as the entry of its record (one decoding of records, `get_record`'s).
fn entry(item: &HashMap<String, AV>) -> Option<HeldEntry> {
    let record: SyncRecord = serde_dynamo::from_item(item.clone()).ok()?;
    HeldEntry::of(&record)
}

/// A conditional update on a record that is not (or no longer) as required.
fn refused(call: &str, e: PortError, kind: PortErrorKind, why: &str) -> PortError {
    if is_condition_failure(&e) {
        PortError::new(call, kind, why)
    } else {
        e
    }
}

#[async_trait]
impl QuarantineDesk for DynamoProperties {
    async fn list_held(
        &self,
        limit: usize,
        after: Option<i64>,
        rule: Option<Rule>,
    ) -> PortResult<HeldPage> {
        let call = format!("Query {} index {}", self.properties, tables::QUARANTINE_GSI);
        let mut items = Vec::new();
        let mut start = after.map(|a| {
            HashMap::from([
                ("hotel_id".to_string(), n(a)),
                ("q_list".to_string(), s(tables::QUARANTINE_LIST)),
            ])
        });
        // One more than asked, to know whether a next page exists; a filter may need several
        // reads (each bounded by `limit`).
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.properties)
                .index_name(tables::QUARANTINE_GSI)
                .key_condition_expression("q_list = :q")
                .expression_attribute_values(":q", s(tables::QUARANTINE_LIST))
                .set_exclusive_start_key(start.take())
                .limit((limit + 1).min(1000) as i32);
            if let Some(r) = rule {
                q = q
                    .filter_expression("contains(q_rules, :rule)")
                    .expression_attribute_values(":rule", s(r.as_str()));
            }
            let out = q.send().await.map_err(|e| port_err(&call, e))?;
            items.extend(out.items().iter().filter_map(entry));
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() && items.len() <= limit => start = Some(k.clone()),
                _ => break,
            }
        }
        let next = (items.len() > limit).then(|| items[limit - 1].hotel_id);
        items.truncate(limit);
        Ok(HeldPage { items, next })
    }

    async fn held(&self, hotel_id: i64) -> PortResult<Option<HeldEntry>> {
        Ok(self
            .get_record(hotel_id)
            .await?
            .as_ref()
            .and_then(HeldEntry::of))
    }

    async fn accept(&self, hotel_id: i64, sync_id: &str, accepted: &Accepted) -> PortResult<()> {
        let call = format!("UpdateItem accept held payloads hotel {hotel_id}");
        let av = serde_dynamo::to_attribute_value(accepted)
            .map_err(|e| PortError::new(&call, PortErrorKind::Invalid, e.to_string()))?;
        let r = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .update_expression("SET accepted = :a")
            .condition_expression("sync_status = :q AND quarantine.sync_id = :sid")
            .expression_attribute_values(":a", av)
            .expression_attribute_values(":q", s(SyncStatus::Quarantined.as_str()))
            .expression_attribute_values(":sid", s(sync_id))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = port_err(&call, e);
                Err(self.why_not(&call, hotel_id, e).await)
            }
        }
    }

    async fn discard(&self, hotel_id: i64, note: &str) -> PortResult<()> {
        let call = format!("UpdateItem discard quarantine hotel {hotel_id}");
        let out = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .update_expression(format!(
                "SET sync_status = :p, last_error = :note REMOVE {OUT_OF_QUARANTINE}"
            ))
            .condition_expression("sync_status = :q")
            .expression_attribute_values(":p", s(SyncStatus::Pending.as_str()))
            .expression_attribute_values(":q", s(SyncStatus::Quarantined.as_str()))
            .expression_attribute_values(":note", s(note))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| {
                refused(
                    &call,
                    port_err(&call, e),
                    PortErrorKind::NotFound,
                    "not quarantined",
                )
            })?;
        let mut d = StatusCounts::default();
        d.moved(SyncStatus::Quarantined, SyncStatus::Pending);
        self.stats.apply(&d, true).await?;
        let held: Option<QuarantineNote> = out
            .attributes()
            .and_then(|a| a.get("quarantine"))
            .and_then(|q| serde_dynamo::from_attribute_value(q.clone()).ok());
        for f in held.iter().flat_map(|h| h.facets.iter()) {
            let key = payload_key(&f.facet);
            let r = self
                .client
                .delete_item()
                .table_name(&self.documents)
                .key("hotel_id", n(hotel_id))
                .key("facet", s(&key))
                // Only the payload discarded: a later run may have held another one since.
                .condition_expression("content_hash = :h")
                .expression_attribute_values(":h", s(&f.hash))
                .send()
                .await;
            if let Err(e) = r {
                let e = port_err(&format!("DeleteItem held payload {hotel_id} {key}"), e);
                if !is_condition_failure(&e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl DynamoProperties {
    /// Why an acceptance was refused: the record is not quarantined (NotFound), or a later run
    /// quarantined other payloads (Conflict).
    async fn why_not(&self, call: &str, hotel_id: i64, e: PortError) -> PortError {
        if !is_condition_failure(&e) {
            return e;
        }
        match self.held(hotel_id).await {
            Ok(Some(_)) => PortError::new(
                call,
                PortErrorKind::Conflict,
                "quarantined again by a later run",
            ),
            Ok(None) => PortError::new(call, PortErrorKind::NotFound, "not quarantined"),
            Err(e) => e,
        }
    }
}
