//! The circuit breaker and auto-pause over DynamoDB (moto) and the Cupid simulator: an upstream
//! bug that changes every property at once halts the run with nothing written, again on the
//! next run, until an operator forces a run through (or raises the ratio); ordinary change goes
//! ahead; five failed scheduled runs in a row pause the schedule until it is started again.

use cupid_sim::{ChangeRequest, Faults, IdFault};
use cupid_sync::domain::run::{RunStatus, SyncRun};
use cupid_sync::ports::PropertyReader;
use integration::{Options, Stack, api_call};
use std::collections::HashMap;

fn opts() -> Options {
    Options {
        rate_limit: 400.0,
        max_concurrent: 8,
        ..Default::default()
    }
}

/// Each property's stored content hash.
async fn hashes(s: &Stack, ids: &[i64]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(s.props.get_record(*id).await.unwrap().unwrap().content_hash);
    }
    out
}

/// `POST /admin/sync` with `body` (answered 202), then the run it dispatched, to its end.
async fn trigger_and_run(s: &Stack, body: serde_json::Value) -> SyncRun {
    let (code, answer) = api_call(s, "POST", "/api/v1/admin/sync", Some(body)).await;
    assert_eq!(code, 202, "{answer}");
    let dispatched = s.dispatch.sent.lock().unwrap().pop().expect("dispatched");
    let run = s.run_to_end(dispatched).await;
    assert_eq!(answer["data"]["sync_id"], run.sync_id.as_str());
    run
}

#[tokio::test]
async fn a_mass_change_halts_with_nothing_written_until_an_operator_forces_it() {
    let s = Stack::new(opts()).await;
    let ids = s.track_exercise_ids().await;
    let first = s.sync().await;
    assert_eq!(
        (first.status, first.counters.updated),
        (RunStatus::Completed, 100),
        "a first sync of empty data is exempt"
    );
    let before = hashes(&s, &ids).await;

    // An upstream bug: every property changes at once.
    s.sim.sim.change(&ChangeRequest {
        fraction: Some(1.0),
        seed: 7,
        ..Default::default()
    });
    let halted = s.sync().await;
    assert_eq!(
        halted.status,
        RunStatus::Halted,
        "{:?}",
        halted.error_message
    );
    let reason = halted.error_message.clone().unwrap_or_default();
    assert!(
        reason.contains("circuit breaker") && reason.contains("force"),
        "{reason}"
    );
    assert_eq!(
        (halted.counters.updated, halted.counters.document_writes),
        (0, 0),
        "nothing written"
    );
    assert_eq!(
        hashes(&s, &ids).await,
        before,
        "every stored document unchanged"
    );
    assert!(halted.breaker.fetched == 100 && !halted.breaker.released);
    let events = s.events.events.lock().unwrap().clone();
    assert_eq!(events.last().map(|e| e.detail_type), Some("SyncHalted"));
    let (code, _) = api_call(&s, "POST", "/api/v1/admin/sync/start", None).await;
    assert_eq!(code, 200);
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    assert!(
        health["data"]["summary"]
            .as_str()
            .is_some_and(|x| x.contains("halted")),
        "{health}"
    );
    let (_, status) = api_call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert_eq!(status["data"]["last_run"]["status"], "halted", "{status}");

    // The next scheduled run does the same: upstream still changes everything.
    let again = s.sync().await;
    assert_eq!(again.status, RunStatus::Halted);
    assert_eq!(hashes(&s, &ids).await, before);
    // A subset sync (an operator named one property) says nothing of the catalogue: health
    // still shows the halt.
    let subset = trigger_and_run(&s, serde_json::json!({"hotel_ids": [ids[0]]})).await;
    assert_eq!(subset.status, RunStatus::Completed);
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    // ...nor do as many of them as status reads runs at once.
    for _ in 0..10 {
        trigger_and_run(
            &s,
            serde_json::json!({"hotel_ids": [ids[0]], "dry_run": true}),
        )
        .await;
    }
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    let before = hashes(&s, &ids).await;

    // An operator accepts the change: a forced run writes it all.
    let done = trigger_and_run(&s, serde_json::json!({"force": true})).await;
    assert!(done.force);
    assert_eq!(
        (done.status, done.counters.updated),
        (RunStatus::Completed, 99),
        "{:?}: all but the one the subset sync stored",
        done.error_message
    );
    let after = hashes(&s, &ids).await;
    assert!(before.iter().zip(&after).skip(1).all(|(b, a)| b != a));
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(health["data"]["status"], "healthy", "{health}");
}

#[tokio::test]
async fn ordinary_change_and_a_raised_ratio_go_ahead() {
    let s = Stack::new(opts()).await;
    let ids = s.track_exercise_ids().await;
    s.sync().await;
    // A third of the catalogue changes: under the default ratio (0.5).
    s.sim.sim.change(&ChangeRequest {
        hotel_ids: ids.iter().copied().step_by(3).collect(),
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(
        (run.status, run.counters.updated),
        (RunStatus::Completed, 34)
    );
    // Everything changes, and the operator has raised the ratio to 1: no halt.
    let (code, _) = api_call(
        &s,
        "PUT",
        "/api/v1/admin/sync/settings",
        Some(serde_json::json!([{"setting_key": "sync_max_change_ratio", "setting_value": 1}])),
    )
    .await;
    assert_eq!(code, 200);
    s.sim.sim.change(&ChangeRequest {
        fraction: Some(1.0),
        seed: 3,
        ..Default::default()
    });
    let run = s.sync().await;
    assert_eq!(
        (run.status, run.counters.updated),
        (RunStatus::Completed, 100)
    );
    // Bad values are refused naming the setting.
    for bad in [
        serde_json::json!(0),
        serde_json::json!(1.5),
        serde_json::json!("x"),
    ] {
        let (code, body) = api_call(
            &s,
            "PUT",
            "/api/v1/admin/sync/settings",
            Some(
                serde_json::json!([{"setting_key": "sync_max_change_ratio", "setting_value": bad}]),
            ),
        )
        .await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["details"]["field"], "sync_max_change_ratio");
    }
}

#[tokio::test]
async fn five_failed_scheduled_runs_pause_the_schedule_until_it_is_started_again() {
    let s = Stack::new(opts()).await;
    let ids = s.track_exercise_ids().await;
    assert_eq!(s.sync().await.status, RunStatus::Completed);
    let (code, _) = api_call(&s, "POST", "/api/v1/admin/sync/start", None).await;
    assert_eq!(code, 200);
    // The API key is refused for one property: every run aborts (401), nothing written.
    s.sim.sim.set_faults(Faults {
        per_id: HashMap::from([(
            ids[7],
            IdFault {
                kind: "401".into(),
                times: 0,
                path_contains: None,
            },
        )]),
        ..Default::default()
    });
    for n in 1..=5 {
        let run = s.sync().await;
        assert_eq!(run.status, RunStatus::Failed, "run {n}");
        let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
        if n < 5 {
            assert_eq!(health["data"]["status"], "degraded", "after {n}: {health}");
        }
    }
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["data"]["status"], "unhealthy");
    let reason = health["data"]["paused_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("after 5 scheduled runs") && reason.contains("401"),
        "{health}"
    );
    assert!(health["data"]["paused_since"].is_string());
    let (_, status) = api_call(&s, "GET", "/api/v1/admin/sync/status", None).await;
    assert!(status["data"]["paused"]["reason"].is_string(), "{status}");
    assert_eq!(status["data"]["is_running"], false, "the schedule is off");
    let events = s.events.events.lock().unwrap().clone();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.detail_type == "SyncPaused")
            .count(),
        1
    );
    let (_, settings) = api_call(&s, "GET", "/api/v1/admin/sync/settings", None).await;
    let auto = settings["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["setting_key"] == "sync_enable_auto")
        .cloned()
        .unwrap();
    assert_eq!(auto["setting_value"], "false", "{auto}");

    // Started again, the note is gone, and the count starts afresh: one more failure (not
    // yet fixed) does not pause it again. (Times are in seconds: the restart comes a second
    // after the failed runs started.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (code, _) = api_call(&s, "POST", "/api/v1/admin/sync/start", None).await;
    assert_eq!(code, 200);
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(code, 200, "{health}");
    assert!(health["data"]["paused_reason"].is_null());
    assert_eq!(s.sync().await.status, RunStatus::Failed);
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(
        (code, health["data"]["status"].as_str()),
        (200, Some("degraded")),
        "{health}"
    );
    s.sim.sim.set_faults(Faults::default());
    assert_eq!(s.sync().await.status, RunStatus::Completed);
}

/// An upstream regression that breaks the contract for most of the catalogue halts the run;
/// once an operator forces it through (the bad payloads held, the good data kept), the same
/// payloads held again are not a change: later runs complete instead of halting (and pausing
/// the schedule) for as long as upstream stays broken. New bad content is a change again.
#[tokio::test]
async fn a_quarantine_forced_through_once_does_not_halt_every_run_after() {
    let s = Stack::new(opts()).await;
    let ids = s.track_exercise_ids().await;
    assert_eq!(s.sync().await.status, RunStatus::Completed);
    let before = hashes(&s, &ids).await;
    let bad: Vec<i64> = ids.iter().copied().take(60).collect();
    let broken = |kind: &str| Faults {
        per_id: bad
            .iter()
            .map(|id| {
                (
                    *id,
                    IdFault {
                        kind: kind.into(),
                        times: 0,
                        path_contains: Some("/v3.0/property/".into()),
                    },
                )
            })
            .collect(),
        ..Default::default()
    };
    s.sim.sim.set_faults(broken("empty_name"));
    let halted = s.sync().await;
    assert_eq!(
        halted.status,
        RunStatus::Halted,
        "{:?}",
        halted.error_message
    );
    assert_eq!(
        halted.counters.quarantined, 0,
        "a halted run holds nothing either"
    );

    let forced = trigger_and_run(&s, serde_json::json!({"force": true})).await;
    assert_eq!(
        (forced.status, forced.counters.quarantined),
        (RunStatus::Completed, 60),
        "{:?}",
        forced.error_message
    );
    assert_eq!(hashes(&s, &ids).await, before, "the good data is kept");

    // Upstream stays broken the same way: the same payloads are held again, nothing new.
    for n in 1..=2 {
        let run = s.sync().await;
        assert_eq!(
            (run.status, run.counters.quarantined),
            (RunStatus::Completed, 60),
            "run {n} after the forced one: {:?}",
            run.error_message
        );
        assert_eq!(run.breaker.changed, 0, "run {n}: {:?}", run.breaker);
    }
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_ne!(health["data"]["status"], "unhealthy", "{health}");

    // Broken another way: new content for the breaker to judge.
    s.sim.sim.set_faults(broken("null_island"));
    let again = s.sync().await;
    assert_eq!(again.status, RunStatus::Halted, "{:?}", again.error_message);
    assert_eq!(hashes(&s, &ids).await, before);
}

/// Settings through the API (each must be accepted).
async fn put_settings(s: &Stack, rows: serde_json::Value) {
    let (code, body) = api_call(s, "PUT", "/api/v1/admin/sync/settings", Some(rows)).await;
    assert_eq!(code, 200, "{body}");
}

/// The schedule on, pausing itself after `n` scheduled runs in a row ended badly.
async fn schedule_pausing_after(s: &Stack, n: u32) {
    put_settings(
        s,
        serde_json::json!([{"setting_key": "sync_max_consecutive_failures", "setting_value": n}]),
    )
    .await;
    let (code, body) = api_call(s, "POST", "/api/v1/admin/sync/start", None).await;
    assert_eq!(code, 200, "{body}");
}

/// Upstream answers 500 for every property: each scheduled run "completes" with all of them
/// failed. That is a failed run for the schedule, and the schedule pauses itself.
#[tokio::test]
async fn scheduled_runs_where_every_property_fails_pause_the_schedule() {
    let s = Stack::new(Options {
        retries: 0,
        ..opts()
    })
    .await;
    let ids = s.track_exercise_ids().await;
    assert_eq!(s.sync().await.status, RunStatus::Completed);
    schedule_pausing_after(&s, 2).await;
    s.sim.sim.set_faults(Faults {
        per_id: ids
            .iter()
            .map(|id| {
                (
                    *id,
                    IdFault {
                        kind: "500".into(),
                        times: 0,
                        path_contains: None,
                    },
                )
            })
            .collect(),
        ..Default::default()
    });
    for n in 1..=2 {
        let run = s.sync().await;
        assert_eq!(
            (run.status, run.counters.failed),
            (RunStatus::CompletedWithErrors, 100),
            "run {n}"
        );
    }
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(code, 503, "{health}");
    let reason = health["data"]["paused_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("completed_with_errors") && reason.contains("100 of 100 properties failed"),
        "{health}"
    );

    // Turned on again through the settings (not /sync/start): the note goes, and the count
    // starts afresh, so one more such run does not pause it at once.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    put_settings(
        &s,
        serde_json::json!([{"setting_key": "sync_enable_auto", "setting_value": true}]),
    )
    .await;
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(code, 200, "{health}");
    assert!(health["data"]["paused_reason"].is_null(), "{health}");
    s.sync().await;
    let (_, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(health["data"]["status"], "degraded", "{health}");
    // Stopped on purpose afterwards: stopped, not an old pause.
    let (code, _) = api_call(&s, "POST", "/api/v1/admin/sync/stop", None).await;
    assert_eq!(code, 200);
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(
        (code, health["data"]["status"].as_str()),
        (200, Some("stopped")),
        "{health}"
    );
}

/// Every scheduled run is killed (a Lambda timeout, say): none ends badly by itself, so the
/// run that closes its abandoned predecessor counts them, and the schedule pauses.
#[tokio::test]
async fn scheduled_runs_killed_every_time_pause_the_schedule_too() {
    use cupid_sync::domain::run::SyncType;
    use cupid_sync::ports::{Clock, RunLog as _, SystemClock};
    let ttl = std::time::Duration::from_secs(4);
    let s = Stack::new(Options {
        lease_ttl: ttl,
        ..opts()
    })
    .await;
    s.track_exercise_ids().await;
    schedule_pausing_after(&s, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A scheduled run that dies holding the lease.
    s.leave_dead_run("01DEADRUN", SyncType::Scheduled, SystemClock.now(), ttl)
        .await;
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;

    let run = s.sync().await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(
        s.runs.get("01DEADRUN").await.unwrap().unwrap().status,
        RunStatus::Abandoned
    );
    let (code, health) = api_call(&s, "GET", "/api/v1/admin/sync/health", None).await;
    assert_eq!(code, 503, "{health}");
    assert!(
        health["data"]["paused_reason"]
            .as_str()
            .is_some_and(|r| r.contains("01DEADRUN") && r.contains("abandoned")),
        "{health}"
    );
}
