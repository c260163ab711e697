//! Admin reads at scale: status, health and the logs list through `cargo lambda watch` with
//! N tracked ids and 5,000 runs in the log, p50/p95 over 200 calls each, and the read units
//! each call costs, computed from the sizes of the items it reads — beside the previous
//! design's reads (Scan-COUNT of the properties + every run of the index), measured where
//! moto can answer them and computed everywhere.
//!
//! `tests/stack.sh reads` starts an isolated stack (moto, simulator, watch) and runs
//! `bench reads <api> <token>`; `BENCH_READS_N=100,100000,1000000` picks the sizes. Leave the
//! work tree alone while it runs: `cargo lambda watch` restarts the functions on any change.

use super::Row;
use aws_sdk_dynamodb::types::{AttributeValue as AV, PutRequest, WriteRequest};
use cupid_sync::adapters::dynamo::{DynamoRunLog, DynamoStats};
use cupid_sync::adapters::tables;
use cupid_sync::config::Tables;
use cupid_sync::domain::run::{RunStatus, SyncRun, SyncStatus, SyncType};
use cupid_sync::domain::stats::StatusCounts;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::{RunLog, Stats};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CALLS: usize = 200;
const RUNS: u64 = 5_000;

fn tables_from_env() -> Tables {
    let v = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Tables {
        properties: v("PROPERTIES_TABLE", tables::PROPERTIES.default_name),
        documents: v("DOCUMENTS_TABLE", tables::DOCUMENTS.default_name),
        sync_logs: v("SYNC_LOGS_TABLE", tables::SYNC_LOGS.default_name),
        settings: v("SETTINGS_TABLE", tables::SETTINGS.default_name),
    }
}

/// Records `from..to` (synced, as after a sync), 25 per BatchWriteItem, 8 calls in flight, and
/// the counts moved accordingly.
async fn seed_properties(client: &aws_sdk_dynamodb::Client, t: &Tables, from: i64, to: i64) {
    let calls = (from..to).collect::<Vec<i64>>();
    let calls: Vec<Vec<i64>> = calls.chunks(25).map(|c| c.to_vec()).collect();
    futures::stream::iter(calls.into_iter().map(|ids| {
        let client = client.clone();
        let table = t.properties.clone();
        async move {
            let mut pending: Vec<WriteRequest> = ids
                .iter()
                .map(|id| {
                    let item = HashMap::from([
                        ("hotel_id".to_string(), AV::N(id.to_string())),
                        ("sync_status".to_string(), AV::S("synced".into())),
                        ("data_version".to_string(), AV::N("1".into())),
                        ("content_hash".to_string(), AV::S(format!("{id:064x}"))),
                        ("name".to_string(), AV::S(format!("Hotel {id}"))),
                    ]);
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            while !pending.is_empty() {
                let r = client
                    .batch_write_item()
                    .request_items(&table, pending.clone())
                    .send()
                    .await
                    .expect("seed records");
                pending = r
                    .unprocessed_items()
                    .and_then(|u| u.get(&table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    let stats = DynamoStats::new(client.clone(), t);
    let mut d = StatusCounts::default();
    d.add(SyncStatus::Synced, to - from);
    stats.add(&d).await.expect("count the seeded records");
}

/// Runs until the log holds `RUNS`, each with a few failures in detail items (as real runs).
async fn seed_runs(client: &aws_sdk_dynamodb::Client, t: &Tables) {
    let log = DynamoRunLog::new(client.clone(), t);
    let have = log.count().await.expect("count runs");
    let base = 1_700_000_000i64;
    let ids: Vec<u64> = (have..RUNS).collect();
    futures::stream::iter(ids.into_iter().map(|i| {
        let log = log.clone();
        async move {
            let at = Timestamp(base + i as i64 * 43_200);
            let mut r = SyncRun::new(
                cupid_sync::domain::run::new_sync_id(at.0 as u64 * 1000),
                SyncType::Scheduled,
                at,
            );
            log.create(&r, 1).await.expect("create run");
            r.status = RunStatus::Completed;
            r.completed_at = Some(Timestamp(at.0 + 600));
            r.total = 100;
            r.counters.processed = 100;
            r.counters.updated = 5;
            r.counters.unchanged = 95;
            log.save(&r, 1).await.expect("save run");
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latencies(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    path: &str,
) -> (Duration, Duration) {
    let mut v = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = http
            .get(format!("{api}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("call the API");
        let status = r.status();
        let _ = r.bytes().await;
        assert!(
            status.is_success() || status.as_u16() == 503,
            "{path}: {status}"
        );
        v.push(t.elapsed());
    }
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.95))
}

/// Read units of a strongly consistent read of `bytes` (GetItem), or an eventually consistent
/// one (Query on an index / Scan): 4 KB units, halved when eventual.
fn rcu(bytes: usize, eventual: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if eventual { units / 2.0 } else { units }
}

/// Bytes of an item as DynamoDB sizes it (attribute names + values), near enough.
fn item_bytes(item: &HashMap<String, AV>) -> usize {
    fn av(v: &AV) -> usize {
        match v {
            AV::S(s) => s.len(),
            AV::N(n) => n.len().div_ceil(2) + 1,
            AV::B(b) => b.as_ref().len(),
            AV::Bool(_) | AV::Null(_) => 1,
            AV::L(l) => 3 + l.iter().map(|x| av(x) + 1).sum::<usize>(),
            AV::M(m) => 3 + m.iter().map(|(k, x)| k.len() + av(x) + 1).sum::<usize>(),
            AV::Ss(s) => s.iter().map(|x| x.len()).sum(),
            AV::Ns(s) => s.iter().map(|x| x.len()).sum(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + av(v)).sum()
}

/// What one status call reads (health reads the same minus the lease and current run; the logs
/// list reads a page of 10 runs and the counts).
async fn modelled_reads(client: &aws_sdk_dynamodb::Client, t: &Tables) -> (f64, f64, f64) {
    let get = |key: &str| {
        let client = client.clone();
        let table = t.sync_logs.clone();
        let key = key.to_string();
        async move {
            client
                .get_item()
                .table_name(table)
                .key("sync_id", AV::S(key))
                .send()
                .await
                .ok()
                .and_then(|r| r.item)
                .map(|i| item_bytes(&i))
                .unwrap_or(0)
        }
    };
    let stats = rcu(get(tables::STATS_KEY).await, false);
    let lease = rcu(get(tables::LEASE_KEY).await, false);
    let page = client
        .query()
        .table_name(&t.sync_logs)
        .index_name(tables::RUNS_GSI)
        .key_condition_expression("log_kind = :k")
        .expression_attribute_values(":k", AV::S(tables::RUN_KIND.into()))
        .scan_index_forward(false)
        .limit(11)
        .send()
        .await
        .expect("query runs");
    let page_bytes: usize = page.items().iter().map(item_bytes).sum();
    let runs = rcu(page_bytes, true);
    let settings = rcu(1024, true);
    (
        stats + lease + runs + settings,
        stats + runs + settings,
        stats + runs,
    )
}

/// One Scan-COUNT of the properties table, as the previous design ran on every status call.
async fn scan_count(client: &aws_sdk_dynamodb::Client, t: &Tables) -> Duration {
    let started = Instant::now();
    let mut start = None;
    loop {
        let r = client
            .scan()
            .table_name(&t.properties)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan count");
        match r.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return started.elapsed(),
        }
    }
}

/// The previous design's status reads: a Scan-COUNT of every record and every run of the index.
fn baseline_rcu(n: u64, run_bytes: usize) -> f64 {
    rcu(n as usize * 120, true) + rcu(RUNS as usize * run_bytes, true)
}

pub async fn reads(rows: &mut Vec<Row>, api: &str, token: &str) {
    let sizes: Vec<u64> = std::env::var("BENCH_READS_N")
        .unwrap_or_else(|_| "100,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let client = integration::ddb().await;
    let t = tables_from_env();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let stats = DynamoStats::new(client.clone(), &t);
    eprintln!("bench reads: seeding {RUNS} runs");
    seed_runs(&client, &t).await;
    let mut first_p95: Option<[Duration; 3]> = None;
    for n in sizes {
        let have = stats.get().await.expect("counts").counts.tracked();
        if n > have {
            eprintln!("bench reads: seeding {} records (to {n})", n - have);
            let t0 = Instant::now();
            seed_properties(
                &client,
                &t,
                900_000_000 + have as i64,
                900_000_000 + n as i64,
            )
            .await;
            eprintln!("bench reads: seeded in {:.0} s", t0.elapsed().as_secs_f64());
        }
        let mut p95s = [Duration::ZERO; 3];
        let (status_rcu, health_rcu, logs_rcu) = modelled_reads(&client, &t).await;
        for (i, (name, path, units)) in [
            ("status", "/api/v1/admin/sync/status", status_rcu),
            ("health", "/api/v1/admin/sync/health", health_rcu),
            ("logs", "/api/v1/admin/sync/logs?limit=10", logs_rcu),
        ]
        .into_iter()
        .enumerate()
        {
            let (p50, p95) = latencies(&http, api, token, path).await;
            p95s[i] = p95;
            let growth = first_p95.map(|f| p95.as_secs_f64() / f[i].as_secs_f64().max(1e-9));
            rows.push(Row {
                scenario: format!("{name}, N={n} tracked, {RUNS} runs, {CALLS} calls through watch"),
                measured: format!(
                    "p50 {:.1} ms, p95 {:.1} ms; {units:.1} RCU per call (from item sizes)",
                    p50.as_secs_f64() * 1e3,
                    p95.as_secs_f64() * 1e3
                ),
                floor: "p95 at N=100".into(),
                ratio: growth.unwrap_or(1.0),
                goal: "p95 ≤ 1.5× N=100's; RCU constant".into(),
                baseline: if name == "status" {
                    let took = if n <= 100_000 {
                        format!("{:.1} s", scan_count(&client, &t).await.as_secs_f64())
                    } else {
                        "not run (minutes on moto)".into()
                    };
                    format!(
                        "previous design: {:.0} RCU per call (Scan-COUNT + every run); its Scan-COUNT alone on moto: {took}",
                        baseline_rcu(n, 2_000)
                    )
                } else {
                    "—".into()
                },
            });
        }
        first_p95.get_or_insert(p95s);
    }
}
