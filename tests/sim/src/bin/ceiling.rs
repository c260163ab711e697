//! The engine's own ceiling: how many facet requests per second one invocation sustains on this
//! machine with no network anywhere — the in-memory store, an in-process upstream answering at
//! once, the rate limit off, real time on a multi-thread runtime (one worker per core).
//!
//! `cargo run --release -p sim --bin ceiling -- [N] [small|recorded]`
//! (`make ceiling`): N properties (default 20,000), documents either small (~300 B) or the
//! recorded Cupid property body (~65 KB). Prints CPU per request by stage, then requests/s and
//! CPU time per request for a first sync (every document written), an unchanged re-sync of the
//! same bytes (digest only) and one of the same content in other bytes (parse, canonical form,
//! hash, compare).

use async_trait::async_trait;
use cupid_sync::adapters::memory::MemoryStore;
use cupid_sync::domain::facet::Facet;
use cupid_sync::domain::run::{RunStatus, SyncRequest};
use cupid_sync::domain::settings::Settings;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::engine::{Engine, EngineConfig, EngineDeps, Outcome};
use cupid_sync::ports::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The allocator the sync function uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers at once with the body's bytes, as the HTTP adapter hands a response to the engine
/// (which digests, parses and canonicalises it: the work measured here).
#[async_trait]
impl Upstream for Instant0Upstream {
    async fn fetch(&self, _: i64, _: &Facet) -> Result<serde_json::Value, FetchError> {
        serde_json::from_slice(&self.body).map_err(|e| FetchError::Malformed(e.to_string()))
    }
    async fn fetch_raw(&self, id: i64, _: &Facet) -> Result<Vec<u8>, FetchError> {
        let (template, spots) = match self.variant.load(std::sync::atomic::Ordering::Relaxed) {
            1 => (&self.pretty, &self.pretty_spots),
            2 => (&self.changed, &self.changed_spots),
            3 => (&self.changed_again, &self.changed_again_spots),
            _ => (&self.body, &self.body_spots),
        };
        // The body of hotel `id` (its contract checks the id): the template's hotel id
        // overwritten in place, digit for digit.
        let mut out = template.clone();
        let digits = id.to_string();
        for &at in spots {
            out[at..at + ID_DIGITS].copy_from_slice(digits.as_bytes());
        }
        Ok(out)
    }
}

/// Hotel ids of the ceiling run have the recorded body's id width (1641879), so a body is made
/// for each id by overwriting digits, not by serialising a document per request.
const ID_DIGITS: usize = 7;
const TEMPLATE_ID: i64 = 1_641_879;
const FIRST_ID: i64 = 1_000_000;

/// Where the template's hotel id is written in `body`.
fn spots(body: &[u8]) -> Vec<usize> {
    let needle = TEMPLATE_ID.to_string();
    body.windows(ID_DIGITS)
        .enumerate()
        .filter(|(_, w)| *w == needle.as_bytes())
        .map(|(i, _)| i)
        .collect()
}

struct Instant0Upstream {
    body: Vec<u8>,
    body_spots: Vec<usize>,
    /// The same content in other bytes (indented): unchanged, but only after parsing.
    pretty: Vec<u8>,
    pretty_spots: Vec<usize>,
    /// Other content (a renamed hotel): every document changes.
    changed: Vec<u8>,
    changed_spots: Vec<usize>,
    changed_again: Vec<u8>,
    changed_again_spots: Vec<usize>,
    /// 0: `body`, 1: `pretty`, 2: `changed`, 3: `changed_again`.
    variant: std::sync::atomic::AtomicU8,
}

#[derive(Default)]
struct Sink(Mutex<Vec<SyncRequest>>);

#[async_trait]
impl Dispatch for Sink {
    async fn dispatch(&self, r: &SyncRequest) -> PortResult<()> {
        self.0.lock().unwrap().push(r.clone());
        Ok(())
    }
}

#[async_trait]
impl Events for Sink {
    async fn publish(&self, _: &RunEvent) -> PortResult<()> {
        Ok(())
    }
}

fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: user and system time in clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU per request by stage, one thread: where a facet request's time goes.
fn stages(body: &serde_json::Value) {
    use cupid_sync::domain::document;
    let bytes = serde_json::to_vec(body).expect("a JSON body");
    let rounds = 300;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..rounds {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / rounds as f64
    };
    let raw = time(&mut || {
        std::hint::black_box(document::raw_digest(&bytes));
    });
    let canonical = time(&mut || {
        std::hint::black_box(
            Facet::Property
                .canonical_body(TEMPLATE_ID, &bytes, &())
                .ok(),
        );
    });
    let doc = Facet::Property
        .canonical_body(TEMPLATE_ID, &bytes, &())
        .expect("canonical");
    assert!(doc.report.is_clean(), "{:?}", doc.report);
    let hash = time(&mut || {
        std::hint::black_box(document::content_hash(&doc.bytes));
    });
    let z = document::compress(&doc.bytes).expect("compress");
    let compress = time(&mut || {
        std::hint::black_box(document::compress(&doc.bytes).ok());
    });
    // The reference path, for comparison: a `serde_json::Value` tree, then its canonical form.
    let reference = time(&mut || {
        let v = serde_json::from_slice::<serde_json::Value>(&bytes).expect("a JSON body");
        std::hint::black_box(Facet::Property.canonical(v).ok());
    });
    println!(
        "stages ({} B raw, {} B canonical, {} B compressed), µs per document on one thread: raw digest {raw:.0}, parse + canonical form + hash {canonical:.0} (hash alone {hash:.0}; through a serde_json::Value {reference:.0}), compress {compress:.0}",
        bytes.len(),
        doc.bytes.len(),
        z.len(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: i64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let recorded = args.get(1).is_some_and(|a| a == "recorded");
    let body: serde_json::Value = if recorded {
        serde_json::from_str(include_str!("../../../fixtures/property_1641879.json"))
            .expect("the recorded body parses")
    } else {
        serde_json::json!({
            "hotel_id": TEMPLATE_ID, "hotel_name": "Hotel", "rating": 4.2, "stars": 4,
            "latitude": 38.7, "longitude": -9.1,
            "address": {"city": "Lisbon", "country": "pt", "address": "Rua 1"},
            "photos": [{"url": "https://p/1.jpg", "score": 1.0, "class_order": 1}],
            "description": "A quiet hotel by the river with a garden and a view."
        })
    };
    stages(&body);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = Arc::new(MemoryStore::new(clock.clone()));
        let ids: Vec<i64> = (FIRST_ID + 1..=FIRST_ID + n).collect();
        store.track(&ids).await.expect("track");
        let sink = Arc::new(Sink::default());
        let (compact, pretty) = (
            serde_json::to_vec(&body).expect("a JSON body"),
            serde_json::to_vec_pretty(&body).expect("a JSON body"),
        );
        let mut renamed = body.clone();
        renamed["hotel_name"] = serde_json::json!("Renamed hotel");
        let changed = serde_json::to_vec(&renamed).expect("a JSON body");
        renamed["hotel_name"] = serde_json::json!("Renamed hotel again");
        let changed_again = serde_json::to_vec(&renamed).expect("a JSON body");
        let upstream = Arc::new(Instant0Upstream {
            body_spots: spots(&compact),
            pretty_spots: spots(&pretty),
            changed_spots: spots(&changed),
            changed_again_spots: spots(&changed_again),
            body: compact,
            pretty,
            changed,
            changed_again,
            variant: Default::default(),
        });
        let engine = Engine::new(
            EngineDeps {
                reader: store.clone(),
                writer: store.clone(),
                runs: store.clone(),
                stats: store.clone(),
                schemas: store.clone(),
                lease: store.clone(),
                upstream: upstream.clone(),
                dispatch: sink.clone(),
                events: sink.clone(),
                settings: store.clone(),
                schedule: Arc::new(cupid_sync::adapters::memory::MemorySchedule::default()),
                clock,
            },
            EngineConfig {
                defaults: Settings {
                    batch_size: 100,
                    max_concurrent: 64,
                    retry_attempts: 0,
                    // Off: the ceiling is the engine's, not a limit's.
                    rate_limit: 1e9,
                    languages: vec![],
                    review_count: 0,
                    ..Default::default()
                },
                max_run: Duration::from_secs(3600),
                margin: Duration::from_secs(1),
                lease_ttl: Duration::from_secs(600),
                touch_unchanged: true,
                retry_base: Duration::from_millis(10),
                max_retry_after: cupid_sync::engine::MAX_RETRY_AFTER,
                emit_metrics: false,
                scan_page: 1000,
                part_bytes: cupid_sync::domain::document::PART_BYTES,
            },
        );
        println!(
            "ceiling: N={n}, {} documents, {} worker threads, in-memory store, upstream in process",
            if recorded { "recorded (~65 KB)" } else { "small (~300 B)" },
            std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1)
        );
        for (k, label) in [
            (0i64, "first sync (every document written)"),
            (1, "unchanged re-sync, same bytes"),
            (2, "unchanged re-sync, same content in other bytes"),
            (3, "every document changed (diff of each change; evolve)"),
            (4, "every document changed again, sync_schema_policy = freeze"),
        ] {
            upstream
                .variant
                .store(
                    [0, 0, 1, 2, 3][k as usize],
                    std::sync::atomic::Ordering::Relaxed,
                );
            if k >= 3 {
                use cupid_sync::domain::settings::{SettingKey, SettingValue};
                use cupid_sync::domain::settings::SchemaPolicy;
                use cupid_sync::ports::SettingsStore;
                // Every document changes: the circuit breaker would halt it.
                let policy = if k == 4 {
                    SchemaPolicy::Freeze
                } else {
                    SchemaPolicy::Evolve
                };
                let settings = [
                    (SettingKey::SyncSchemaPolicy, SettingValue::Policy(policy)),
                    (SettingKey::SyncMaxChangeRatio, SettingValue::Rate(1.0)),
                ];
                store
                    .put_all(&settings, Timestamp(0))
                    .await
                    .expect("settings");
            }
            let req = SyncRequest::Scheduled {
                scheduled_time: Some(Timestamp(1_800_000_000 + k * 3600).rfc3339()),
            };
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let run = match engine.handle(req, None).await {
                Ok(Outcome::Finished(run)) => run,
                other => panic!("{other:?}"),
            };
            let (took, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
            assert_eq!(run.status, RunStatus::Completed);
            assert_eq!(run.counters.quarantined, 0, "every body keeps its contract");
            let requests = run.counters.upstream_requests.max(run.counters.processed) as f64;
            println!(
                "  {label}: {requests:.0} requests in {took:.2} s = {:.0} requests/s, {:.0} µs CPU per request (updated {}, unchanged {})",
                requests / took,
                cpu / requests * 1e6,
                run.counters.updated,
                run.counters.unchanged
            );
        }
    });
}
