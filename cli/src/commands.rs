//! The read and small write commands: one API call each (a few for quarantine accept), printed
//! for people, or as the API's `data` with `--json`.

use crate::client::{CliError, Client};
use crate::print_json;
use cupid_sync::api::app::{CreatedWebhook, DeliveryLog, RunView, WebhookList};
use cupid_sync::api::wire::{RunLogDetail, RunPage, ScheduleView, StatusView};
use cupid_sync::domain::health::{Health, HealthStatus};
use cupid_sync::domain::settings::{SettingChange, SettingRow};
use serde_json::Value;

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("—")
}

pub async fn status(c: &Client, json: bool) -> Result<(), CliError> {
    let s: StatusView = c.get("/api/v1/admin/sync/status").await?;
    if json {
        print_json(&s);
        return Ok(());
    }
    let schedule = match (&s.paused, s.is_running) {
        (_, true) => format!(
            "on, every {} (next {})",
            s.sync_interval,
            or_dash(&s.next_sync)
        ),
        (Some(p), false) => format!("paused since {}: {}", p.since, p.reason),
        (None, false) => format!("off (interval {})", s.sync_interval),
    };
    println!("schedule    {schedule}");
    println!("last sync   {}", or_dash(&s.last_sync));
    if let Some(r) = &s.last_run {
        println!(
            "last run    {} {} at {} (quarantined {})",
            r.sync_id,
            r.status,
            or_dash(&r.completed_at),
            r.quarantined_properties
        );
    }
    let by: Vec<String> = s
        .properties_by_status
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "properties  {} tracked: {}",
        s.total_properties,
        by.join(", ")
    );
    println!("runs        {}", s.total_runs);
    match &s.current_run {
        Some(r) => println!(
            "current     {} {}: {}/{} (updated {}, unchanged {}, failed {}), eta {}",
            r.sync_id, r.status, r.processed, r.total, r.updated, r.unchanged, r.failed, r.eta
        ),
        None => println!("current     none"),
    }
    if let Some(e) = &s.last_error {
        println!("last error  {e}");
    }
    Ok(())
}

/// Exit status: false when unhealthy (the API answers 503 with the same body).
pub async fn health(c: &Client, json: bool) -> Result<bool, CliError> {
    let h: Health = c.get("/api/v1/admin/sync/health").await?;
    let ok = h.status != HealthStatus::Unhealthy;
    if json {
        print_json(&h);
        return Ok(ok);
    }
    println!("{:?}: {}", h.status, h.summary);
    println!(
        "last sync {} ago, next in {}, interval {}{}",
        or_dash(&h.last_sync_age),
        or_dash(&h.next_sync_in),
        h.sync_interval,
        if h.is_overdue { ", OVERDUE" } else { "" }
    );
    if let (Some(since), Some(why)) = (&h.paused_since, &h.paused_reason) {
        println!("paused since {since}: {why}");
    }
    Ok(ok)
}

const RUN_COLUMNS: [&str; 8] = [
    "run",
    "started",
    "type",
    "status",
    "took",
    "updated",
    "unchanged",
    "failed",
];

fn run_header() {
    let c = RUN_COLUMNS;
    println!(
        "{:<26} {:<20} {:<9} {:<22} {:>8} {:>8} {:>9} {:>7}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    );
}

fn run_line(r: &RunView) {
    println!(
        "{:<26} {:<20} {:<9} {:<22} {:>8} {:>8} {:>9} {:>7}",
        r.sync_id,
        r.started_at,
        r.sync_type,
        r.status,
        r.duration.as_deref().unwrap_or("—"),
        r.updated_properties,
        r.unchanged_properties,
        r.failed_properties
    );
}

pub async fn logs(c: &Client, limit: u32, run: Option<&str>, json: bool) -> Result<(), CliError> {
    if let Some(id) = run {
        let d: RunLogDetail = c
            .get(&format!("/api/v1/admin/sync/logs/{id}?limit=100"))
            .await?;
        if json {
            print_json(&d);
            return Ok(());
        }
        run_header();
        run_line(&d.run);
        println!(
            "writes {} documents; {} read units, {} write units; {} upstream requests ({} throttled, {} 5xx, {} unreachable, {} retries); {} invocations",
            d.document_writes,
            d.run.consumed_rcu,
            d.run.consumed_wcu,
            d.run.upstream_requests,
            d.run.upstream_throttled,
            d.run.upstream_server_errors,
            d.run.upstream_unreachable,
            d.run.upstream_retries,
            d.invocations
        );
        for ch in &d.changes {
            println!(
                "  changed {} {}: {}",
                ch.hotel_id,
                ch.facet,
                ch.paths.join(", ")
            );
        }
        for f in &d.failures {
            println!("  failed {}: {}", f.hotel_id, f.reason);
        }
        if d.next_after.is_some() {
            println!(
                "  … {} changed or failed properties in all (the API pages them: ?after=)",
                d.details_total
            );
        }
        return Ok(());
    }
    let page: RunPage = c
        .get(&format!("/api/v1/admin/sync/logs?limit={limit}"))
        .await?;
    if json {
        print_json(&page);
        return Ok(());
    }
    run_header();
    page.items.iter().for_each(run_line);
    println!("{} of {} runs", page.items.len(), page.total);
    Ok(())
}

fn print_settings(rows: &[SettingRow]) {
    for r in rows {
        println!(
            "{:<32} {:<12} {}{}",
            r.setting_key,
            r.setting_value,
            r.description,
            r.updated_at
                .as_ref()
                .map(|t| format!(" (set {t})"))
                .unwrap_or_default()
        );
    }
}

pub async fn settings(c: &Client, set: &[String], json: bool) -> Result<(), CliError> {
    let rows: Vec<SettingRow> = if set.is_empty() {
        c.get("/api/v1/admin/sync/settings").await?
    } else {
        let mut changes = Vec::new();
        for kv in set {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("`{kv}` is not KEY=VALUE (e.g. sync_batch_size=50)"))
            })?;
            changes.push(SettingChange {
                setting_key: k.trim().to_string(),
                setting_value: Value::String(v.trim().to_string()),
            });
        }
        c.send("PUT", "/api/v1/admin/sync/settings", Some(&changes))
            .await?
    };
    if json {
        print_json(&rows);
    } else {
        print_settings(&rows);
    }
    Ok(())
}

pub async fn schedule(c: &Client, start: Option<Option<&str>>, json: bool) -> Result<(), CliError> {
    let v: ScheduleView = match start {
        Some(Some(interval)) => {
            c.send::<_, ()>(
                "POST",
                &format!("/api/v1/admin/sync/start?interval={interval}"),
                None,
            )
            .await?
        }
        Some(None) => {
            c.send::<_, ()>("POST", "/api/v1/admin/sync/start", None)
                .await?
        }
        None => {
            c.send::<_, ()>("POST", "/api/v1/admin/sync/stop", None)
                .await?
        }
    };
    if json {
        print_json(&v);
    } else if v.enabled {
        println!(
            "schedule on: {} ({}), next sync {}",
            v.sync_interval,
            v.schedule_expression,
            or_dash(&v.next_sync)
        );
    } else {
        println!("schedule off (interval {})", v.sync_interval);
    }
    Ok(())
}

pub async fn untrack(c: &Client, ids: &[i64], json: bool) -> Result<(), CliError> {
    for id in ids {
        let v: Value = c
            .send::<_, ()>("DELETE", &format!("/api/v1/admin/properties/{id}"), None)
            .await?;
        if json {
            print_json(&v);
        } else {
            println!("{id}: untracked (its data is kept)");
        }
    }
    Ok(())
}

pub async fn property(
    c: &Client,
    id: i64,
    lang: Option<&str>,
    reviews: bool,
) -> Result<(), CliError> {
    let path = match (reviews, lang) {
        (true, _) => format!("/api/v1/properties/{id}/reviews?limit=100"),
        (false, Some(l)) => format!("/api/v1/properties/{id}?lang={l}"),
        (false, None) => format!("/api/v1/properties/{id}"),
    };
    let v: Value = c.get(&path).await?;
    print_json(&v);
    Ok(())
}

pub enum Quarantine<'a> {
    List { rule: Option<&'a str> },
    Show(i64),
    Accept { id: i64, by: &'a str, run: &'a str },
    Discard(i64),
}

pub async fn quarantine(c: &Client, q: Quarantine<'_>, json: bool) -> Result<(), CliError> {
    let v: Value = match q {
        Quarantine::List { rule } => {
            let path = match rule {
                Some(r) => format!("/api/v1/admin/quarantine?limit=100&rule={r}"),
                None => "/api/v1/admin/quarantine?limit=100".into(),
            };
            let v: Value = c.get(&path).await?;
            if !json {
                let items = v["items"].as_array().cloned().unwrap_or_default();
                for e in &items {
                    let rules: Vec<&str> = e["rules"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_str())
                        .collect();
                    println!(
                        "{:<12} held since {} by run {}: {}",
                        e["hotel_id"],
                        e["quarantined_at"].as_str().unwrap_or("?"),
                        e["quarantined_by_sync"].as_str().unwrap_or("?"),
                        rules.join(", ")
                    );
                }
                println!("{} quarantined", items.len());
                return Ok(());
            }
            v
        }
        Quarantine::Show(id) => c.get(&format!("/api/v1/admin/quarantine/{id}")).await?,
        Quarantine::Accept { id, by, run } => {
            // The acceptance names the run whose held payloads the operator read (shown by
            // `quarantine show`): a 409 if what is held has changed since.
            let body = serde_json::json!({"by": by, "quarantined_by_sync": run});
            c.send(
                "POST",
                &format!("/api/v1/admin/quarantine/{id}/accept"),
                Some(&body),
            )
            .await?
        }
        Quarantine::Discard(id) => {
            c.send::<_, ()>("DELETE", &format!("/api/v1/admin/quarantine/{id}"), None)
                .await?
        }
    };
    print_json(&v);
    Ok(())
}

pub enum Webhooks<'a> {
    List,
    Add {
        url: &'a str,
        events: &'a [String],
        description: Option<&'a str>,
    },
    Remove(&'a str),
    Deliveries {
        id: &'a str,
        limit: u32,
    },
}

pub async fn webhooks(c: &Client, w: Webhooks<'_>, json: bool) -> Result<(), CliError> {
    match w {
        Webhooks::List => {
            let l: WebhookList = c.get("/api/v1/admin/webhooks").await?;
            if json {
                print_json(&l);
                return Ok(());
            }
            for h in &l.webhooks {
                println!(
                    "{:<32} {} [{}] {}",
                    h.id,
                    h.url,
                    h.events.join(", "),
                    h.description
                );
            }
            println!("{} webhooks", l.webhooks.len());
        }
        Webhooks::Add {
            url,
            events,
            description,
        } => {
            let body = serde_json::json!({"url": url, "events": events, "description": description.unwrap_or_default()});
            let h: CreatedWebhook = c
                .send("POST", "/api/v1/admin/webhooks", Some(&body))
                .await?;
            if json {
                print_json(&h);
                return Ok(());
            }
            println!(
                "webhook {} → {} [{}]",
                h.webhook.id,
                h.webhook.url,
                h.webhook.events.join(", ")
            );
            println!("signing secret (shown once, keep it): {}", h.secret);
        }
        Webhooks::Remove(id) => {
            let v: Value = c
                .send::<_, ()>("DELETE", &format!("/api/v1/admin/webhooks/{id}"), None)
                .await?;
            if json {
                print_json(&v);
            } else {
                println!("webhook {id} removed");
            }
        }
        Webhooks::Deliveries { id, limit } => {
            let l: DeliveryLog = c
                .get(&format!(
                    "/api/v1/admin/webhooks/{id}/deliveries?limit={limit}"
                ))
                .await?;
            if json {
                print_json(&l);
                return Ok(());
            }
            for d in &l.deliveries {
                println!(
                    "{} {:<16} attempt {} {:>4} {:>6} ms {:?}{}",
                    d.at,
                    d.event,
                    d.attempt,
                    d.status_code
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "—".into()),
                    d.latency_ms,
                    d.outcome,
                    d.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
