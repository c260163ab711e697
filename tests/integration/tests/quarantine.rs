//! Quarantine end to end over DynamoDB (moto) and the Cupid simulator: a changed document that
//! breaks its contract is held back while the previous version stays served; operators list,
//! read, accept (the next sync stores exactly that payload, and says who accepted it) or
//! discard it; bad input on the routes is a 400 naming the field, with nothing written.

use cupid_sim::{ChangeRequest, Faults, IdFault};
use cupid_sync::domain::run::{RunStatus, SyncStatus};
use cupid_sync::ports::PropertyReader;
use integration::{Options, Stack, api_call};
use std::collections::HashMap;

fn fault(kind: &str, path: Option<&str>) -> IdFault {
    IdFault {
        kind: kind.into(),
        times: 0,
        path_contains: path.map(String::from),
    }
}

#[tokio::test]
async fn a_bad_payload_is_held_the_good_one_served_and_an_operator_decides() {
    let (s, ids, first) = Stack::synced_with_french().await;
    assert_eq!(first.counters.quarantined, 0, "the recorded bodies pass");
    let (a, b, c) = (ids[1], ids[2], ids[3]);
    let (_, served) = api_call(&s, "GET", &format!("/api/v1/properties/{a}"), None).await;
    let good_hash = served["data"]["content_hash"].as_str().unwrap().to_string();

    // Upstream regresses for three properties (each also changed, so there is something new
    // to store): another hotel's payload (in the property and its translation), an empty
    // translated name, zero coordinates.
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: vec![a, b, c],
        ..Default::default()
    });
    s.sim.sim.set_faults(Faults {
        per_id: HashMap::from([
            (a, fault("wrong_hotel", Some("/v3.0/property/"))),
            (b, fault("empty_name", Some("/lang/fr"))),
            (c, fault("null_island", None)),
        ]),
        ..Default::default()
    });
    let second = s.sync().await;
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(
        (second.counters.quarantined, second.counters.unchanged),
        (3, 97),
        "{:?}",
        s.failures(&second).await
    );
    // The previous version is still what readers get.
    let (code, served) = api_call(&s, "GET", &format!("/api/v1/properties/{a}"), None).await;
    assert_eq!(code, 200);
    assert_eq!(served["data"]["content_hash"], good_hash.as_str());
    assert_eq!(served["data"]["document"]["hotel_id"], a);
    assert_eq!(served["data"]["sync_status"], "quarantined");
    let failures = s.failures(&second).await;
    assert!(
        failures
            .iter()
            .any(|f| f.hotel_id == a && f.reason.contains("hotel_id hotel_id")),
        "the run log says why: {failures:?}"
    );

    // Listed, paged, filtered by rule.
    let (code, list) = api_call(&s, "GET", "/api/v1/admin/quarantine", None).await;
    assert_eq!(code, 200, "{list}");
    let mut listed: Vec<i64> = list["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["hotel_id"].as_i64().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(listed, want);
    let (_, page) = api_call(&s, "GET", "/api/v1/admin/quarantine?limit=2", None).await;
    assert_eq!(page["data"]["items"].as_array().unwrap().len(), 2);
    let after = page["data"]["next_after"].as_i64().unwrap();
    let (_, rest) = api_call(
        &s,
        "GET",
        &format!("/api/v1/admin/quarantine?limit=2&after={after}"),
        None,
    )
    .await;
    assert_eq!(rest["data"]["items"].as_array().unwrap().len(), 1);
    assert!(rest["data"]["next_after"].is_null());
    let (_, by_rule) = api_call(&s, "GET", "/api/v1/admin/quarantine?rule=null_island", None).await;
    let items = by_rule["data"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["hotel_id"], c);

    // One property: its violations and the held payload.
    let (code, one) = api_call(&s, "GET", &format!("/api/v1/admin/quarantine/{a}"), None).await;
    assert_eq!(code, 200, "{one}");
    let v = &one["data"]["facets"][0];
    assert_eq!(v["facet"], "property");
    assert_eq!(v["violations"][0]["path"], "hotel_id");
    assert_eq!(v["violations"][0]["rule"], "hotel_id");
    assert_eq!(v["violations"][0]["value"], (a + 1).to_string());
    assert_eq!(one["data"]["payloads"]["property"]["hotel_id"], a + 1);
    let (_, held_b) = api_call(&s, "GET", &format!("/api/v1/admin/quarantine/{b}"), None).await;
    assert_eq!(held_b["data"]["facets"][0]["facet"], "lang#fr");

    // Accept `a` (its bad payload persists upstream): the next sync stores exactly it, and
    // the run log names who accepted it.
    let read = one["data"]["quarantined_by_sync"].clone();
    assert_eq!(read, second.sync_id.as_str());
    let (code, stale) = api_call(
        &s,
        "POST",
        &format!("/api/v1/admin/quarantine/{a}/accept"),
        Some(serde_json::json!({"by": "ana", "quarantined_by_sync": first.sync_id})),
    )
    .await;
    assert_eq!(code, 409, "what another run held is not accepted: {stale}");
    let (code, acc) = api_call(
        &s,
        "POST",
        &format!("/api/v1/admin/quarantine/{a}/accept"),
        Some(serde_json::json!({"by": "ana", "quarantined_by_sync": read})),
    )
    .await;
    assert_eq!(code, 200, "{acc}");
    assert_eq!(acc["data"]["accepted"][0]["by"], "ana");
    // Discard `b`: back to pending; its fault is fixed upstream, so the next sync stores the
    // good translation.
    let (code, _) = api_call(&s, "DELETE", &format!("/api/v1/admin/quarantine/{b}"), None).await;
    assert_eq!(code, 200);
    let (code, _) = api_call(&s, "DELETE", &format!("/api/v1/admin/quarantine/{b}"), None).await;
    assert_eq!(code, 404, "discarded once");
    assert_eq!(
        s.props.get_record(b).await.unwrap().unwrap().sync_status,
        SyncStatus::Pending
    );
    s.sim.sim.set_faults(Faults {
        per_id: HashMap::from([
            (a, fault("wrong_hotel", Some("/v3.0/property/"))),
            (c, fault("null_island", None)),
        ]),
        ..Default::default()
    });
    let third = s.sync().await;
    assert_eq!(third.status, RunStatus::Completed);
    assert_eq!(third.counters.quarantined, 1, "only c is still held");
    let rec_a = s.props.get_record(a).await.unwrap().unwrap();
    assert_eq!(rec_a.sync_status, SyncStatus::Synced);
    assert!(rec_a.accepted.is_empty(), "the acceptance is used up");
    let (_, served) = api_call(&s, "GET", &format!("/api/v1/properties/{a}"), None).await;
    assert_eq!(
        served["data"]["document"]["hotel_id"],
        a + 1,
        "stored as accepted"
    );
    let changes = s.changes(&third).await;
    let ca = changes.iter().find(|c| c.hotel_id == a).unwrap();
    assert!(
        ca.accepted_by
            .as_deref()
            .is_some_and(|b| b.starts_with("ana at ")),
        "{ca:?}"
    );
    assert_eq!(
        s.props.get_record(b).await.unwrap().unwrap().sync_status,
        SyncStatus::Synced
    );
    let (_, list) = api_call(&s, "GET", "/api/v1/admin/quarantine", None).await;
    assert_eq!(list["data"]["items"].as_array().unwrap().len(), 1);
    let (_, status) = api_call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(
        status["data"]["properties_by_status"]["quarantined"], 1,
        "{status}"
    );
}

#[tokio::test]
async fn bad_input_on_the_quarantine_routes_is_a_400_naming_the_field_and_writes_nothing() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    s.sim.sim.set_faults(Faults {
        per_id: HashMap::from([(ids[0], fault("type_change", None))]),
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(run.counters.quarantined, 1);
    let id = ids[0];
    for (method, path, body, field) in [
        (
            "GET",
            "/api/v1/admin/quarantine?limit=0".to_string(),
            None,
            "limit",
        ),
        (
            "GET",
            "/api/v1/admin/quarantine?after=x".into(),
            None,
            "after",
        ),
        (
            "GET",
            "/api/v1/admin/quarantine?rule=nope".into(),
            None,
            "rule",
        ),
        (
            "GET",
            "/api/v1/admin/quarantine?offset=3".into(),
            None,
            "offset",
        ),
        (
            "GET",
            "/api/v1/admin/quarantine/abc".into(),
            None,
            "hotel_id",
        ),
        (
            "DELETE",
            "/api/v1/admin/quarantine/-4".into(),
            None,
            "hotel_id",
        ),
        (
            "POST",
            format!("/api/v1/admin/quarantine/{id}/accept"),
            None,
            "by",
        ),
        (
            "POST",
            format!("/api/v1/admin/quarantine/{id}/accept"),
            Some(serde_json::json!({"by": "  ", "quarantined_by_sync": run.sync_id})),
            "by",
        ),
        (
            "POST",
            format!("/api/v1/admin/quarantine/{id}/accept"),
            Some(serde_json::json!({"by": "ana"})),
            "quarantined_by_sync",
        ),
        (
            "POST",
            format!("/api/v1/admin/quarantine/{id}/accept"),
            Some(serde_json::json!({"by": "ana", "extra": 1})),
            "extra",
        ),
        (
            "POST",
            format!("/api/v1/admin/quarantine/{id}/accept"),
            Some(serde_json::json!({"by": 5, "quarantined_by_sync": "s"})),
            "by",
        ),
    ] {
        let (code, v) = api_call(&s, method, &path, body).await;
        assert_eq!(code, 400, "{method} {path}: {v}");
        assert_eq!(
            v["error"]["details"]["field"], field,
            "{method} {path}: {v}"
        );
    }
    let r = s.props.get_record(id).await.unwrap().unwrap();
    assert_eq!(r.sync_status, SyncStatus::Quarantined);
    assert!(r.accepted.is_empty(), "nothing was accepted");
    let (code, _) = api_call(
        &s,
        "POST",
        &format!("/api/v1/admin/quarantine/{}/accept", ids[1]),
        Some(serde_json::json!({"by": "ana", "quarantined_by_sync": run.sync_id})),
    )
    .await;
    assert_eq!(code, 404, "not quarantined");
}
