//! The sync engine against the DynamoDB API (moto_server) and the Cupid simulator.

use cupid_sim::{ChangeRequest, Faults, IdFault};
use cupid_sync::domain::run::{RunStatus, SyncStatus, SyncType};
use cupid_sync::domain::time::Timestamp;
use cupid_sync::engine::Outcome;
use cupid_sync::ports::{PropertyReader, RunLog};
use integration::{Options, Stack};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn first_sync_then_no_change_then_five_changes() {
    let s = Stack::new(Options {
        rate_limit: 100.0,
        max_concurrent: 5,
        ..Default::default()
    })
    .await;
    let ids = s.track_exercise_ids().await;

    let first = s.sync().await;
    assert_eq!(
        first.status,
        RunStatus::Completed,
        "{:?}",
        s.failures(&first).await
    );
    assert_eq!(
        (
            first.total,
            first.counters.updated,
            first.counters.document_writes
        ),
        (100, 100, 100)
    );
    for id in &ids {
        let r = s.props.get_record(*id).await.unwrap().unwrap();
        assert_eq!(
            (r.sync_status, r.data_version),
            (SyncStatus::Synced, 1),
            "hotel {id}"
        );
    }
    let stats = s.sim.sim.stats();
    assert!(
        stats.max_in_flight <= 5,
        "concurrency cap held: {}",
        stats.max_in_flight
    );
    assert!(
        stats.max_per_second <= 101,
        "rate limit held: {}",
        stats.max_per_second
    );

    let second = s.sync().await;
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(
        (
            second.counters.unchanged,
            second.counters.updated,
            second.counters.document_writes
        ),
        (100, 0, 0)
    );

    let changed: Vec<i64> = ids[10..15].to_vec();
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: changed.clone(),
        ..Default::default()
    });
    let third = s.sync().await;
    assert_eq!(
        (
            third.counters.updated,
            third.counters.document_writes,
            third.counters.unchanged
        ),
        (5, 5, 95)
    );
    let third_changes = s.changes(&third).await;
    let mut got: Vec<i64> = third_changes.iter().map(|c| c.hotel_id).collect();
    got.sort();
    let mut want = changed.clone();
    want.sort();
    assert_eq!(got, want);
    for c in &third_changes {
        assert_eq!(
            c.paths,
            vec!["hotel_name".to_string(), "rating".to_string()],
            "hotel {}",
            c.hotel_id
        );
        let r = s.props.get_record(c.hotel_id).await.unwrap().unwrap();
        assert_eq!(r.data_version, 2);
        assert!(r.name.unwrap().contains("renovated"));
    }
    assert_eq!(
        s.props
            .get_record(ids[0])
            .await
            .unwrap()
            .unwrap()
            .data_version,
        1
    );
    let ev = s.events.events.lock().unwrap();
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| e.detail_type == "SyncCompleted"));
    assert_eq!(ev[2].detail["updated_properties"], 5);
}

#[tokio::test]
async fn fault_matrix_gives_the_designed_outcome() {
    let s = Stack::new(Options {
        retries: 3,
        ..Default::default()
    })
    .await;
    let ids = s.track_exercise_ids().await;
    assert_eq!(s.sync().await.status, RunStatus::Completed);
    s.sim.sim.reset();
    let f = |kind: &str, times: u64| IdFault {
        kind: kind.into(),
        times,
        ..Default::default()
    };
    s.sim.sim.set_faults(Faults {
        retry_after_secs: 1,
        timeout_ms: 3_000,
        per_id: HashMap::from([
            (ids[0], f("500", 2)),       // retried, then fine
            (ids[1], f("429", 1)),       // waits Retry-After, then fine
            (ids[2], f("503", 0)),       // always down: failed after retries
            (ids[3], f("404", 0)),       // not_found, data kept
            (ids[4], f("malformed", 0)), // failed, data kept
            (ids[5], f("truncated", 0)), // failed, data kept
            (ids[6], f("timeout", 1)),   // retried, then fine
        ]),
        ..Default::default()
    });
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: ids[0..7].to_vec(),
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    let st = s.sim.sim.stats();
    assert_eq!(st.per_id[&ids[0]], 3);
    assert_eq!(st.per_id[&ids[1]], 2);
    assert_eq!(st.per_id[&ids[2]], 4, "1 try + 3 retries");
    assert_eq!(st.per_id[&ids[3]], 1, "no retry on 404");
    assert_eq!(st.per_id[&ids[4]], 1, "no retry on a malformed body");
    assert_eq!(st.per_id[&ids[6]], 2);
    let failures = s.failures(&run).await;
    let reason = |id: i64| {
        failures
            .iter()
            .find(|f| f.hotel_id == id)
            .map(|f| f.reason.clone())
    };
    assert!(reason(ids[2]).unwrap().contains("503"));
    assert!(reason(ids[4]).unwrap().contains("malformed"));
    assert!(reason(ids[5]).unwrap().contains("malformed"));
    assert_eq!(
        (
            run.counters.failed,
            run.counters.not_found,
            run.counters.updated
        ),
        (3, 1, 3)
    );
    for (id, status) in [
        (ids[2], SyncStatus::Failed),
        (ids[3], SyncStatus::NotFound),
        (ids[4], SyncStatus::Failed),
    ] {
        let r = s.props.get_record(id).await.unwrap().unwrap();
        assert_eq!(r.sync_status, status);
        assert_eq!(r.data_version, 1, "previous data kept for {id}");
        assert!(r.content_hash.is_some() && r.last_error.is_some());
        assert!(
            s.document(id, "property").await.is_some(),
            "document kept for {id}"
        );
    }
    for id in [ids[0], ids[1], ids[6]] {
        assert_eq!(
            s.props.get_record(id).await.unwrap().unwrap().data_version,
            2
        );
    }
}

#[tokio::test]
async fn a_refused_key_aborts_the_run_and_writes_nothing() {
    let s = Stack::new(Options {
        key: "wrong-key",
        ..Default::default()
    })
    .await;
    let ids = s.track_exercise_ids().await;
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error_message
            .as_deref()
            .unwrap()
            .contains("CUPID_API_KEY"),
        "{:?}",
        run.error_message
    );
    // The first refusal stops every request not yet sent: at most one per concurrency slot.
    let sent = s.sim.sim.stats().total;
    assert!(
        (1..=8).contains(&sent),
        "{sent} requests; at most max_concurrent (8)"
    );
    for id in &ids {
        assert_eq!(
            s.props.get_record(*id).await.unwrap().unwrap().sync_status,
            SyncStatus::Pending
        );
    }
    assert_eq!(s.events.events.lock().unwrap()[0].detail_type, "SyncFailed");
    assert!(s.lease_free().await, "lease released");
}

#[tokio::test]
async fn one_run_at_a_time_and_a_killed_run_is_recovered() {
    // A short lease, so the dead run's expires soon; not shorter: the live run renews every
    // sixth of it, through moto shared with the tests running beside this one.
    let s = Stack::new(Options {
        lease_ttl: Duration::from_secs(4),
        ..Default::default()
    })
    .await;
    s.track_exercise_ids().await;
    // A run that "dies" holding the lease.
    s.leave_dead_run(
        "01DEADRUN",
        SyncType::Scheduled,
        Timestamp(1_700_000_000),
        Duration::from_secs(4),
    )
    .await;

    match s.engine().handle(s.next_slot(), None).await.unwrap() {
        Outcome::Skipped { reason } => assert!(reason.contains("01DEADRUN"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(s.sim.sim.stats().total, 0, "a refused sync touches nothing");

    tokio::time::sleep(Duration::from_millis(4100)).await;
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Completed);
    let dead = s.runs.get("01DEADRUN").await.unwrap().unwrap();
    assert_eq!(dead.status, RunStatus::Abandoned);
    assert!(dead.error_message.unwrap().contains(&run.sync_id));
}

#[tokio::test]
async fn a_resumed_run_covers_every_id_exactly_once() {
    let s = Stack::new(Options {
        rate_limit: 50.0,
        batch_size: 7,
        synthetic: 300,
        max_run: Duration::from_millis(4000),
        // Properties stop starting 2 s before the end, so what is in flight (fetches, then
        // moto's one-at-a-time writes, shared with the tests running beside this one)
        // finishes before the hand-over (a property cut mid-write would be fetched again).
        margin: Duration::from_millis(2000),
        // Pages of 11 records: batches straddle pages and resumes start mid-page.
        scan_page: 11,
        ..Default::default()
    })
    .await;
    let (ids, new) = s.track_synthetic(300).await;
    assert_eq!(new, 300, "BatchWriteItem chunked by 25");
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error_message);
    assert!(
        run.invocations >= 3,
        "continued across invocations: {}",
        run.invocations
    );
    assert_eq!(
        (run.total, run.counters.processed, run.counters.updated),
        (300, 300, 300),
        "{:?}",
        s.failures(&run).await
    );
    let st = s.sim.sim.stats();
    assert_eq!(st.total, 300);
    assert!(
        ids.iter().all(|id| st.per_id.get(id) == Some(&1)),
        "every id fetched exactly once"
    );
}

/// Small batches do not cap concurrency: the next batches' requests take the permits the
/// current batch frees, so with latency every one of `max_concurrent` slots stays busy.
#[tokio::test]
async fn small_batches_still_use_every_concurrency_slot() {
    let s = Stack::new(Options {
        rate_limit: 1000.0,
        max_concurrent: 8,
        batch_size: 3,
        synthetic: 48,
        ..Default::default()
    })
    .await;
    let (ids, _) = s.track_synthetic(48).await;
    s.sim.sim.set_faults(Faults {
        latency_ms: 200,
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(
        (run.status, run.counters.updated),
        (RunStatus::Completed, 48)
    );
    let st = s.sim.sim.stats();
    assert_eq!(st.max_in_flight, 8, "all 8 slots used across batches of 3");
    assert!(ids.iter().all(|id| st.per_id.get(id) == Some(&1)));
}

#[tokio::test]
async fn dry_run_records_the_diff_and_writes_nothing() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![ids[3]],
        ..Default::default()
    });
    let run = s.manual(Some(vec![ids[3], ids[4]]), true).await;
    assert!(run.dry_run);
    assert_eq!(
        (
            run.total,
            run.counters.updated,
            run.counters.unchanged,
            run.counters.document_writes
        ),
        (2, 1, 1, 0)
    );
    assert_eq!(s.changes(&run).await[0].paths, vec!["hotel_name", "rating"]);
    assert_eq!(
        s.props
            .get_record(ids[3])
            .await
            .unwrap()
            .unwrap()
            .data_version,
        1
    );
}

/// Reviews of `n` entries of random text (~2.5 KB each), newest first.
fn many_reviews(seed: u64, n: usize) -> serde_json::Value {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    let mut text = |len: usize| -> String {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'a' + (x % 26) as u8) as char
            })
            .collect()
    };
    serde_json::Value::Array(
        (0..n)
            .map(|i| {
                serde_json::json!({
                    "review_id": 5_000_000_000u64 + i as u64,
                    "average_score": 7,
                    "date": format!("2025-{:02}-{:02}T00:00:00Z", 1 + i % 12, 1 + i % 28),
                    "headline": text(40),
                    "pros": text(1200),
                    "cons": text(1200),
                })
            })
            .collect(),
    )
}

/// Serves the simulator's property and a reviews body it is told.
struct BigReviews {
    inner: std::sync::Arc<dyn cupid_sync::ports::Upstream>,
    reviews: std::sync::Mutex<serde_json::Value>,
}

#[async_trait::async_trait]
impl cupid_sync::ports::Upstream for BigReviews {
    async fn fetch(
        &self,
        hotel_id: i64,
        facet: &cupid_sync::domain::facet::Facet,
    ) -> Result<serde_json::Value, cupid_sync::ports::FetchError> {
        match facet {
            cupid_sync::domain::facet::Facet::Reviews(_) => {
                Ok(self.reviews.lock().unwrap().clone())
            }
            _ => self.inner.fetch(hotel_id, facet).await,
        }
    }
}

#[tokio::test]
async fn a_5_mb_reviews_document_is_stored_in_parts_and_read_back_equal() {
    use cupid_sync::domain::facet::Facet;
    let s = Stack::new(Options {
        review_count: 1000,
        ..Default::default()
    })
    .await;
    let ids = s.track_exercise_ids().await;
    let id = ids[0];
    let big = many_reviews(7, 2000);
    let raw_len = serde_json::to_vec(&big).unwrap().len();
    assert!(raw_len > 5_000_000, "{raw_len} bytes");
    let up = std::sync::Arc::new(BigReviews {
        inner: s.upstream.clone(),
        reviews: std::sync::Mutex::new(big.clone()),
    });
    let engine = s.engine_with(up.clone());
    let req = s.reserve_manual(Some(vec![id]), false).await;
    let Outcome::Finished(run) = engine.handle(req, None).await.unwrap() else {
        panic!("the run did not finish")
    };
    assert_eq!(
        run.status,
        RunStatus::Completed,
        "{:?}",
        s.failures(&run).await
    );
    let want = Facet::Reviews(1000).canonical(big).unwrap();
    let doc = s.document(id, "reviews").await.unwrap();
    let parts = doc.parts;
    assert!(
        parts >= 3,
        "~{} compressed bytes in {parts} parts",
        doc.compressed.len()
    );
    assert_eq!(doc.content_hash, want.hash);
    assert_eq!(
        cupid_sync::domain::document::decompress(&doc.compressed).unwrap(),
        want.bytes,
        "served back equal to its canonical form"
    );
    // Every part is a write of its own (moto's ConsumedCapacity is not DynamoDB's per-KB
    // figure, so units are checked on the in-memory store's engine case instead).
    assert!(run.counters.consumed_wcu > 0.0);
    // Through the API too (newest first, paged).
    let (st, body) = integration::api_call(
        &s,
        "GET",
        &format!("/api/v1/properties/{id}/reviews?limit=3"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let stored: serde_json::Value = serde_json::from_slice(&want.bytes).unwrap();
    let n = stored.as_array().map(|a| a.len()).unwrap_or(0);
    assert!(n >= 1000, "{n} reviews stored");
    assert_eq!(body["data"]["total"], n, "{}", body["data"]["total"]);
    assert_eq!(body["data"]["items"].as_array().unwrap().len(), 3);
    // Two small versions later the first slot is rewritten with one part: its old parts go.
    for seed in [8, 10] {
        *up.reviews.lock().unwrap() = many_reviews(seed, 3);
        let req = s.reserve_manual(Some(vec![id]), false).await;
        let out = engine.handle(req, None).await.unwrap();
        let Outcome::Finished(run) = out else {
            panic!("{out:?}")
        };
        assert_eq!(run.counters.updated, 1, "{:?}", s.failures(&run).await);
    }
    let doc = s.document(id, "reviews").await.unwrap();
    assert_eq!(doc.parts, 1);
    for p in 1..parts {
        for slot in ["a", "b"] {
            let (left, _) = s
                .props
                .get_document(id, &format!("reviews@{slot}~{p}"))
                .await
                .unwrap();
            assert!(left.is_none(), "part {p} of slot {slot} left behind");
        }
    }
}

#[tokio::test]
async fn duplicate_requested_ids_are_synced_once() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    let run = s
        .manual(Some(vec![ids[0], ids[1], ids[0], ids[0]]), false)
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error_message);
    assert_eq!((run.total, run.counters.updated), (2, 2));
}

/// A store whose unchanged-property write fails as if DynamoDB were unreachable.
struct FailingTouch(std::sync::Arc<cupid_sync::adapters::dynamo::DynamoProperties>);

#[async_trait::async_trait]
impl cupid_sync::ports::PropertyWriter for FailingTouch {
    async fn claim(
        &self,
        hotel_id: i64,
        expected_version: u64,
        fence: u64,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.claim(hotel_id, expected_version, fence).await
    }
    async fn put_document(
        &self,
        d: &cupid_sync::ports::DocWrite,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::DocPut> {
        self.0.put_document(d).await
    }
    async fn remove_parts(
        &self,
        hotel_id: i64,
        key: &str,
        parts: &[u32],
        fence: u64,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.remove_parts(hotel_id, key, parts, fence).await
    }
    async fn commit(
        &self,
        w: &cupid_sync::ports::PropertyWrite,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.commit(w).await
    }
    async fn record_outcome(
        &self,
        o: &cupid_sync::ports::RecordOutcome,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        Err(cupid_sync::ports::PortError::new(
            format!("UpdateItem record hotel {}", o.hotel_id),
            cupid_sync::ports::PortErrorKind::Unavailable,
            "connection refused",
        ))
    }
    async fn put_held(
        &self,
        p: &cupid_sync::ports::HeldPayload,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.put_held(p).await
    }
}

#[tokio::test]
async fn a_dependency_failure_mid_run_closes_the_run_and_frees_the_lease() {
    let s = Stack::new(Options::default()).await;
    s.track_exercise_ids().await;
    s.sync().await;
    let engine = s.engine_with_parts(
        s.upstream.clone(),
        std::sync::Arc::new(FailingTouch(s.props.clone())),
    );
    let Outcome::Finished(run) = engine.handle(s.next_slot(), None).await.unwrap() else {
        panic!("not finished")
    };
    assert_eq!(run.status, RunStatus::Failed);
    let msg = run.error_message.clone().unwrap();
    assert!(
        msg.contains("UpdateItem record hotel") && msg.contains("connection refused"),
        "{msg}"
    );
    assert_eq!(
        s.runs.get(&run.sync_id).await.unwrap().unwrap().status,
        RunStatus::Failed,
        "stored as failed"
    );
    assert!(s.lease_free().await, "lease released");
    assert_eq!(
        s.events.events.lock().unwrap().last().unwrap().detail_type,
        "SyncFailed"
    );
}

/// Writes a property document into `hotel`'s free slot, as an invocation with token `fence`
/// that died before its commit would have left it.
async fn leave_document(s: &Stack, id: i64, fence: u64, doc: serde_json::Value) -> String {
    use cupid_sync::ports::{DocWrite, PropertyWriter};
    let rec = s.props.get_record(id).await.unwrap().unwrap();
    let state = rec.facet_states()["property"].clone();
    let c = cupid_sync::domain::facet::Facet::Property
        .canonical(doc)
        .unwrap();
    let key = cupid_sync::domain::run::FacetState::doc_key(
        "property",
        Some(cupid_sync::domain::run::FacetState::next_slot(Some(&state))),
    );
    s.props
        .put_document(&DocWrite {
            hotel_id: id,
            key: key.clone(),
            part: 0,
            parts: 1,
            data_version: rec.data_version + 1,
            content_hash: c.hash,
            compressed: cupid_sync::domain::document::compress(&c.bytes).unwrap(),
            fence,
            sync_id: "01DIEDMIDWAY".into(),
            now: cupid_sync::domain::time::Timestamp(1_800_000_000),
        })
        .await
        .unwrap();
    key
}

/// A crash between the documents and the record leaves the record on the old version (readers
/// see old, consistent data); the next run, even after upstream changed again, converges. A
/// document written by a newer token is never overwritten: the older invocation stops.
#[tokio::test]
async fn a_crash_between_document_and_record_converges_and_a_newer_write_is_refused() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    let (healed, foreign) = (ids[1], ids[2]);
    let before = s.document(healed, "property").await.unwrap();
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![healed],
        ..Default::default()
    });
    // An older invocation wrote the new content into the free slot and died before committing.
    leave_document(&s, healed, 1, s.sim.sim.property(healed)).await;
    let r = s.props.get_record(healed).await.unwrap().unwrap();
    assert_eq!(r.data_version, 1, "not committed");
    assert_eq!(
        s.document(healed, "property").await.unwrap(),
        before,
        "readers still see the committed version"
    );
    // Upstream changes again before the next run: the old protocol wedged here for good.
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![healed],
        ..Default::default()
    });
    let run = s.sync().await;
    let failures = s.failures(&run).await;
    assert!(
        !failures.iter().any(|f| f.hotel_id == healed),
        "{:?}",
        failures
    );
    let r = s.props.get_record(healed).await.unwrap().unwrap();
    assert_eq!((r.data_version, r.sync_status), (2, SyncStatus::Synced));
    let served = s.document(healed, "property").await.unwrap();
    let want = cupid_sync::domain::facet::Facet::Property
        .canonical(s.sim.sim.property(healed))
        .unwrap();
    assert_eq!(
        served.content_hash, want.hash,
        "converged to upstream's current content"
    );

    // A newer token wrote `foreign`'s free slot: our write is refused and the run stops.
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![foreign],
        ..Default::default()
    });
    let key = leave_document(
        &s,
        foreign,
        u64::MAX / 2,
        serde_json::json!({"hotel_id": foreign, "hotel_name": "not ours"}),
    )
    .await;
    // The stale invocation stops at once with an error, so the platform retries its event.
    let out = s.engine().handle(s.next_slot(), None).await;
    assert!(
        matches!(&out, Err(cupid_sync::engine::EngineError::LeaseLost { .. })),
        "{out:?}"
    );
    let (doc, _) = s.props.get_document(foreign, &key).await.unwrap();
    assert_eq!(doc.unwrap().data_version, 2, "the newer write stands");
    assert_eq!(
        s.props
            .get_record(foreign)
            .await
            .unwrap()
            .unwrap()
            .data_version,
        1,
        "not committed by the stale invocation"
    );
}
