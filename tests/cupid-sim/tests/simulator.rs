use cupid_sim::{ChangeRequest, Faults, IdFault, SimConfig, exercise_ids, spawn};
use serde_json::Value;
use std::collections::HashMap;

async fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let c = reqwest::Client::new();
    let mut r = c.get(url);
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn serves_the_recorded_shape_per_id_and_requires_the_key() {
    let h = spawn(SimConfig::default(), 0).await.unwrap();
    let ids = exercise_ids();
    assert_eq!(ids.len(), 100);
    let (s, _) = get(&format!("{}/v3.0/property/1641879", h.url()), None).await;
    assert_eq!(s, 401);
    let (s, body) = get(
        &format!("{}/v3.0/property/1641879", h.url()),
        Some("local-dev-key"),
    )
    .await;
    assert_eq!(s, 200);
    let recorded: Value = serde_json::from_str(cupid_sim::PROPERTY_FIXTURE).unwrap();
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(served, recorded, "the recorded hotel is served unchanged");
    let (_, other) = get(
        &format!("{}/v3.0/property/{}", h.url(), ids[1]),
        Some("local-dev-key"),
    )
    .await;
    let other: Value = serde_json::from_str(&other).unwrap();
    assert_eq!(other["hotel_id"], ids[1]);
    assert_eq!(other["rooms"][0]["hotel_id"], ids[1].to_string());
    assert_eq!(
        other.as_object().unwrap().keys().len(),
        recorded.as_object().unwrap().keys().len()
    );
    assert_ne!(other["hotel_name"], recorded["hotel_name"]);
    let (_, again) = get(
        &format!("{}/v3.0/property/{}", h.url(), ids[1]),
        Some("local-dev-key"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&again).unwrap(),
        other,
        "deterministic per id"
    );
    assert_eq!(
        get(
            &format!("{}/v3.0/property/999", h.url()),
            Some("local-dev-key")
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn synthetic_catalogues_of_a_million_ids_cost_no_memory() {
    let h = spawn(
        SimConfig {
            synthetic: 1_000_000,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let base = cupid_sim::DEFAULT_SYNTHETIC_BASE;
    assert_eq!(
        get(
            &format!("{}/v3.0/property/{}", h.url(), base + 999_999),
            Some("local-dev-key")
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get(
            &format!("{}/v3.0/property/{}", h.url(), base + 1_000_000),
            Some("local-dev-key")
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn translations_and_reviews_have_their_shapes() {
    let h = spawn(SimConfig::default(), 0).await.unwrap();
    let (s, fr) = get(
        &format!("{}/v3.0/property/1641879/lang/fr", h.url()),
        Some("local-dev-key"),
    )
    .await;
    assert_eq!(s, 200);
    let fr: Value = serde_json::from_str(&fr).unwrap();
    assert!(fr["hotel_name"].as_str().unwrap().starts_with("[fr] "));
    let en: Value = serde_json::from_str(cupid_sim::PROPERTY_FIXTURE).unwrap();
    assert!(
        fr["facilities"].as_array().unwrap().len() < en["facilities"].as_array().unwrap().len()
    );
    let (s, rv) = get(
        &format!("{}/v3.0/property/reviews/1641879/10", h.url()),
        Some("local-dev-key"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&rv)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn faults_changes_and_counters() {
    let h = spawn(SimConfig::default(), 0).await.unwrap();
    let url = |id: i64| format!("{}/v3.0/property/{id}", h.url());
    let ids = exercise_ids();
    h.sim.set_faults(Faults {
        retry_after_secs: 7,
        per_id: HashMap::from([
            (
                ids[0],
                IdFault {
                    kind: "500".into(),
                    times: 2,
                    ..Default::default()
                },
            ),
            (
                ids[1],
                IdFault {
                    kind: "429".into(),
                    times: 1,
                    ..Default::default()
                },
            ),
            (
                ids[2],
                IdFault {
                    kind: "malformed".into(),
                    times: 0,
                    ..Default::default()
                },
            ),
            (
                ids[3],
                IdFault {
                    kind: "truncated".into(),
                    times: 0,
                    ..Default::default()
                },
            ),
        ]),
        ..Default::default()
    });
    assert_eq!(get(&url(ids[0]), Some("local-dev-key")).await.0, 500);
    assert_eq!(get(&url(ids[0]), Some("local-dev-key")).await.0, 500);
    assert_eq!(get(&url(ids[0]), Some("local-dev-key")).await.0, 200);
    let resp = reqwest::Client::new()
        .get(url(ids[1]))
        .header("x-api-key", "local-dev-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let (s, body) = get(&url(ids[2]), Some("local-dev-key")).await;
    assert!(s == 200 && serde_json::from_str::<Value>(&body).is_err());
    let (s, body) = get(&url(ids[3]), Some("local-dev-key")).await;
    assert!(s == 200 && serde_json::from_str::<Value>(&body).is_err());

    let before: Value =
        serde_json::from_str(&get(&url(ids[5]), Some("local-dev-key")).await.1).unwrap();
    h.sim.change(&ChangeRequest {
        hotel_ids: vec![ids[5]],
        ..Default::default()
    });
    let after: Value =
        serde_json::from_str(&get(&url(ids[5]), Some("local-dev-key")).await.1).unwrap();
    assert_ne!(before["hotel_name"], after["hotel_name"]);
    assert_ne!(before["rating"], after["rating"]);
    assert_eq!(before["rooms"], after["rooms"]);

    let stats = h.sim.stats();
    assert_eq!(stats.per_id[&ids[0]], 3);
    assert_eq!(stats.total, 8);
    assert!(stats.max_in_flight >= 1);
    h.sim.reset();
    assert_eq!(h.sim.stats().total, 0);
}

#[tokio::test]
async fn rate_faults_are_deterministic_and_can_target_a_path() {
    let h = spawn(SimConfig::default(), 0).await.unwrap();
    h.sim.set_faults(Faults {
        error_rate: 1.0,
        path_filter: Some("/lang/".into()),
        ..Default::default()
    });
    assert_eq!(
        get(
            &format!("{}/v3.0/property/1641879/lang/es", h.url()),
            Some("local-dev-key")
        )
        .await
        .0,
        500
    );
    assert_eq!(
        get(
            &format!("{}/v3.0/property/1641879", h.url()),
            Some("local-dev-key")
        )
        .await
        .0,
        200
    );
}

#[test]
fn regressions_apply_to_their_shape_only() {
    use cupid_sim::regress;
    let doc = serde_json::json!({"hotel_id": 7, "hotel_name": "A", "rating": 8.1, "latitude": 1.0});
    assert_eq!(regress("wrong_hotel", &doc, 7).unwrap()["hotel_id"], 8);
    assert_eq!(regress("type_change", &doc, 7).unwrap()["rating"], "8.1");
    assert!(
        regress("drop_field", &doc, 7)
            .unwrap()
            .get("latitude")
            .is_none()
    );
    let reviews = serde_json::json!([{"review_id": 1, "date": "2025-08-21T00:00:00Z"}]);
    assert_eq!(
        regress("wrong_hotel", &reviews, 7),
        None,
        "not for a reviews list"
    );
    assert_eq!(
        regress("bad_review_date", &reviews, 7).unwrap()[0]["date"],
        "last tuesday"
    );
    assert_eq!(regress("bad_review_date", &doc, 7), None);
    assert_eq!(regress("500", &doc, 7), None, "not a regression kind");
}
