//! Quarantine in the in-memory store: held payloads are document items
//! (`quarantine#<facet>`), the note and acceptances live on the record (as in DynamoDB).

use super::{DocItem, MemoryStore, Table, refused, wcu};
use crate::domain::contract::Rule;
use crate::domain::quarantine::{Accepted, payload_key};
use crate::domain::run::SyncStatus;
use crate::ports::*;
use async_trait::async_trait;

impl MemoryStore {
    pub(super) fn put_held_payload(&self, p: &HeldPayload) -> PortResult<Usage> {
        let key = payload_key(&p.facet);
        let call = format!("put held payload hotel {} {key}", p.hotel_id);
        let mut st = self.lock();
        let k = (p.hotel_id, key.clone());
        if st.docs.get(&k).is_some_and(|d| d.fence > p.fence) {
            return Err(refused(
                call,
                PortErrorKind::Fenced,
                "a newer sync invocation wrote this payload",
            ));
        }
        st.docs.insert(
            k,
            DocItem {
                doc: StoredDoc {
                    hotel_id: p.hotel_id,
                    key: key.clone(),
                    data_version: 0,
                    content_hash: p.hash.clone(),
                    compressed: p.compressed.clone(),
                    parts: 1,
                },
                fence: p.fence,
                touched: Default::default(),
            },
        );
        self.log(
            &mut st,
            Table::Documents,
            format!("{}/{key}", p.hotel_id),
            Some(p.fence),
            "put_held",
        );
        Ok(Usage {
            rcu: 0.0,
            wcu: wcu(p.compressed.len() + 200),
        })
    }
}

#[async_trait]
impl QuarantineDesk for MemoryStore {
    async fn list_held(
        &self,
        limit: usize,
        after: Option<i64>,
        rule: Option<Rule>,
    ) -> PortResult<HeldPage> {
        let st = self.lock();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut items = Vec::new();
        let mut next = None;
        for r in st
            .records
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, r)| r)
        {
            let Some(e) = HeldEntry::of(r) else { continue };
            if rule.is_some_and(|rule| !e.note.rules().contains(&rule)) {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|e: &HeldEntry| e.hotel_id);
                break;
            }
            items.push(e);
        }
        Ok(HeldPage { items, next })
    }

    async fn held(&self, hotel_id: i64) -> PortResult<Option<HeldEntry>> {
        Ok(self.lock().records.get(&hotel_id).and_then(HeldEntry::of))
    }

    async fn accept(&self, hotel_id: i64, sync_id: &str, accepted: &Accepted) -> PortResult<()> {
        let call = format!("accept held payloads hotel {hotel_id}");
        let mut st = self.lock();
        let Some(r) = st.records.get_mut(&hotel_id) else {
            return Err(refused(call, PortErrorKind::NotFound, "not quarantined"));
        };
        if r.sync_status != SyncStatus::Quarantined {
            return Err(refused(call, PortErrorKind::NotFound, "not quarantined"));
        }
        if r.quarantine.as_ref().map(|n| n.sync_id.as_str()) != Some(sync_id) {
            return Err(refused(
                call,
                PortErrorKind::Conflict,
                "quarantined again by a later run",
            ));
        }
        r.accepted = accepted.clone();
        self.log(
            &mut st,
            Table::Records,
            hotel_id.to_string(),
            None,
            "accept",
        );
        Ok(())
    }

    async fn discard(&self, hotel_id: i64, note: &str) -> PortResult<()> {
        let call = format!("discard quarantine hotel {hotel_id}");
        let mut st = self.lock();
        let Some(r) = st.records.get_mut(&hotel_id) else {
            return Err(refused(call, PortErrorKind::NotFound, "not quarantined"));
        };
        if r.sync_status != SyncStatus::Quarantined {
            return Err(refused(call, PortErrorKind::NotFound, "not quarantined"));
        }
        let held = r.quarantine.take();
        r.sync_status = SyncStatus::Pending;
        r.accepted.clear();
        r.last_error = Some(note.to_string());
        self.log(
            &mut st,
            Table::Records,
            hotel_id.to_string(),
            None,
            "discard",
        );
        st.stats
            .counts
            .moved(SyncStatus::Quarantined, SyncStatus::Pending);
        st.stats.epoch += 1;
        self.log(&mut st, Table::Stats, "stats".into(), None, "discard");
        // Only the payloads discarded: a later run may have held others since.
        for f in held.iter().flat_map(|n| n.facets.iter()) {
            let k = (hotel_id, payload_key(&f.facet));
            if st
                .docs
                .get(&k)
                .is_some_and(|d| d.doc.content_hash == f.hash)
            {
                st.docs.remove(&k);
            }
        }
        Ok(())
    }
}
