//! Webhooks end to end on moto: registered through the admin API (bad URLs and unknown events
//! refused), the engine's real events delivered by the delivery service over HTTP to a local
//! receiver, signatures verified, a failing receiver retried then given up, the filter honoured,
//! and every attempt in the delivery log.

use cupid_sync::adapters::webhook_http::HttpWebhookSender;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::domain::webhook::{TargetPolicy, verify};
use cupid_sync::ports::{SendResult, SystemClock, WebhookSender};
use cupid_sync::webhooks::{BusEvent, Deliverer, RetryPolicy};
use integration::receiver::Receiver;
use integration::{Options, Stack};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn call(s: &Stack, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    integration::api_call(s, method, path, body).await
}

async fn add(s: &Stack, url: &str, events: Value) -> (u16, Value) {
    call(
        s,
        "POST",
        "/api/v1/admin/webhooks",
        Some(json!({"url": url, "events": events, "description": "test"})),
    )
    .await
}

#[tokio::test]
async fn bad_urls_and_unknown_events_are_refused_with_nothing_stored() {
    let s = Stack::new(Options::default()).await;
    for (url, events, field) in [
        ("ftp://example.com/x", json!([]), "url"),
        ("not a url", json!([]), "url"),
        ("https://10.0.0.8/hook", json!([]), "url"),
        ("https://169.254.169.254/latest", json!([]), "url"),
        ("http://example.com/hook", json!([]), "url"),
        ("https://user:pw@example.com/", json!([]), "url"),
        (
            "https://example.com/hook",
            json!(["sync.exploded"]),
            "events",
        ),
        (
            "https://example.com/hook",
            json!("sync.completed"),
            "events",
        ),
    ] {
        let (st, b) = add(&s, url, events.clone()).await;
        assert_eq!(st, 400, "{url} {events}: {b}");
        assert_eq!(b["error"]["details"]["field"], field, "{url}: {b}");
    }
    let (st, b) = call(
        &s,
        "POST",
        "/api/v1/admin/webhooks",
        Some(json!({"events": []})),
    )
    .await;
    assert_eq!(
        (st, b["error"]["details"]["field"].as_str()),
        (400, Some("url"))
    );
    let (_, b) = call(&s, "GET", "/api/v1/admin/webhooks", None).await;
    assert_eq!(b["data"]["webhooks"], json!([]), "nothing was stored");
    assert_eq!(b["data"]["events"].as_array().unwrap().len(), 5);
    let (st, _) = call(&s, "DELETE", "/api/v1/admin/webhooks/wh_nope", None).await;
    assert_eq!(st, 404);
    let (st, _) = call(&s, "GET", "/api/v1/admin/webhooks/wh_nope/deliveries", None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn a_real_run_event_is_signed_delivered_retried_filtered_and_logged() {
    let s = Stack::new(Options::default()).await;
    let rx = Receiver::start().await;
    let (st, ok) = add(&s, &format!("{}/ok", rx.url), json!(["sync.completed"])).await;
    assert_eq!(st, 201, "{ok}");
    let secret = ok["data"]["secret"].as_str().unwrap().to_string();
    let ok_id = ok["data"]["id"].as_str().unwrap().to_string();
    let (_, failing) = add(&s, &format!("{}/fail", rx.url), json!([])).await;
    let fail_id = failing["data"]["id"].as_str().unwrap().to_string();
    let (_, other) = add(&s, &format!("{}/other", rx.url), json!(["sync.failed"])).await;
    assert_eq!(other["data"]["events"], json!(["sync.failed"]));

    // The listing never shows a secret again.
    let (_, list) = call(&s, "GET", "/api/v1/admin/webhooks", None).await;
    assert_eq!(list["data"]["webhooks"].as_array().unwrap().len(), 3);
    assert!(!list.to_string().contains(&secret));

    // A real run, and the event the engine published, as the bus hands it to the function.
    s.track_exercise_ids().await;
    let run = s.sync().await;
    let published = s.events.events.lock().unwrap().clone();
    let done = published
        .iter()
        .find(|e| e.detail_type == "SyncCompleted")
        .expect("the run published SyncCompleted");
    let ev = BusEvent {
        id: "0f1e2d3c-event".into(),
        detail_type: done.detail_type.into(),
        time: Some(Timestamp(1_800_000_000).rfc3339()),
        detail: done.detail.clone(),
    };
    let deliverer = Deliverer {
        hooks: s.webhooks.clone(),
        sender: Arc::new(
            HttpWebhookSender::new(TargetPolicy {
                allow_loopback: true,
            })
            .unwrap(),
        ),
        clock: Arc::new(SystemClock),
        policy: RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
        },
    };
    let summary = deliverer.deliver(&ev).await.unwrap();
    assert_eq!(
        (summary.webhooks, summary.delivered, summary.gave_up),
        (2, 1, 1),
        "{summary:?}"
    );

    // Signed, and the signature verifies with the secret shown once.
    let got = rx.at("ok");
    assert_eq!(got.len(), 1);
    let now = Timestamp::from_system(std::time::SystemTime::now());
    assert_eq!(
        verify(&secret, &got[0].signature, &got[0].body, now, 300),
        Ok(())
    );
    assert!(verify(&secret, &got[0].signature, b"{}", now, 300).is_err());
    assert_eq!(got[0].event, "sync.completed");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "sync.completed");
    assert_eq!(body["id"], "0f1e2d3c-event");
    assert_eq!(body["data"]["sync_id"], run.sync_id.as_str());
    // The failing receiver got every attempt; the filtered one nothing.
    assert_eq!(rx.at("fail").len(), 3);
    assert!(rx.at("other").is_empty());

    // The delivery log, through the API.
    let (st, log) = call(
        &s,
        "GET",
        &format!("/api/v1/admin/webhooks/{fail_id}/deliveries"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{log}");
    let d = log["data"]["deliveries"].as_array().unwrap();
    let seen: Vec<_> = d
        .iter()
        .map(|x| {
            (
                x["attempt"].as_u64().unwrap(),
                x["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [(3, "gave_up"), (2, "retrying"), (1, "retrying")]);
    assert!(
        d.iter()
            .all(|x| x["status_code"] == 500 && x["event"] == "sync.completed")
    );
    let (_, log) = call(
        &s,
        "GET",
        &format!("/api/v1/admin/webhooks/{ok_id}/deliveries?limit=5"),
        None,
    )
    .await;
    let d = &log["data"]["deliveries"][0];
    assert_eq!(
        (d["outcome"].as_str(), d["status_code"].as_u64()),
        (Some("delivered"), Some(200))
    );
    assert_eq!(d["event_id"], "0f1e2d3c-event");
    let (st, _) = call(
        &s,
        "GET",
        &format!("/api/v1/admin/webhooks/{ok_id}/deliveries?limit=0"),
        None,
    )
    .await;
    assert_eq!(st, 400);

    // Removed: gone from the list, and the next event skips it.
    let (st, _) = call(
        &s,
        "DELETE",
        &format!("/api/v1/admin/webhooks/{fail_id}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let summary = deliverer.deliver(&ev).await.unwrap();
    assert_eq!((summary.webhooks, summary.delivered), (1, 1));
}

#[tokio::test]
async fn deployed_mode_sends_nothing_to_private_addresses() {
    let rx = Receiver::start().await;
    let sender = HttpWebhookSender::new(TargetPolicy {
        allow_loopback: false,
    })
    .unwrap();
    let r = sender
        .post(
            &format!("{}/ok", rx.url),
            &[],
            b"{}",
            Duration::from_secs(2),
        )
        .await;
    assert!(matches!(&r, SendResult::Refused(_)), "{r:?}");
    // `localhost` is refused by name (the resolver's own refusal has a unit test).
    let port = rx.url.rsplit(':').next().unwrap();
    let r = sender
        .post(
            &format!("https://localhost:{port}/ok"),
            &[],
            b"{}",
            Duration::from_secs(2),
        )
        .await;
    assert!(matches!(&r, SendResult::Refused(_)), "{r:?}");
    assert!(rx.at("ok").is_empty(), "nothing reached the receiver");
}
