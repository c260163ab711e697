//! The run log, the lease and the settings of the in-memory store.

use super::{MemoryStore, Table, refused};
use crate::domain::lease::{self, LeaseRequest, LeaseState, Refused};
use crate::domain::run::{RunDetail, SyncRun};
use crate::domain::settings::{SettingKey, SettingValue};
use crate::domain::stats::{CatalogueStats, StatusCounts};
use crate::domain::time::Timestamp;
use crate::ports::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;

#[async_trait]
impl RunLog for MemoryStore {
    async fn create(&self, run: &SyncRun, fence: u64) -> PortResult<()> {
        let mut st = self.lock();
        if st.runs.contains_key(&run.sync_id) {
            return Err(refused(
                format!("create run {}", run.sync_id),
                PortErrorKind::Conflict,
                "the run exists",
            ));
        }
        st.runs.insert(run.sync_id.clone(), (run.clone(), fence));
        st.stats.runs += 1;
        self.log(
            &mut st,
            Table::Runs,
            run.sync_id.clone(),
            Some(fence),
            "create",
        );
        Ok(())
    }

    async fn get(&self, sync_id: &str) -> PortResult<Option<SyncRun>> {
        Ok(self.lock().runs.get(sync_id).map(|(r, _)| r.clone()))
    }

    async fn save(&self, run: &SyncRun, fence: u64) -> PortResult<Usage> {
        let call = format!("save run {}", run.sync_id);
        let mut st = self.lock();
        match st.runs.get(&run.sync_id) {
            None => return Err(refused(call, PortErrorKind::NotFound, "no such run")),
            Some((_, f)) if *f > fence => {
                return Err(refused(
                    call,
                    PortErrorKind::Fenced,
                    "a newer sync invocation saved this run",
                ));
            }
            Some(_) => {}
        }
        st.runs.insert(run.sync_id.clone(), (run.clone(), fence));
        if let Some(done) = run.completed_at
            && run.is_catalogue_success()
            && st
                .stats
                .last_success
                .as_ref()
                .is_none_or(|(_, t)| *t <= done)
        {
            st.stats.last_success = Some((run.sync_id.clone(), done));
        }
        self.log(
            &mut st,
            Table::Runs,
            run.sync_id.clone(),
            Some(fence),
            "save",
        );
        Ok(Usage { rcu: 0.0, wcu: 2.0 })
    }

    async fn list(
        &self,
        limit: usize,
        from: RunsFrom,
    ) -> PortResult<(Vec<SyncRun>, Option<String>)> {
        let st = self.lock();
        let newest_first = st.runs.iter().rev();
        let page: Vec<SyncRun> = match &from {
            RunsFrom::After(id) => newest_first
                .filter(|(k, _)| k.as_str() < id.as_str())
                .take(limit)
                .map(|(_, (r, _))| r.clone())
                .collect(),
            RunsFrom::Offset(n) => newest_first
                .skip(*n)
                .take(limit)
                .map(|(_, (r, _))| r.clone())
                .collect(),
        };
        let next = match page.last() {
            Some(last) if page.len() == limit => st
                .runs
                .range(..last.sync_id.clone())
                .next_back()
                .map(|_| last.sync_id.clone()),
            _ => None,
        };
        Ok((page, next))
    }

    async fn put_details(&self, run: &SyncRun, details: &[RunDetail]) -> PortResult<Usage> {
        let mut st = self.lock();
        let mut units = 0.0;
        for d in details {
            units += super::wcu(serde_json::to_vec(d).map(|v| v.len()).unwrap_or(0) + 60);
            st.details
                .insert((run.sync_id.clone(), d.hotel_id), d.clone());
        }
        self.log(
            &mut st,
            Table::Details,
            run.sync_id.clone(),
            None,
            "details",
        );
        Ok(Usage {
            rcu: 0.0,
            wcu: units,
        })
    }

    async fn details(
        &self,
        sync_id: &str,
        limit: usize,
        after: Option<i64>,
    ) -> PortResult<DetailPage> {
        let st = self.lock();
        let from = (
            sync_id.to_string(),
            after.map_or(i64::MIN, |a| a.saturating_add(1)),
        );
        let to = (sync_id.to_string(), i64::MAX);
        let mut it = st.details.range(from..=to);
        let items: Vec<RunDetail> = it.by_ref().take(limit).map(|(_, d)| d.clone()).collect();
        let next = match (items.last(), it.next()) {
            (Some(last), Some(_)) => Some(last.hotel_id),
            _ => None,
        };
        Ok(DetailPage { items, next })
    }

    async fn count(&self) -> PortResult<u64> {
        Ok(self.lock().runs.len() as u64)
    }
}

#[async_trait]
impl Stats for MemoryStore {
    async fn get(&self) -> PortResult<CatalogueStats> {
        Ok(self.lock().stats.clone())
    }

    async fn add(&self, delta: &StatusCounts) -> PortResult<()> {
        let mut st = self.lock();
        st.stats.counts.plus(delta);
        self.log(&mut st, Table::Stats, "stats".into(), None, "add");
        Ok(())
    }

    async fn set_paused(&self, paused: Option<(String, Timestamp)>) -> PortResult<()> {
        let mut st = self.lock();
        st.stats.paused = paused;
        self.log(&mut st, Table::Stats, "stats".into(), None, "paused");
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
        let mut st = self.lock();
        if st.stats.epoch != epoch {
            return Ok(false);
        }
        let untracked = st.stats.counts.untracked;
        st.stats.counts = StatusCounts {
            untracked,
            ..*counts
        };
        st.stats.runs = runs;
        st.stats.recounted = Some((by.to_string(), now));
        self.log(&mut st, Table::Stats, "stats".into(), None, "recount");
        Ok(true)
    }
}

#[async_trait]
impl SchemaStore for MemoryStore {
    async fn baseline(&self) -> PortResult<Option<crate::domain::drift::Baseline>> {
        Ok(self.lock().schema.clone())
    }

    async fn save_baseline(&self, b: &crate::domain::drift::Baseline) -> PortResult<Usage> {
        let mut st = self.lock();
        if st.schema.as_ref().is_some_and(|s| s.fence > b.fence) {
            return Err(refused(
                "PutItem the schema baseline".into(),
                PortErrorKind::Fenced,
                "a later run stored it",
            ));
        }
        // Billed as DynamoDB bills the item: its compressed JSON.
        let bytes = serde_json::to_vec(b)
            .ok()
            .and_then(|j| crate::domain::document::compress(&j).ok())
            .map_or(0, |z| z.len());
        st.schema = Some(b.clone());
        self.log(
            &mut st,
            Table::Schema,
            "schema".into(),
            Some(b.fence),
            "baseline",
        );
        Ok(Usage {
            wcu: super::wcu(bytes),
            ..Usage::default()
        })
    }
}

#[async_trait]
impl Lease for MemoryStore {
    async fn current(&self) -> PortResult<Option<LeaseState>> {
        Ok(self.lock().lease.clone())
    }

    async fn apply(
        &self,
        req: &LeaseRequest,
        ttl: Duration,
    ) -> PortResult<Result<LeaseState, Refused>> {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        match lease::apply(st.lease.as_ref(), req, now, ttl.as_millis() as u64) {
            Ok(next) => {
                let fence = next.fence;
                st.lease = Some(next.clone());
                let what = match req {
                    LeaseRequest::Take { .. } => "take",
                    LeaseRequest::Pickup { .. } => "pickup",
                    LeaseRequest::HandOver { .. } => "hand_over",
                    LeaseRequest::Heartbeat { .. } => "heartbeat",
                    LeaseRequest::Release { .. } => "release",
                    LeaseRequest::ForgetOrphan { .. } => "forget_orphan",
                };
                self.log(&mut st, Table::Lease, "lease".into(), Some(fence), what);
                Ok(Ok(next))
            }
            Err(r) => Ok(Err(r)),
        }
    }
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn load(&self) -> PortResult<BTreeMap<String, StoredSetting>> {
        Ok(self.lock().settings.clone())
    }

    async fn put_all(
        &self,
        values: &[(SettingKey, SettingValue)],
        now: Timestamp,
    ) -> PortResult<()> {
        let mut st = self.lock();
        for (k, v) in values {
            st.settings.insert(
                k.as_str().to_string(),
                StoredSetting {
                    value: v.render(),
                    updated_at: now,
                },
            );
            self.log(&mut st, Table::Settings, k.as_str().into(), None, "put");
        }
        Ok(())
    }
}
