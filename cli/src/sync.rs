//! `sync`: start a run, and with `--follow` watch it to the end with a progress bar, then print
//! what it did (counts, and the changed paths per facet).

use crate::client::{CliError, Client};
use cupid_sync::api::wire::{RunLogDetail, StatusView, TriggerRequest, Triggered};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::Duration;

/// Pages of a run's details read for the summary (100 properties each).
const SUMMARY_PAGES: usize = 50;

pub struct SyncArgs {
    pub ids: Vec<i64>,
    pub dry_run: bool,
    pub force: bool,
    pub follow: bool,
}

fn active(status: &str) -> bool {
    matches!(status, "queued" | "running")
}

pub async fn sync(c: &Client, a: SyncArgs, json: bool) -> Result<bool, CliError> {
    let req = TriggerRequest {
        hotel_ids: (!a.ids.is_empty()).then(|| a.ids.clone()),
        dry_run: a.dry_run.then_some(true),
        force: a.force.then_some(true),
    };
    let t: Triggered = c.send("POST", "/api/v1/admin/sync", Some(&req)).await?;
    if !a.follow {
        if json {
            crate::print_json(&t);
        } else {
            println!(
                "sync {} started ({}; about {})",
                t.sync_id, t.status, t.estimated_duration
            );
        }
        return Ok(true);
    }
    let run = follow(c, &t.sync_id, json).await?;
    if json {
        crate::print_json(&run);
    } else {
        summary(c, &run).await?;
    }
    Ok(!matches!(
        run.run.status.as_str(),
        "failed" | "halted" | "abandoned"
    ))
}

/// Polls status once a second until the run is no longer current; returns its log entry.
async fn follow(c: &Client, sync_id: &str, quiet: bool) -> Result<RunLogDetail, CliError> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} properties  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let path = format!("/api/v1/admin/sync/logs/{sync_id}?limit=1");
    loop {
        let s: StatusView = c.get("/api/v1/admin/sync/status").await?;
        match s.current_run.filter(|r| r.sync_id == sync_id) {
            Some(r) => {
                bar.set_length(r.total);
                bar.set_position(r.processed);
                bar.set_message(format!(
                    "updated {}  unchanged {}  failed {}",
                    r.updated, r.unchanged, r.failed
                ));
            }
            None => {
                // Not current: queued (not picked up yet) or finished. The log says which.
                let run: RunLogDetail = c.get(&path).await?;
                if !active(&run.run.status) {
                    bar.finish_and_clear();
                    return Ok(run);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Changed paths per facet over the run's details (the first pages: a summary, not a dump).
async fn summary(c: &Client, first: &RunLogDetail) -> Result<(), CliError> {
    let r = &first.run;
    println!(
        "sync {} {} in {}: {} properties, updated {}, unchanged {}, failed {}, not found {}, quarantined {}{}",
        r.sync_id,
        r.status,
        r.duration.as_deref().unwrap_or("?"),
        r.total_properties,
        r.updated_properties,
        r.unchanged_properties,
        r.failed_properties,
        r.not_found_properties,
        r.quarantined_properties,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    if let Some(e) = &r.error_message {
        println!("  error: {e}");
    }
    let mut per_facet: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut after: Option<i64> = None;
    for _ in 0..SUMMARY_PAGES {
        let path = match after {
            Some(a) => format!("/api/v1/admin/sync/logs/{}?limit=100&after={a}", r.sync_id),
            None => format!("/api/v1/admin/sync/logs/{}?limit=100", r.sync_id),
        };
        let page: RunLogDetail = c.get(&path).await?;
        for ch in &page.changes {
            let paths = per_facet.entry(ch.facet.clone()).or_default();
            for p in &ch.paths {
                *paths.entry(p.clone()).or_default() += 1;
            }
        }
        failures.extend(page.failures);
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    for (facet, paths) in &per_facet {
        let mut top: Vec<_> = paths.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = top
            .iter()
            .take(8)
            .map(|(p, n)| format!("{p} ({n})"))
            .collect();
        let more = top.len().saturating_sub(8);
        println!(
            "  {facet}: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more paths")
            } else {
                String::new()
            }
        );
    }
    for f in failures.iter().take(10) {
        println!("  failed {}: {}", f.hotel_id, f.reason);
    }
    if failures.len() > 10 {
        println!("  … and {} more failures", failures.len() - 10);
    }
    for d in &r.schema_drift {
        println!(
            "  schema drift in {}: {} paths appeared, {} disappeared, {} changed type",
            d.facet,
            d.appeared.len(),
            d.disappeared.len(),
            d.type_changed.len()
        );
    }
    Ok(())
}
