//! The sync engine against the DynamoDB API (moto_server) and the Cupid simulator.

use cupid_sim::{ChangeRequest, Faults, IdFault};
use cupid_sync::domain::run::{RunStatus, SyncRequest, SyncStatus, SyncType};
use cupid_sync::domain::time::Timestamp;
use cupid_sync::engine::Outcome;
use cupid_sync::ports::{Lease, PropertyStore, RunLog};
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
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.failures);
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
    let mut got: Vec<i64> = third.changes.iter().map(|c| c.hotel_id).collect();
    got.sort();
    let mut want = changed.clone();
    want.sort();
    assert_eq!(got, want);
    for c in &third.changes {
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
    let reason = |id: i64| {
        run.failures
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
        let (docs, _) = s.props.get_documents(&[id], "property").await.unwrap();
        assert!(docs.contains_key(&id), "document kept for {id}");
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
    assert!(
        s.lease
            .acquire("next", Duration::from_secs(5))
            .await
            .is_ok_and(|a| matches!(a, cupid_sync::domain::lease::Acquired::Granted { .. })),
        "lease released"
    );
}

#[tokio::test]
async fn one_run_at_a_time_and_a_killed_run_is_recovered() {
    let s = Stack::new(Options {
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    s.track_exercise_ids().await;
    // A run that "dies" holding the lease.
    let mut dead = cupid_sync::domain::run::SyncRun::new(
        "01DEADRUN".into(),
        SyncType::Scheduled,
        Timestamp(1_700_000_000),
    );
    dead.status = RunStatus::Running;
    s.runs.create(&dead).await.unwrap();
    assert!(matches!(
        s.lease
            .acquire("01DEADRUN", Duration::from_secs(2))
            .await
            .unwrap(),
        cupid_sync::domain::lease::Acquired::Granted { .. }
    ));

    match s
        .engine()
        .handle(SyncRequest::Scheduled {}, None)
        .await
        .unwrap()
    {
        Outcome::Skipped { reason } => assert!(reason.contains("01DEADRUN"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(s.sim.sim.stats().total, 0, "a refused sync touches nothing");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Completed);
    let dead = s.runs.get("01DEADRUN").await.unwrap().unwrap();
    assert_eq!(dead.status, RunStatus::Abandoned);
    assert!(dead.error_message.unwrap().contains(&run.sync_id));
}

#[tokio::test]
async fn a_resumed_run_covers_every_id_exactly_once() {
    let s = Stack::new(Options {
        rate_limit: 100.0,
        batch_size: 7,
        synthetic: 300,
        max_run: Duration::from_millis(600),
        // Pages of 11 records: batches straddle pages and resumes start mid-page.
        scan_page: 11,
        ..Default::default()
    })
    .await;
    let (ids, new) = s.track_synthetic(300).await;
    assert_eq!(new, 300, "BatchWriteItem chunked by 25");
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Completed);
    assert!(
        run.invocations >= 3,
        "continued across invocations: {}",
        run.invocations
    );
    assert_eq!(
        (run.total, run.counters.processed, run.counters.updated),
        (300, 300, 300)
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
    let sync_id = cupid_sync::domain::run::new_sync_id(1_800_000_000_000);
    let run = s
        .run_to_end(SyncRequest::Manual {
            sync_id,
            hotel_ids: Some(vec![ids[3], ids[4]]),
            dry_run: true,
        })
        .await;
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
    assert_eq!(run.changes[0].paths, vec!["hotel_name", "rating"]);
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

#[tokio::test]
async fn an_oversized_document_fails_clearly_and_keeps_the_previous_version() {
    use async_trait::async_trait;
    use cupid_sync::ports::{FetchError, Upstream};
    struct Huge;
    #[async_trait]
    impl Upstream for Huge {
        async fn fetch(
            &self,
            hotel_id: i64,
            _: &cupid_sync::domain::facet::Facet,
        ) -> Result<serde_json::Value, FetchError> {
            // ~1 MB of random letters: ~600 KB after compression.
            let mut x: u64 = hotel_id as u64;
            let noise: String = (0..1_000_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (b'a' + (x % 26) as u8) as char
                })
                .collect();
            Ok(serde_json::json!({"hotel_id": hotel_id, "description": noise}))
        }
    }
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    let sync_id = cupid_sync::domain::run::new_sync_id(1_800_000_000_000);
    let engine = s.engine_with(std::sync::Arc::new(Huge));
    let out = engine
        .handle(
            SyncRequest::Manual {
                sync_id,
                hotel_ids: Some(vec![ids[0]]),
                dry_run: false,
            },
            None,
        )
        .await
        .unwrap();
    let Outcome::Finished(run) = out else {
        panic!("{out:?}")
    };
    assert_eq!(run.counters.failed, 1);
    assert!(
        run.failures[0].reason.contains("400 KB"),
        "{}",
        run.failures[0].reason
    );
    let r = s.props.get_record(ids[0]).await.unwrap().unwrap();
    assert_eq!((r.data_version, r.sync_status), (1, SyncStatus::Failed));
}

#[tokio::test]
async fn duplicate_requested_ids_are_synced_once() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    let sync_id = cupid_sync::domain::run::new_sync_id(1_800_000_000_000);
    let run = s
        .run_to_end(SyncRequest::Manual {
            sync_id,
            hotel_ids: Some(vec![ids[0], ids[1], ids[0], ids[0]]),
            dry_run: false,
        })
        .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error_message);
    assert_eq!((run.total, run.counters.updated), (2, 2));
}

/// A store whose unchanged-property write fails as if DynamoDB were unreachable.
struct FailingTouch(std::sync::Arc<cupid_sync::adapters::dynamo::DynamoProperties>);

#[async_trait::async_trait]
impl PropertyStore for FailingTouch {
    async fn scan_tracked(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::TrackedPage> {
        self.0.scan_tracked(after, limit).await
    }
    async fn get_tracked(
        &self,
        ids: &[i64],
    ) -> cupid_sync::ports::PortResult<(
        Vec<cupid_sync::domain::run::Tracked>,
        cupid_sync::ports::Usage,
    )> {
        self.0.get_tracked(ids).await
    }
    async fn get_documents(
        &self,
        ids: &[i64],
        facet: &str,
    ) -> cupid_sync::ports::PortResult<(
        HashMap<i64, cupid_sync::ports::StoredDoc>,
        cupid_sync::ports::Usage,
    )> {
        self.0.get_documents(ids, facet).await
    }
    async fn write_property(
        &self,
        w: &cupid_sync::ports::PropertyWrite,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.write_property(w).await
    }
    async fn touch(
        &self,
        t: &cupid_sync::ports::Touch,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        Err(cupid_sync::ports::PortError::new(
            format!("UpdateItem touch hotel {}", t.hotel_id),
            cupid_sync::ports::PortErrorKind::Unavailable,
            "connection refused",
        ))
    }
    async fn mark(
        &self,
        m: &cupid_sync::ports::RecordMark,
    ) -> cupid_sync::ports::PortResult<cupid_sync::ports::Usage> {
        self.0.mark(m).await
    }
    async fn track(&self, ids: &[i64]) -> cupid_sync::ports::PortResult<usize> {
        self.0.track(ids).await
    }
    async fn untrack(&self, hotel_id: i64) -> cupid_sync::ports::PortResult<()> {
        self.0.untrack(hotel_id).await
    }
    async fn get_record(
        &self,
        hotel_id: i64,
    ) -> cupid_sync::ports::PortResult<Option<cupid_sync::domain::run::SyncRecord>> {
        self.0.get_record(hotel_id).await
    }
    async fn count_tracked(
        &self,
    ) -> cupid_sync::ports::PortResult<(u64, cupid_sync::ports::Usage)> {
        self.0.count_tracked().await
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
    let Outcome::Finished(run) = engine
        .handle(SyncRequest::Scheduled {}, None)
        .await
        .unwrap()
    else {
        panic!("not finished")
    };
    assert_eq!(run.status, RunStatus::Failed);
    let msg = run.error_message.clone().unwrap();
    assert!(
        msg.contains("UpdateItem touch hotel") && msg.contains("connection refused"),
        "{msg}"
    );
    assert_eq!(
        s.runs.get(&run.sync_id).await.unwrap().unwrap().status,
        RunStatus::Failed,
        "stored as failed"
    );
    assert!(
        matches!(
            s.lease
                .acquire("next", Duration::from_secs(5))
                .await
                .unwrap(),
            cupid_sync::domain::lease::Acquired::Granted { .. }
        ),
        "lease released"
    );
    assert_eq!(
        s.events.events.lock().unwrap().last().unwrap().detail_type,
        "SyncFailed"
    );
}

/// Writes a property document the way the engine does, at `version`, with `doc`'s content.
async fn put_document(s: &Stack, id: i64, version: u64, doc: serde_json::Value) {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    let c = cupid_sync::domain::facet::Facet::Property
        .canonical(doc)
        .unwrap();
    let z = cupid_sync::domain::document::compress(&c.bytes).unwrap();
    s.client
        .put_item()
        .table_name(&s.tables.documents)
        .item("hotel_id", AV::N(id.to_string()))
        .item("facet", AV::S("property".into()))
        .item("doc", AV::B(aws_sdk_dynamodb::primitives::Blob::new(z)))
        .item("data_version", AV::N(version.to_string()))
        .item("content_hash", AV::S(c.hash))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_write_interrupted_between_document_and_record_heals_and_a_foreign_write_is_refused() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    let (healed, foreign) = (ids[1], ids[2]);
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![healed, foreign],
        ..Default::default()
    });
    // `healed`: a previous run wrote the new document (v2) and died before the record update.
    put_document(&s, healed, 2, s.sim.sim.property(healed)).await;
    // `foreign`: someone else wrote different content at v2 behind our back.
    put_document(
        &s,
        foreign,
        2,
        serde_json::json!({"hotel_id": foreign, "hotel_name": "not ours"}),
    )
    .await;

    let run = s.sync().await;
    let r = s.props.get_record(healed).await.unwrap().unwrap();
    assert_eq!(
        (r.data_version, r.sync_status),
        (2, SyncStatus::Synced),
        "the interrupted write completed"
    );
    assert!(
        !run.failures.iter().any(|f| f.hotel_id == healed),
        "{:?}",
        run.failures
    );
    let f = run
        .failures
        .iter()
        .find(|f| f.hotel_id == foreign)
        .expect("the foreign write is a conflict");
    assert!(f.reason.contains("concurrently"), "{}", f.reason);
    assert_eq!(
        s.props
            .get_record(foreign)
            .await
            .unwrap()
            .unwrap()
            .data_version,
        1
    );
}
