//! The ports one invocation (or the admin API) sees: the in-memory store with store faults, the
//! simulated upstream, dispatch into the world's delivery queue. For an invocation they pass
//! through a tap that counts its calls and kills it at the K-th one — before or after that call
//! applies — as SIGKILL or a Lambda timeout would: every later call of that invocation never
//! returns, and the driver drops the invocation's future.

use crate::world::World;
use async_trait::async_trait;
use cupid_sync::adapters::memory::MemoryStore;
use cupid_sync::domain::facet::Facet;
use cupid_sync::domain::lease::{LeaseRequest, LeaseState, Refused};
use cupid_sync::domain::run::{RunDetail, SyncRecord, SyncRequest, SyncRun, SyncStatus, Tracked};
use cupid_sync::domain::settings::{SettingKey, SettingValue};
use cupid_sync::domain::stats::{CatalogueStats, StatusCounts};
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::*;
use rand::Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// One invocation's crash plan and state.
pub struct Tap {
    pub invocation: u64,
    calls: AtomicU64,
    crash_at: Option<u64>,
    crash_after: bool,
    dead: AtomicBool,
    pub crashed: Notify,
}

enum Tick {
    Go,
    DieBefore,
    DieAfter,
}

impl Tap {
    pub fn new(invocation: u64, crash_at: Option<u64>, crash_after: bool) -> Self {
        Tap {
            invocation,
            calls: AtomicU64::new(0),
            crash_at,
            crash_after,
            dead: AtomicBool::new(false),
            crashed: Notify::new(),
        }
    }

    fn tick(&self) -> Tick {
        if self.dead.load(Ordering::SeqCst) {
            return Tick::DieBefore;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.crash_at {
            Some(k) if k == n && self.crash_after => Tick::DieAfter,
            Some(k) if k == n => Tick::DieBefore,
            _ => Tick::Go,
        }
    }

    async fn die(&self) -> ! {
        self.dead.store(true, Ordering::SeqCst);
        self.crashed.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct SimPorts {
    pub world: Arc<World>,
    pub tap: Option<Arc<Tap>>,
}

#[derive(PartialEq)]
enum StoreFault {
    None,
    Before,
    After,
}

fn unavailable(what: &str) -> PortError {
    PortError::new(what, PortErrorKind::Unavailable, "simulated DynamoDB 500")
}

impl SimPorts {
    fn store(&self) -> &MemoryStore {
        &self.world.store
    }

    /// Invariant, at every commit (whatever crashes and retries surround it): a document the
    /// record now points at keeps its contract, or is the exact content an operator accepted
    /// before the commit. So a quarantined property's stored documents never change to what
    /// was held back.
    async fn contract_kept(&self, before: &SyncRecord, w: &PropertyWrite) {
        use cupid_sync::domain::contract;
        use cupid_sync::domain::facet::Facet;
        let Some(after) = self.store().get_record(w.hotel_id).await.ok().flatten() else {
            return;
        };
        for (key, st) in &after.facets {
            if before.facets.get(key).map(|b| &b.hash) == Some(&st.hash) {
                continue;
            }
            let facet = match key.as_str() {
                "property" => Facet::Property,
                "reviews" => Facet::Reviews(1),
                k => Facet::Lang(k.trim_start_matches("lang#").to_string()),
            };
            let Ok((Some(doc), _)) = self
                .store()
                .get_whole_document(w.hotel_id, &st.key(key))
                .await
            else {
                continue;
            };
            let Some(value) = cupid_sync::domain::document::decompress(&doc.compressed)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            else {
                continue;
            };
            let report = contract::check(&facet, w.hotel_id, &value);
            let new_shape = self.frozen_shape_left(&facet, w, &value).await;
            let accepted = before.accepted.get(key).map(|a| &a.hash) == Some(&st.hash);
            if accepted && (!report.is_clean() || !new_shape.is_empty()) {
                self.world
                    .accepted_stores
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if !new_shape.is_empty() {
                    self.world
                        .accepted_shapes
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            if !report.is_clean() && !accepted {
                self.world.violation(format!(
                    "hotel {} {key}: stored content that breaks its contract and no operator accepted: {:?}",
                    w.hotel_id, report.violations
                ));
            }
            if !new_shape.is_empty() && !accepted {
                self.world.violation(format!(
                    "hotel {} {key}: stored a shape the frozen schema lacks and no operator accepted: {new_shape:?}",
                    w.hotel_id
                ));
            }
        }
    }

    /// Under `sync_schema_policy = freeze`: where a committed document leaves the baseline its
    /// run compared with (an operator's acceptance alone lets that through). The clean last run
    /// evolves. The shape comparison itself, not the engine's policy code (a defect there must
    /// not blind the check).
    async fn frozen_shape_left(
        &self,
        facet: &cupid_sync::domain::facet::Facet,
        w: &PropertyWrite,
        doc: &serde_json::Value,
    ) -> Vec<(String, String)> {
        use cupid_sync::domain::settings::SchemaPolicy;
        use cupid_sync::domain::shape::deviations;
        if self.world.scenario.schema_policy != SchemaPolicy::Freeze || self.world.is_calm() {
            return Vec::new();
        }
        let Ok(Some(b)) = self.store().baseline().await else {
            return Vec::new();
        };
        match b.for_run(&w.sync_id).get(facet.shape_kind()) {
            Some(base) => deviations(base, doc),
            None => Vec::new(),
        }
    }

    fn draw_store(&self, write: bool) -> (u64, StoreFault) {
        if self.world.is_calm() {
            return (0, StoreFault::None);
        }
        let f = &self.world.scenario.store;
        let mut r = self.world.rng.lock().unwrap();
        let lat = r.random_range(0..=f.max_latency_ms);
        let roll: f64 = r.random();
        let fault = if roll < f.p_fail_before {
            StoreFault::Before
        } else if write && roll < f.p_fail_before + f.p_fail_after {
            StoreFault::After
        } else {
            StoreFault::None
        };
        (lat, fault)
    }

    /// One store call through the tap and the store's faults.
    async fn call<T, F>(&self, what: &str, write: bool, f: F) -> PortResult<T>
    where
        F: Future<Output = PortResult<T>>,
    {
        let tick = self.tap.as_ref().map(|t| t.tick()).unwrap_or(Tick::Go);
        if let (Tick::DieBefore, Some(t)) = (&tick, &self.tap) {
            t.die().await;
        }
        let (lat, fault) = self.draw_store(write);
        if lat > 0 {
            tokio::time::sleep(Duration::from_millis(lat)).await;
        }
        if let Some(t) = &self.tap
            && t.is_dead()
        {
            t.die().await;
        }
        if fault == StoreFault::Before {
            return Err(unavailable(what));
        }
        let r = f.await;
        if let (Tick::DieAfter, Some(t)) = (&tick, &self.tap) {
            t.die().await;
        }
        if fault == StoreFault::After && r.is_ok() {
            return Err(unavailable(what));
        }
        r
    }
}

#[async_trait]
impl PropertyReader for SimPorts {
    async fn scan_tracked(&self, after: Option<i64>, limit: usize) -> PortResult<TrackedPage> {
        self.call("Scan", false, self.store().scan_tracked(after, limit))
            .await
    }
    async fn get_tracked(&self, ids: &[i64]) -> PortResult<(Vec<Tracked>, Usage)> {
        self.call("BatchGetItem", false, self.store().get_tracked(ids))
            .await
    }
    async fn get_record(&self, hotel_id: i64) -> PortResult<Option<SyncRecord>> {
        self.call("GetItem", false, self.store().get_record(hotel_id))
            .await
    }
    async fn get_document(
        &self,
        hotel_id: i64,
        key: &str,
    ) -> PortResult<(Option<StoredDoc>, Usage)> {
        self.call(
            "GetItem document",
            false,
            self.store().get_document(hotel_id, key),
        )
        .await
    }
}

#[async_trait]
impl PropertyWriter for SimPorts {
    async fn claim(&self, hotel_id: i64, expected_version: u64, fence: u64) -> PortResult<Usage> {
        self.call(
            "claim",
            true,
            self.store().claim(hotel_id, expected_version, fence),
        )
        .await
    }
    async fn put_document(&self, doc: &DocWrite) -> PortResult<DocPut> {
        self.call("put_document", true, self.store().put_document(doc))
            .await
    }
    async fn remove_parts(
        &self,
        hotel_id: i64,
        key: &str,
        parts: &[u32],
        fence: u64,
    ) -> PortResult<Usage> {
        self.call(
            "remove_parts",
            true,
            self.store().remove_parts(hotel_id, key, parts, fence),
        )
        .await
    }
    async fn commit(&self, w: &PropertyWrite) -> PortResult<Usage> {
        let before = self.store().get_record(w.hotel_id).await?;
        // Checked as part of the call: an invocation killed right after its commit applied
        // is checked too.
        let commit = async {
            let r = self.store().commit(w).await;
            if let (Ok(_), Some(before)) = (&r, &before) {
                self.contract_kept(before, w).await;
                // Data from before the run: a property whose only data is this run's own
                // first write was new to the run (a first sync, exempt from the breaker).
                let new_to_run = before.changed_by.as_deref() == Some(w.sync_id.as_str())
                    && before.data_version == 1;
                if before.data_version > 0
                    && before.data_version == w.expected_version
                    && !new_to_run
                {
                    self.world
                        .commits_of_existing
                        .lock()
                        .unwrap()
                        .entry(w.sync_id.clone())
                        .or_default()
                        .insert(w.hotel_id);
                }
            }
            r
        };
        self.call("commit", true, commit).await
    }
    async fn record_outcome(&self, o: &RecordOutcome) -> PortResult<Usage> {
        let before = self.store().get_record(o.hotel_id).await?;
        let outcome = async {
            let r = self.store().record_outcome(o).await;
            // A new hold of a property with data from before the run is one of the run's
            // changes for the circuit breaker's bound, as a commit is (the same content held
            // again, as the record already held it, is not).
            if let (Ok(_), Some(before), Some(note)) = (&r, &before, &o.quarantine) {
                let held_before = match (&before.quarantine, before.sync_status) {
                    (Some(b), SyncStatus::Quarantined) => b.held_hashes(),
                    _ => Default::default(),
                };
                let new_hold = note
                    .facets
                    .iter()
                    .any(|f| held_before.get(&f.facet) != Some(&f.hash));
                let new_to_run = before.changed_by.as_deref() == Some(o.sync_id.as_str())
                    && before.data_version == 1;
                if o.status == SyncStatus::Quarantined
                    && before.data_version > 0
                    && !new_to_run
                    && new_hold
                {
                    self.world
                        .commits_of_existing
                        .lock()
                        .unwrap()
                        .entry(o.sync_id.clone())
                        .or_default()
                        .insert(o.hotel_id);
                }
            }
            r
        };
        self.call("record_outcome", true, outcome).await
    }
    async fn put_held(&self, p: &HeldPayload) -> PortResult<Usage> {
        self.call("put_held", true, self.store().put_held(p)).await
    }
}

#[async_trait]
impl QuarantineDesk for SimPorts {
    async fn list_held(
        &self,
        limit: usize,
        after: Option<i64>,
        rule: Option<cupid_sync::domain::contract::Rule>,
    ) -> PortResult<HeldPage> {
        self.call(
            "Query quarantined",
            false,
            self.store().list_held(limit, after, rule),
        )
        .await
    }
    async fn held(&self, hotel_id: i64) -> PortResult<Option<HeldEntry>> {
        self.call("GetItem held", false, self.store().held(hotel_id))
            .await
    }
    async fn accept(
        &self,
        hotel_id: i64,
        sync_id: &str,
        accepted: &cupid_sync::domain::quarantine::Accepted,
    ) -> PortResult<()> {
        self.call(
            "accept",
            true,
            self.store().accept(hotel_id, sync_id, accepted),
        )
        .await
    }
    async fn discard(&self, hotel_id: i64, note: &str) -> PortResult<()> {
        self.call("discard", true, self.store().discard(hotel_id, note))
            .await
    }
}

#[async_trait]
impl Tracking for SimPorts {
    async fn track(&self, ids: &[i64]) -> PortResult<TrackResult> {
        self.call("track", true, self.store().track(ids)).await
    }
    async fn untrack(&self, hotel_id: i64) -> PortResult<()> {
        self.call("untrack", true, self.store().untrack(hotel_id))
            .await
    }
}

#[async_trait]
impl RunLog for SimPorts {
    async fn create(&self, run: &SyncRun, fence: u64) -> PortResult<()> {
        self.call("create run", true, self.store().create(run, fence))
            .await
    }
    async fn get(&self, sync_id: &str) -> PortResult<Option<SyncRun>> {
        self.call("get run", false, RunLog::get(self.store(), sync_id))
            .await
    }
    async fn save(&self, run: &SyncRun, fence: u64) -> PortResult<Usage> {
        self.call("save run", true, self.store().save(run, fence))
            .await
    }
    async fn list(
        &self,
        limit: usize,
        from: RunsFrom,
    ) -> PortResult<(Vec<SyncRun>, Option<String>)> {
        self.call("list runs", false, self.store().list(limit, from))
            .await
    }
    async fn put_details(&self, run: &SyncRun, details: &[RunDetail]) -> PortResult<Usage> {
        self.call("put details", true, self.store().put_details(run, details))
            .await
    }
    async fn details(
        &self,
        sync_id: &str,
        limit: usize,
        after: Option<i64>,
    ) -> PortResult<DetailPage> {
        self.call(
            "query details",
            false,
            self.store().details(sync_id, limit, after),
        )
        .await
    }
    async fn count(&self) -> PortResult<u64> {
        self.call("count runs", false, self.store().count()).await
    }
}

#[async_trait]
impl Stats for SimPorts {
    async fn get(&self) -> PortResult<CatalogueStats> {
        self.call("get counts", false, Stats::get(self.store()))
            .await
    }
    async fn add(&self, delta: &StatusCounts) -> PortResult<()> {
        self.call("add counts", true, self.store().add(delta)).await
    }
    async fn set_paused(&self, paused: Option<(String, Timestamp)>) -> PortResult<()> {
        self.call("pause note", true, self.store().set_paused(paused))
            .await
    }
    async fn recount(
        &self,
        counts: &StatusCounts,
        runs: u64,
        epoch: u64,
        by: &str,
        now: Timestamp,
    ) -> PortResult<bool> {
        self.call(
            "recount",
            true,
            self.store().recount(counts, runs, epoch, by, now),
        )
        .await
    }
}

#[async_trait]
impl SchemaStore for SimPorts {
    async fn baseline(&self) -> PortResult<Option<cupid_sync::domain::drift::Baseline>> {
        self.call("get schema baseline", false, self.store().baseline())
            .await
    }
    async fn save_baseline(&self, b: &cupid_sync::domain::drift::Baseline) -> PortResult<Usage> {
        self.call("save schema baseline", true, self.store().save_baseline(b))
            .await
    }
}

#[async_trait]
impl Lease for SimPorts {
    async fn current(&self) -> PortResult<Option<LeaseState>> {
        self.call("get lease", false, self.store().current()).await
    }
    async fn apply(
        &self,
        req: &LeaseRequest,
        ttl: Duration,
    ) -> PortResult<Result<LeaseState, Refused>> {
        self.call("lease", true, self.store().apply(req, ttl)).await
    }
}

#[async_trait]
impl SettingsStore for SimPorts {
    async fn load(&self) -> PortResult<BTreeMap<String, StoredSetting>> {
        self.call("load settings", false, self.store().load()).await
    }
    async fn put_all(
        &self,
        values: &[(SettingKey, SettingValue)],
        now: Timestamp,
    ) -> PortResult<()> {
        self.call("put settings", true, self.store().put_all(values, now))
            .await
    }
}

#[async_trait]
impl Upstream for SimPorts {
    async fn fetch(&self, hotel_id: i64, facet: &Facet) -> Result<serde_json::Value, FetchError> {
        let tick = self.tap.as_ref().map(|t| t.tick()).unwrap_or(Tick::Go);
        if let (Tick::DieBefore | Tick::DieAfter, Some(t)) = (&tick, &self.tap) {
            t.die().await;
        }
        let invocation = self.tap.as_ref().map(|t| t.invocation).unwrap_or(0);
        let w = &self.world;
        w.upstream
            .fetch(
                &w.rng,
                invocation,
                hotel_id,
                facet,
                w.now_ms(),
                w.elapsed_s(),
            )
            .await
    }
}

#[async_trait]
impl Dispatch for SimPorts {
    async fn dispatch(&self, req: &SyncRequest) -> PortResult<()> {
        let tick = self.tap.as_ref().map(|t| t.tick()).unwrap_or(Tick::Go);
        if let (Tick::DieBefore, Some(t)) = (&tick, &self.tap) {
            t.die().await;
        }
        // Killed right after the invoke went out: delivered, and nobody learns it.
        if let (Tick::DieAfter, Some(t)) = (&tick, &self.tap) {
            self.world.deliver(req.clone(), 0);
            t.die().await;
        }
        // A failed invoke was not delivered — or was, and only the answer was lost.
        let (fail, delivered) = {
            let mut r = self.world.rng.lock().unwrap();
            let fail = !self.world.is_calm() && r.random_bool(self.world.scenario.p_dispatch_fail);
            (fail, !fail || r.random_bool(0.3))
        };
        if delivered {
            self.world.deliver(req.clone(), 0);
        }
        if fail {
            return Err(PortError::new(
                "Invoke sync",
                PortErrorKind::Unavailable,
                "simulated Lambda 500",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Events for SimPorts {
    async fn publish(&self, event: &RunEvent) -> PortResult<()> {
        if let Some(t) = &self.tap
            && let Tick::DieBefore | Tick::DieAfter = t.tick()
        {
            t.die().await;
        }
        let fail = !self.world.is_calm() && self.world.rng.lock().unwrap().random_bool(0.05);
        if fail {
            return Err(PortError::new(
                "PutEvents",
                PortErrorKind::Unavailable,
                "simulated EventBridge 500",
            ));
        }
        self.world.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}
