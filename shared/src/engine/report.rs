//! What a run reports when it ends: the event detail and CloudWatch EMF metrics.

use crate::domain::run::{RunStatus, SyncRun};

/// The event detail / summary of a run.
pub fn run_summary(run: &SyncRun) -> serde_json::Value {
    serde_json::json!({
        "sync_id": run.sync_id,
        "sync_type": run.sync_type.as_str(),
        "status": run.status.as_str(),
        "dry_run": run.dry_run,
        "started_at": run.started_at.rfc3339(),
        "completed_at": run.completed_at.map(|t| t.rfc3339()),
        "duration_seconds": run.duration_secs(),
        "total_properties": run.total,
        "updated_properties": run.counters.updated,
        "unchanged_properties": run.counters.unchanged,
        "failed_properties": run.counters.failed,
        "not_found_properties": run.counters.not_found,
        "quarantined_properties": run.counters.quarantined,
        "upstream": upstream(run),
        "error_message": run.error_message,
        // Paths changed per kind of document (the details are in `SchemaChanged`).
        "schema_drift": crate::domain::drift::drift_counts(&run.drift),
    })
}

/// What the run's upstream attempts met.
pub fn upstream(run: &SyncRun) -> serde_json::Value {
    let c = &run.counters;
    serde_json::json!({
        "requests": c.upstream_requests,
        "throttled": c.upstream_throttled,
        "server_errors": c.upstream_server_errors,
        "unreachable": c.upstream_unreachable,
        "retries": c.upstream_retries,
    })
}

/// One CloudWatch Embedded Metric Format line on stdout.
pub fn emf_line(run: &SyncRun, timestamp_ms: u64) -> String {
    let total = run.total.max(1) as f64;
    let success =
        (run.counters.processed.saturating_sub(run.counters.failed)) as f64 / total * 100.0;
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "CupidSync",
                "Dimensions": [["SyncType"]],
                "Metrics": [
                    {"Name": "TotalProperties", "Unit": "Count"},
                    {"Name": "UpdatedProperties", "Unit": "Count"},
                    {"Name": "UnchangedProperties", "Unit": "Count"},
                    {"Name": "FailedProperties", "Unit": "Count"},
                    {"Name": "SyncDuration", "Unit": "Seconds"},
                    {"Name": "SuccessRate", "Unit": "Percent"},
                    {"Name": "SyncFailed", "Unit": "Count"},
                    {"Name": "UpstreamRequests", "Unit": "Count"},
                    {"Name": "UpstreamThrottled", "Unit": "Count"},
                    {"Name": "UpstreamServerErrors", "Unit": "Count"},
                    {"Name": "UpstreamUnreachable", "Unit": "Count"},
                    {"Name": "UpstreamRetries", "Unit": "Count"}
                ]
            }]
        },
        "SyncType": run.sync_type.as_str(),
        "sync_id": run.sync_id,
        "TotalProperties": run.total,
        "UpdatedProperties": run.counters.updated,
        "UnchangedProperties": run.counters.unchanged,
        "FailedProperties": run.counters.failed,
        "SyncDuration": run.duration_secs().unwrap_or(0),
        "SuccessRate": if run.status == RunStatus::Failed { 0.0 } else { success.min(100.0) },
        "SyncFailed": u8::from(run.status == RunStatus::Failed),
        "UpstreamRequests": run.counters.upstream_requests,
        "UpstreamThrottled": run.counters.upstream_throttled,
        "UpstreamServerErrors": run.counters.upstream_server_errors,
        "UpstreamUnreachable": run.counters.upstream_unreachable,
        "UpstreamRetries": run.counters.upstream_retries,
    })
    .to_string()
}

pub(crate) fn emit_metrics(run: &SyncRun) {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    println!("{}", emf_line(run, ms));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::run::SyncType;
    use crate::domain::time::Timestamp;

    #[test]
    fn emf_lines_carry_the_metrics_cloudwatch_extracts() {
        let mut run = SyncRun::new("01TEST".into(), SyncType::Scheduled, Timestamp(1_000));
        run.status = RunStatus::CompletedWithErrors;
        run.completed_at = Some(Timestamp(1_042));
        run.total = 10;
        run.counters.processed = 10;
        run.counters.updated = 3;
        run.counters.unchanged = 6;
        run.counters.failed = 1;
        let v: serde_json::Value = serde_json::from_str(&emf_line(&run, 5)).unwrap();
        let meta = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "CupidSync");
        let names: Vec<&str> = meta["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for n in &names {
            assert!(v.get(*n).is_some(), "metric {n} has a value");
        }
        assert_eq!(
            (v["UpdatedProperties"].as_u64(), v["SyncDuration"].as_i64()),
            (Some(3), Some(42))
        );
        assert_eq!(v["SuccessRate"].as_f64(), Some(90.0));
        assert_eq!(v["SyncFailed"], 0);
        run.status = RunStatus::Failed;
        let v: serde_json::Value = serde_json::from_str(&emf_line(&run, 5)).unwrap();
        assert_eq!(
            (v["SyncFailed"].as_u64(), v["SuccessRate"].as_f64()),
            (Some(1), Some(0.0))
        );
    }
}
