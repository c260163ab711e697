//! Reviews and translations: every facet synced, versioned and read on its own.

use cupid_sim::{ChangeRequest, Faults};
use cupid_sync::domain::run::{RunStatus, SyncStatus};
use cupid_sync::ports::PropertyReader;
use integration::{Options, Stack, api_call};

fn four_facets() -> Options {
    Options {
        languages: vec!["fr".into(), "es".into()],
        review_count: 100,
        rate_limit: 400.0,
        max_concurrent: 8,
        ..Default::default()
    }
}

const FACETS: [&str; 4] = ["property", "lang#fr", "lang#es", "reviews"];

#[tokio::test]
async fn four_facets_per_property_and_a_new_review_costs_exactly_one_write() {
    let s = Stack::new(four_facets()).await;
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
        (100, 100, 400)
    );
    assert_eq!(
        first.counters.upstream_requests, 400,
        "requests are counted, not properties"
    );
    assert_eq!(first.requests_per_property, 4);
    let st = s.sim.sim.stats();
    assert_eq!(st.total, 400);
    assert!(
        st.max_per_second <= 401 && st.max_in_flight <= 8,
        "one budget for all facets: {st:?}"
    );
    for facet in FACETS {
        let mut stored = 0;
        for id in &ids {
            stored += usize::from(s.document(*id, facet).await.is_some());
        }
        assert_eq!(stored, 100, "{facet} stored for every property");
    }

    let gained: Vec<i64> = vec![ids[3], ids[30], ids[60]];
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: gained.clone(),
        facet: Some("reviews".into()),
        ..Default::default()
    });
    let second = s.sync().await;
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(
        (
            second.counters.updated,
            second.counters.unchanged,
            second.counters.document_writes
        ),
        (3, 97, 3)
    );
    let mut changed: Vec<(i64, String, Vec<String>)> = s
        .changes(&second)
        .await
        .iter()
        .map(|c| (c.hotel_id, c.facet.clone(), c.paths.clone()))
        .collect();
    changed.sort();
    let mut want: Vec<(i64, String, Vec<String>)> = gained
        .iter()
        .map(|id| {
            (
                *id,
                "reviews".to_string(),
                vec![
                    format!("added:{}", id * 10_000 + 9_000),
                    format!("removed:{}", id * 10_000 + 99),
                ],
            )
        })
        .collect();
    want.sort();
    // The newest 100 are kept: the new review pushes the oldest out, and the diff says both.
    assert_eq!(
        changed, want,
        "the diff names the added and removed review ids"
    );
    for id in &gained {
        let r = s.props.get_record(*id).await.unwrap().unwrap();
        assert_eq!(
            r.data_version, 2,
            "one bump for a run where a facet changed"
        );
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
}

#[tokio::test]
async fn a_translation_outage_leaves_properties_partial_with_english_fresh() {
    let s = Stack::new(Options {
        retries: 1,
        ..four_facets()
    })
    .await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    let changed: Vec<i64> = ids[0..5].to_vec();
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: changed.clone(),
        ..Default::default()
    });
    s.sim.sim.set_faults(Faults {
        error_rate: 1.0,
        path_filter: Some("/lang/".into()),
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::CompletedWithErrors);
    assert_eq!(
        (
            run.counters.partial,
            run.counters.failed,
            run.counters.updated
        ),
        (100, 0, 5)
    );
    assert_eq!(
        run.counters.document_writes, 5,
        "only the English documents of the changed properties"
    );
    for id in &changed {
        let r = s.props.get_record(*id).await.unwrap().unwrap();
        assert_eq!(r.sync_status, SyncStatus::Partial);
        assert!(
            r.last_error.as_deref().unwrap().contains("lang#fr"),
            "{:?}",
            r.last_error
        );
        assert!(
            r.name.as_deref().unwrap().contains("renovated"),
            "English data is fresh"
        );
        let fr = s.document(*id, "lang#fr").await.unwrap();
        assert_eq!(
            fr.data_version, 1,
            "the French document keeps its previous version"
        );
    }
    assert!(
        s.failures(&run)
            .await
            .iter()
            .any(|f| f.reason.starts_with("lang#es: "))
    );

    s.sim.sim.set_faults(Faults::default());
    let healed = s.sync().await;
    assert_eq!(healed.status, RunStatus::Completed);
    assert_eq!(
        (
            healed.counters.partial,
            healed.counters.updated,
            healed.counters.document_writes
        ),
        (0, 5, 10)
    );
    assert_eq!(
        s.props
            .get_record(ids[0])
            .await
            .unwrap()
            .unwrap()
            .sync_status,
        SyncStatus::Synced
    );
}

#[tokio::test]
async fn translations_and_reviews_read_back_over_the_api() {
    let s = Stack::new(Options {
        languages: vec!["fr".into()],
        ..four_facets()
    })
    .await;
    s.track_exercise_ids().await;
    s.sync().await;
    let (st, b) = api_call(&s, "GET", "/api/v1/properties/1641879?lang=fr", None).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"]["language"], "fr");
    assert!(
        b["data"]["document"]["hotel_name"]
            .as_str()
            .unwrap()
            .starts_with("[fr] ")
    );
    assert!(b["data"]["note"].is_null());
    let (_, b) = api_call(&s, "GET", "/api/v1/properties/1641879?lang=es", None).await;
    assert_eq!(b["data"]["language"], "en");
    assert_eq!(
        b["data"]["document"]["hotel_name"],
        "The Z Hotel Covent Garden"
    );
    assert!(b["data"]["note"].as_str().unwrap().contains("es"));
    let (st, b) = api_call(&s, "GET", "/api/v1/properties/1641879?lang=klingon", None).await;
    assert_eq!(
        (st, b["error"]["details"]["field"].as_str()),
        (400, Some("lang"))
    );

    let (st, b) = api_call(
        &s,
        "GET",
        "/api/v1/properties/1641879/reviews?limit=5&offset=1",
        None,
    )
    .await;
    assert_eq!(st, 200);
    let items = b["data"]["items"].as_array().unwrap();
    assert_eq!((items.len(), b["data"]["total"].as_u64()), (5, Some(100)));
    let dates: Vec<&str> = items.iter().map(|r| r["date"].as_str().unwrap()).collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {dates:?}"
    );
    assert!(items[0]["review_id"].as_i64().unwrap() > 0);
    let (st, b) = api_call(
        &s,
        "GET",
        "/api/v1/properties/1641879/reviews?limit=0",
        None,
    )
    .await;
    assert_eq!(
        (st, b["error"]["details"]["field"].as_str()),
        (400, Some("limit"))
    );
    assert_eq!(
        api_call(&s, "GET", "/api/v1/properties/42/reviews", None)
            .await
            .0,
        404
    );
}
