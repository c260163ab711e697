//! The sync's fenced write protocol on DynamoDB: claim the record, write the changed documents
//! into their free slots, commit the record; or record an outcome. Every write carries the
//! invocation's token and is refused once a newer token wrote the item (see ARCHITECTURE.md).

use super::properties::{RECORD_FENCE, is_condition_failure, untracked};
use super::{n, s, units};
use crate::adapters::port_err;
use crate::adapters::tables;
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

/// What a record out of quarantine no longer carries (every commit, every other outcome).
pub(super) const OUT_OF_QUARANTINE: &str = "quarantine, q_list, q_rules, accepted";

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

/// A refused document write: a condition failure means a newer token wrote the item.
fn doc_refused<E, R>(call: &str, e: SdkError<E, R>) -> PortError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut pe = port_err(call, e);
    if is_condition_failure(&pe) {
        pe.kind = PortErrorKind::Fenced;
        pe.message = "a newer sync invocation wrote this document".into();
    }
    pe
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
                if let Some(raw) = &f.raw {
                    m.insert("raw".into(), s(raw));
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

    async fn put_document(&self, d: &DocWrite) -> PortResult<DocPut> {
        let item_key = crate::domain::document::part_key(&d.key, d.part);
        let call = format!(
            "{} document hotel {} {item_key} with token {}",
            if d.part == 0 { "UpdateItem" } else { "PutItem" },
            d.hotel_id,
            d.fence
        );
        if d.part > 0 {
            let out = self
                .client
                .put_item()
                .table_name(&self.documents)
                .item("hotel_id", n(d.hotel_id))
                .item("facet", s(&item_key))
                .item("doc", AV::B(Blob::new(d.compressed.clone())))
                .item("data_version", n(d.data_version))
                .item("content_hash", s(&d.content_hash))
                .item("part", n(d.part))
                .item("fence", n(d.fence))
                .condition_expression("attribute_not_exists(hotel_id) OR fence <= :f")
                .expression_attribute_values(":f", n(d.fence))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| doc_refused(&call, e))?;
            return Ok(DocPut {
                usage: Usage {
                    rcu: 0.0,
                    wcu: units(out.consumed_capacity()),
                },
                stale: Vec::new(),
            });
        }
        // The head: every attribute set, and the part indices of this write added to the set
        // of parts written in this slot (a set union: crash-safe, whatever came before).
        let mut update = "SET doc = :doc, encoding = :enc, data_version = :v, content_hash = :h, \
                          updated_at = :at, sync_id = :s, fence = :f, parts = :n"
            .to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.documents)
            .key("hotel_id", n(d.hotel_id))
            .key("facet", s(&item_key))
            .expression_attribute_values(":doc", AV::B(Blob::new(d.compressed.clone())))
            .expression_attribute_values(":enc", s("zstd+json"))
            .expression_attribute_values(":v", n(d.data_version))
            .expression_attribute_values(":h", s(&d.content_hash))
            .expression_attribute_values(":at", s(d.now.rfc3339()))
            .expression_attribute_values(":s", s(&d.sync_id))
            .expression_attribute_values(":f", n(d.fence))
            .expression_attribute_values(":n", n(d.parts));
        // Index 0 (the head itself) keeps the set non-empty, so it is always returned.
        update.push_str(" ADD touched :t");
        req = req.expression_attribute_values(
            ":t",
            AV::Ns((0..d.parts).map(|p| p.to_string()).collect()),
        );
        let out = req
            .update_expression(update)
            .condition_expression("attribute_not_exists(hotel_id) OR fence <= :f")
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| doc_refused(&call, e))?;
        // The set before this write (all of the old item is returned, whatever changed: the
        // emulator, unlike DynamoDB, leaves unchanged attributes out of UPDATED_NEW), plus ours.
        let mut stale: Vec<u32> = out
            .attributes()
            .and_then(|a| a.get("touched"))
            .and_then(|t| t.as_ns().ok())
            .map(|ns| ns.iter().filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        stale.retain(|p| *p >= d.parts);
        stale.sort_unstable();
        Ok(DocPut {
            usage: Usage {
                rcu: 0.0,
                wcu: units(out.consumed_capacity()),
            },
            stale,
        })
    }

    async fn remove_parts(
        &self,
        hotel_id: i64,
        key: &str,
        parts: &[u32],
        fence: u64,
    ) -> PortResult<Usage> {
        let mut usage = Usage::default();
        for p in parts {
            let pk = crate::domain::document::part_key(key, *p);
            let call = format!("DeleteItem document part hotel {hotel_id} {pk}");
            let r = self
                .client
                .delete_item()
                .table_name(&self.documents)
                .key("hotel_id", n(hotel_id))
                .key("facet", s(&pk))
                .condition_expression("attribute_not_exists(hotel_id) OR fence <= :f")
                .expression_attribute_values(":f", n(fence))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match r {
                Ok(out) => usage.wcu += units(out.consumed_capacity()),
                Err(e) => {
                    let pe = port_err(&call, e);
                    // A newer token rewrote that part: it is theirs now.
                    if !is_condition_failure(&pe) {
                        return Err(pe);
                    }
                }
            }
        }
        let call = format!("UpdateItem forget removed parts hotel {hotel_id} {key}");
        let out = self
            .client
            .update_item()
            .table_name(&self.documents)
            .key("hotel_id", n(hotel_id))
            .key("facet", s(key))
            .update_expression("DELETE touched :t")
            .condition_expression("attribute_exists(hotel_id) AND fence <= :f")
            .expression_attribute_values(
                ":t",
                AV::Ns(parts.iter().map(|p| p.to_string()).collect()),
            )
            .expression_attribute_values(":f", n(fence))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| doc_refused(&call, e))?;
        usage.wcu += units(out.consumed_capacity());
        Ok(usage)
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
            "changed_by = :sid".to_string(),
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
                expr = format!("{expr}, last_error = :err REMOVE {OUT_OF_QUARANTINE}");
                values.insert(":err".into(), s(e));
            }
            None => expr.push_str(&format!(" REMOVE last_error, {OUT_OF_QUARANTINE}")),
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

    async fn put_held(&self, p: &HeldPayload) -> PortResult<Usage> {
        let key = crate::domain::quarantine::payload_key(&p.facet);
        let call = format!(
            "PutItem held payload hotel {} {key} with token {}",
            p.hotel_id, p.fence
        );
        let out = self
            .client
            .put_item()
            .table_name(&self.documents)
            .item("hotel_id", n(p.hotel_id))
            .item("facet", s(&key))
            .item("doc", AV::B(Blob::new(p.compressed.clone())))
            .item("encoding", s("zstd"))
            .item("content_hash", s(&p.hash))
            .item("data_version", n(0))
            .item("fence", n(p.fence))
            .item("sync_id", s(&p.sync_id))
            .item("held_at", n(p.now.secs()))
            .item("expires_at", n(p.expires_at))
            .condition_expression("attribute_not_exists(hotel_id) OR fence <= :f")
            .expression_attribute_values(":f", n(p.fence))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| doc_refused(&call, e))?;
        Ok(Usage {
            rcu: 0.0,
            wcu: units(out.consumed_capacity()),
        })
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
        // Quarantined: the note, and the sparse index's key with the rules broken (for the
        // listing's filter). Anything else: out of quarantine.
        let mut remove = vec![];
        match &o.quarantine {
            Some(note) if o.status == SyncStatus::Quarantined => {
                set.push_str(", quarantine = :q, q_list = :ql, q_rules = :qr");
                let av = serde_dynamo::to_attribute_value(note)
                    .map_err(|e| PortError::new(&call, PortErrorKind::Invalid, e.to_string()))?;
                let rules: Vec<String> = note
                    .rules()
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect();
                req = req
                    .expression_attribute_values(":q", av)
                    .expression_attribute_values(":ql", s(tables::QUARANTINE_LIST))
                    .expression_attribute_values(
                        ":qr",
                        if rules.is_empty() {
                            AV::Null(true)
                        } else {
                            AV::Ss(rules)
                        },
                    );
            }
            _ => remove.push(OUT_OF_QUARANTINE),
        }
        match &o.error {
            Some(err) => {
                set.push_str(", last_error = :err");
                req = req.expression_attribute_values(":err", s(err));
            }
            None => remove.push("last_error"),
        }
        let expr = if remove.is_empty() {
            set
        } else {
            format!("{set} REMOVE {}", remove.join(", "))
        };
        req = req.update_expression(expr);
        // The outcome's condition holds again on a retry of our own write, so a refusal is
        // never ours.
        self.settle(req.send().await, &call, o.hotel_id, o.fence, |_, _| false)
            .await
    }
}
