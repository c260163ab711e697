//! The sync's fenced write protocol on DynamoDB: claim the record, write the changed documents
//! into their free slots, commit the record; or record an outcome. Every write carries the
//! invocation's token and is refused once a newer token wrote the item (see ARCHITECTURE.md).

use super::properties::{RECORD_FENCE, is_condition_failure, untracked};
use super::{n, s, units};
use crate::adapters::port_err;
use crate::domain::facet;
use crate::domain::run::{FacetState, SyncStatus};
use crate::ports::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as AV, ReturnConsumedCapacity};
use std::collections::{BTreeMap, HashMap};

use super::DynamoProperties;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};

impl DynamoProperties {
    /// A fenced record update's answer: its write units, or why it was refused (a consistent
    /// read tells Fenced / Untracked / Conflict apart; `ours` recognises our own write already
    /// applied, as when the SDK retried a request that had applied).
    async fn settle(
        &self,
        r: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
        call: &str,
        hotel_id: i64,
        fence: u64,
        ours: impl Fn(u64, u64) -> bool,
    ) -> PortResult<Usage> {
        match r {
            Ok(out) => Ok(Usage {
                rcu: 0.0,
                wcu: units(out.consumed_capacity()),
            }),
            Err(e) => {
                let pe = port_err(call, e);
                if is_condition_failure(&pe) {
                    self.classify(call, hotel_id, fence, ours).await
                } else {
                    Err(pe)
                }
            }
        }
    }
}

fn facets_av(facets: &BTreeMap<String, FacetState>) -> AV {
    AV::M(
        facets
            .iter()
            .map(|(k, f)| {
                let mut m = HashMap::from([
                    ("hash".to_string(), s(&f.hash)),
                    ("version".to_string(), n(f.version)),
                ]);
                if let Some(slot) = &f.slot {
                    m.insert("slot".into(), s(slot));
                }
                (k.clone(), AV::M(m))
            })
            .collect(),
    )
}

#[async_trait]
impl PropertyWriter for DynamoProperties {
    async fn claim(&self, hotel_id: i64, expected_version: u64, fence: u64) -> PortResult<Usage> {
        let call = format!("UpdateItem claim record hotel {hotel_id} with token {fence}");
        let r = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(hotel_id))
            .update_expression("SET fence = :f")
            .condition_expression(format!("{RECORD_FENCE} AND data_version = :v"))
            .expression_attribute_values(":f", n(fence))
            .expression_attribute_values(":v", n(expected_version))
            .expression_attribute_values(":untracked", untracked())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // Ours already: claimed by this token at this version.
        self.settle(r, &call, hotel_id, fence, |f, v| {
            f == fence && v == expected_version
        })
        .await
    }

    async fn put_document(&self, d: &DocWrite) -> PortResult<Usage> {
        let call = format!(
            "PutItem document hotel {} {} with token {}",
            d.hotel_id, d.key, d.fence
        );
        let r = self
            .client
            .put_item()
            .table_name(&self.documents)
            .item("hotel_id", n(d.hotel_id))
            .item("facet", s(&d.key))
            .item("doc", AV::B(Blob::new(d.compressed.clone())))
            .item("encoding", s("zstd+json"))
            .item("data_version", n(d.data_version))
            .item("content_hash", s(&d.content_hash))
            .item("updated_at", s(d.now.rfc3339()))
            .item("sync_id", s(&d.sync_id))
            .item("fence", n(d.fence))
            .condition_expression("attribute_not_exists(hotel_id) OR fence <= :f")
            .expression_attribute_values(":f", n(d.fence))
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
                if is_condition_failure(&pe) {
                    pe.kind = PortErrorKind::Fenced;
                    pe.message = "a newer sync invocation wrote this document".into();
                }
                Err(pe)
            }
        }
    }

    async fn commit(&self, w: &PropertyWrite) -> PortResult<Usage> {
        let new_version = w.expected_version + 1;
        let call = format!(
            "UpdateItem commit record hotel {} to data_version {new_version} with token {}",
            w.hotel_id, w.fence
        );
        let mut set = vec![
            "data_version = :new".to_string(),
            "facets = :facets".to_string(),
            "last_updated = :now".to_string(),
            "last_synced = :now".to_string(),
            "last_checked = :now".to_string(),
            "sync_status = :st".to_string(),
            "last_sync_id = :sid".to_string(),
        ];
        let mut values = HashMap::from([
            (":new".to_string(), n(new_version)),
            (":expected".to_string(), n(w.expected_version)),
            (":facets".to_string(), facets_av(&w.facets)),
            (":now".to_string(), n(w.now.secs())),
            (":st".to_string(), s(w.status.as_str())),
            (":sid".to_string(), s(&w.sync_id)),
            (":f".to_string(), n(w.fence)),
            (":untracked".to_string(), untracked()),
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
            .condition_expression(
                "attribute_exists(hotel_id) AND sync_status <> :untracked AND fence = :f AND data_version = :expected",
            )
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        // Ours already: committed by this token to the new version.
        self.settle(r, &call, w.hotel_id, w.fence, |f, v| {
            f == w.fence && v == new_version
        })
        .await
    }

    async fn record_outcome(&self, o: &RecordOutcome) -> PortResult<Usage> {
        let call = format!(
            "UpdateItem record hotel {} {} with token {}",
            o.hotel_id,
            o.status.as_str(),
            o.fence
        );
        let synced = matches!(o.status, SyncStatus::Synced | SyncStatus::Partial);
        let mut set = "SET sync_status = :st, last_sync_id = :sid, last_checked = :now, fence = :f"
            .to_string();
        if synced {
            set.push_str(", last_synced = :now");
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.properties)
            .key("hotel_id", n(o.hotel_id))
            .condition_expression(RECORD_FENCE)
            .expression_attribute_values(":st", s(o.status.as_str()))
            .expression_attribute_values(":sid", s(&o.sync_id))
            .expression_attribute_values(":now", n(o.now.secs()))
            .expression_attribute_values(":f", n(o.fence))
            .expression_attribute_values(":untracked", untracked())
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        req = match &o.error {
            Some(err) => req
                .update_expression(format!("{set}, last_error = :err"))
                .expression_attribute_values(":err", s(err)),
            None => req.update_expression(format!("{set} REMOVE last_error")),
        };
        // The outcome's condition holds again on a retry of our own write, so a refusal is
        // never ours.
        self.settle(req.send().await, &call, o.hotel_id, o.fence, |_, _| false)
            .await
    }
}
