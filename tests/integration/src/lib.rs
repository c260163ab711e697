//! Test harness: per-test tables on the local AWS endpoint (moto_server, started by
//! `make test`), an in-process Cupid simulator, and recording fakes for dispatch and events.

use async_trait::async_trait;
use cupid_sim::{SimConfig, SimHandle};
use cupid_sync::adapters::cupid::CupidHttp;
use cupid_sync::adapters::dynamo::{
    DynamoLease, DynamoProperties, DynamoRunLog, DynamoSchema, DynamoSettings, DynamoStats,
    DynamoWebhooks, ensure_tables,
};
use cupid_sync::adapters::memory::MemorySchedule;
use cupid_sync::api::app::{AllRoutes, App};
use cupid_sync::config::{Secret, Tables};
use cupid_sync::domain::run::{Change, Failure, RunDetail, SyncRequest, SyncRun};
use cupid_sync::domain::settings::Settings;
use cupid_sync::engine::{Engine, EngineConfig, EngineDeps, Outcome};
use cupid_sync::ports::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const KEY: &str = "test-key";

/// Records dispatched sync requests instead of invoking anything.
#[derive(Default)]
pub struct RecordingDispatch {
    pub sent: Mutex<Vec<SyncRequest>>,
}

#[async_trait]
impl Dispatch for RecordingDispatch {
    async fn dispatch(&self, req: &SyncRequest) -> PortResult<()> {
        self.sent.lock().unwrap().push(req.clone());
        Ok(())
    }
}

#[derive(Default)]
pub struct RecordingEvents {
    pub events: Mutex<Vec<RunEvent>>,
}

#[async_trait]
impl Events for RecordingEvents {
    async fn publish(&self, event: &RunEvent) -> PortResult<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SLOT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

pub mod cdp;
pub mod kit;
pub mod receiver;

pub async fn ddb() -> aws_sdk_dynamodb::Client {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "integration tests need the local AWS endpoint: run them with `make test` (it starts moto_server)"
    );
    let conf = cupid_sync::adapters::aws::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&conf)
}

/// Fresh, uniquely named tables for one test.
pub async fn fresh_tables(client: &aws_sdk_dynamodb::Client) -> Tables {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let tag = format!(
        "t{}-{}-{n}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let tables = Tables {
        properties: format!("{tag}-properties"),
        documents: format!("{tag}-documents"),
        sync_logs: format!("{tag}-logs"),
        settings: format!("{tag}-settings"),
    };
    ensure_tables(client, &tables)
        .await
        .expect("create tables on the local endpoint");
    tables
}

pub struct Stack {
    pub sim: SimHandle,
    pub tables: Tables,
    pub client: aws_sdk_dynamodb::Client,
    pub props: Arc<DynamoProperties>,
    pub runs: Arc<DynamoRunLog>,
    pub stats: Arc<DynamoStats>,
    pub schemas: Arc<DynamoSchema>,
    pub lease: Arc<DynamoLease>,
    pub settings: Arc<DynamoSettings>,
    pub webhooks: Arc<DynamoWebhooks>,
    pub dispatch: Arc<RecordingDispatch>,
    pub events: Arc<RecordingEvents>,
    pub schedule: Arc<MemorySchedule>,
    pub defaults: Settings,
    pub cfg: EngineConfig,
    pub upstream: Arc<dyn Upstream>,
}

pub struct Options {
    pub rate_limit: f64,
    pub max_concurrent: u32,
    pub batch_size: u32,
    pub retries: u32,
    pub synthetic: u64,
    pub key: &'static str,
    pub max_run: Duration,
    pub margin: Duration,
    pub lease_ttl: Duration,
    /// Facets beyond the property: none by default, so per-id request counts stay simple.
    pub languages: Vec<String>,
    pub review_count: u32,
    /// Records per Scan page the engine reads.
    pub scan_page: usize,
    /// Compressed bytes per document item.
    pub part_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate_limit: 200.0,
            max_concurrent: 8,
            batch_size: 10,
            retries: 3,
            synthetic: 0,
            key: KEY,
            max_run: Duration::from_secs(600),
            margin: Duration::ZERO,
            lease_ttl: Duration::from_secs(60),
            languages: vec![],
            review_count: 0,
            scan_page: cupid_sync::engine::SCAN_PAGE,
            part_bytes: cupid_sync::domain::document::PART_BYTES,
        }
    }
}

impl Stack {
    pub async fn new(o: Options) -> Stack {
        let client = ddb().await;
        let tables = fresh_tables(&client).await;
        let sim = cupid_sim::spawn(
            SimConfig {
                api_key: KEY.into(),
                synthetic: o.synthetic,
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let defaults = Settings {
            rate_limit: o.rate_limit,
            max_concurrent: o.max_concurrent,
            batch_size: o.batch_size,
            retry_attempts: o.retries,
            languages: o.languages.clone(),
            review_count: o.review_count,
            ..Default::default()
        };
        let upstream: Arc<dyn Upstream> = Arc::new(
            CupidHttp::new(&sim.url(), Secret::new(o.key), Duration::from_secs(2)).unwrap(),
        );
        Stack {
            props: Arc::new(DynamoProperties::new(client.clone(), &tables)),
            runs: Arc::new(DynamoRunLog::new(client.clone(), &tables)),
            stats: Arc::new(DynamoStats::new(client.clone(), &tables)),
            schemas: Arc::new(DynamoSchema::new(client.clone(), &tables)),
            lease: Arc::new(DynamoLease::new(client.clone(), &tables, clock)),
            settings: Arc::new(DynamoSettings::new(client.clone(), &tables)),
            webhooks: Arc::new(DynamoWebhooks::new(client.clone(), &tables)),
            dispatch: Arc::new(RecordingDispatch::default()),
            events: Arc::new(RecordingEvents::default()),
            schedule: Arc::new(MemorySchedule::default()),
            cfg: EngineConfig {
                defaults: defaults.clone(),
                max_run: o.max_run,
                margin: o.margin,
                lease_ttl: o.lease_ttl,
                touch_unchanged: true,
                retry_base: Duration::from_millis(20),
                max_retry_after: cupid_sync::engine::MAX_RETRY_AFTER,
                emit_metrics: false,
                scan_page: o.scan_page,
                part_bytes: o.part_bytes,
            },
            defaults,
            upstream,
            sim,
            tables,
            client,
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine_with(self.upstream.clone())
    }

    pub fn engine_with(&self, upstream: Arc<dyn Upstream>) -> Engine {
        self.engine_with_parts(upstream, self.props.clone())
    }

    pub fn engine_with_parts(
        &self,
        upstream: Arc<dyn Upstream>,
        writer: Arc<dyn PropertyWriter>,
    ) -> Engine {
        Engine::new(
            EngineDeps {
                reader: self.props.clone(),
                writer,
                runs: self.runs.clone(),
                stats: self.stats.clone(),
                schemas: self.schemas.clone(),
                lease: self.lease.clone(),
                upstream,
                dispatch: self.dispatch.clone(),
                events: self.events.clone(),
                settings: self.settings.clone(),
                schedule: self.schedule.clone(),
                clock: Arc::new(SystemClock),
            },
            self.cfg.clone(),
        )
    }

    /// Every route in one handler, over this stack's tables.
    pub fn app(&self) -> AllRoutes {
        let app = App {
            reader: self.props.clone(),
            quarantine: self.props.clone(),
            tracking: self.props.clone(),
            runs: self.runs.clone(),
            stats: self.stats.clone(),
            lease: self.lease.clone(),
            settings: self.settings.clone(),
            clock: Arc::new(SystemClock),
            defaults: self.defaults.clone(),
            lease_ttl: self.cfg.lease_ttl,
        };
        AllRoutes::new(
            app,
            self.schedule.clone(),
            self.dispatch.clone(),
            self.webhooks.clone(),
            // The tests' receivers listen on loopback, as in local mode.
            cupid_sync::domain::webhook::TargetPolicy {
                allow_loopback: true,
            },
        )
    }

    /// Every detail item of a run (all pages).
    pub async fn details(&self, run: &SyncRun) -> Vec<RunDetail> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.runs.details(&run.sync_id, 100, after).await.unwrap();
            out.extend(page.items);
            match page.next {
                Some(a) => after = Some(a),
                None => return out,
            }
        }
    }

    /// A run's failures, from its detail items.
    pub async fn failures(&self, run: &SyncRun) -> Vec<Failure> {
        self.details(run)
            .await
            .into_iter()
            .flat_map(|d| {
                d.failures.into_iter().map(move |reason| Failure {
                    hotel_id: d.hotel_id,
                    reason,
                })
            })
            .collect()
    }

    /// A run's changes, from its detail items.
    pub async fn changes(&self, run: &SyncRun) -> Vec<Change> {
        self.details(run)
            .await
            .into_iter()
            .flat_map(|d| d.changes)
            .collect()
    }

    /// The data-quality tests' start: French translations, a fast upstream, the 100 exercise
    /// ids tracked and a first sync done (it must complete: the recorded bodies pass).
    pub async fn synced_with_french() -> (Stack, Vec<i64>, SyncRun) {
        let s = Stack::new(Options {
            languages: vec!["fr".into()],
            rate_limit: 400.0,
            max_concurrent: 8,
            ..Default::default()
        })
        .await;
        let ids = s.track_exercise_ids().await;
        let first = s.sync().await;
        assert_eq!(
            first.status,
            cupid_sync::domain::run::RunStatus::Completed,
            "{:?}",
            first.error_message
        );
        (s, ids, first)
    }

    pub async fn track_exercise_ids(&self) -> Vec<i64> {
        let ids = cupid_sim::exercise_ids();
        self.props.track(&ids).await.unwrap();
        ids
    }

    /// Tracks the simulator's first `n` synthetic ids (returns them, ascending); how many were
    /// new is returned too.
    pub async fn track_synthetic(&self, n: u64) -> (Vec<i64>, usize) {
        let ids: Vec<i64> = (0..n as i64)
            .map(|i| cupid_sim::DEFAULT_SYNTHETIC_BASE + i)
            .collect();
        let done = self.props.track(&ids).await.expect("track synthetic ids");
        (ids, done.new)
    }

    /// Runs a scheduled sync to its end, following continuations like the real function would.
    /// Each call is its own schedule slot.
    pub async fn sync(&self) -> SyncRun {
        self.run_to_end(self.next_slot()).await
    }

    /// A run that "dies" holding the lease (for `ttl`): created running, as its invocation
    /// would have, and never heard of again.
    pub async fn leave_dead_run(
        &self,
        sync_id: &str,
        sync_type: cupid_sync::domain::run::SyncType,
        started: cupid_sync::domain::time::Timestamp,
        ttl: Duration,
    ) {
        let mut dead = SyncRun::new(sync_id.into(), sync_type, started);
        dead.status = cupid_sync::domain::run::RunStatus::Running;
        let take = cupid_sync::domain::lease::LeaseRequest::Take {
            owner: sync_id.into(),
            handoff: false,
        };
        let held = self
            .lease
            .apply(&take, ttl)
            .await
            .expect("lease")
            .expect("the lease is free");
        self.runs.create(&dead, held.fence).await.expect("create");
    }

    /// A scheduled request for a new slot (slots name runs: each call gets a later one).
    pub fn next_slot(&self) -> SyncRequest {
        let now = SystemClock.now().secs();
        let slot = SLOT.fetch_max(now, Ordering::SeqCst).max(now) + 1;
        SLOT.store(slot, Ordering::SeqCst);
        SyncRequest::Scheduled {
            scheduled_time: Some(cupid_sync::domain::time::Timestamp(slot).rfc3339()),
        }
    }

    /// The stored document of `facet` that the record points at (what the API serves).
    pub async fn document(&self, id: i64, facet: &str) -> Option<StoredDoc> {
        let rec = self.props.get_record(id).await.expect("get record")?;
        let state = rec.facet_states().get(facet).cloned()?;
        let (doc, _) = self
            .props
            .get_whole_document(id, &state.key(facet))
            .await
            .expect("get document");
        let doc = doc.expect("the record points at a stored document");
        assert_eq!(doc.content_hash, state.hash, "document and record agree");
        Some(doc)
    }

    /// Whether a new run could take the lease now (it is released or expired).
    pub async fn lease_free(&self) -> bool {
        let now = SystemClock.now_ms();
        match self.lease.current().await.expect("read lease") {
            None => true,
            Some(l) => !l.is_live(now),
        }
    }

    /// Starts a manual run the way the trigger does (run item + reserved lease) and runs it
    /// to its end.
    pub async fn manual(&self, hotel_ids: Option<Vec<i64>>, dry_run: bool) -> SyncRun {
        let req = self.reserve_manual(hotel_ids, dry_run).await;
        self.run_to_end(req).await
    }

    /// What the trigger does before it dispatches: a queued run and the lease reserved for it.
    pub async fn reserve_manual(&self, hotel_ids: Option<Vec<i64>>, dry_run: bool) -> SyncRequest {
        use cupid_sync::domain::lease::LeaseRequest;
        let sync_id = SystemClock.new_id();
        let state = self
            .lease
            .apply(
                &LeaseRequest::Take {
                    owner: sync_id.clone(),
                    handoff: true,
                },
                self.cfg.lease_ttl,
            )
            .await
            .expect("lease")
            .expect("lease free");
        let mut run = SyncRun::new(
            sync_id.clone(),
            cupid_sync::domain::run::SyncType::Manual,
            SystemClock.now(),
        );
        run.hotel_ids = hotel_ids.clone();
        run.dry_run = dry_run;
        self.runs
            .create(&run, state.fence)
            .await
            .expect("create run");
        SyncRequest::Manual {
            sync_id,
            lease: Some(state.fence),
            hotel_ids,
            dry_run,
        }
    }

    pub async fn run_to_end(&self, first: SyncRequest) -> SyncRun {
        let engine = self.engine();
        let mut next = first;
        for _ in 0..200 {
            match engine.handle(next, None).await.expect("engine") {
                Outcome::Finished(run) => return *run,
                Outcome::Continued { .. } => {
                    next = self
                        .dispatch
                        .sent
                        .lock()
                        .unwrap()
                        .pop()
                        .expect("a continuation was dispatched");
                }
                Outcome::Skipped { reason } => panic!("sync skipped: {reason}"),
            }
        }
        panic!("sync did not finish within 200 invocations");
    }
}

/// The admin token the harness's API calls use.
pub const ADMIN_TOKEN: &str = "admin-test-token";

/// Calls the API through the shared HTTP edge (routing, auth, envelope) as the function that
/// serves the route would.
pub async fn api_call(
    s: &Stack,
    method: &str,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let resp = api_raw(s, method, path_and_query, body).await;
    (
        resp.status,
        serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null),
    )
}

/// The response as served (status, content type, bytes), with the admin token.
pub async fn api_raw(
    s: &Stack,
    method: &str,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> cupid_sync::api::ApiResponse {
    use cupid_sync::api::routes::{Resolved, resolve};
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let req = cupid_sync::api::ApiRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .split('&')
            .filter(|q| !q.is_empty())
            .filter_map(|q| q.split_once('='))
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        authorization: Some(format!("Bearer {ADMIN_TOKEN}")),
        content_type: body.as_ref().map(|_| "application/json".to_string()),
        body: body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default(),
        ..Default::default()
    };
    let function = match resolve(method, path) {
        Resolved::Found(r, _) => r.function,
        _ => "health",
    };
    let app = s.app();
    cupid_sync::api::serve(function, Some(&Secret::new(ADMIN_TOKEN)), &app, req).await
}
