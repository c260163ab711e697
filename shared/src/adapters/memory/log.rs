//! The run log, the lease and the settings of the in-memory store.

use super::{MemoryStore, Table, refused};
use crate::domain::lease::{self, LeaseRequest, LeaseState, Refused};
use crate::domain::run::SyncRun;
use crate::domain::settings::{SettingKey, SettingValue};
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
        self.log(
            &mut st,
            Table::Runs,
            run.sync_id.clone(),
            Some(fence),
            "save",
        );
        Ok(Usage { rcu: 0.0, wcu: 2.0 })
    }

    async fn list(&self, limit: usize, offset: usize) -> PortResult<(Vec<SyncRun>, u64)> {
        let st = self.lock();
        let total = st.runs.len() as u64;
        let items = st
            .runs
            .values()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|(r, _)| r.clone())
            .collect();
        Ok((items, total))
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
