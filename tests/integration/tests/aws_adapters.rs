//! The Scheduler and EventBridge adapters against moto_server.

use cupid_sync::adapters::aws::{EventBus, Scheduler, sdk_config};
use cupid_sync::config::Config;
use cupid_sync::domain::interval::Interval;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::{Events, RunEvent, Schedule};

fn config(schedule_name: &str) -> Config {
    let name = schedule_name.to_string();
    Config::from_source(&move |k| match k {
        "SCHEDULE_NAME" => Some(name.clone()),
        // moto's account.
        "SCHEDULE_TARGET_ARN" => Some("arn:aws:lambda:us-east-1:123456789012:function:sync".into()),
        "SCHEDULE_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/cupid-sync-scheduler".into()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test]
async fn the_schedule_is_created_updated_disabled_and_read_back() {
    integration::ddb().await; // asserts the local endpoint is configured
    let conf = sdk_config().await;
    let name = format!("cupid-sync-test-{}", std::process::id());
    let sched = Scheduler::new(&conf, &config(&name)).unwrap();
    assert_eq!(sched.get().await.unwrap(), None);
    let anchor = Timestamp(1_900_000_000);
    let twelve = Interval::parse("12h").unwrap();
    sched.put(true, twelve, anchor).await.unwrap();
    let got = sched.get().await.unwrap().unwrap();
    assert_eq!(
        (got.enabled, got.interval, got.anchor),
        (true, twelve, Some(anchor))
    );
    let day = Interval::parse("24h").unwrap();
    sched.put(false, day, anchor).await.unwrap();
    let got = sched.get().await.unwrap().unwrap();
    assert_eq!((got.enabled, got.interval), (false, day));
    // The target carries the scheduled input.
    let raw = aws_sdk_scheduler::Client::new(&conf)
        .get_schedule()
        .name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.schedule_expression(), Some("rate(1 day)"));
    assert_eq!(
        raw.target().and_then(|t| t.input()),
        Some(cupid_sync::adapters::aws::SCHEDULED_INPUT),
        "the slot's time names its run"
    );
}

#[tokio::test]
async fn run_events_reach_the_custom_bus() {
    integration::ddb().await;
    let conf = sdk_config().await;
    let bus = format!("cupid-sync-test-{}", std::process::id());
    aws_sdk_eventbridge::Client::new(&conf)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let events = EventBus::new(&conf, &bus);
    events
        .publish(&RunEvent {
            detail_type: "SyncCompleted",
            detail: serde_json::json!({"sync_id": "x", "updated_properties": 3}),
        })
        .await
        .unwrap();
    let missing = EventBus::new(&conf, "no-such-bus");
    let err = missing
        .publish(&RunEvent {
            detail_type: "SyncFailed",
            detail: serde_json::json!({}),
        })
        .await;
    // moto accepts events for unknown buses or refuses them; either way the call names the bus.
    if let Err(e) = err {
        assert!(e.call.contains("no-such-bus"), "{e}");
    }
}
