//! The invariants, checked at the end of every seed (after the final clean run).

use crate::world::World;
use cupid_sync::adapters::memory::{AcceptedWrite, Table};
use cupid_sync::domain::run::{RunStatus, SyncStatus};
use std::collections::BTreeMap;

/// The run a sync input names.
pub fn names(req: &cupid_sync::domain::run::SyncRequest) -> String {
    use cupid_sync::domain::run::SyncRequest;
    match req {
        SyncRequest::Manual { sync_id, .. } | SyncRequest::Resume { sync_id, .. } => {
            sync_id.clone()
        }
        SyncRequest::Scheduled { scheduled_time } => scheduled_time
            .as_deref()
            .and_then(cupid_sync::domain::time::Timestamp::parse_rfc3339)
            .map(cupid_sync::domain::run::slot_sync_id)
            .unwrap_or_default(),
    }
}

/// Each run ends once: one terminal event at most.
/// Each run ends once: one terminal event at most.
fn ended_once(w: &World, out: &mut Vec<String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in w.events.lock().unwrap().iter() {
        if !matches!(e.detail_type, "SyncCompleted" | "SyncFailed" | "SyncHalted") {
            continue;
        }
        let id = e.detail["sync_id"].as_str().unwrap_or_default().to_string();
        *seen.entry(id).or_default() += 1;
    }
    for (id, n) in seen {
        if n > 1 {
            out.push(format!(
                "run {id} ended {n} times (SyncCompleted/SyncFailed/SyncHalted events)"
            ));
        }
    }
}

/// Schema drift is reported once: no two runs (dry runs aside: they keep no baseline) report
/// the same path appeared, unless a run reported it gone in between (it left the baseline).
/// The simulator's drift steps add fields of new names, so nothing else repeats.
fn drift_once(w: &World, out: &mut Vec<String>) {
    let mut appeared: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in w.events.lock().unwrap().iter() {
        if e.detail_type != "SchemaChanged" || e.detail["dry_run"] == true {
            continue;
        }
        let run = e.detail["sync_id"].as_str().unwrap_or_default().to_string();
        for d in e.detail["schema_drift"].as_array().into_iter().flatten() {
            let facet = d["facet"].as_str().unwrap_or_default().to_string();
            let paths = |list: &str| -> Vec<String> {
                d[list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["path"].as_str().map(str::to_string))
                    .collect()
            };
            for p in paths("disappeared") {
                appeared.remove(&(facet.clone(), p));
            }
            for p in paths("appeared") {
                if let Some(first) = appeared.insert((facet.clone(), p.clone()), run.clone()) {
                    out.push(format!(
                        "{facet} path {p} reported appeared by run {first} and again by run {run}"
                    ));
                }
            }
        }
    }
}

/// Every violation found (empty: the seed passed).
pub async fn invariants(w: &World) -> Vec<String> {
    let mut out = w.violations.lock().unwrap().clone();
    let writes = w.store.writes();
    fencing(&writes, &mut out);
    converged(w, &mut out);
    untracked(w, &writes, &mut out);
    runs_ended(w, &mut out).await;
    upstream_discipline(w, &mut out);
    ended_once(w, &mut out);
    drift_once(w, &mut out);
    counts(w, &mut out).await;
    breaker_bound(w, &mut out);
    for leaked in w.store.leaked_parts() {
        out.push(format!(
            "document part {leaked} is neither reachable nor listed for removal"
        ));
    }
    out
}

/// What a run halted by the circuit breaker wrote: nothing, if it tripped in its probe (the
/// changes of the probe wait unwritten; a whole small catalogue is judged before any is
/// written); otherwise at most the ratio's share of what it fetched, or what a probe cut short
/// by an invocation's end let through (fewer than the sample): each change it committed was
/// admitted under one of the two.
fn breaker_bound(w: &World, out: &mut Vec<String>) {
    use cupid_sync::domain::breaker::MIN_SAMPLE;
    let ratio = cupid_sync::domain::settings::Settings::default().max_change_ratio;
    let commits = w.commits_of_existing.lock().unwrap().clone();
    for r in w.store.runs() {
        if r.status != RunStatus::Halted {
            continue;
        }
        // Properties, as the breaker counts them: one redone after a crash, whose content
        // changed again meanwhile, commits twice but was decided (and counted) once.
        let n = commits.get(&r.sync_id).map_or(0, |ids| ids.len());
        let bound = if r.breaker.released {
            (ratio * r.breaker.fetched as f64).max((MIN_SAMPLE - 1) as f64)
        } else {
            0.0
        };
        if n as f64 > bound {
            out.push(format!(
                "halted run {} committed {n} changes of properties with stored data ({} of {} counted, probe {}), over its bound {bound}",
                r.sync_id,
                r.breaker.changed,
                r.breaker.fetched,
                if r.breaker.released { "released" } else { "never released" }
            ));
        }
    }
}

/// The maintained counts agree with a full recount, and the final run's detail items are
/// every property it changed.
async fn counts(w: &World, out: &mut Vec<String>) {
    use cupid_sync::ports::{RunLog, Stats};
    let stats = Stats::get(&w.store).await.expect("memory store");
    let truth = w.store.status_counts();
    if stats.counts != truth {
        out.push(format!(
            "counts at quiescence {:?} differ from a recount {:?}",
            stats.counts, truth
        ));
    }
    let runs = w.store.runs();
    if stats.runs != runs.len() as u64 {
        out.push(format!(
            "run count {} but {} runs in the log",
            stats.runs,
            runs.len()
        ));
    }
    let Some(last) = runs.iter().max_by_key(|r| r.sync_id.clone()) else {
        return;
    };
    let mut details = Vec::new();
    let mut after = None;
    loop {
        let page = w
            .store
            .details(&last.sync_id, 7, after)
            .await
            .expect("memory store");
        details.extend(page.items);
        match page.next {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let changed = details.iter().filter(|d| !d.changes.is_empty()).count() as u64;
    if details.len() as u64 != last.details || changed != last.counters.updated {
        out.push(format!(
            "the final run counts {} details and {} updated, its log holds {} details, {} with changes",
            last.details,
            last.counters.updated,
            details.len(),
            changed
        ));
    }
}

/// No write was accepted from an invocation after a newer fencing token was issued, and no item
/// was written by an older token after a newer one wrote it.
fn fencing(writes: &[AcceptedWrite], out: &mut Vec<String>) {
    // The log is in apply order (the store logs under its lock).
    let mut newest_granted = 0u64;
    let mut last: BTreeMap<(u8, &str), u64> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        let Some(fence) = w.fence else { continue };
        if w.table == Table::Lease && matches!(w.what, "take" | "pickup") {
            newest_granted = newest_granted.max(fence);
            continue;
        }
        if fence < newest_granted {
            out.push(format!(
                "write #{i} {:?} {} `{}` with token {fence} accepted at {} ms, after token {newest_granted} was issued",
                w.table, w.what, w.key, w.at_ms
            ));
        }
        let table = match w.table {
            Table::Records => 0,
            Table::Documents => 1,
            Table::Runs => 2,
            _ => continue,
        };
        let prev = last.entry((table, w.key.as_str())).or_insert(0);
        if fence < *prev {
            out.push(format!(
                "write #{i} {:?} `{}` by token {fence} after token {prev} wrote it",
                w.table, w.key
            ));
        }
        *prev = (*prev).max(fence);
    }
}

/// Every tracked property's documents equal upstream's final content, and its record agrees.
fn converged(w: &World, out: &mut Vec<String>) {
    let records = w.store.records();
    let untracked = w.untracked.lock().unwrap().clone();
    for id in &w.ids {
        if untracked.contains_key(id) {
            continue;
        }
        let Some(r) = records.get(id) else {
            out.push(format!("hotel {id}: tracked but has no record"));
            continue;
        };
        if w.upstream.is_deleted(*id) {
            if r.sync_status != SyncStatus::NotFound {
                out.push(format!(
                    "hotel {id}: deleted upstream but status {:?}",
                    r.sync_status
                ));
            }
            continue;
        }
        if r.sync_status != SyncStatus::Synced {
            out.push(format!(
                "hotel {id}: status {:?} after the clean run ({:?})",
                r.sync_status, r.last_error
            ));
        }
        let states = r.facet_states();
        let max_version = states.values().map(|s| s.version).max().unwrap_or(0);
        if max_version != r.data_version {
            out.push(format!(
                "hotel {id}: data_version {} but its newest facet is at {max_version}",
                r.data_version
            ));
        }
        for f in w.facets() {
            let key = f.key();
            let Some(body) = w.upstream.body(*id, &f) else {
                continue;
            };
            let want = f
                .canonical(body)
                .expect("the simulator serves valid bodies");
            let Some(state) = states.get(&key) else {
                out.push(format!("hotel {id}: facet {key} never stored"));
                continue;
            };
            if state.hash != want.hash {
                out.push(format!(
                    "hotel {id}: facet {key} not converged (record hash differs)"
                ));
                continue;
            }
            let doc =
                futures::executor::block_on(cupid_sync::ports::PropertyReader::get_whole_document(
                    &w.store,
                    *id,
                    &state.key(&key),
                ))
                .ok()
                .and_then(|(d, _)| d);
            match doc {
                None => out.push(format!(
                    "hotel {id}: the record points at a missing {key} document"
                )),
                Some(d) => {
                    let bytes =
                        cupid_sync::domain::document::decompress(&d.compressed).unwrap_or_default();
                    if d.content_hash != state.hash || bytes != want.bytes {
                        out.push(format!(
                            "hotel {id}: the {key} document the record points at is not the recorded content"
                        ));
                    }
                }
            }
        }
    }
}

/// Untracked ids stayed untracked: no sync wrote their record while they were.
fn untracked(w: &World, writes: &[AcceptedWrite], out: &mut Vec<String>) {
    let records = w.store.records();
    let mut spans: Vec<(i64, usize, usize)> = w.untracked_spans.lock().unwrap().clone();
    for (id, from) in w.untracked.lock().unwrap().iter() {
        if records.get(id).map(|r| r.sync_status) != Some(SyncStatus::Untracked) {
            out.push(format!(
                "hotel {id}: untracked, but its record says {:?}",
                records.get(id).map(|r| r.sync_status)
            ));
        }
        spans.push((*id, *from, writes.len()));
    }
    for (id, from, to) in spans {
        let key = id.to_string();
        for (i, wr) in writes.iter().enumerate().take(to).skip(from) {
            if wr.table == Table::Records
                && wr.key == key
                && matches!(wr.what, "claim" | "commit" | "outcome")
            {
                out.push(format!(
                    "hotel {id}: a sync wrote its record ({}, write #{i}) while it was untracked",
                    wr.what
                ));
            }
        }
    }
}

/// No run is left running or queued; status shows no current run; the final run completed.
async fn runs_ended(w: &World, out: &mut Vec<String>) {
    let runs = w.store.runs();
    for r in &runs {
        if r.status.is_active() {
            out.push(format!(
                "run {} left {} ({:?})",
                r.sync_id, r.status, r.error_message
            ));
        }
    }
    let last = runs.iter().max_by_key(|r| r.sync_id.clone());
    match last {
        Some(r) if r.status == RunStatus::Completed && !r.dry_run => {}
        other => out.push(format!(
            "the final clean run did not complete: {:?}",
            other.map(|r| (&r.sync_id, r.status, &r.error_message))
        )),
    }
    let req = cupid_sync::api::ApiRequest {
        method: "GET".into(),
        path: "/api/v1/admin/sync/status".into(),
        ..Default::default()
    };
    use cupid_sync::api::Handler;
    match w
        .app()
        .handle(cupid_sync::api::routes::Op::Status, &req)
        .await
    {
        Ok(resp) => {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            if !v["data"]["current_run"].is_null() {
                out.push(format!(
                    "status shows a current run at quiescence: {}",
                    v["data"]["current_run"]
                ));
            }
        }
        Err(e) => out.push(format!("status failed: {e}")),
    }
}

/// Attempts per request ≤ retries + 1; requests per second within the rate limit.
fn upstream_discipline(w: &World, out: &mut Vec<String>) {
    let sent = w.upstream.sent.lock().unwrap().clone();
    let retries = w.scenario.retries as usize;
    let mut per_request: BTreeMap<(u64, i64, &str), usize> = BTreeMap::new();
    for s in &sent {
        *per_request
            .entry((s.invocation, s.hotel_id, s.facet.as_str()))
            .or_default() += 1;
    }
    for ((inv, id, facet), n) in per_request {
        if n > retries + 1 {
            out.push(format!(
                "invocation {inv} sent {n} attempts for hotel {id} {facet} (retries = {retries})"
            ));
        }
    }
    // Within one second: at most floor(R) + 1 (burst 1) from one invocation, one more across
    // a hand-over (a continuation's limiter starts afresh).
    let r = w.scenario.rate_limit;
    let per_inv = r.floor() as usize + 1;
    let mut window: std::collections::VecDeque<&crate::upstream::Sent> = Default::default();
    for s in &sent {
        window.push_back(s);
        while window.front().is_some_and(|f| f.at_ms + 1000 <= s.at_ms) {
            window.pop_front();
        }
        let mine = window
            .iter()
            .filter(|x| x.invocation == s.invocation)
            .count();
        if mine > per_inv {
            out.push(format!(
                "invocation {} sent {mine} requests within one second (rate limit {r}/s)",
                s.invocation
            ));
            break;
        }
        if window.len() > per_inv + 1 {
            out.push(format!(
                "{} requests within one second across invocations (rate limit {r}/s)",
                window.len()
            ));
            break;
        }
    }
}
