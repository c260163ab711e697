//! Data quality through `cargo lambda watch`: quarantine (held back, the previous version
//! served, accepted by an operator), schema drift reported once, and the circuit breaker
//! (a mass change halts with nothing written until an operator forces it through).

use super::Ctx;
use serde_json::Value;

pub(super) async fn quarantine(c: &mut Ctx, sim: &str) {
    // Data quality: a regression upstream (another hotel's payload) is held back, the previous
    // version stays served, an operator accepts it, and the next sync stores exactly it.
    let id = 1_641_879i64;
    let base = c.base.clone();
    let api = |p: &str| format!("{base}{p}");
    c.send(
        "POST",
        &format!("{sim}/__sim/change"),
        false,
        Some(serde_json::json!({"hotel_ids": [id]})),
    )
    .await;
    c.send(
        "POST",
        &format!("{sim}/__sim/faults"),
        false,
        Some(serde_json::json!({"per_id": {id.to_string(): {
            "kind": "wrong_hotel", "times": 0, "path_contains": "/v3.0/property/"}}})),
    )
    .await;
    let subset = serde_json::json!({"hotel_ids": [id]});
    let (s, first) = run_logged(c, Some(subset.clone())).await;
    c.check(
        "a subset sync of the regressed property starts",
        s == 202,
        brief(&first),
    );
    let (_, b, _) = c
        .call("GET", &format!("/api/v1/properties/{id}"), true)
        .await;
    c.check(
        "a payload for another hotel is quarantined; the previous version is still served",
        b["data"]["sync_status"] == "quarantined" && b["data"]["document"]["hotel_id"] == id,
        &b["data"]["sync_status"],
    );
    let (_, b, _) = c
        .call("GET", "/api/v1/admin/quarantine?rule=hotel_id", true)
        .await;
    c.check(
        "the quarantine lists it with the rule it broke",
        b["data"]["items"][0]["hotel_id"] == id,
        &b["data"],
    );
    let (_, held, _) = c
        .call("GET", &format!("/api/v1/admin/quarantine/{id}"), true)
        .await;
    let read = held["data"]["quarantined_by_sync"].clone();
    let (s, b, _) = c
        .send(
            "POST",
            &api(&format!("/api/v1/admin/quarantine/{id}/accept")),
            true,
            Some(serde_json::json!({"by": "e2e", "quarantined_by_sync": read})),
        )
        .await;
    c.check("an operator accepts the held payload", s == 200, &b);
    let (s, log) = run_logged(c, Some(subset.clone())).await;
    c.check("the next sync starts", s == 202, brief(&log));
    let (_, b, _) = c
        .call("GET", &format!("/api/v1/properties/{id}"), true)
        .await;
    c.check(
        "the accepted payload is stored and the run log says who accepted it",
        b["data"]["sync_status"] == "synced"
            && b["data"]["document"]["hotel_id"] == id + 1
            && log["changes"][0]["accepted_by"]
                .as_str()
                .is_some_and(|a| a.starts_with("e2e at ")),
        format!("{} / {}", b["data"]["sync_status"], log["changes"]),
    );
    // Upstream fixed: the good content comes back.
    c.sim_faults(sim, serde_json::json!({})).await;
    run_logged(c, Some(subset)).await;
    let (_, b, _) = c
        .call("GET", &format!("/api/v1/properties/{id}"), true)
        .await;
    c.check(
        "once upstream is fixed the good content is stored again",
        b["data"]["document"]["hotel_id"] == id && b["data"]["sync_status"] == "synced",
        &b["data"]["sync_status"],
    );
}

pub(super) async fn drift(c: &mut Ctx, sim: &str) {
    // Schema drift: upstream's response shape changes for 25 properties (a new section, an
    // optional field gone). The run that meets it says so in its log, once.
    let drifted: Vec<i64> = cupid_sim::HOTEL_IDS
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .take(25)
        .collect();
    let per_id: serde_json::Map<String, Value> = drifted
        .iter()
        .map(|i| {
            (
                i.to_string(),
                serde_json::json!({"kind": "reshape", "times": 0}),
            )
        })
        .collect();
    c.sim_faults(sim, serde_json::json!({ "per_id": per_id }))
        .await;
    let mut drift_logs = Vec::new();
    for _ in 0..2 {
        let (_, log) = run_logged(c, None).await;
        drift_logs.push(log["schema_drift"].clone());
    }
    let property = drift_logs[0]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["facet"] == "property"))
        .cloned()
        .unwrap_or_default();
    c.check(
        "a changed response shape is reported in the run log: a path appeared in 25 documents, one gone",
        property["appeared"][0]["path"] == "sustainability"
            && property["appeared"][0]["count"] == 25
            && property["disappeared"][0]["path"] == "airport_code",
        &drift_logs[0],
    );
    c.check(
        "the drift is reported once: the next run reports none",
        drift_logs[1].as_array().is_some_and(|a| a.is_empty()),
        &drift_logs[1],
    );
    c.sim_faults(sim, serde_json::json!({})).await;
}

/// The stored content hash of `id`, as readers get it.
async fn served_hash(c: &Ctx, id: i64) -> Value {
    let (_, b, _) = c
        .call("GET", &format!("/api/v1/properties/{id}"), true)
        .await;
    b["data"]["content_hash"].clone()
}

/// Starts a full run (`body`: the trigger's JSON, if any), waits for it and returns its log.
async fn run_logged(c: &mut Ctx, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}/api/v1/admin/sync", c.base);
    let (s, b, _) = c.send("POST", &url, true, body).await;
    let run = b["data"]["sync_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.wait_idle().await;
    let (_, log, _) = c
        .call("GET", &format!("/api/v1/admin/sync/logs/{run}"), true)
        .await;
    (s, log["data"].clone())
}

/// An upstream bug that changes every property at once: the run halts with nothing written,
/// health says so, the next run halts too, and a forced run applies the change.
pub(super) async fn breaker(c: &mut Ctx, sim: &str) {
    let id = 1_641_879i64;
    let before = served_hash(c, id).await;
    // Health judges the schedule's runs: the schedule is on (a day apart: it never fires here).
    c.call("POST", "/api/v1/admin/sync/start?interval=24h", true)
        .await;
    c.send(
        "POST",
        &format!("{sim}/__sim/change"),
        false,
        Some(serde_json::json!({"fraction": 1.0, "seed": 11})),
    )
    .await;
    let (_, halted) = run_logged(c, None).await;
    c.check(
        "a run facing a change of every property halts with nothing written",
        halted["status"] == "halted"
            && halted["document_writes"] == 0
            && halted["updated_properties"] == 0
            && halted["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("circuit breaker") && m.contains("force")),
        brief(&halted),
    );
    let (_, health, _) = c.call("GET", "/api/v1/admin/sync/health", true).await;
    c.check(
        "the previous data is still served, and health is degraded naming the halt",
        served_hash(c, id).await == before
            && health["data"]["status"] == "degraded"
            && health["data"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("halted")),
        &health["data"],
    );
    let (_, again) = run_logged(c, None).await;
    c.check(
        "the next run halts too while upstream still changes everything",
        again["status"] == "halted" && again["document_writes"] == 0,
        brief(&again),
    );
    let (s, forced) = run_logged(c, Some(serde_json::json!({"force": true}))).await;
    let (_, health, _) = c.call("GET", "/api/v1/admin/sync/health", true).await;
    c.check(
        "an operator forces the change through: all 100 stored, health healthy again",
        s == 202
            && forced["status"] == "completed"
            && forced["updated_properties"] == 100
            && served_hash(c, id).await != before
            && health["data"]["status"] == "healthy",
        format!("{s} {} / {}", brief(&forced), health["data"]),
    );
    c.call("POST", "/api/v1/admin/sync/stop", true).await;
}

/// A run log without its per-property details (a failed check prints this).
fn brief(log: &Value) -> Value {
    let mut v = log.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("details");
        o.remove("changes");
    }
    v
}
