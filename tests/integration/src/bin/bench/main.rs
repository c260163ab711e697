//! `make bench`: how close the sync runs to its floors (ARCHITECTURE.md), with a naive
//! baseline (sequential fetch, unconditional PutItem of every full document) side by side.
//! Runs the real engine code against moto_server and the Cupid simulator. Not a test: it
//! prints figures and writes them to BENCHMARKS.md's table when asked (`--markdown FILE`).
//!
//! `bench [--full] [--only GROUP] [--markdown FILE]`; `--full` adds the long scenarios (N = 10,000 at 10/s:
//! ~17 min; N = 100,000 through continuation).
//! `bench invoke <sync-request-json> <options-json>`: one invocation in its own process (the
//! parent reads its peak RSS).

mod reads;

use cupid_sync::domain::run::{SyncRequest, SyncRun};
use cupid_sync::engine::Outcome;
use integration::{Options, Stack};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

struct Row {
    scenario: String,
    measured: String,
    floor: String,
    ratio: f64,
    goal: String,
    baseline: String,
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Write request units as DynamoDB bills them: 1 per KB (rounded up) per item written,
/// doubled inside a transaction.
fn wru(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

async fn tracked_stack(o: Options, n: u64) -> (Stack, Vec<i64>) {
    let s = Stack::new(Options { synthetic: n, ..o }).await;
    let (ids, _) = s.track_synthetic(n).await;
    (s, ids)
}

/// The naive way: one request after the other, every full document written every time.
async fn naive(s: &Stack, ids: &[i64]) -> (Duration, u64, u64) {
    let http = reqwest::Client::new();
    let table = format!("{}-naive", s.tables.documents);
    let _ = s
        .client
        .create_table()
        .table_name(&table)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("hotel_id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("hotel_id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let started = Instant::now();
    let (mut writes, mut units) = (0u64, 0u64);
    for id in ids {
        let body = http
            .get(format!("{}/v3.0/property/{id}", s.sim.url()))
            .header("x-api-key", integration::KEY)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let Ok(resp) = body else { continue };
        let Ok(text) = resp.text().await else {
            continue;
        };
        units += wru(text.len() + 32);
        let _ = s
            .client
            .put_item()
            .table_name(&table)
            .item(
                "hotel_id",
                aws_sdk_dynamodb::types::AttributeValue::N(id.to_string()),
            )
            .item("doc", aws_sdk_dynamodb::types::AttributeValue::S(text))
            .send()
            .await;
        writes += 1;
    }
    (started.elapsed(), writes, units)
}

/// Our write units for a run, modelled from what it wrote: 2× (document + record) per changed
/// property (transaction), 1 per touched record, checkpoints of the run item.
fn modelled_units(run: &SyncRun, doc_bytes: usize) -> u64 {
    let changed = run.counters.updated;
    let doc = wru(doc_bytes + 200) * (run.counters.document_writes / changed.max(1)).max(1);
    let touches = run.counters.unchanged;
    let checkpoints = run.counters.processed.div_ceil(10) + 3;
    changed * 2 * (doc + 1) + touches + checkpoints * 2
}

async fn timed_sync(s: &Stack) -> (SyncRun, Duration) {
    let t = Instant::now();
    let run = s.sync().await;
    (run, t.elapsed())
}

async fn rate_bound(rows: &mut Vec<Row>, n: u64, rate: f64, facets: bool) {
    let o = Options {
        rate_limit: rate,
        max_concurrent: 5,
        languages: if facets {
            vec!["fr".into(), "es".into()]
        } else {
            vec![]
        },
        review_count: if facets { 100 } else { 0 },
        ..Default::default()
    };
    let (s, ids) = tracked_stack(o, n).await;
    let (run, took) = timed_sync(&s).await;
    assert_eq!(
        run.counters.processed, n,
        "{}: {:?}",
        run.status, run.error_message
    );
    let per = run.requests_per_property as f64;
    let floor = per * n as f64 / rate;
    let (naive_t, _, _) = if facets {
        (Duration::ZERO, 0, 0)
    } else {
        naive(&s, &ids).await
    };
    rows.push(Row {
        scenario: format!("N={n}, R={rate}/s, L=0, {} request(s)/property", per),
        measured: secs(took),
        floor: format!("{floor:.2} s ({}·N/R)", per),
        ratio: took.as_secs_f64() / floor,
        goal: format!("≤ 1.05× + 1 s ({:.2} s)", floor * 1.05 + 1.0),
        baseline: if facets {
            "—".into()
        } else {
            format!("naive sequential: {}", secs(naive_t))
        },
    });
}

/// "Rate limit off": the settings' ceiling (1000/s), `c` in flight, batches of 100.
fn unthrottled(c: u32) -> Options {
    Options {
        rate_limit: 1000.0,
        max_concurrent: c,
        batch_size: 100,
        ..Default::default()
    }
}

async fn latency_bound(rows: &mut Vec<Row>, n: u64, latency_ms: u64, c: u32) {
    let (s, ids) = tracked_stack(unthrottled(c), n).await;
    s.sim.sim.set_faults(cupid_sim::Faults {
        latency_ms,
        ..Default::default()
    });
    let (run, took) = timed_sync(&s).await;
    assert_eq!(
        run.counters.processed, n,
        "{}: {:?}",
        run.status, run.error_message
    );
    let floor = n as f64 * latency_ms as f64 / 1000.0 / c as f64;
    let sample: Vec<i64> = ids.iter().copied().take(200).collect();
    let (naive_t, _, _) = naive(&s, &sample).await;
    let naive_full = naive_t.as_secs_f64() * n as f64 / sample.len() as f64;
    let store_writes = 2 * run.counters.updated + run.counters.unchanged;
    rows.push(Row {
        scenario: format!("N={n}, rate limit off, L={latency_ms} ms, C={c}"),
        measured: format!(
            "{} ({store_writes} store writes: {:.0}/s)",
            secs(took),
            store_writes as f64 / took.as_secs_f64()
        ),
        floor: format!("{floor:.2} s (N·L/C)"),
        ratio: took.as_secs_f64() / floor,
        goal: "≤ 1.2×".into(),
        baseline: format!("naive sequential: {naive_full:.0} s (extrapolated from 200)"),
    });
    // The same fetch pipeline with no store writes (dry run): separates the engine from the
    // local store's write speed (moto serves one request at a time).
    let t = Instant::now();
    let dry = s.manual(None, true).await;
    let took = t.elapsed();
    assert_eq!(dry.counters.processed, n);
    rows.push(Row {
        scenario: format!(
            "N={n}, rate limit off, L={latency_ms} ms, C={c}, dry run (no store writes)"
        ),
        measured: secs(took),
        floor: format!("{floor:.2} s (N·L/C)"),
        ratio: took.as_secs_f64() / floor,
        goal: "≤ 1.2×".into(),
        baseline: "—".into(),
    });
}

async fn writes(rows: &mut Vec<Row>, n: u64) {
    let (s, ids) = tracked_stack(unthrottled(32), n).await;
    let first = s.sync().await;
    assert_eq!(first.counters.updated, n);
    let doc_bytes = {
        let mut total = 0;
        for id in &ids[..50] {
            total += s
                .document(*id, "property")
                .await
                .map(|d| d.compressed.len())
                .unwrap_or(0);
        }
        total / 50
    };
    let (unchanged, took) = timed_sync(&s).await;
    let sample: Vec<i64> = ids.iter().copied().take(500).collect();
    let (_, naive_writes, naive_units_sample) = naive(&s, &sample).await;
    let naive_units = naive_units_sample * n / sample.len() as u64;
    let ours = modelled_units(&unchanged, doc_bytes);
    rows.push(Row {
        scenario: format!("unchanged re-sync, N={n}"),
        measured: format!(
            "{} document writes, ~{} WRU, {}",
            unchanged.counters.document_writes,
            ours,
            secs(took)
        ),
        floor: "0 document writes".into(),
        ratio: naive_units as f64 / ours.max(1) as f64,
        goal: "0 writes; ≥ 10× fewer WRU than naive (ratio = naive/ours)".into(),
        baseline: format!(
            "naive: {} full-document puts, ~{} WRU (from {} sampled, {} written)",
            n,
            naive_units,
            sample.len(),
            naive_writes
        ),
    });
    let seed = 7;
    s.sim.sim.change(&cupid_sim::ChangeRequest {
        fraction: Some(0.05),
        seed,
        ..Default::default()
    });
    let expect = ids
        .iter()
        .filter(|id| cupid_sim::Sim::picked(**id, seed, 0.05))
        .count() as u64;
    let (changed, took) = timed_sync(&s).await;
    rows.push(Row {
        scenario: format!("5 % changed, N={n}"),
        measured: format!(
            "{} document writes ({} changed upstream), {}",
            changed.counters.document_writes,
            expect,
            secs(took)
        ),
        floor: format!("{expect} document writes"),
        ratio: changed.counters.document_writes as f64 / expect.max(1) as f64,
        goal: "= 1.00 (exactly the changed ones)".into(),
        baseline: format!("naive: {n} full-document puts"),
    });
}

#[derive(Serialize, Deserialize)]
struct ChildOptions {
    tables: (String, String, String, String),
    sim_url: String,
    rate: f64,
    max_run_ms: u64,
}

/// N = 100,000 through continuation: every invocation in its own process.
async fn continuation(rows: &mut Vec<Row>, n: u64) {
    let (s, ids) = tracked_stack(unthrottled(32), n).await;
    let exe = std::env::current_exe().unwrap();
    let child = ChildOptions {
        tables: (
            s.tables.properties.clone(),
            s.tables.documents.clone(),
            s.tables.sync_logs.clone(),
            s.tables.settings.clone(),
        ),
        sim_url: s.sim.url(),
        rate: 1000.0,
        max_run_ms: env_u64("BENCH_INVOCATION_MS", 20_000),
    };
    let started = Instant::now();
    // A dry run: every id fetched, hashed and compared, nothing written but the run's
    // checkpoints, so the figure is the engine's (moto would need ~20 min for 200,000 writes).
    let mut next = serde_json::to_string(&s.reserve_manual(None, true).await).unwrap();
    let (mut invocations, mut peak_kb) = (0u32, 0i64);
    // Properties each full invocation got through: flat when startup does not grow with N.
    let (mut per_invocation, mut done_before) = (Vec::<i64>::new(), 0i64);
    let mut last: String;
    loop {
        invocations += 1;
        let out = std::process::Command::new(&exe)
            .args(["invoke", &next, &serde_json::to_string(&child).unwrap()])
            .output()
            .expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        last = stdout.lines().last().unwrap_or("").to_string();
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        peak_kb = peak_kb.max(field("VMHWM_KB ").unwrap_or(0));
        if let Some(p) = field("PROCESSED ") {
            per_invocation.push(p - done_before);
            done_before = p;
        }
        if let Some(resume) = stdout.lines().find_map(|l| l.strip_prefix("DISPATCH ")) {
            next = resume.to_string();
        } else {
            break;
        }
    }
    let took = started.elapsed();
    let st = s.sim.sim.stats();
    let once = ids.iter().all(|id| st.per_id.get(id) == Some(&1));
    rows.push(Row {
        scenario: format!(
            "N={n} through continuation ({} s per invocation, dry run)",
            child.max_run_ms / 1000
        ),
        measured: format!(
            "{invocations} invocations, peak RSS {} MB per invocation, every id once: {once}, {}; properties per full invocation: first {}, min {}, max {}",
            peak_kb / 1024,
            secs(took),
            per_invocation.first().copied().unwrap_or(0),
            per_invocation.iter().min().copied().unwrap_or(0),
            per_invocation.iter().max().copied().unwrap_or(0),
        ),
        floor: format!("{:.0} s (N/R at 1000/s)", n as f64 / 1000.0),
        ratio: took.as_secs_f64() / (n as f64 / 1000.0),
        goal: "every id once; peak RSS < 128 MB per invocation".into(),
        baseline: last.chars().take(80).collect(),
    });
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn child_invoke(req: &str, opts: &str) {
    use cupid_sync::adapters::cupid::CupidHttp;
    use cupid_sync::adapters::dynamo::*;
    use std::sync::Arc;
    let o: ChildOptions = serde_json::from_str(opts).unwrap();
    let req: SyncRequest = serde_json::from_str(req).unwrap();
    let tables = cupid_sync::config::Tables {
        properties: o.tables.0,
        documents: o.tables.1,
        sync_logs: o.tables.2,
        settings: o.tables.3,
    };
    let client = integration::ddb().await;
    let clock: Arc<dyn cupid_sync::ports::Clock> = Arc::new(cupid_sync::ports::SystemClock);
    let dispatch = Arc::new(integration::RecordingDispatch::default());
    let defaults = cupid_sync::domain::settings::Settings {
        rate_limit: o.rate,
        max_concurrent: 32,
        batch_size: 100,
        languages: vec![],
        review_count: 0,
        ..Default::default()
    };
    let engine = cupid_sync::engine::Engine::new(
        cupid_sync::engine::EngineDeps {
            reader: Arc::new(DynamoProperties::new(client.clone(), &tables)),
            writer: Arc::new(DynamoProperties::new(client.clone(), &tables)),
            runs: Arc::new(DynamoRunLog::new(client.clone(), &tables)),
            schemas: Arc::new(cupid_sync::adapters::dynamo::DynamoSchema::new(
                client.clone(),
                &tables,
            )),
            stats: Arc::new(cupid_sync::adapters::dynamo::DynamoStats::new(
                client.clone(),
                &tables,
            )),
            lease: Arc::new(DynamoLease::new(client.clone(), &tables, clock.clone())),
            upstream: Arc::new(
                CupidHttp::new(
                    &o.sim_url,
                    cupid_sync::config::Secret::new(integration::KEY),
                    Duration::from_secs(5),
                )
                .unwrap(),
            ),
            dispatch: dispatch.clone(),
            events: Arc::new(integration::RecordingEvents::default()),
            settings: Arc::new(DynamoSettings::new(client, &tables)),
            schedule: Arc::new(cupid_sync::adapters::memory::MemorySchedule::default()),
            clock,
        },
        cupid_sync::engine::EngineConfig {
            defaults,
            max_run: Duration::from_millis(o.max_run_ms),
            // In-flight requests finish before the hand-over (the simulator answers in ms).
            margin: Duration::from_millis(o.max_run_ms / 10),
            lease_ttl: Duration::from_secs(120),
            touch_unchanged: true,
            retry_base: Duration::from_millis(50),
            max_retry_after: cupid_sync::engine::MAX_RETRY_AFTER,
            emit_metrics: false,
            scan_page: cupid_sync::engine::SCAN_PAGE,
            part_bytes: cupid_sync::domain::document::PART_BYTES,
        },
    );
    let outcome = engine.handle(req, None).await.expect("engine");
    // This process's own peak RSS (VmHWM starts afresh at exec; the parent's getrusage would
    // also count the pages a fork shares with a large parent before the exec).
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .unwrap_or(0);
    println!("VMHWM_KB {hwm}");
    match outcome {
        Outcome::Continued { processed, .. } => {
            println!("PROCESSED {processed}");
            let r = dispatch.sent.lock().unwrap().pop().unwrap();
            println!("DISPATCH {}", serde_json::to_string(&r).unwrap());
        }
        Outcome::Finished(run) => println!(
            "finished: {} processed, status {}",
            run.counters.processed, run.status
        ),
        Outcome::Skipped { reason } => println!("skipped: {reason}"),
    }
}

/// Stripped release binaries and time from process start to the first answered invocation,
/// against a minimal Lambda Runtime API served here.
async fn binaries(rows: &mut Vec<Row>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release");
    let functions = [
        "sync",
        "trigger",
        "status",
        "health",
        "logs",
        "settings",
        "schedule",
        "properties",
        "docs",
    ];
    if !root.join("health").exists() {
        rows.push(Row {
            scenario: "binary size / init".into(),
            measured: "skipped: build with `cargo build --release` first (make bench does)".into(),
            floor: "—".into(),
            ratio: 0.0,
            goal: "≤ 8 MB; ≤ 30 ms init".into(),
            baseline: "—".into(),
        });
        return;
    }
    for f in functions {
        let size = std::fs::metadata(root.join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        let (init, answered) = init_time(&root.join(f), f == "sync").await;
        rows.push(Row {
            scenario: format!("function `{f}`"),
            measured: format!(
                "{:.1} MB; init (start → first `next`) {:.1} ms, first invocation answered at {:.1} ms",
                size as f64 / 1_048_576.0,
                init.as_secs_f64() * 1000.0,
                answered.as_secs_f64() * 1000.0,
            ),
            floor: "8 MB; 30 ms".into(),
            ratio: size as f64 / (8.0 * 1_048_576.0),
            goal: "size ratio ≤ 1.0; init ≤ 30 ms".into(),
            baseline: "—".into(),
        });
    }
}

/// (process start → first `invocation/next`, i.e. Lambda's init; → first invocation answered).
/// The sync function gets a resume of an unknown run (one read of the run log, then an error
/// answer); the API functions get `GET /api/v1/health`.
async fn init_time(bin: &std::path::Path, sync: bool) -> (Duration, Duration) {
    use axum::routing::{get, post};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (next_tx, mut next_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let event = serde_json::from_str::<serde_json::Value>(include_str!(
        "../../../../fixtures/apigw/put_settings.json"
    ))
    .unwrap();
    let mut health = event.clone();
    health["rawPath"] = "/api/v1/health".into();
    health["requestContext"]["http"]["path"] = "/api/v1/health".into();
    health["requestContext"]["http"]["method"] = "GET".into();
    health["body"] = serde_json::Value::Null;
    let body = if sync {
        r#"{"sync_type":"resume","sync_id":"01BENCH0000000000000000000"}"#.to_string()
    } else {
        health.to_string()
    };
    let served = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tx_err = tx.clone();
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            get(move || {
                let body = body.clone();
                let served = served.clone();
                let _ = next_tx.send(Instant::now());
                async move {
                    if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let deadline = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                        + 30_000)
                        .to_string();
                    axum::response::Response::builder()
                        .header("lambda-runtime-aws-request-id", "bench-1")
                        .header("lambda-runtime-deadline-ms", deadline)
                        .header(
                            "lambda-runtime-invoked-function-arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:bench",
                        )
                        .body(axum::body::Body::from(body))
                        .unwrap()
                }
            }),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(move || {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(Instant::now());
                    "{}"
                }
            }),
        )
        .route("/2018-06-01/runtime/init/error", post(|| async { "{}" }))
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(move || {
                let tx = tx_err.clone();
                async move {
                    let _ = tx.send(Instant::now());
                    "{}"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let start = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("ADMIN_TOKEN", "bench")
        .env("CUPID_API_KEY", "bench")
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten();
    let _ = child.kill().await;
    server.abort();
    let never = Duration::from_secs(10);
    let init = next_rx.try_recv().map(|t| t - start).unwrap_or(never);
    (init, done.map(|t| t - start).unwrap_or(never))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("invoke") {
        child_invoke(&args[1], &args[2]).await;
        return;
    }
    let mut rows = Vec::new();
    if args.first().map(String::as_str) == Some("reads") {
        let api = args
            .get(1)
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let token = args
            .get(2)
            .cloned()
            .unwrap_or_else(|| "local-admin-token".into());
        reads::reads(&mut rows, &api, &token).await;
        print_rows(
            &rows,
            args.iter()
                .position(|a| a == "--markdown")
                .and_then(|i| args.get(i + 1))
                .cloned(),
        );
        return;
    }
    let full = args.iter().any(|a| a == "--full");
    let markdown = args
        .iter()
        .position(|a| a == "--markdown")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--only rate|latency|writes|continuation|binaries` runs one group.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if run("rate") {
        eprintln!("bench: rate-bound scenarios");
        rate_bound(&mut rows, 100, 10.0, false).await;
        rate_bound(&mut rows, 100, 10.0, true).await;
        if full {
            rate_bound(&mut rows, 10_000, 10.0, false).await;
        }
    }
    if run("latency") {
        eprintln!("bench: latency-bound scenarios");
        // BENCH_LATENCY_N: a smaller N for a quick look (the issue's figure is 10,000).
        let n = env_u64("BENCH_LATENCY_N", 10_000);
        latency_bound(&mut rows, n, 50, 5).await;
        latency_bound(&mut rows, n, 50, 32).await;
    }
    if run("writes") {
        eprintln!("bench: writes");
        writes(&mut rows, 10_000).await;
    }
    if full && run("continuation") {
        eprintln!("bench: continuation");
        continuation(&mut rows, env_u64("BENCH_CONTINUATION_N", 100_000)).await;
    }
    if run("binaries") {
        eprintln!("bench: binaries");
        binaries(&mut rows).await;
    }
    print_rows(&rows, markdown);
}

fn print_rows(rows: &[Row], markdown: Option<String>) {
    let mut table = String::from(
        "| scenario | measured | floor / goal value | ratio | goal | baseline |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} | {} |\n",
            r.scenario, r.measured, r.floor, r.ratio, r.goal, r.baseline
        ));
    }
    println!("{table}");
    if let Some(path) = markdown {
        std::fs::write(&path, &table).expect("write results");
        eprintln!("bench: results written to {path}");
    }
}
