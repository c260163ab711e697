//! `GET /api/v1/admin/sync/metrics` over DynamoDB (moto): Prometheus' text exposition format,
//! read back by a parser (not by string matching), with HELP and TYPE for every family, values
//! that follow the catalogue and the runs, and the admin token required.

use cupid_sync::api::{ApiRequest, serve};
use cupid_sync::config::Secret;
use integration::{Options, Stack, api_raw};
use prometheus_parse::{Scrape, Value};

async fn scrape(s: &Stack) -> Scrape {
    let resp = api_raw(s, "GET", "/api/v1/admin/sync/metrics", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type, "text/plain; version=0.0.4");
    let text = String::from_utf8(resp.body).expect("UTF-8");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = Scrape::parse(lines).expect("the text exposition format");
    for family in scrape.samples.iter().map(|s| s.metric.as_str()) {
        assert!(
            scrape.docs.contains_key(family),
            "{family} has HELP\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} gauge")),
            "{family} has TYPE"
        );
    }
    scrape
}

/// The value of `name` with `label = value` (or the only sample when `label` is empty).
fn value(s: &Scrape, name: &str, label: (&str, &str)) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| {
            x.metric == name && (label.0.is_empty() || x.labels.get(label.0) == Some(label.1))
        })
        .map(|x| match x.value {
            Value::Gauge(v) | Value::Untyped(v) | Value::Counter(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_follow_the_catalogue_and_the_runs_in_the_exposition_format() {
    let s = Stack::new(Options {
        rate_limit: 400.0,
        max_concurrent: 8,
        ..Default::default()
    })
    .await;
    let m = scrape(&s).await;
    assert_eq!(value(&m, "cupid_sync_runs", ("", "")), Some(0.0));
    assert_eq!(value(&m, "cupid_sync_running", ("", "")), Some(0.0));
    assert_eq!(
        value(&m, "cupid_sync_last_run_duration_seconds", ("", "")),
        None,
        "no run yet: no last-run metrics"
    );
    s.track_exercise_ids().await;
    let m = scrape(&s).await;
    assert_eq!(
        value(&m, "cupid_sync_properties", ("status", "pending")),
        Some(100.0)
    );
    let run = s.sync().await;
    let m = scrape(&s).await;
    assert_eq!(
        value(&m, "cupid_sync_properties", ("status", "synced")),
        Some(100.0)
    );
    assert_eq!(
        value(&m, "cupid_sync_properties", ("status", "pending")),
        Some(0.0)
    );
    assert_eq!(value(&m, "cupid_sync_runs", ("", "")), Some(1.0));
    assert_eq!(
        value(&m, "cupid_sync_last_run_status", ("status", "completed")),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "cupid_sync_last_run_status", ("status", "failed")),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "cupid_sync_last_run_properties", ("outcome", "updated")),
        Some(run.counters.updated as f64)
    );
    assert_eq!(
        value(&m, "cupid_sync_recent_runs", ("status", "completed")),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "cupid_sync_last_run_upstream_requests", ("", "")),
        Some(run.counters.upstream_requests as f64)
    );
    assert!(value(&m, "cupid_sync_last_run_write_units", ("", "")).unwrap() > 0.0);
    assert_eq!(
        value(
            &m,
            "cupid_sync_last_run_upstream_errors",
            ("kind", "throttled")
        ),
        Some(run.counters.upstream_throttled as f64)
    );
    assert_eq!(
        value(&m, "cupid_sync_last_run_upstream_retries", ("", "")),
        Some(run.counters.upstream_retries as f64)
    );
    assert!(value(&m, "cupid_sync_last_success_timestamp_seconds", ("", "")).unwrap() > 1.7e9);
    let healthy: f64 = ["healthy", "degraded", "unhealthy", "stopped"]
        .iter()
        .filter_map(|h| value(&m, "cupid_sync_health", ("status", h)))
        .sum();
    assert_eq!(healthy, 1.0, "exactly one health state");

    // The admin token is required.
    let req = ApiRequest {
        method: "GET".into(),
        path: "/api/v1/admin/sync/metrics".into(),
        authorization: Some("Bearer wrong".into()),
        ..Default::default()
    };
    let resp = serve(
        "status",
        Some(&Secret::new(integration::ADMIN_TOKEN)),
        &s.app(),
        req,
    )
    .await;
    assert_eq!(resp.status, 401);
}
