//! An in-memory store with DynamoDB's semantics: every port of `ports::store` over one lock, so
//! each conditional write evaluates its condition and applies atomically; scans page in a
//! hash-like order with exclusive start keys; reads are consistent. It records every accepted
//! write (item, fencing token, time): the evidence the simulation's invariants check.
//!
//! The contract suite (`tests/integration/tests/store_contract.rs`) runs the same cases
//! against this store and DynamoDB (moto), so the two cannot drift.

use crate::domain::lease::LeaseState;
use crate::domain::run::{RunDetail, SyncRecord, SyncRun, SyncStatus, Tracked};
use crate::domain::stats::CatalogueStats;
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

mod log;
mod quarantine;
mod schedule;
mod webhooks;

pub use schedule::MemorySchedule;
pub use webhooks::MemoryWebhooks;

/// Which table an accepted write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Records,
    Documents,
    Runs,
    Lease,
    Settings,
    Details,
    Stats,
    Schema,
}

/// One accepted write.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedWrite {
    pub at_ms: u64,
    pub table: Table,
    pub key: String,
    /// The fencing token the write carried (for the lease: the token it granted or held).
    pub fence: Option<u64>,
    pub what: &'static str,
}

#[derive(Debug, Clone)]
pub(super) struct DocItem {
    doc: StoredDoc,
    fence: u64,
    /// (Head items) every part index written in this slot and not yet removed.
    touched: BTreeSet<u32>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) records: BTreeMap<i64, SyncRecord>,
    /// Scan order: a fixed bijective scramble of the id, like a hash key's order.
    pub(super) order: BTreeSet<(u64, i64)>,
    pub(super) docs: BTreeMap<(i64, String), DocItem>,
    pub(super) runs: BTreeMap<String, (SyncRun, u64)>,
    pub(super) lease: Option<LeaseState>,
    pub(super) settings: BTreeMap<String, StoredSetting>,
    pub(super) details: BTreeMap<(String, i64), RunDetail>,
    pub(super) stats: CatalogueStats,
    pub(super) schema: Option<crate::domain::drift::Baseline>,
    pub(super) writes: Vec<AcceptedWrite>,
}

fn scramble(id: i64) -> u64 {
    (id as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

/// Write units of an item of `bytes` (1 per KB, at least 1), as DynamoDB bills them.
pub(super) fn wcu(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn rcu(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

fn record_bytes(r: &SyncRecord) -> usize {
    serde_json::to_vec(r).map(|v| v.len()).unwrap_or(400)
}

pub struct MemoryStore {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            clock,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (a bug in a test) must not hide the state from the
        // checks that follow.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every accepted write so far, in order.
    pub fn writes(&self) -> Vec<AcceptedWrite> {
        self.lock().writes.clone()
    }

    /// How many writes have been accepted so far (a position in `writes`).
    pub fn write_count(&self) -> usize {
        self.lock().writes.len()
    }

    /// Every record (tracked or not), by id.
    pub fn records(&self) -> BTreeMap<i64, SyncRecord> {
        self.lock().records.clone()
    }

    /// A full recount of the records per sync status (what the maintained counts must equal
    /// at quiescence).
    pub fn status_counts(&self) -> crate::domain::stats::StatusCounts {
        let mut c = crate::domain::stats::StatusCounts::default();
        for r in self.lock().records.values() {
            c.add(r.sync_status, 1);
        }
        c
    }

    /// Document parts nothing accounts for: a part item whose slot head neither counts it
    /// (index < parts) nor remembers it for removal. Must always be empty (no leak).
    pub fn leaked_parts(&self) -> Vec<String> {
        let st = self.lock();
        let mut out = Vec::new();
        for ((id, key), _) in st.docs.iter() {
            let Some((head_key, idx)) = key.rsplit_once('~') else {
                continue;
            };
            let Ok(idx) = idx.parse::<u32>() else {
                continue;
            };
            match st.docs.get(&(*id, head_key.to_string())) {
                Some(h) if idx < h.doc.parts || h.touched.contains(&idx) => {}
                _ => out.push(format!("{id}/{key}")),
            }
        }
        out
    }

    /// Every run.
    pub fn runs(&self) -> Vec<SyncRun> {
        self.lock().runs.values().map(|(r, _)| r.clone()).collect()
    }

    pub(super) fn log(
        &self,
        st: &mut State,
        table: Table,
        key: String,
        fence: Option<u64>,
        what: &'static str,
    ) {
        let at_ms = self.clock.now_ms();
        st.writes.push(AcceptedWrite {
            at_ms,
            table,
            key,
            fence,
            what,
        });
    }
}

pub(super) fn refused(call: String, kind: PortErrorKind, message: &str) -> PortError {
    PortError::new(call, kind, message)
}

/// The checks every fenced record write makes, in DynamoDB's condition order.
fn check_record(st: &State, call: &str, hotel_id: i64, fence: u64) -> PortResult<()> {
    match st.records.get(&hotel_id) {
        None => Err(refused(
            call.into(),
            PortErrorKind::Untracked,
            "no such record",
        )),
        Some(r) if r.fence.is_some_and(|f| f > fence) => Err(refused(
            call.into(),
            PortErrorKind::Fenced,
            "a newer sync invocation wrote this record",
        )),
        Some(r) if !r.is_tracked() => Err(refused(
            call.into(),
            PortErrorKind::Untracked,
            "the property is untracked",
        )),
        Some(_) => Ok(()),
    }
}

#[async_trait]
impl PropertyReader for MemoryStore {
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage> {
        let st = self.lock();
        let start = after.map(|a| (scramble(a), a));
        let mut items = Vec::new();
        let mut evaluated = 0usize;
        let mut last = None;
        let range: Box<dyn Iterator<Item = &(u64, i64)>> = match start {
            Some(s) => Box::new(
                st.order
                    .range((std::ops::Bound::Excluded(s), std::ops::Bound::Unbounded)),
            ),
            None => Box::new(st.order.iter()),
        };
        let mut bytes = 0usize;
        for (_, id) in range {
            if evaluated == limit.max(1) {
                break;
            }
            evaluated += 1;
            last = Some(*id);
            if let Some(r) = st.records.get(id) {
                bytes += record_bytes(r);
                if r.is_tracked() {
                    items.push(r.tracked());
                }
            }
        }
        let next = if evaluated == limit.max(1) {
            last
        } else {
            None
        };
        Ok(TrackedPage {
            items,
            next,
            usage: Usage {
                rcu: rcu(bytes) / 2.0,
                wcu: 0.0,
            },
        })
    }

    async fn get_tracked(&self, ids: &[i64]) -> PortResult<(Vec<Tracked>, Usage)> {
        let st = self.lock();
        let mut seen = BTreeSet::new();
        let out: Vec<Tracked> = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| st.records.get(id))
            .filter(|r| r.is_tracked())
            .map(SyncRecord::tracked)
            .collect();
        let usage = Usage {
            rcu: out.len() as f64 * 0.5,
            wcu: 0.0,
        };
        Ok((out, usage))
    }

    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>> {
        Ok(self.lock().records.get(&hotel_id).cloned())
    }

    async fn get_document(
        &self,
        hotel_id: i64,
        key: &str,
    ) -> PortResult<(Option<StoredDoc>, Usage)> {
        let st = self.lock();
        let doc = st
            .docs
            .get(&(hotel_id, key.to_string()))
            .map(|d| d.doc.clone());
        let usage = Usage {
            rcu: doc.as_ref().map(|d| rcu(d.compressed.len())).unwrap_or(1.0),
            wcu: 0.0,
        };
        Ok((doc, usage))
    }
}

#[async_trait]
impl PropertyWriter for MemoryStore {
    async fn claim(&self, hotel_id: i64, expected_version: u64, fence: u64) -> PortResult<Usage> {
        let call = format!("claim record hotel {hotel_id}");
        let mut st = self.lock();
        check_record(&st, &call, hotel_id, fence)?;
        let Some(r) = st.records.get_mut(&hotel_id) else {
            return Err(refused(call, PortErrorKind::Untracked, "no such record"));
        };
        if r.data_version != expected_version {
            return Err(refused(call, PortErrorKind::Conflict, "data_version moved"));
        }
        r.fence = Some(fence);
        let size = record_bytes(r);
        self.log(
            &mut st,
            Table::Records,
            hotel_id.to_string(),
            Some(fence),
            "claim",
        );
        Ok(Usage {
            rcu: 0.0,
            wcu: wcu(size),
        })
    }

    async fn put_document(&self, doc: &DocWrite) -> PortResult<DocPut> {
        let item_key = crate::domain::document::part_key(&doc.key, doc.part);
        let call = format!("put document hotel {} {item_key}", doc.hotel_id);
        let mut st = self.lock();
        let k = (doc.hotel_id, item_key.clone());
        let old = st.docs.get(&k);
        if old.is_some_and(|d| d.fence > doc.fence) {
            return Err(refused(
                call,
                PortErrorKind::Fenced,
                "a newer sync invocation wrote this document",
            ));
        }
        // The head remembers every part index written in its slot (a set union, as DynamoDB's
        // ADD on a number set).
        let mut touched = old.map(|d| d.touched.clone()).unwrap_or_default();
        let mut stale = Vec::new();
        if doc.part == 0 {
            touched.extend(1..doc.parts);
            stale = touched
                .iter()
                .copied()
                .filter(|p| *p >= doc.parts)
                .collect();
        }
        st.docs.insert(
            k,
            DocItem {
                doc: StoredDoc {
                    hotel_id: doc.hotel_id,
                    key: item_key.clone(),
                    data_version: doc.data_version,
                    content_hash: doc.content_hash.clone(),
                    compressed: doc.compressed.clone(),
                    parts: doc.parts,
                },
                fence: doc.fence,
                touched,
            },
        );
        let key = format!("{}/{item_key}", doc.hotel_id);
        self.log(
            &mut st,
            Table::Documents,
            key,
            Some(doc.fence),
            "put_document",
        );
        Ok(DocPut {
            usage: Usage {
                rcu: 0.0,
                wcu: wcu(doc.compressed.len() + 200),
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
        let call = format!("remove parts of document hotel {hotel_id} {key}");
        let mut st = self.lock();
        let head = (hotel_id, key.to_string());
        if st.docs.get(&head).is_some_and(|d| d.fence > fence) {
            return Err(refused(
                call,
                PortErrorKind::Fenced,
                "a newer sync invocation wrote this document",
            ));
        }
        let mut units = 0.0;
        for p in parts {
            let k = (hotel_id, crate::domain::document::part_key(key, *p));
            match st.docs.get(&k) {
                Some(d) if d.fence > fence => continue,
                Some(_) => {
                    st.docs.remove(&k);
                    units += 1.0;
                    self.log(
                        &mut st,
                        Table::Documents,
                        format!("{hotel_id}/{}", k.1),
                        Some(fence),
                        "remove_part",
                    );
                }
                None => {}
            }
        }
        if let Some(h) = st.docs.get_mut(&head) {
            for p in parts {
                h.touched.remove(p);
            }
            units += 1.0;
        }
        Ok(Usage {
            rcu: 0.0,
            wcu: units,
        })
    }

    async fn commit(&self, w: &PropertyWrite) -> PortResult<Usage> {
        let call = format!(
            "commit record hotel {} to data_version {}",
            w.hotel_id,
            w.expected_version + 1
        );
        let mut st = self.lock();
        check_record(&st, &call, w.hotel_id, w.fence)?;
        let Some(r) = st.records.get_mut(&w.hotel_id) else {
            return Err(refused(call, PortErrorKind::Untracked, "no such record"));
        };
        if r.fence != Some(w.fence) {
            return Err(refused(
                call,
                PortErrorKind::Conflict,
                "the record is not claimed by this token",
            ));
        }
        if r.data_version == w.expected_version + 1 {
            // Our own commit, repeated (as an SDK retry of an applied request is): done.
            return Ok(Usage::default());
        }
        if r.data_version != w.expected_version {
            return Err(refused(call, PortErrorKind::Conflict, "data_version moved"));
        }
        r.data_version = w.expected_version + 1;
        r.facets = w.facets.clone();
        if let Some(p) = w.facets.get(crate::domain::facet::PROPERTY) {
            r.content_hash = Some(p.hash.clone());
        }
        r.last_updated = Some(w.now.secs());
        r.last_synced = Some(w.now.secs());
        r.last_checked = Some(w.now.secs());
        r.sync_status = w.status;
        r.last_sync_id = Some(w.sync_id.clone());
        r.changed_by = Some(w.sync_id.clone());
        r.last_error = w.error.clone();
        // Stored: out of quarantine (an acceptance it needed is used up).
        r.quarantine = None;
        r.accepted.clear();
        if let Some(s) = &w.summary {
            let s = s.clone();
            r.name = s.name.or(r.name.take());
            r.city = s.city.or(r.city.take());
            r.country = s.country.or(r.country.take());
            r.stars = s.stars.or(r.stars);
            r.rating = s.rating.or(r.rating);
        }
        let size = record_bytes(r);
        self.log(
            &mut st,
            Table::Records,
            w.hotel_id.to_string(),
            Some(w.fence),
            "commit",
        );
        Ok(Usage {
            rcu: 0.0,
            wcu: wcu(size),
        })
    }

    async fn record_outcome(&self, o: &RecordOutcome) -> PortResult<Usage> {
        let call = format!("record outcome hotel {} {}", o.hotel_id, o.status.as_str());
        let mut st = self.lock();
        check_record(&st, &call, o.hotel_id, o.fence)?;
        let Some(r) = st.records.get_mut(&o.hotel_id) else {
            return Err(refused(call, PortErrorKind::Untracked, "no such record"));
        };
        r.sync_status = o.status;
        r.last_checked = Some(o.now.secs());
        if matches!(o.status, SyncStatus::Synced | SyncStatus::Partial) {
            r.last_synced = Some(o.now.secs());
        }
        r.last_sync_id = Some(o.sync_id.clone());
        r.last_error = o.error.clone();
        r.fence = Some(o.fence);
        if o.status == SyncStatus::Quarantined {
            r.quarantine = o.quarantine.clone();
        } else {
            r.quarantine = None;
            r.accepted.clear();
        }
        let size = record_bytes(r);
        self.log(
            &mut st,
            Table::Records,
            o.hotel_id.to_string(),
            Some(o.fence),
            "outcome",
        );
        Ok(Usage {
            rcu: 0.0,
            wcu: wcu(size),
        })
    }

    async fn put_held(&self, p: &HeldPayload) -> PortResult<Usage> {
        self.put_held_payload(p)
    }
}

#[async_trait]
impl Tracking for MemoryStore {
    async fn track(&self, ids: &[i64]) -> PortResult<TrackResult> {
        let mut st = self.lock();
        let mut out = TrackResult::default();
        for id in ids {
            match st.records.get_mut(id) {
                None => {
                    st.records.insert(*id, SyncRecord::pending(*id));
                    st.order.insert((scramble(*id), *id));
                    out.new += 1;
                }
                Some(r) if !r.is_tracked() => {
                    r.sync_status = SyncStatus::Pending;
                    out.retracked += 1;
                }
                Some(_) => continue,
            }
            self.log(&mut st, Table::Records, id.to_string(), None, "track");
        }
        if out.new + out.retracked > 0 {
            let c = &mut st.stats.counts;
            c.add(SyncStatus::Pending, (out.new + out.retracked) as i64);
            c.add(SyncStatus::Untracked, -(out.retracked as i64));
            st.stats.epoch += 1;
            self.log(&mut st, Table::Stats, "stats".into(), None, "track");
        }
        Ok(out)
    }

    async fn untrack(&self, hotel_id: i64) -> PortResult<()> {
        let mut st = self.lock();
        match st.records.get_mut(&hotel_id) {
            None => Err(refused(
                format!("untrack hotel {hotel_id}"),
                PortErrorKind::NotFound,
                "never tracked",
            )),
            Some(r) => {
                let was = std::mem::replace(&mut r.sync_status, SyncStatus::Untracked);
                r.quarantine = None;
                r.accepted.clear();
                self.log(
                    &mut st,
                    Table::Records,
                    hotel_id.to_string(),
                    None,
                    "untrack",
                );
                if was != SyncStatus::Untracked {
                    st.stats.counts.moved(was, SyncStatus::Untracked);
                    st.stats.epoch += 1;
                    self.log(&mut st, Table::Stats, "stats".into(), None, "untrack");
                }
                Ok(())
            }
        }
    }
}

impl MemoryStore {
    /// Stores a raw setting value without validation: what a store written by an older version
    /// (or by hand) may hold.
    pub fn put_raw_setting(&self, key: &str, value: &str, now: Timestamp) {
        self.lock().settings.insert(
            key.into(),
            StoredSetting {
                value: value.into(),
                updated_at: now,
            },
        );
    }
}
