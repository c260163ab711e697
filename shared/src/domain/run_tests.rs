//! Tests of `run.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;

#[test]
fn sync_requests_parse_each_input() {
    let s: SyncRequest = serde_json::from_str(r#"{"sync_type":"scheduled"}"#).unwrap();
    assert_eq!(s, SyncRequest::scheduled());
    let s: SyncRequest = serde_json::from_str(
        r#"{"sync_type":"scheduled","scheduled_time":"2026-11-30T12:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(
        s,
        SyncRequest::Scheduled {
            scheduled_time: Some("2026-11-30T12:00:00Z".into())
        }
    );
    let m: SyncRequest = serde_json::from_str(
        r#"{"sync_type":"manual","sync_id":"X","hotel_ids":[1,2],"dry_run":true}"#,
    )
    .unwrap();
    assert_eq!(
        m,
        SyncRequest::Manual {
            sync_id: "X".into(),
            lease: None,
            hotel_ids: Some(vec![1, 2]),
            dry_run: true
        }
    );
    let r: SyncRequest =
        serde_json::from_str(r#"{"sync_type":"resume","sync_id":"X","lease":4}"#).unwrap();
    assert_eq!(
        r,
        SyncRequest::Resume {
            sync_id: "X".into(),
            lease: Some(4)
        }
    );
    assert!(serde_json::from_str::<SyncRequest>(r#"{"sync_type":"other"}"#).is_err());
}

#[test]
fn details_are_bounded() {
    let d = RunDetail {
        hotel_id: 1,
        failures: vec!["é".repeat(MAX_REASON_CHARS + 10)],
        changes: vec![Change {
            hotel_id: 1,
            facet: "property".into(),
            paths: (0..MAX_PATHS + 3)
                .map(|i| format!("$.{}", "k".repeat(i * 20)))
                .collect(),
            paths_truncated: false,
            accepted_by: None,
        }],
    }
    .bounded();
    assert_eq!(d.failures[0].chars().count(), MAX_REASON_CHARS + 1);
    assert_eq!(d.changes[0].paths.len(), MAX_PATHS);
    assert!(d.changes[0].paths_truncated);
    assert!(
        d.changes[0]
            .paths
            .iter()
            .all(|p| p.chars().count() <= MAX_PATH_CHARS + 1)
    );
    // Small enough that a detail item stays far below DynamoDB's 400 KB.
    assert!(serde_json::to_vec(&d).unwrap().len() < 10_000);
}

#[test]
fn a_slot_always_names_the_same_run_and_slots_sort_by_time() {
    let a = slot_sync_id(Timestamp(1_700_000_000));
    assert_eq!(a, slot_sync_id(Timestamp(1_700_000_000)));
    assert!(a < slot_sync_id(Timestamp(1_700_000_060)));
    assert!(a < new_sync_id(1_700_000_000_500));
}

#[test]
fn slots_alternate_and_legacy_documents_keep_their_key() {
    assert_eq!(FacetState::next_slot(None), "a");
    let st = |slot: Option<&str>| FacetState {
        hash: "h".into(),
        version: 1,
        slot: slot.map(String::from),
        raw: None,
    };
    assert_eq!(FacetState::next_slot(Some(&st(Some("a")))), "b");
    assert_eq!(FacetState::next_slot(Some(&st(Some("b")))), "a");
    assert_eq!(FacetState::next_slot(Some(&st(None))), "a");
    assert_eq!(st(None).key("property"), "property");
    assert_eq!(st(Some("b")).key("lang#fr"), "lang#fr@b");
}

#[test]
fn sync_ids_sort_by_time() {
    let a = new_sync_id(1_700_000_000_000);
    let b = new_sync_id(1_700_000_001_000);
    assert!(a < b);
    assert_eq!(a.len(), 26);
}

#[test]
fn a_quarantined_record_tells_the_sync_what_it_holds_and_nothing_else_does() {
    use crate::domain::contract::Report;
    let held = |facet: &str, hash: &str| HeldFacet {
        facet: facet.into(),
        hash: hash.into(),
        report: Report::default(),
        payload_kept: true,
    };
    let mut r = SyncRecord::pending(7);
    r.quarantine = Some(QuarantineNote {
        sync_id: "s1".into(),
        at: 1_800_000_000,
        facets: vec![held("property", "h1"), held("lang#fr", "h2")],
    });
    r.sync_status = SyncStatus::Quarantined;
    let t = r.tracked();
    let first = t.already_held(&[held("property", "h1")]).expect("held");
    assert_eq!((first.sync_id.as_str(), first.at), ("s1", 1_800_000_000));
    assert!(
        t.already_held(&[held("property", "h1"), held("lang#fr", "h2")])
            .is_some()
    );
    assert!(
        t.already_held(&[held("property", "other")]).is_none(),
        "new content"
    );
    assert!(
        t.already_held(&[held("lang#de", "h2")]).is_none(),
        "another facet"
    );
    // A note left on a record that is no longer quarantined holds nothing.
    r.sync_status = SyncStatus::Synced;
    assert_eq!(r.tracked().held, None);
    assert!(
        r.tracked()
            .already_held(&[held("property", "h1")])
            .is_none()
    );
}

#[test]
fn only_a_finished_run_of_the_whole_catalogue_that_synced_something_is_a_success() {
    let mut r = SyncRun::new("r".into(), SyncType::Scheduled, Timestamp(0));
    r.status = RunStatus::Completed;
    assert!(!r.is_catalogue_success(), "not finished");
    r.completed_at = Some(Timestamp(10));
    assert!(r.is_catalogue_success());
    r.status = RunStatus::CompletedWithErrors;
    r.counters.failed = 3;
    r.counters.unchanged = 97;
    assert!(r.is_catalogue_success(), "some failed, the rest synced");
    r.counters.unchanged = 0;
    assert!(!r.is_catalogue_success(), "every property failed");
    r.counters.unchanged = 97;
    r.hotel_ids = Some(vec![1]);
    assert!(!r.is_catalogue_success(), "a subset");
    r.hotel_ids = None;
    r.dry_run = true;
    assert!(!r.is_catalogue_success(), "a dry run");
    r.dry_run = false;
    r.status = RunStatus::Halted;
    assert!(!r.is_catalogue_success());
}
