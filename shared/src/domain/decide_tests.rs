//! Tests of `decide.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;

fn fetched(hash: &str) -> FacetOutcome {
    FacetOutcome::Fetched {
        hash: hash.into(),
        raw: Some(format!("raw-{hash}")),
        stored_bytes: 100,
        summary: None,
    }
}

fn stored(facets: &[(&str, &str, Option<&str>)], version: u64) -> Tracked {
    Tracked {
        hotel_id: 7,
        data_version: version,
        facets: facets
            .iter()
            .map(|(k, h, slot)| {
                (
                    k.to_string(),
                    FacetState {
                        hash: h.to_string(),
                        version,
                        slot: slot.map(String::from),
                        raw: None,
                    },
                )
            })
            .collect(),
        status: SyncStatus::Synced,
        accepted: Default::default(),
        changed_by: None,
        held: Default::default(),
    }
}

fn fr() -> Facet {
    Facet::Lang("fr".into())
}

#[test]
fn a_first_sync_writes_every_fetched_facet_into_slot_a() {
    let d = decide(
        &Tracked::new(7),
        &[
            (Facet::Property, fetched("p1")),
            (fr(), fetched("f1")),
            (Facet::Reviews(10), FacetOutcome::NotFound),
        ],
        true,
    );
    let Plan::Write(w) = &d.plan else {
        panic!("{d:?}")
    };
    assert_eq!(
        w.docs
            .iter()
            .map(|d| (d.facet.as_str(), d.slot))
            .collect::<Vec<_>>(),
        [("property", "a"), ("lang#fr", "a")]
    );
    assert_eq!((w.expected_version, w.new_version()), (0, 1));
    assert_eq!(w.status, SyncStatus::Synced);
    assert_eq!(d.counters().updated, 1);
    assert_eq!(d.counters().document_writes, 2);
}

#[test]
fn only_changed_facets_are_written_into_the_other_slot() {
    let t = stored(
        &[("property", "p1", Some("a")), ("lang#fr", "f1", Some("b"))],
        3,
    );
    let d = decide(
        &t,
        &[(Facet::Property, fetched("p1")), (fr(), fetched("f2"))],
        true,
    );
    let Plan::Write(w) = &d.plan else {
        panic!("{d:?}")
    };
    assert_eq!(w.docs.len(), 1);
    assert_eq!((w.docs[0].facet.as_str(), w.docs[0].slot), ("lang#fr", "a"));
    assert_eq!(w.facets["property"].slot.as_deref(), Some("a"));
    assert_eq!(
        w.facets["property"].version, 3,
        "an unchanged facet keeps its version"
    );
    assert_eq!(w.facets["lang#fr"].version, 4);
    assert_eq!(w.summary, None, "the property facet did not change");
}

#[test]
fn unchanged_content_touches_unless_told_not_to() {
    let t = stored(&[("property", "p1", Some("a"))], 1);
    let d = decide(&t, &[(Facet::Property, fetched("p1"))], true);
    assert!(matches!(
        d.plan,
        Plan::Unchanged {
            touch: true,
            status: SyncStatus::Synced,
            ..
        }
    ));
    let d = decide(&t, &[(Facet::Property, fetched("p1"))], false);
    assert!(matches!(d.plan, Plan::Unchanged { touch: false, .. }));
    // A record not yet `synced` is always written, whatever the touch setting.
    let mut pending = t.clone();
    pending.status = SyncStatus::Pending;
    let d = decide(&pending, &[(Facet::Property, fetched("p1"))], false);
    assert!(matches!(d.plan, Plan::Unchanged { touch: true, .. }));
    assert_eq!(d.counters().unchanged, 1);
}

#[test]
fn the_property_facet_decides_not_found_and_failure() {
    let t = stored(&[("property", "p1", Some("a"))], 1);
    let d = decide(
        &t,
        &[
            (Facet::Property, FacetOutcome::NotFound),
            (fr(), fetched("x")),
        ],
        true,
    );
    assert_eq!(d.plan, Plan::NotFound);
    assert_eq!(d.counters().not_found, 1);
    let d = decide(
        &t,
        &[
            (
                Facet::Property,
                FacetOutcome::Failed("upstream server error (503)".into()),
            ),
            (fr(), fetched("x")),
        ],
        true,
    );
    assert_eq!(d.plan, Plan::Failed("upstream server error (503)".into()));
    assert_eq!(d.failure_reasons(), ["upstream server error (503)"]);
}

#[test]
fn another_facet_failing_makes_the_property_partial_and_keeps_that_facet() {
    let t = stored(
        &[("property", "p1", Some("a")), ("lang#fr", "f1", Some("a"))],
        2,
    );
    let d = decide(
        &t,
        &[
            (Facet::Property, fetched("p2")),
            (fr(), FacetOutcome::Failed("timed out".into())),
        ],
        true,
    );
    let Plan::Write(w) = &d.plan else {
        panic!("{d:?}")
    };
    assert_eq!(w.status, SyncStatus::Partial);
    assert_eq!(w.error.as_deref(), Some("lang#fr: timed out"));
    assert_eq!(w.facets["lang#fr"].hash, "f1");
    assert_eq!(d.counters().partial, 1);
}

#[test]
fn a_write_records_each_facets_raw_digest_and_refreshes_an_unchanged_ones() {
    let t = stored(
        &[("property", "p1", Some("a")), ("reviews", "r1", Some("a"))],
        1,
    );
    // The property's content is the same from other bytes; the reviews changed.
    let d = decide(
        &t,
        &[
            (Facet::Property, fetched("p1")),
            (Facet::Reviews(5), fetched("r2")),
        ],
        true,
    );
    let Plan::Write(w) = &d.plan else {
        panic!("{:?}", d.plan)
    };
    assert_eq!(w.facets["reviews"].raw.as_deref(), Some("raw-r2"));
    assert_eq!(w.facets["property"].raw.as_deref(), Some("raw-p1"));
    assert_eq!(
        w.facets["property"].version, 1,
        "unchanged content keeps its version"
    );
}

#[test]
fn an_oversized_document_is_refused_and_the_previous_version_kept() {
    let t = stored(&[("property", "p1", Some("a"))], 1);
    let big = FacetOutcome::Fetched {
        hash: "p2".into(),
        raw: None,
        stored_bytes: MAX_COMPRESSED_BYTES + 1,
        summary: None,
    };
    let d = decide(&t, &[(Facet::Property, big.clone())], true);
    assert!(matches!(&d.plan, Plan::Failed(r) if r.contains("350 KB")));
    let d = decide(
        &t,
        &[(Facet::Property, fetched("p1")), (Facet::Reviews(5), big)],
        true,
    );
    assert!(matches!(
        d.plan,
        Plan::Unchanged {
            status: SyncStatus::Partial,
            ..
        }
    ));
    assert!(d.facet_failures[0].starts_with("reviews: "));
}

fn held(facet: &str, hash: &str) -> FacetOutcome {
    use crate::domain::contract::{Report, Rule, Violation};
    FacetOutcome::Quarantined(HeldFacet {
        facet: facet.into(),
        hash: hash.into(),
        report: Report {
            violations: vec![Violation {
                path: "hotel_id".into(),
                rule: Rule::HotelId,
                value: Some("42".into()),
            }],
            total: 1,
            broken: vec![],
        },
        payload_kept: true,
    })
}

#[test]
fn a_facet_held_by_its_contract_quarantines_the_property_and_writes_nothing() {
    let t = stored(
        &[("property", "p1", Some("a")), ("lang#fr", "f1", Some("a"))],
        3,
    );
    // The translation changed and is fine, the property changed and is not: nothing of
    // the property is written (a quarantined property's documents do not move).
    let d = decide(
        &t,
        &[
            (Facet::Property, held("property", "p2")),
            (fr(), fetched("f2")),
        ],
        true,
    );
    let Plan::Quarantine(h) = &d.plan else {
        panic!("{d:?}")
    };
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].hash, "p2");
    assert_eq!(d.status_after(SyncStatus::Synced), SyncStatus::Quarantined);
    let c = d.counters();
    assert_eq!((c.quarantined, c.updated, c.document_writes), (1, 0, 0));
    assert!(d.failure_reasons()[0].starts_with("quarantined (contract broken"));
}

#[test]
fn a_missing_or_failed_property_outranks_a_held_translation() {
    let t = stored(&[("property", "p1", Some("a"))], 1);
    let d = decide(
        &t,
        &[
            (Facet::Property, FacetOutcome::NotFound),
            (fr(), held("lang#fr", "f")),
        ],
        true,
    );
    assert_eq!(d.plan, Plan::NotFound);
    let d = decide(
        &t,
        &[
            (Facet::Property, FacetOutcome::Failed("503".into())),
            (fr(), held("lang#fr", "f")),
        ],
        true,
    );
    assert!(matches!(d.plan, Plan::Failed(_)));
}
