//! The admin API through the shared HTTP edge (routing, auth, envelope) with DynamoDB on moto.

use cupid_sync::api::serve;
use cupid_sync::config::Secret;
use cupid_sync::domain::run::SyncRequest;
use cupid_sync::ports::Schedule;
use integration::{Options, Stack};
use serde_json::{Value, json};

async fn call(s: &Stack, method: &str, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
    integration::api_call(s, method, path_and_query, body).await
}

#[tokio::test]
async fn trigger_answers_202_dispatches_and_refuses_a_second_run() {
    let s = Stack::new(Options::default()).await;
    s.track_exercise_ids().await;
    let (st, b) = call(&s, "POST", "/api/v1/admin/sync", None).await;
    assert_eq!(st, 202, "{b}");
    let d = &b["data"];
    assert_eq!(d["status"], "running");
    assert_eq!(d["message"], "Synchronization started in background");
    assert_eq!(d["estimated_duration"], "1s");
    assert!(d["triggered_at"].as_str().unwrap().ends_with('Z'));
    let sync_id = d["sync_id"].as_str().unwrap().to_string();
    let sent = s.dispatch.sent.lock().unwrap().clone();
    assert!(
        matches!(
            sent.as_slice(),
            [SyncRequest::Manual { sync_id: id, lease: Some(_), hotel_ids: None, dry_run: false }] if *id == sync_id
        ),
        "{sent:?}"
    );

    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/admin/sync",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(st, 409);
    assert_eq!(b["error"]["code"], "sync_in_progress");
    assert_eq!(b["error"]["details"]["sync_id"], sync_id.as_str());

    // Status shows the queued run as the current run.
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(b["data"]["current_run"]["sync_id"], sync_id.as_str());
    assert_eq!(b["data"]["current_run"]["total"], 100);

    // The dispatched request runs to completion and frees the lease.
    let run = s.run_to_end(sent[0].clone()).await;
    assert_eq!(run.sync_id, sync_id);
    assert_eq!(run.counters.updated, 100);
    // A second delivery of the same event does nothing.
    let again = s.engine().handle(sent[0].clone(), None).await.unwrap();
    assert!(
        matches!(&again, cupid_sync::engine::Outcome::Skipped { reason } if reason.contains("already ended")),
        "{again:?}"
    );
    let (st, _) = call(
        &s,
        "POST",
        "/api/v1/admin/sync",
        Some(json!({"hotel_ids": [1641879], "dry_run": true})),
    )
    .await;
    assert_eq!(st, 202);
}

#[tokio::test]
async fn fifty_concurrent_triggers_start_exactly_one_run() {
    let s = Stack::new(Options::default()).await;
    s.track_exercise_ids().await;
    let calls = (0..50).map(|_| call(&s, "POST", "/api/v1/admin/sync", None));
    let results = futures::future::join_all(calls).await;
    let accepted = results.iter().filter(|(st, _)| *st == 202).count();
    let refused = results
        .iter()
        .filter(|(st, b)| *st == 409 && b["error"]["code"] == "sync_in_progress")
        .count();
    assert_eq!(
        (accepted, refused),
        (1, 49),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(s.dispatch.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_inputs_are_400s_naming_the_field_and_write_nothing() {
    let s = Stack::new(Options::default()).await;
    let cases: Vec<(&str, &str, Option<Value>, &str)> = vec![
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_interval", "setting_value": "6x"}])),
            "sync_interval",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_interval", "setting_value": "0h"}])),
            "sync_interval",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_interval", "setting_value": "-1h"}])),
            "sync_interval",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_interval", "setting_value": "8d"}])),
            "sync_interval",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_batch_size", "setting_value": "ten"}])),
            "sync_batch_size",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(
                json!([{"setting_key": "sync_batch_size", "setting_value": 20}, {"setting_key": "nope", "setting_value": 1}]),
            ),
            "nope",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_rate_limit", "setting_value": [1]}])),
            "sync_rate_limit",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([])),
            "body",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_schema_policy", "setting_value": "thaw"}])),
            "sync_schema_policy",
        ),
        (
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!({"sync_interval": "1h"})),
            "body",
        ),
        (
            "POST",
            "/api/v1/admin/sync/start?interval=6x",
            None,
            "interval",
        ),
        (
            "POST",
            "/api/v1/admin/sync/start?interval=30s",
            None,
            "interval",
        ),
        ("GET", "/api/v1/admin/sync/logs?limit=0", None, "limit"),
        ("GET", "/api/v1/admin/sync/logs?limit=101", None, "limit"),
        ("GET", "/api/v1/admin/sync/logs?limit=abc", None, "limit"),
        ("GET", "/api/v1/admin/sync/logs?offset=-1", None, "offset"),
        (
            "POST",
            "/api/v1/admin/sync",
            Some(json!({"hotel_ids": []})),
            "hotel_ids",
        ),
        (
            "POST",
            "/api/v1/admin/sync",
            Some(json!({"hotel_ids": ["x"]})),
            "hotel_ids[0]",
        ),
        (
            "POST",
            "/api/v1/admin/sync",
            Some(json!({"hotel_ids": [1, -5]})),
            "hotel_ids[1]",
        ),
        (
            "POST",
            "/api/v1/admin/sync",
            Some(json!({"force": "yes"})),
            "force",
        ),
        (
            "POST",
            "/api/v1/admin/sync",
            Some(json!({"surprise": true})),
            "surprise",
        ),
        (
            "PUT",
            "/api/v1/admin/properties",
            Some(json!({"hotel_ids": (1..=10_001).collect::<Vec<i64>>()})),
            "hotel_ids",
        ),
        (
            "PUT",
            "/api/v1/admin/properties",
            Some(json!({"ids": [1]})),
            "ids",
        ),
        ("DELETE", "/api/v1/admin/properties/abc", None, "id"),
        ("GET", "/api/v1/admin/sync/logs?cursor=a-b", None, "cursor"),
        (
            "GET",
            "/api/v1/admin/sync/logs?cursor=01A&offset=2",
            None,
            "cursor",
        ),
        ("GET", "/api/v1/admin/sync/logs/01A?after=x", None, "after"),
        (
            "GET",
            "/api/v1/admin/sync/logs/01A?limit=101",
            None,
            "limit",
        ),
        ("GET", "/api/v1/properties/0", None, "id"),
    ];
    for (method, path, body, field) in cases {
        let (st, b) = call(&s, method, path, body.clone()).await;
        assert_eq!(st, 400, "{method} {path} {body:?} -> {b}");
        assert_eq!(b["success"], false);
        assert_eq!(
            b["error"]["details"]["field"], field,
            "{method} {path} {body:?} -> {b}"
        );
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    // Nothing was written: settings are the defaults, no schedule, no run, no property.
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/settings", None).await;
    assert!(
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["updated_at"].is_null()),
        "{b}"
    );
    assert!(s.schedule.get().await.unwrap().is_none());
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/logs", None).await;
    assert_eq!(b["data"]["total"], 0);
    assert!(s.dispatch.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn settings_apply_all_or_nothing_and_reconcile_the_schedule() {
    let s = Stack::new(Options::default()).await;
    let (st, b) = call(&s, "GET", "/api/v1/admin/sync/settings", None).await;
    assert_eq!(st, 200);
    let rows = b["data"].as_array().unwrap();
    assert_eq!(rows.len(), 11);
    assert!(
        rows.iter()
            .all(|r| r["description"].as_str().is_some_and(|d| !d.is_empty()))
    );
    let (st, b) = call(
        &s,
        "PUT",
        "/api/v1/admin/sync/settings",
        Some(json!([{"setting_key": "sync_batch_size", "setting_value": 25}, {"setting_key": "sync_interval", "setting_value": "24h"}])),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let get = |b: &Value, k: &str| {
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["setting_key"] == k)
            .unwrap()
            .clone()
    };
    assert_eq!(get(&b, "sync_batch_size")["setting_value"], "25");
    assert_eq!(get(&b, "sync_interval")["setting_value"], "24h");
    assert!(get(&b, "sync_interval")["updated_at"].is_string());
    let sched = s.schedule.get().await.unwrap().unwrap();
    assert_eq!(
        (sched.enabled, sched.interval.to_string()),
        (true, "24h".to_string())
    );

    let (st, _) = call(
        &s,
        "PUT",
        "/api/v1/admin/sync/settings",
        Some(json!([{"setting_key": "sync_enable_auto", "setting_value": false}])),
    )
    .await;
    assert_eq!(st, 200);
    assert!(!s.schedule.get().await.unwrap().unwrap().enabled);
}

#[tokio::test]
async fn start_stop_status_and_health_agree() {
    let s = Stack::new(Options::default()).await;
    s.track_exercise_ids().await;
    let (st, b) = call(&s, "POST", "/api/v1/admin/sync/start?interval=24h", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["enabled"], true);
    assert_eq!(b["data"]["schedule_expression"], "rate(1 day)");
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/settings", None).await;
    assert!(
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["setting_key"] == "sync_interval" && r["setting_value"] == "24h")
    );

    s.sync().await;
    let (st, b) = call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(st, 200);
    let d = &b["data"];
    for k in [
        "is_running",
        "last_sync",
        "next_sync",
        "total_properties",
        "updated_properties",
        "failed_properties",
        "sync_interval",
        "last_error",
        "current_run",
    ] {
        assert!(d.get(k).is_some(), "status lacks {k}: {d}");
    }
    assert_eq!(
        (
            d["is_running"].as_bool(),
            d["total_properties"].as_u64(),
            d["updated_properties"].as_u64()
        ),
        (Some(true), Some(100), Some(100))
    );
    assert_eq!(d["sync_interval"], "24h");
    assert!(d["current_run"].is_null());

    let (st, b) = call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"]["status"], "healthy");
    for k in [
        "status",
        "is_running",
        "is_healthy",
        "is_overdue",
        "last_sync_age",
        "next_sync_in",
        "sync_interval",
        "summary",
        "checked_at",
    ] {
        assert!(b["data"].get(k).is_some(), "health lacks {k}");
    }

    for _ in 0..2 {
        let (st, b) = call(&s, "POST", "/api/v1/admin/sync/stop", None).await;
        assert_eq!((st, b["data"]["enabled"].as_bool()), (200, Some(false)));
    }
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(b["data"]["status"], "stopped");
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(b["data"]["is_running"], false);
    assert!(b["data"]["next_sync"].is_null());
}

#[tokio::test]
async fn logs_page_newest_first_and_show_one_run_in_detail() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    let first = s.sync().await;
    s.sim.sim.change(&cupid_sim::ChangeRequest {
        hotel_ids: vec![ids[7]],
        ..Default::default()
    });
    let second = s.sync().await;
    let third = s.sync().await;
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/logs?limit=2", None).await;
    let items = b["data"]["items"].as_array().unwrap();
    assert_eq!(
        (
            b["data"]["total"].as_u64(),
            b["data"]["limit"].as_u64(),
            items.len()
        ),
        (Some(3), Some(2), 2)
    );
    assert_eq!(items[0]["sync_id"], third.sync_id.as_str());
    assert_eq!(items[1]["sync_id"], second.sync_id.as_str());
    let (_, b) = call(&s, "GET", "/api/v1/admin/sync/logs?limit=2&offset=2", None).await;
    assert_eq!(b["data"]["items"][0]["sync_id"], first.sync_id.as_str());

    let (st, b) = call(
        &s,
        "GET",
        &format!("/api/v1/admin/sync/logs/{}", second.sync_id),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        b["data"]["changes"],
        json!([{"hotel_id": ids[7], "facet": "property", "paths": ["hotel_name", "rating"], "paths_truncated": false}])
    );
    assert_eq!(b["data"]["updated_properties"], 1);
    let (st, b) = call(&s, "GET", "/api/v1/admin/sync/logs/01NOPE", None).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn properties_track_untrack_and_read() {
    let s = Stack::new(Options::default()).await;
    let (st, b) = call(
        &s,
        "PUT",
        "/api/v1/admin/properties",
        Some(json!({"hotel_ids": [1641879, 317597, 317597]})),
    )
    .await;
    assert_eq!(
        (st, b["data"]["newly_tracked"].as_u64()),
        (200, Some(2)),
        "{b}"
    );
    s.sync().await;
    let (st, b) = call(&s, "GET", "/api/v1/properties/1641879", None).await;
    assert_eq!(st, 200);
    assert_eq!(b["data"]["sync_status"], "synced");
    assert_eq!(
        b["data"]["document"]["hotel_name"],
        "The Z Hotel Covent Garden"
    );
    assert_eq!(b["data"]["data_version"], 1);

    let (st, _) = call(&s, "DELETE", "/api/v1/admin/properties/317597", None).await;
    assert_eq!(st, 200);
    let run = s.sync().await;
    assert_eq!(run.total, 1, "untracked ids are not synced");
    let (_, b) = call(&s, "GET", "/api/v1/properties/317597", None).await;
    assert_eq!(b["data"]["sync_status"], "untracked");
    assert!(b["data"]["document"].is_object(), "data kept");
    assert_eq!(
        call(&s, "DELETE", "/api/v1/admin/properties/42", None)
            .await
            .0,
        404
    );
    assert_eq!(call(&s, "GET", "/api/v1/properties/42", None).await.0, 404);
    let (_, b) = call(
        &s,
        "PUT",
        "/api/v1/admin/properties",
        Some(json!({"hotel_ids": [317597]})),
    )
    .await;
    assert_eq!(b["data"]["newly_tracked"], 1, "re-tracked");
}

#[tokio::test]
async fn an_api_gateway_v2_event_reaches_the_handler_intact() {
    let raw = include_str!("../../fixtures/apigw/put_settings.json");
    let event = lambda_http::request::from_str(raw).expect("a v2 event");
    let req = cupid_sync::api::from_lambda(&event);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PUT", "/api/v1/admin/sync/settings")
    );
    assert_eq!(req.query.get("dry").map(String::as_str), Some("1"));
    assert_eq!(req.authorization.as_deref(), Some("Bearer fixture-token"));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body[0]["setting_value"], 25);

    let s = Stack::new(Options::default()).await;
    let app = s.app();
    let resp = serve("settings", Some(&Secret::new("fixture-token")), &app, req).await;
    assert_eq!(resp.status, 200);
    let resp = serve(
        "settings",
        Some(&Secret::new("other-token")),
        &app,
        cupid_sync::api::from_lambda(&event),
    )
    .await;
    assert_eq!(resp.status, 401);
}

/// The sequence that wedged the system: a rate that passed validation made every later call
/// panic. Now it is refused; a bad value already stored (written before the rule tightened)
/// gets a clear error naming it from every route that depends on it, never a panic, and the
/// settings routes still show and replace it.
#[tokio::test]
async fn no_setting_value_can_panic_or_wedge_the_api() {
    let s = Stack::new(Options::default()).await;
    s.track_exercise_ids().await;
    for bad in [
        json!("1e-20"),
        json!(1e-20),
        json!("0.05"),
        json!("inf"),
        json!(5000),
    ] {
        let (st, b) = call(
            &s,
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(json!([{"setting_key": "sync_rate_limit", "setting_value": bad}])),
        )
        .await;
        assert_eq!(st, 400, "{bad}: {b}");
        assert_eq!(b["error"]["details"]["field"], "sync_rate_limit", "{b}");
    }
    use cupid_sync::ports::SettingsStore;
    assert!(
        s.settings.load().await.unwrap().is_empty(),
        "nothing written"
    );

    // A value stored before validation tightened.
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    s.client
        .put_item()
        .table_name(&s.tables.settings)
        .item("setting_key", AV::S("sync_rate_limit".into()))
        .item("setting_value", AV::S("1e-20".into()))
        .item("updated_at", AV::S("2025-01-01T00:00:00Z".into()))
        .send()
        .await
        .unwrap();
    for (method, path) in [
        ("GET", "/api/v1/admin/sync/status"),
        ("GET", "/api/v1/admin/sync/health"),
        ("POST", "/api/v1/admin/sync"),
    ] {
        let (st, b) = call(&s, method, path, None).await;
        assert_eq!(st, 500, "{path}: {b}");
        assert_eq!(b["error"]["code"], "invalid_stored_setting", "{path}: {b}");
        assert_eq!(
            b["error"]["details"]["setting_key"], "sync_rate_limit",
            "{path}: {b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("PUT /api/v1/admin/sync/settings"),
            "{b}"
        );
    }
    assert!(
        s.dispatch.sent.lock().unwrap().is_empty(),
        "no run was started"
    );
    assert!(s.lease_free().await, "no lease was taken");
    let (st, _) = call(&s, "GET", "/api/v1/admin/sync/settings", None).await;
    assert_eq!(st, 200, "the settings can still be read");
    let (st, _) = call(
        &s,
        "PUT",
        "/api/v1/admin/sync/settings",
        Some(json!([{"setting_key": "sync_rate_limit", "setting_value": 20}])),
    )
    .await;
    assert_eq!(st, 200, "and fixed");
    let (st, b) = call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn a_subset_sync_of_ids_that_are_not_tracked_is_refused_naming_them() {
    let s = Stack::new(Options::default()).await;
    let ids = s.track_exercise_ids().await;
    let (st, _) = call(
        &s,
        "DELETE",
        &format!("/api/v1/admin/properties/{}", ids[5]),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/admin/sync",
        Some(json!({"hotel_ids": [ids[0], ids[5], 777_777_777]})),
    )
    .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["details"]["field"], "hotel_ids");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&ids[5].to_string()) && msg.contains("777777777"),
        "{msg}"
    );
    assert!(!msg.contains(&ids[0].to_string()), "{msg}");
    assert!(
        s.lease_free().await && s.dispatch.sent.lock().unwrap().is_empty(),
        "nothing started"
    );
    use cupid_sync::ports::PropertyReader;
    assert!(
        s.props.get_record(777_777_777).await.unwrap().is_none(),
        "not tracked by the attempt"
    );
}
