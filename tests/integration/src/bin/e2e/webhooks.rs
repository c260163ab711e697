//! Webhooks through `cargo lambda watch`: a receiver on this machine is told when a run
//! completes, signed with the secret shown once; the delivery log records the attempt.

use super::Ctx;
use serde_json::Value;
use std::time::{Duration, Instant};

pub(super) async fn checks(c: &mut Ctx) {
    let base = c.base.clone();
    let api = |p: &str| format!("{base}{p}");
    // Webhooks: a receiver on this machine is told when a run completes (the local publisher
    // hands each event to the deliver function under watch), signed with the secret shown once.
    let rx = integration::receiver::Receiver::start().await;
    let (s, hook, _) = c
        .send(
            "POST",
            &api("/api/v1/admin/webhooks"),
            true,
            Some(
                serde_json::json!({"url": format!("{}/e2e", rx.url), "events": ["sync.completed"]}),
            ),
        )
        .await;
    let secret = hook["data"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let hook_id = hook["data"]["id"].as_str().unwrap_or_default().to_string();
    c.check(
        "POST /admin/webhooks answers 201 with a signing secret",
        s == 201 && secret.starts_with("whsec_"),
        &hook,
    );
    let (s, b, _) = c
        .send(
            "POST",
            &api("/api/v1/admin/webhooks"),
            true,
            Some(serde_json::json!({"url": format!("{}/e2e", rx.url), "events": ["sync.done"]})),
        )
        .await;
    c.check(
        "an unknown event is a 400 naming the field",
        s == 400 && b["error"]["details"]["field"] == "events",
        &b,
    );
    let (_, b, _) = c
        .send(
            "POST",
            &api("/api/v1/admin/sync"),
            true,
            Some(serde_json::json!({"hotel_ids": [1641879]})),
        )
        .await;
    let hooked_run = b["data"]["sync_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.wait_idle().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.at("e2e").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = rx.at("e2e");
    let now = cupid_sync::domain::time::Timestamp::from_system(std::time::SystemTime::now());
    let verified = got.first().is_some_and(|r| {
        cupid_sync::domain::webhook::verify(&secret, &r.signature, &r.body, now, 300).is_ok()
    });
    let body: Value = got
        .first()
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .unwrap_or_default();
    c.check(
        "the run's completion reaches the webhook, signed (Cupid-Sync-Signature verifies)",
        got.len() == 1
            && verified
            && body["type"] == "sync.completed"
            && body["data"]["sync_id"] == hooked_run.as_str(),
        format!("{} received, verified {verified}: {body}", got.len()),
    );
    let (_, log, _) = c
        .call(
            "GET",
            &format!("/api/v1/admin/webhooks/{hook_id}/deliveries"),
            true,
        )
        .await;
    c.check(
        "the delivery log records the attempt",
        log["data"]["deliveries"][0]["outcome"] == "delivered"
            && log["data"]["deliveries"][0]["status_code"] == 200,
        &log,
    );
    let (s, _, _) = c
        .call("DELETE", &format!("/api/v1/admin/webhooks/{hook_id}"), true)
        .await;
    c.check("a webhook is removed", s == 200, s);
}
