//! One contract, two stores: every case runs against the in-memory store and against DynamoDB
//! (moto), so the fake the simulation trusts cannot drift from the real protocol.

use cupid_sync::domain::lease::{LeaseRequest, Refused};
use cupid_sync::domain::run::{
    Change, FacetState, RunDetail, RunStatus, SyncRun, SyncStatus, SyncType,
};
use cupid_sync::domain::settings::{SettingKey, SettingValue};
use cupid_sync::domain::stats::StatusCounts;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::*;
use integration::contract;
use integration::kit::Kit;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

fn take(owner: &str, handoff: bool) -> LeaseRequest {
    LeaseRequest::Take {
        owner: owner.into(),
        handoff,
    }
}

async fn lease_rules(k: Kit) {
    let n = k.name;
    let l = &k.lease;
    assert_eq!(l.current().await.unwrap(), None, "{n}");
    let a = l.apply(&take("a", false), TTL).await.unwrap().unwrap();
    assert_eq!((a.owner.as_deref(), a.fence), (Some("a"), 1), "{n}");
    assert!(
        matches!(l.apply(&take("b", false), TTL).await.unwrap(), Err(Refused::Held { ref owner, .. }) if owner == "a"),
        "{n}: a live lease refuses a take"
    );
    let hb = LeaseRequest::Heartbeat {
        owner: "a".into(),
        fence: 1,
    };
    assert!(l.apply(&hb, TTL).await.unwrap().is_ok(), "{n}");
    // Expiry: b takes over, a becomes an orphan and is fenced out.
    k.clock.advance(TTL + Duration::from_millis(1));
    let b = l.apply(&take("b", true), TTL).await.unwrap().unwrap();
    assert_eq!(
        (b.fence, b.handoff, b.orphans.clone()),
        (2, true, vec!["a".to_string()]),
        "{n}"
    );
    assert_eq!(
        l.apply(&hb, TTL).await.unwrap(),
        Err(Refused::Fenced),
        "{n}"
    );
    // The reserved run is picked up once, with the reserved token.
    let pick = LeaseRequest::Pickup {
        owner: "b".into(),
        from: Some(2),
    };
    let p = l.apply(&pick, TTL).await.unwrap().unwrap();
    assert_eq!((p.fence, p.handoff), (3, false), "{n}");
    assert!(
        l.apply(&pick, TTL).await.unwrap().is_err(),
        "{n}: a duplicate pickup is refused"
    );
    let forget = LeaseRequest::ForgetOrphan {
        owner: "b".into(),
        fence: 3,
        orphan: "a".into(),
    };
    assert!(
        l.apply(&forget, TTL)
            .await
            .unwrap()
            .unwrap()
            .orphans
            .is_empty(),
        "{n}"
    );
    // Hand over, pick up, release.
    let ho = LeaseRequest::HandOver {
        owner: "b".into(),
        fence: 3,
    };
    assert!(l.apply(&ho, TTL).await.unwrap().unwrap().handoff, "{n}");
    let resume = LeaseRequest::Pickup {
        owner: "b".into(),
        from: Some(3),
    };
    let r = l.apply(&resume, TTL).await.unwrap().unwrap();
    assert_eq!(r.fence, 4, "{n}");
    let stale_release = LeaseRequest::Release {
        owner: "b".into(),
        fence: 3,
    };
    assert_eq!(
        l.apply(&stale_release, TTL).await.unwrap(),
        Err(Refused::Fenced),
        "{n}"
    );
    let release = LeaseRequest::Release {
        owner: "b".into(),
        fence: 4,
    };
    let free = l.apply(&release, TTL).await.unwrap().unwrap();
    assert_eq!((free.owner, free.fence), (None, 4), "{n}");
    let c = l.apply(&take("c", false), TTL).await.unwrap().unwrap();
    assert_eq!(
        (c.fence, c.orphans.len()),
        (5, 0),
        "{n}: a released run is no orphan"
    );
    assert_eq!(
        l.current().await.unwrap().unwrap(),
        c,
        "{n}: what is stored is what was granted"
    );
}
contract!(lease_follows_the_domain_rules_in_both_stores, lease_rules);

async fn concurrent_takes(k: Kit) {
    let n = k.name;
    let tries = (0..10).map(|i| {
        let l = k.lease.clone();
        async move { l.apply(&take(&format!("run{i}"), true), TTL).await }
    });
    let granted = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(_))))
        .count();
    assert_eq!(granted, 1, "{n}: exactly one of ten concurrent takes wins");
}
contract!(one_of_many_concurrent_takes_wins, concurrent_takes);

fn write(id: i64, expected: u64, fence: u64, hash: &str) -> PropertyWrite {
    let mut facets = BTreeMap::new();
    facets.insert(
        "property".to_string(),
        FacetState {
            hash: hash.into(),
            version: expected + 1,
            slot: Some("a".into()),
            raw: Some(format!("raw-{hash}")),
        },
    );
    PropertyWrite {
        hotel_id: id,
        expected_version: expected,
        facets,
        summary: None,
        status: SyncStatus::Synced,
        error: None,
        sync_id: format!("run{fence}"),
        now: Timestamp(1_800_000_000),
        fence,
    }
}

fn outcome(id: i64, fence: u64) -> RecordOutcome {
    RecordOutcome {
        hotel_id: id,
        status: SyncStatus::Synced,
        error: None,
        sync_id: format!("run{fence}"),
        now: Timestamp(1_800_000_000),
        fence,
        quarantine: None,
    }
}

fn kind<T: std::fmt::Debug>(r: PortResult<T>) -> Option<PortErrorKind> {
    r.err().map(|e| e.kind)
}

async fn fenced_records(k: Kit) {
    let n = k.name;
    let w = &k.writer;
    assert_eq!(k.tracking.track(&[1, 2, 3]).await.unwrap().new, 3, "{n}");
    // The write protocol: claim, then commit with the same token.
    w.claim(1, 0, 5).await.unwrap();
    w.commit(&write(1, 0, 5, "h1")).await.unwrap();
    let r = k.reader.get_record(1).await.unwrap().unwrap();
    assert_eq!(
        (r.data_version, r.fence, r.sync_status),
        (1, Some(5), SyncStatus::Synced),
        "{n}"
    );
    assert_eq!(r.facets["property"].slot.as_deref(), Some("a"), "{n}");
    assert_eq!(r.facets["property"].raw.as_deref(), Some("raw-h1"), "{n}");
    assert_eq!(r.content_hash.as_deref(), Some("h1"), "{n}");
    let (tracked, _) = k.reader.get_tracked(&[1]).await.unwrap();
    assert_eq!(
        tracked[0].changed_by.as_deref(),
        Some(write(1, 0, 5, "h1").sync_id.as_str()),
        "{n}: a commit records the run that changed the data"
    );
    // A repeated write (an SDK retry of a request that had applied) succeeds.
    w.claim(1, 1, 5).await.unwrap();
    w.commit(&write(1, 0, 5, "h1")).await.unwrap();
    assert_eq!(
        k.reader.get_record(1).await.unwrap().unwrap().data_version,
        1,
        "{n}"
    );
    // An older token is fenced out of every record write.
    assert_eq!(
        kind(w.claim(1, 1, 4).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    assert_eq!(
        kind(w.record_outcome(&outcome(1, 4)).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    assert_eq!(
        kind(w.commit(&write(1, 1, 4, "x")).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    // A moved version is a conflict; so is a commit without a claim.
    assert_eq!(
        kind(w.claim(1, 0, 6).await),
        Some(PortErrorKind::Conflict),
        "{n}"
    );
    assert_eq!(
        kind(w.commit(&write(2, 0, 6, "x")).await),
        Some(PortErrorKind::Conflict),
        "{n}"
    );
    // A claim by a newer token makes the older claimer's commit fail.
    w.claim(2, 0, 7).await.unwrap();
    w.claim(2, 0, 8).await.unwrap();
    assert_eq!(
        kind(w.commit(&write(2, 0, 7, "x")).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    w.commit(&write(2, 0, 8, "h2")).await.unwrap();
    // Untracking sticks: every sync write to the record is refused.
    w.claim(3, 0, 9).await.unwrap();
    k.tracking.untrack(3).await.unwrap();
    assert_eq!(
        kind(w.commit(&write(3, 0, 9, "x")).await),
        Some(PortErrorKind::Untracked),
        "{n}"
    );
    assert_eq!(
        kind(w.claim(3, 0, 10).await),
        Some(PortErrorKind::Untracked),
        "{n}"
    );
    assert_eq!(
        kind(w.record_outcome(&outcome(3, 10)).await),
        Some(PortErrorKind::Untracked),
        "{n}"
    );
    assert_eq!(
        k.reader.get_record(3).await.unwrap().unwrap().sync_status,
        SyncStatus::Untracked,
        "{n}"
    );
    // An unknown id is never created by a sync write.
    assert_eq!(
        kind(w.record_outcome(&outcome(99, 10)).await),
        Some(PortErrorKind::Untracked),
        "{n}"
    );
    assert!(k.reader.get_record(99).await.unwrap().is_none(), "{n}");
    assert_eq!(
        kind(k.tracking.untrack(99).await),
        Some(PortErrorKind::NotFound),
        "{n}"
    );
    // Tracking again.
    let again = k.tracking.track(&[3, 4]).await.unwrap();
    assert_eq!((again.new, again.retracked), (1, 1), "{n}");
}
contract!(
    record_writes_are_fenced_and_untracking_sticks,
    fenced_records
);

fn doc(key: &str, fence: u64, hash: &str) -> DocWrite {
    DocWrite {
        hotel_id: 1,
        key: key.into(),
        part: 0,
        parts: 1,
        data_version: 1,
        content_hash: hash.into(),
        compressed: vec![1, 2, 3],
        fence,
        sync_id: "s".into(),
        now: Timestamp(1_800_000_000),
    }
}

async fn fenced_documents(k: Kit) {
    let n = k.name;
    let w = &k.writer;
    w.put_document(&doc("property@a", 5, "h5")).await.unwrap();
    w.put_document(&doc("property@a", 5, "h5")).await.unwrap();
    assert_eq!(
        kind(w.put_document(&doc("property@a", 4, "h4")).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    w.put_document(&doc("property@b", 4, "h4")).await.unwrap();
    w.put_document(&doc("property@a", 6, "h6")).await.unwrap();
    let (d, _) = k.reader.get_document(1, "property@a").await.unwrap();
    let d = d.unwrap();
    assert_eq!(
        (d.content_hash.as_str(), d.compressed.as_slice()),
        ("h6", &[1u8, 2, 3][..]),
        "{n}"
    );
    assert!(
        k.reader
            .get_document(1, "property@c")
            .await
            .unwrap()
            .0
            .is_none(),
        "{n}"
    );
}
contract!(document_writes_are_fenced, fenced_documents);

/// Part `part` of `parts` of version `v` (its bytes: `[v, part]`).
fn part(key: &str, v: u64, part: u32, parts: u32, fence: u64) -> DocWrite {
    DocWrite {
        part,
        parts,
        data_version: v,
        content_hash: format!("h{v}"),
        compressed: vec![v as u8, part as u8],
        ..doc(key, fence, "")
    }
}

async fn documents_in_parts(k: Kit) {
    let n = k.name;
    let w = &k.writer;
    // Version 1 in four parts, head first: nothing stale yet.
    let head = w
        .put_document(&part("reviews@a", 1, 0, 4, 2))
        .await
        .unwrap();
    assert!(head.stale.is_empty(), "{n}");
    for p in 1..4 {
        w.put_document(&part("reviews@a", 1, p, 4, 2))
            .await
            .unwrap();
    }
    let (d, _) = k.reader.get_whole_document(1, "reviews@a").await.unwrap();
    let d = d.unwrap();
    assert_eq!(
        (d.parts, d.compressed.clone()),
        (4, vec![1, 0, 1, 1, 1, 2, 1, 3]),
        "{n}"
    );
    // A crashed write of version 2 (head and part 1 of three): a reader sees no mix.
    w.put_document(&part("reviews@a", 2, 0, 3, 3))
        .await
        .unwrap();
    w.put_document(&part("reviews@a", 2, 1, 3, 3))
        .await
        .unwrap();
    assert_eq!(
        kind(k.reader.get_whole_document(1, "reviews@a").await),
        Some(PortErrorKind::Conflict),
        "{n}: part 2 is still version 1"
    );
    // Version 3 in two parts: the head names parts 2 and 3 as stale (left by both earlier
    // writes), removing them leaves exactly the new document.
    let head = w
        .put_document(&part("reviews@a", 3, 0, 2, 4))
        .await
        .unwrap();
    assert_eq!(head.stale, [2, 3], "{n}");
    w.put_document(&part("reviews@a", 3, 1, 2, 4))
        .await
        .unwrap();
    w.remove_parts(1, "reviews@a", &head.stale, 4)
        .await
        .unwrap();
    w.remove_parts(1, "reviews@a", &head.stale, 4)
        .await
        .unwrap();
    let (d, _) = k.reader.get_whole_document(1, "reviews@a").await.unwrap();
    assert_eq!(d.unwrap().compressed, vec![3, 0, 3, 1], "{n}");
    for p in [2, 3] {
        let (gone, _) = k
            .reader
            .get_document(1, &format!("reviews@a~{p}"))
            .await
            .unwrap();
        assert!(gone.is_none(), "{n}: part {p} removed");
    }
    // A one-part rewrite names the last part of version 3; removed parts are forgotten; an
    // older token can neither write a part nor remove one.
    let head = w
        .put_document(&part("reviews@a", 4, 0, 1, 5))
        .await
        .unwrap();
    assert_eq!(head.stale, [1], "{n}");
    w.remove_parts(1, "reviews@a", &head.stale, 5)
        .await
        .unwrap();
    let head = w
        .put_document(&part("reviews@a", 5, 0, 1, 5))
        .await
        .unwrap();
    assert_eq!(head.stale, Vec::<u32>::new(), "{n}");
    assert_eq!(
        kind(
            w.put_document(&part("reviews@a", 4, 0, 2, 3))
                .await
                .map(|_| ())
        ),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
    assert_eq!(
        kind(w.remove_parts(1, "reviews@a", &[1], 4).await),
        Some(PortErrorKind::Fenced),
        "{n}"
    );
}
contract!(
    documents_in_parts_join_and_stale_parts_go,
    documents_in_parts
);

async fn run_log(k: Kit) {
    let n = k.name;
    let mut a = SyncRun::new("01A".into(), SyncType::Manual, Timestamp(1_800_000_000));
    k.runs.create(&a, 3).await.unwrap();
    assert_eq!(
        kind(k.runs.create(&a, 3).await),
        Some(PortErrorKind::Conflict),
        "{n}"
    );
    a.status = RunStatus::Running;
    a.skip = vec![5, 9];
    a.cursor = Some(4);
    k.runs.save(&a, 4).await.unwrap();
    a.status = RunStatus::Completed;
    assert_eq!(
        kind(k.runs.save(&a, 3).await),
        Some(PortErrorKind::Fenced),
        "{n}: an older token cannot save"
    );
    let got = k.runs.get("01A").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.cursor, got.skip.clone()),
        (RunStatus::Running, Some(4), vec![5, 9]),
        "{n}"
    );
    let ghost = SyncRun::new("01Z".into(), SyncType::Manual, Timestamp(1_800_000_000));
    assert_eq!(
        kind(k.runs.save(&ghost, 9).await),
        Some(PortErrorKind::NotFound),
        "{n}: save never creates"
    );
    let b = SyncRun::new("01B".into(), SyncType::Scheduled, Timestamp(1_800_000_100));
    k.runs.create(&b, 5).await.unwrap();
    let (page, next) = k.runs.list(10, RunsFrom::Offset(0)).await.unwrap();
    assert_eq!(next, None, "{n}: one page holds both");
    assert_eq!(
        page.iter().map(|r| r.sync_id.as_str()).collect::<Vec<_>>(),
        ["01B", "01A"],
        "{n}"
    );
    assert_eq!(
        k.stats.get().await.unwrap().runs,
        2,
        "{n}: creates are counted"
    );
    // A successful finish is the catalogue's last success.
    a.status = RunStatus::Completed;
    a.completed_at = Some(Timestamp(1_800_000_500));
    k.runs.save(&a, 4).await.unwrap();
    assert_eq!(
        k.stats.get().await.unwrap().last_success,
        Some(("01A".to_string(), Timestamp(1_800_000_500))),
        "{n}"
    );
}
contract!(run_saves_are_fenced_and_listed_newest_first, run_log);

async fn run_pages(k: Kit) {
    let n = k.name;
    let ids: Vec<String> = (0..7).map(|i| format!("01P{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let r = SyncRun::new(
            id.clone(),
            SyncType::Manual,
            Timestamp(1_800_000_000 + i as i64),
        );
        k.runs.create(&r, 1).await.unwrap();
    }
    // Cursor pages: newest first, each run once, the last page says there is no more.
    let mut seen = Vec::new();
    let mut from = RunsFrom::Offset(0);
    loop {
        let (page, next) = k.runs.list(3, from).await.unwrap();
        seen.extend(page.iter().map(|r| r.sync_id.clone()));
        match next {
            Some(c) => from = RunsFrom::After(c),
            None => break,
        }
    }
    let mut want = ids.clone();
    want.reverse();
    assert_eq!(seen, want, "{n}");
    let (page, _) = k.runs.list(2, RunsFrom::Offset(5)).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.sync_id.as_str()).collect::<Vec<_>>(),
        ["01P1", "01P0"],
        "{n}: an offset skips the newest"
    );
    let (page, next) = k.runs.list(2, RunsFrom::Offset(9)).await.unwrap();
    assert!(page.is_empty() && next.is_none(), "{n}: past the end");
    assert_eq!(k.runs.count().await.unwrap(), 7, "{n}");
    // Details: one item per property, replaced when written again, paged in id order, and
    // not listed among the runs.
    let run = SyncRun::new("01P3".into(), SyncType::Manual, Timestamp(1_800_000_003));
    let detail = |id: i64, reason: &str| RunDetail {
        hotel_id: id,
        failures: vec![reason.to_string()],
        changes: vec![Change {
            hotel_id: id,
            facet: "property".into(),
            paths: vec!["$.hotel_name".into()],
            paths_truncated: false,
            accepted_by: None,
        }],
    };
    let first: Vec<RunDetail> = (1..=30).map(|i| detail(i * 7, "first")).collect();
    k.runs.put_details(&run, &first).await.unwrap();
    k.runs
        .put_details(&run, &[detail(14, "again")])
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = k.runs.details("01P3", 8, after).await.unwrap();
        assert!(page.items.len() <= 8, "{n}");
        got.extend(page.items);
        match page.next {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(
        got.iter().map(|d| d.hotel_id).collect::<Vec<_>>(),
        (1..=30).map(|i| i * 7).collect::<Vec<_>>(),
        "{n}"
    );
    assert_eq!(got[1].failures, ["again"], "{n}: a rewrite replaces");
    assert!(
        k.runs
            .details("01P4", 8, None)
            .await
            .unwrap()
            .items
            .is_empty(),
        "{n}: another run has none"
    );
    assert_eq!(
        k.runs.count().await.unwrap(),
        7,
        "{n}: details are not runs"
    );
}
contract!(runs_page_by_cursor_and_details_page_by_property, run_pages);

async fn counts(k: Kit) {
    let n = k.name;
    let s0 = k.stats.get().await.unwrap();
    assert_eq!(
        (s0.counts, s0.epoch, s0.runs),
        (StatusCounts::default(), 0, 0),
        "{n}"
    );
    k.tracking.track(&[1, 2, 3, 4, 4]).await.unwrap();
    k.tracking.track(&[4, 5]).await.unwrap();
    k.tracking.untrack(2).await.unwrap();
    k.tracking.untrack(2).await.unwrap();
    let s = k.stats.get().await.unwrap();
    assert_eq!((s.counts.pending, s.counts.untracked), (4, 1), "{n}");
    assert_eq!(s.counts.tracked(), 4, "{n}");
    assert_eq!(s.epoch, 3, "{n}: each tracking change bumps the epoch once");
    k.tracking.track(&[2]).await.unwrap();
    let s = k.stats.get().await.unwrap();
    assert_eq!(
        (s.counts.pending, s.counts.untracked, s.epoch),
        (5, 0, 4),
        "{n}"
    );
    // A sync's moves.
    let mut d = StatusCounts::default();
    d.moved(SyncStatus::Pending, SyncStatus::Synced);
    d.moved(SyncStatus::Pending, SyncStatus::Failed);
    k.stats.add(&d).await.unwrap();
    let s = k.stats.get().await.unwrap();
    assert_eq!(
        (s.counts.pending, s.counts.synced, s.counts.failed),
        (3, 1, 1),
        "{n}"
    );
    assert_eq!(s.epoch, 4, "{n}: sync moves leave the epoch");
    // A recount against an old epoch is refused; against the current one it replaces the
    // tracked statuses (untracked stays as maintained).
    let mut truth = StatusCounts::default();
    truth.add(SyncStatus::Synced, 5);
    let now = Timestamp(1_800_000_000);
    assert!(
        !k.stats.recount(&truth, 9, 3, "01R", now).await.unwrap(),
        "{n}"
    );
    assert!(
        k.stats.recount(&truth, 9, 4, "01R", now).await.unwrap(),
        "{n}"
    );
    let s = k.stats.get().await.unwrap();
    assert_eq!(
        (s.counts.synced, s.counts.pending, s.runs),
        (5, 0, 9),
        "{n}"
    );
    assert_eq!(s.recounted, Some(("01R".to_string(), now)), "{n}");
}
contract!(counts_follow_tracking_moves_and_recounts, counts);

async fn scans(k: Kit) {
    let n = k.name;
    let ids: Vec<i64> = (1..=57).map(|i| i * 13).collect();
    k.tracking.track(&ids).await.unwrap();
    for id in [13, 130, 260] {
        k.tracking.untrack(id).await.unwrap();
    }
    let want: BTreeSet<i64> = ids
        .iter()
        .copied()
        .filter(|i| ![13, 130, 260].contains(i))
        .collect();
    // Page by page: every tracked id exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = k.reader.scan_tracked(after, 10).await.unwrap();
        seen.extend(page.items.iter().map(|t| t.hotel_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), want.len(), "{n}: no id twice");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), want, "{n}");
    // Resuming after any id read so far gives exactly the rest, in the same order.
    let cut = seen[23];
    let mut rest = Vec::new();
    let mut after = Some(cut);
    loop {
        let page = k.reader.scan_tracked(after, 7).await.unwrap();
        rest.extend(page.items.iter().map(|t| t.hotel_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(rest, seen[24..].to_vec(), "{n}");
    // Point reads and the counts see tracked ids only.
    let (got, _) = k.reader.get_tracked(&[26, 13, 999, 26]).await.unwrap();
    assert_eq!(
        got.iter().map(|t| t.hotel_id).collect::<Vec<_>>(),
        [26],
        "{n}"
    );
    assert_eq!(
        k.stats.get().await.unwrap().counts.tracked(),
        want.len() as u64,
        "{n}"
    );
}
contract!(scans_page_resume_and_skip_untracked, scans);

async fn settings(k: Kit) {
    let n = k.name;
    let values = [
        (SettingKey::SyncBatchSize, SettingValue::Count(25)),
        (SettingKey::SyncRateLimit, SettingValue::Rate(2.5)),
    ];
    k.settings
        .put_all(&values, Timestamp(1_800_000_000))
        .await
        .unwrap();
    let got = k.settings.load().await.unwrap();
    assert_eq!(got["sync_batch_size"].value, "25", "{n}");
    assert_eq!(got["sync_rate_limit"].value, "2.5", "{n}");
    assert_eq!(
        got["sync_rate_limit"].updated_at,
        Timestamp(1_800_000_000),
        "{n}"
    );
}
contract!(settings_round_trip, settings);

async fn schema_baseline(k: Kit) {
    use cupid_sync::domain::drift::Baseline;
    use cupid_sync::domain::shape::{Shape, Shapes};
    let n = k.name;
    assert_eq!(k.schemas.baseline().await.unwrap(), None, "{n}");
    let mut shape = Shape::default();
    shape.observe(&serde_json::json!({"a": 1, "l": [{"u": "x"}]}), None, 7);
    let seen: Shapes = [("property".to_string(), shape)].into();
    let b = Baseline::after(&Shapes::new(), &seen, "01A", 4, Timestamp(1_800_000_000));
    k.schemas.save_baseline(&b).await.unwrap();
    assert_eq!(k.schemas.baseline().await.unwrap(), Some(b.clone()), "{n}");
    let older = Baseline::after(&Shapes::new(), &Shapes::new(), "01Z", 3, Timestamp(1));
    assert_eq!(
        kind(k.schemas.save_baseline(&older).await),
        Some(PortErrorKind::Fenced),
        "{n}: an older run cannot replace it"
    );
    let again = Baseline::after(&b.previous, &seen, "01A", 4, Timestamp(1_800_000_001));
    k.schemas.save_baseline(&again).await.unwrap();
    let later = Baseline::after(&again.shapes, &Shapes::new(), "01B", 9, Timestamp(2));
    k.schemas.save_baseline(&later).await.unwrap();
    assert_eq!(k.schemas.baseline().await.unwrap(), Some(later), "{n}");
}
contract!(
    the_schema_baseline_is_replaced_only_by_a_later_run,
    schema_baseline
);

async fn run_shapes(k: Kit) {
    use cupid_sync::domain::drift::{FacetDrift, PathDrift};
    use cupid_sync::domain::shape::Shape;
    let n = k.name;
    let mut a = SyncRun::new("01S".into(), SyncType::Manual, Timestamp(1_800_000_000));
    let mut shape = Shape::default();
    shape.observe(&serde_json::json!({"a": {"b": [1, 2]}}), None, 3);
    a.shape.insert("lang".into(), shape);
    a.drift = vec![FacetDrift {
        facet: "property".into(),
        documents: 30,
        appeared: vec![PathDrift {
            path: "x".into(),
            count: 30,
            examples: vec![1, 2, 3],
            ..PathDrift::default()
        }],
        ..FacetDrift::default()
    }];
    k.runs.create(&a, 1).await.unwrap();
    k.runs.save(&a, 1).await.unwrap();
    let got = k.runs.get("01S").await.unwrap().unwrap();
    assert_eq!((&got.shape, &got.drift), (&a.shape, &a.drift), "{n}");
}
contract!(a_run_keeps_its_shapes_and_drift, run_shapes);

async fn webhooks(k: Kit) {
    use cupid_sync::domain::webhook::{Delivery, DeliveryOutcome, EventKind, Webhook};
    let n = k.name;
    let w = &k.webhooks;
    let hook = |id: &str| Webhook {
        id: id.into(),
        url: format!("https://hooks.example.com/{id}"),
        events: vec![EventKind::SyncCompleted, EventKind::SchemaChanged],
        description: "ops channel".into(),
        secret: format!("whsec_{id}"),
        created_at: Timestamp(1_800_000_000),
    };
    assert!(w.list().await.unwrap().is_empty(), "{n}");
    w.create(&hook("wh_b")).await.unwrap();
    w.create(&hook("wh_a")).await.unwrap();
    assert_eq!(
        kind(w.create(&hook("wh_a")).await),
        Some(PortErrorKind::Conflict),
        "{n}: an id is never replaced"
    );
    let ids: Vec<_> = w.list().await.unwrap().into_iter().map(|h| h.id).collect();
    assert_eq!(ids, ["wh_a", "wh_b"], "{n}: listed in id order");
    assert_eq!(w.get("wh_a").await.unwrap(), Some(hook("wh_a")), "{n}");
    assert_eq!(w.get("wh_zz").await.unwrap(), None, "{n}");
    // Webhooks share the run log's table: the runs listing never sees them.
    let (runs, _) = k.runs.list(10, RunsFrom::Offset(0)).await.unwrap();
    assert!(runs.is_empty(), "{n}");

    let attempt = |at_ms: i64, attempt: u32, outcome| Delivery {
        webhook_id: "wh_a".into(),
        at: Timestamp(at_ms / 1000).rfc3339(),
        at_ms,
        event: "sync.completed".into(),
        event_id: "ev-1".into(),
        attempt,
        status_code: if outcome == DeliveryOutcome::Delivered {
            Some(200)
        } else {
            None
        },
        latency_ms: 12,
        outcome,
        error: (outcome != DeliveryOutcome::Delivered).then(|| "timed out".to_string()),
    };
    w.record(&attempt(1_800_000_001_000, 1, DeliveryOutcome::Retrying))
        .await
        .unwrap();
    w.record(&attempt(1_800_000_003_000, 2, DeliveryOutcome::Delivered))
        .await
        .unwrap();
    let log = w.deliveries("wh_a", 10).await.unwrap();
    assert_eq!(
        log,
        vec![
            attempt(1_800_000_003_000, 2, DeliveryOutcome::Delivered),
            attempt(1_800_000_001_000, 1, DeliveryOutcome::Retrying)
        ],
        "{n}: newest first, read back as written"
    );
    assert_eq!(w.deliveries("wh_a", 1).await.unwrap().len(), 1, "{n}");
    assert!(w.deliveries("wh_b", 10).await.unwrap().is_empty(), "{n}");
    assert!(w.delete("wh_a").await.unwrap(), "{n}");
    assert!(
        !w.delete("wh_a").await.unwrap(),
        "{n}: deleting twice reports it"
    );
    assert_eq!(w.list().await.unwrap().len(), 1, "{n}");
}
contract!(webhooks_and_their_delivery_log, webhooks);
