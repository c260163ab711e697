//! The world around the engine for one seed: the clock, the store, upstream, the delivery of
//! sync events (at-least-once: duplicated, delayed, retried after a failure), the schedule's
//! slots and the operators' actions. Everything runs as tasks on one current-thread runtime
//! with tokio's paused clock.

use crate::ports::{SimPorts, Tap};
use crate::scenario::{Action, Scenario};
use crate::upstream::SimUpstream;
use cupid_sync::adapters::memory::{MemorySchedule, MemoryStore};
use cupid_sync::api::app::{AllRoutes, App};
use cupid_sync::domain::facet::{Facet, facets_for};
use cupid_sync::domain::run::SyncRequest;
use cupid_sync::domain::settings::Settings;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::engine::{Engine, EngineConfig, EngineDeps, Outcome};
use cupid_sync::ports::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Wall time of the simulation's start (2026-01-01).
const BASE_MS: u64 = 1_767_225_600_000;
/// The upstream timeout the engine is configured with.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SimClock {
    start: Instant,
    ids: AtomicU64,
}

impl SimClock {
    /// Wall time that follows tokio's (paused) clock, from 2026-01-01.
    pub fn new() -> Self {
        SimClock {
            start: Instant::now(),
            ids: AtomicU64::new(0),
        }
    }
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        BASE_MS + self.start.elapsed().as_millis() as u64
    }
    fn new_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::SeqCst);
        ulid::Ulid::from_parts(self.now_ms(), n as u128 + 1).to_string()
    }
}

/// What one invocation did.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: u64,
    pub request: SyncRequest,
    pub attempt: u32,
    pub crashed: bool,
    pub outcome: String,
}

pub struct World {
    pub scenario: Scenario,
    pub rng: Mutex<ChaCha8Rng>,
    pub clock: Arc<SimClock>,
    pub store: MemoryStore,
    pub upstream: SimUpstream,
    pub events: Mutex<Vec<RunEvent>>,
    pub ids: Vec<i64>,
    /// Untracked ids → the write-log position at the untrack.
    pub untracked: Mutex<BTreeMap<i64, usize>>,
    /// (write-log range) during which an id was untracked, for ids tracked again later.
    pub untracked_spans: Mutex<Vec<(i64, usize, usize)>>,
    pub invocations: Mutex<Vec<Invocation>>,
    pub violations: Mutex<Vec<String>>,
    /// Commits that stored content an operator had accepted despite its contract.
    pub accepted_stores: AtomicU64,
    /// Of those, documents a frozen schema held (rule `schema`).
    pub accepted_shapes: AtomicU64,
    /// Per run: commits, and new holds, of properties that had stored data (the circuit
    /// breaker's bound).
    pub commits_of_existing: Mutex<BTreeMap<String, std::collections::BTreeSet<i64>>>,
    calm: AtomicBool,
    outstanding: AtomicU64,
    next_invocation: AtomicU64,
    start: Instant,
    me: Weak<World>,
    schedule: Arc<MemorySchedule>,
}

impl World {
    pub fn new(scenario: Scenario) -> Arc<Self> {
        let start = Instant::now();
        let clock = Arc::new(SimClock {
            start,
            ids: AtomicU64::new(0),
        });
        let ids: Vec<i64> = (0..scenario.properties as i64)
            .map(|i| 1_000_000 + i * 7)
            .collect();
        Arc::new_cyclic(|me| World {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x5EED_5EED)),
            store: MemoryStore::new(clock.clone()),
            upstream: SimUpstream::new(scenario.upstream.clone(), REQUEST_TIMEOUT),
            scenario,
            clock,
            events: Mutex::default(),
            ids,
            untracked: Mutex::default(),
            untracked_spans: Mutex::default(),
            invocations: Mutex::default(),
            violations: Mutex::default(),
            accepted_stores: AtomicU64::new(0),
            accepted_shapes: AtomicU64::new(0),
            commits_of_existing: Mutex::default(),
            calm: AtomicBool::new(false),
            outstanding: AtomicU64::new(0),
            next_invocation: AtomicU64::new(1),
            start,
            me: me.clone(),
            schedule: Arc::default(),
        })
    }

    fn arc(&self) -> Arc<World> {
        self.me.upgrade().expect("the world outlives its tasks")
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn elapsed_s(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    pub fn is_calm(&self) -> bool {
        self.calm.load(Ordering::SeqCst)
    }

    pub fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    pub fn defaults(&self) -> Settings {
        let s = &self.scenario;
        Settings {
            batch_size: s.batch_size,
            max_concurrent: s.max_concurrent,
            retry_attempts: s.retries,
            rate_limit: s.rate_limit,
            languages: s.languages.clone(),
            review_count: s.review_count,
            enable_auto: true,
            schema_policy: s.schema_policy,
            ..Default::default()
        }
    }

    /// Every facet any run of this scenario may sync.
    pub fn facets(&self) -> Vec<Facet> {
        facets_for(&self.defaults())
    }

    fn ports(&self, tap: Option<Arc<Tap>>) -> Arc<SimPorts> {
        Arc::new(SimPorts {
            world: self.arc(),
            tap,
        })
    }

    pub fn engine_config(&self) -> EngineConfig {
        let s = &self.scenario;
        EngineConfig {
            defaults: self.defaults(),
            max_run: Duration::from_secs(s.max_run_s),
            margin: Duration::from_secs(s.margin_s),
            lease_ttl: Duration::from_secs(s.lease_ttl_s),
            touch_unchanged: s.touch_unchanged,
            retry_base: Duration::from_millis(200),
            max_retry_after: cupid_sync::engine::MAX_RETRY_AFTER,
            emit_metrics: false,
            scan_page: s.scan_page,
            part_bytes: s.part_bytes,
        }
    }

    pub fn app(&self) -> AllRoutes {
        let p = self.ports(None);
        let app = App {
            reader: p.clone(),
            quarantine: p.clone(),
            tracking: p.clone(),
            runs: p.clone(),
            stats: p.clone(),
            lease: p.clone(),
            settings: p.clone(),
            clock: self.clock.clone(),
            defaults: self.defaults(),
            lease_ttl: Duration::from_secs(self.scenario.lease_ttl_s),
        };
        AllRoutes::new(
            app,
            self.schedule.clone(),
            p,
            Arc::new(cupid_sync::adapters::memory::MemoryWebhooks::default()),
            cupid_sync::domain::webhook::TargetPolicy {
                allow_loopback: false,
            },
        )
    }

    /// Hands a sync event to the platform: delivered once or twice, after a delay.
    pub fn deliver(&self, req: SyncRequest, attempt: u32) {
        let (copies, delays) = {
            let mut r = self.rng.lock().unwrap();
            let calm = self.is_calm();
            let copies = if !calm && r.random_bool(self.scenario.p_duplicate) {
                2
            } else {
                1
            };
            let delays: Vec<u64> = (0..copies)
                .map(|_| {
                    if calm {
                        0
                    } else {
                        r.random_range(0..=self.scenario.max_delivery_delay_ms)
                    }
                })
                .collect();
            (copies, delays)
        };
        for d in delays.into_iter().take(copies) {
            self.spawn_invocation(req.clone(), attempt, Duration::from_millis(d));
        }
    }

    fn spawn_invocation(&self, req: SyncRequest, attempt: u32, delay: Duration) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        let w = self.arc();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            w.invoke(req, attempt).await;
            w.outstanding.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn invoke(&self, req: SyncRequest, attempt: u32) {
        let id = self.next_invocation.fetch_add(1, Ordering::SeqCst);
        let (crash_at, crash_after) = {
            let mut r = self.rng.lock().unwrap();
            let facets = self.facets().len() as u64;
            let span = (self.scenario.properties as u64 * facets * 3 + 30).max(2);
            let at = (!self.is_calm() && r.random_bool(self.scenario.p_crash))
                .then(|| r.random_range(1..span));
            (at, r.random_bool(0.5))
        };
        let tap = Arc::new(Tap::new(id, crash_at, crash_after));
        let p = self.ports(Some(tap.clone()));
        let engine = Engine::new(
            EngineDeps {
                reader: p.clone(),
                writer: p.clone(),
                runs: p.clone(),
                stats: p.clone(),
                schemas: p.clone(),
                lease: p.clone(),
                upstream: p.clone(),
                dispatch: p.clone(),
                events: p.clone(),
                settings: p,
                schedule: self.schedule.clone(),
                clock: self.clock.clone(),
            },
            self.engine_config(),
        );
        // The function's timeout: an invocation still running then is killed.
        let deadline = Instant::now() + Duration::from_secs(self.scenario.lambda_timeout_s);
        let result = tokio::select! {
            biased;
            _ = tap.crashed.notified() => None,
            _ = tokio::time::sleep_until(deadline) => None,
            r = engine.handle(req.clone(), Some(deadline)) => Some(r),
        };
        let (crashed, failed, outcome) = match result {
            None => (true, true, "killed".to_string()),
            Some(Err(e)) => (false, true, format!("error: {e}")),
            Some(Ok(Outcome::Finished(run))) => (
                false,
                false,
                format!("finished {} {}", run.sync_id, run.status),
            ),
            Some(Ok(Outcome::Continued { sync_id, .. })) => {
                (false, false, format!("continued {sync_id}"))
            }
            Some(Ok(Outcome::Skipped { reason })) => (false, false, format!("skipped: {reason}")),
        };
        self.invocations.lock().unwrap().push(Invocation {
            id,
            request: req.clone(),
            attempt,
            crashed,
            outcome,
        });
        // Lambda retries a failed asynchronous invocation twice, a minute apart and more.
        if failed && attempt < 2 {
            let delay = Duration::from_secs(60 * (attempt as u64 + 1));
            self.spawn_invocation(req, attempt + 1, delay);
        }
    }

    fn spawn_action(&self, at: Duration, action: Action) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        let w = self.arc();
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            w.act(action).await;
            w.outstanding.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits until nothing is in flight or queued. `Err` after `limit` of virtual time.
    async fn quiesce(&self, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        loop {
            if self.outstanding.load(Ordering::SeqCst) == 0 {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "no quiescence after {} s of virtual time: {} invocations or actions still running",
                    limit.as_secs(),
                    self.outstanding.load(Ordering::SeqCst)
                ));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// At quiescence, before the clean run closes what is left: a run still open must be one
    /// the lease lists as an orphan (its holder vanished; the next holder closes it), or one
    /// whose last invocation died with the platform's retries used up (the next sync takes its
    /// expired lease and closes it). One left open after an invocation that ended normally was
    /// dropped: no continuation, no resumption.
    fn no_run_left_open(&self) {
        let invocations = self.invocations.lock().unwrap().clone();
        let lease = futures::executor::block_on(cupid_sync::ports::Lease::current(&self.store))
            .ok()
            .flatten()
            .unwrap_or_default();
        for run in self.store.runs() {
            if !run.status.is_active() {
                continue;
            }
            // Reachable: the lease's owner (its next taker lists it as an orphan) or a listed
            // orphan (its next holder closes it). Anything else stays open for good.
            let reachable = lease.owner.as_deref() == Some(run.sync_id.as_str())
                || lease.orphans.contains(&run.sync_id);
            if !reachable {
                self.violation(format!(
                    "run {} left {} and unreachable: neither the lease's owner nor an orphan",
                    run.sync_id, run.status
                ));
                continue;
            }
            if lease.orphans.contains(&run.sync_id) {
                continue;
            }
            // The owner: it must be one nothing could resume (its last invocation died with the
            // platform's retries used up), not one dropped by an invocation that ended normally.
            let last = invocations
                .iter()
                .rfind(|i| crate::check::names(&i.request) == run.sync_id);
            if let Some(last) = last {
                let died = last.outcome == "killed" || last.outcome.starts_with("error");
                if !(died && last.attempt >= 2) {
                    self.violation(format!(
                        "run {} left {} at quiescence with nothing to resume it (last invocation #{} attempt {}: {})",
                        run.sync_id, run.status, last.id, last.attempt, last.outcome
                    ));
                }
            }
        }
    }

    /// Runs the scenario to quiescence, then one clean run. `Err`: it never quiesced.
    pub async fn run(&self) -> Result<(), String> {
        self.store
            .track(&self.ids)
            .await
            .map_err(|e| e.to_string())?;
        let s = &self.scenario;
        for k in 0..s.slots {
            let at = Duration::from_secs(k as u64 * s.interval_s);
            let slot = Timestamp(((BASE_MS / 1000) + k as u64 * s.interval_s) as i64);
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            let w = self.arc();
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                w.deliver(
                    SyncRequest::Scheduled {
                        scheduled_time: Some(slot.rfc3339()),
                    },
                    0,
                );
                w.outstanding.fetch_sub(1, Ordering::SeqCst);
            });
        }
        for (t, a) in s.actions.clone() {
            self.spawn_action(Duration::from_secs(t), a);
        }
        // Every run must end: a generous bound on virtual time for all of it.
        let horizon = Duration::from_secs(s.interval_s * s.slots as u64);
        tokio::time::sleep(horizon).await;
        self.quiesce(Duration::from_secs(48 * 3600)).await?;
        self.no_run_left_open();
        // The final clean run: no faults, no crashes, single deliveries, every lease expired;
        // and an operator who accepts whatever changed meanwhile (the circuit breaker off, the
        // schema free to evolve).
        self.calm.store(true, Ordering::SeqCst);
        use cupid_sync::domain::settings::{SettingKey, SettingValue};
        self.store
            .put_all(
                &[
                    (SettingKey::SyncMaxChangeRatio, SettingValue::Rate(1.0)),
                    (
                        SettingKey::SyncSchemaPolicy,
                        SettingValue::Policy(cupid_sync::domain::settings::SchemaPolicy::Evolve),
                    ),
                ],
                Timestamp((self.now_ms() / 1000) as i64),
            )
            .await
            .map_err(|e| e.to_string())?;
        self.upstream.calm.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(s.lease_ttl_s + 1)).await;
        let slot = Timestamp((self.now_ms() / 1000) as i64);
        self.deliver(
            SyncRequest::Scheduled {
                scheduled_time: Some(slot.rfc3339()),
            },
            0,
        );
        self.quiesce(Duration::from_secs(24 * 3600)).await?;
        Ok(())
    }
}
