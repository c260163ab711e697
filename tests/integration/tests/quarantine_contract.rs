//! Quarantine, one contract for both stores (in-memory and DynamoDB on moto): a quarantine
//! outcome lists the record with its note, the listing pages and filters by rule, held
//! payloads are fenced document items, acceptances are tied to the run that quarantined, and
//! leaving quarantine (commit, other outcome, untrack, discard) takes the record off the list.

use cupid_sync::domain::contract::{Report, Rule, Violation};
use cupid_sync::domain::quarantine::{Acceptance, Accepted, HeldFacet, QuarantineNote};
use cupid_sync::domain::run::{FacetState, SyncStatus};
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::*;
use integration::contract;
use integration::kit::Kit;
use std::collections::BTreeMap;

fn note(sync_id: &str, facet: &str, hash: &str, rule: Rule) -> QuarantineNote {
    QuarantineNote {
        sync_id: sync_id.into(),
        at: 1_800_000_000,
        facets: vec![HeldFacet {
            facet: facet.into(),
            hash: hash.into(),
            report: Report {
                violations: vec![Violation {
                    path: "hotel_id".into(),
                    rule,
                    value: Some("42".into()),
                }],
                total: 1,
                broken: vec![],
            },
            payload_kept: true,
        }],
    }
}

fn quarantined(id: i64, fence: u64, n: QuarantineNote) -> RecordOutcome {
    RecordOutcome {
        hotel_id: id,
        status: SyncStatus::Quarantined,
        error: Some(n.summary()),
        sync_id: n.sync_id.clone(),
        now: Timestamp(1_800_000_000),
        fence,
        quarantine: Some(n),
    }
}

fn synced(id: i64, fence: u64) -> RecordOutcome {
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

fn held_ids(p: &HeldPage) -> Vec<i64> {
    p.items.iter().map(|e| e.hotel_id).collect()
}

fn accepting(facet: &str, hash: &str) -> Accepted {
    BTreeMap::from([(
        facet.to_string(),
        Acceptance {
            hash: hash.into(),
            by: "ana".into(),
            at: 1_800_000_100,
        },
    )])
}

async fn listing_and_leaving(k: Kit) {
    let n = k.name;
    let (w, q) = (&k.writer, &k.quarantine);
    k.tracking.track(&[1, 2, 3, 4, 5]).await.unwrap();
    w.record_outcome(&quarantined(
        2,
        5,
        note("s1", "property", "h2", Rule::HotelId),
    ))
    .await
    .unwrap();
    w.record_outcome(&quarantined(4, 5, note("s1", "lang#fr", "h4", Rule::Empty)))
        .await
        .unwrap();
    w.record_outcome(&quarantined(
        5,
        5,
        note("s1", "property", "h5", Rule::HotelId),
    ))
    .await
    .unwrap();
    w.record_outcome(&synced(3, 5)).await.unwrap();

    let all = q.list_held(10, None, None).await.unwrap();
    assert_eq!(held_ids(&all), [2, 4, 5], "{n}");
    assert_eq!(all.next, None, "{n}");
    assert_eq!(
        all.items[0].note,
        note("s1", "property", "h2", Rule::HotelId),
        "{n}"
    );
    // Pages of two, then the rest.
    let p1 = q.list_held(2, None, None).await.unwrap();
    assert_eq!((held_ids(&p1), p1.next), (vec![2, 4], Some(4)), "{n}");
    let p2 = q.list_held(2, p1.next, None).await.unwrap();
    assert_eq!((held_ids(&p2), p2.next), (vec![5], None), "{n}");
    // Filtered by rule.
    let by_rule = q.list_held(10, None, Some(Rule::HotelId)).await.unwrap();
    assert_eq!(held_ids(&by_rule), [2, 5], "{n}");
    let none = q.list_held(10, None, Some(Rule::Date)).await.unwrap();
    assert!(none.items.is_empty(), "{n}");
    assert_eq!(
        k.stats.get().await.unwrap().counts.quarantined,
        0,
        "{n}: outcomes move counts through the run's flush, not the store"
    );

    // Leaving quarantine: a later outcome, a commit, an untrack.
    w.record_outcome(&synced(2, 6)).await.unwrap();
    w.claim(4, 0, 6).await.unwrap();
    let mut facets = BTreeMap::new();
    facets.insert(
        "property".to_string(),
        FacetState {
            hash: "ok".into(),
            version: 1,
            slot: Some("a".into()),
            raw: None,
        },
    );
    w.commit(&PropertyWrite {
        hotel_id: 4,
        expected_version: 0,
        facets,
        summary: None,
        status: SyncStatus::Synced,
        error: None,
        sync_id: "s2".into(),
        now: Timestamp(1_800_000_000),
        fence: 6,
    })
    .await
    .unwrap();
    k.tracking.untrack(5).await.unwrap();
    assert!(
        q.list_held(10, None, None).await.unwrap().items.is_empty(),
        "{n}"
    );
    let (t, _) = k.reader.get_tracked(&[2, 4]).await.unwrap();
    assert!(t.iter().all(|t| t.held.is_none()), "{n}: {t:?}");
    for id in [2, 4] {
        let r = k.reader.get_record(id).await.unwrap().unwrap();
        assert_eq!(r.quarantine, None, "{n}: {id}");
        assert!(r.accepted.is_empty(), "{n}: {id}");
        assert_eq!(q.held(id).await.unwrap(), None, "{n}: {id}");
    }
}
contract!(
    quarantine_lists_pages_filters_and_leaves,
    listing_and_leaving
);

async fn accept_and_discard(k: Kit) {
    let n = k.name;
    let (w, q) = (&k.writer, &k.quarantine);
    k.tracking.track(&[7, 8]).await.unwrap();
    assert_eq!(
        q.accept(7, "s1", &accepting("property", "h7"))
            .await
            .unwrap_err()
            .kind,
        PortErrorKind::NotFound,
        "{n}: nothing held"
    );
    w.record_outcome(&quarantined(
        7,
        5,
        note("s1", "property", "h7", Rule::Range),
    ))
    .await
    .unwrap();
    // An acceptance names the run whose payloads it accepts.
    assert_eq!(
        q.accept(7, "s0", &accepting("property", "h7"))
            .await
            .unwrap_err()
            .kind,
        PortErrorKind::Conflict,
        "{n}"
    );
    q.accept(7, "s1", &accepting("property", "h7"))
        .await
        .unwrap();
    let e = q.held(7).await.unwrap().unwrap();
    assert_eq!(e.accepted, accepting("property", "h7"), "{n}");
    // The sync reads it with the record.
    let (t, _) = k.reader.get_tracked(&[7]).await.unwrap();
    assert_eq!(t[0].accepted, accepting("property", "h7"), "{n}");
    // ...with what is held (the same content held again is nothing new for the breaker).
    let held = t[0].held.clone().unwrap_or_default();
    assert_eq!(
        (held.sync_id.as_str(), held.hash("property")),
        ("s1", Some("h7")),
        "{n}"
    );
    // Quarantined again by a later run: the acceptance stays (it names its hash).
    w.record_outcome(&quarantined(
        7,
        6,
        note("s2", "property", "h7b", Rule::Range),
    ))
    .await
    .unwrap();
    let e = q.held(7).await.unwrap().unwrap();
    assert_eq!(
        (e.note.sync_id.as_str(), e.accepted.len()),
        ("s2", 1),
        "{n}"
    );

    // A held payload is a fenced document item.
    let payload = |fence: u64, hash: &str| HeldPayload {
        hotel_id: 8,
        facet: "property".into(),
        hash: hash.into(),
        compressed: vec![1, 2, 3],
        fence,
        sync_id: "s1".into(),
        now: Timestamp(1_800_000_000),
        expires_at: 1_802_592_000,
    };
    w.put_held(&payload(5, "h8")).await.unwrap();
    assert_eq!(
        w.put_held(&payload(4, "old")).await.unwrap_err().kind,
        PortErrorKind::Fenced,
        "{n}"
    );
    let (doc, _) = k
        .reader
        .get_document(8, "quarantine#property")
        .await
        .unwrap();
    let doc = doc.unwrap();
    assert_eq!(
        (doc.content_hash.as_str(), doc.compressed.len()),
        ("h8", 3),
        "{n}"
    );
    w.record_outcome(&quarantined(8, 5, note("s1", "property", "h8", Rule::Url)))
        .await
        .unwrap();

    // Discard: back to pending, off the list, payload gone, counts moved.
    let before = k.stats.get().await.unwrap();
    q.discard(8, "discarded by ana").await.unwrap();
    let r = k.reader.get_record(8).await.unwrap().unwrap();
    assert_eq!(
        (r.sync_status, r.last_error.as_deref()),
        (SyncStatus::Pending, Some("discarded by ana")),
        "{n}"
    );
    assert_eq!(r.quarantine, None, "{n}");
    let (doc, _) = k
        .reader
        .get_document(8, "quarantine#property")
        .await
        .unwrap();
    assert!(doc.is_none(), "{n}");
    let after = k.stats.get().await.unwrap();
    assert_eq!(
        (
            after.counts.quarantined - before.counts.quarantined,
            after.counts.pending - before.counts.pending
        ),
        (-1, 1),
        "{n}"
    );
    assert!(after.epoch > before.epoch, "{n}: a tracking-side change");
    assert_eq!(
        q.discard(8, "again").await.unwrap_err().kind,
        PortErrorKind::NotFound,
        "{n}"
    );
    assert_eq!(
        held_ids(&q.list_held(10, None, None).await.unwrap()),
        [7],
        "{n}"
    );
}
contract!(quarantine_accept_and_discard, accept_and_discard);
