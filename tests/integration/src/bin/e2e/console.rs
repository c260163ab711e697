//! The operator console in a real browser (headless Chromium over the DevTools protocol): load,
//! sign in (a wrong token first), start a sync, watch the progress bar reach the end, see the run
//! in the chart and the table, open its detail, and have a bad setting refused next to its
//! field. Screenshots go to `.local/` (the README shows one).

use super::Ctx;
use integration::cdp::Browser;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A JavaScript string literal.
fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Sets an input's value as a user would (input and change events fire).
fn fill(selector: &str, value: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {}; \
         e.dispatchEvent(new Event('input', {{bubbles: true}})); \
         e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
        js(selector),
        js(value)
    )
}

fn click(selector: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
        js(selector)
    )
}

fn text(selector: &str) -> String {
    format!(
        "(document.querySelector({})?.textContent || '').trim()",
        js(selector)
    )
}

pub async fn checks(c: &mut Ctx, shots: &Path, sim: &str) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut b = match Browser::launch(&chromium).await {
        Ok(b) => b,
        Err(e) => {
            c.check("the console opens in headless Chromium", false, e);
            return;
        }
    };
    let url = format!("{}/console", c.base);
    if let Err(e) = b.open(&url).await {
        c.check("the console opens in headless Chromium", false, e);
        return;
    }
    let size = b
        .eval("document.documentElement.outerHTML.length")
        .await
        .unwrap_or_default();
    c.check(
        "the console loads from the Lambda alone (one page, no external asset)",
        b.eval("performance.getEntriesByType('resource').filter(r => !r.name.startsWith(location.origin)).length === 0 && !!document.querySelector('#token')")
            .await
            .is_ok_and(|v| v == true),
        format!("page of {size} characters"),
    );

    // A wrong token is refused and said so; the right one opens the console.
    let _ = b.eval(&fill("#token", "not-the-token")).await;
    let _ = b.eval(&click("#signin")).await;
    let (refused, msg) = b
        .wait_for(&text("#signin-error"), Duration::from_secs(20))
        .await;
    c.check("a wrong token is refused with a message", refused, &msg);
    let _ = b.eval(&fill("#token", &c.token.clone())).await;
    let _ = b.eval(&click("#signin")).await;
    let (signed_in, badge) = b
        .wait_for(
            "(() => { const a = document.querySelector('#app'); const t = (document.querySelector('#health-badge')?.textContent || '').trim(); \
             return a && !a.hidden && a.offsetParent !== null && t ? t : ''; })()",
            Duration::from_secs(30),
        )
        .await;
    c.check(
        "signed in: the health badge shows the sync's health",
        signed_in,
        &badge,
    );
    let token_in_url = b
        .eval("location.href.includes(sessionStorage.getItem('cupid-sync-token') || '\u{1}')")
        .await
        .unwrap_or(Value::Bool(true));
    c.check(
        "the token is kept in sessionStorage, never in the URL",
        token_in_url == false,
        &token_in_url,
    );

    // Sync now; the progress bar reaches the end; the run shows in the chart and the table.
    let _ = b.eval(&fill("#sync-ids", "")).await;
    let _ = b.eval(&click("#sync-now")).await;
    let (started, message) = b
        .wait_for(&text("#action-message"), Duration::from_secs(20))
        .await;
    let (_, st, _) = c.call("GET", "/api/v1/admin/sync/logs?limit=1", true).await;
    let run = st["data"]["items"][0]["sync_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.check(
        "sync now starts a run and says which",
        started && !run.is_empty() && message.as_str().is_some_and(|m| m.contains(&run)),
        format!("{message} (newest run {run})"),
    );
    let mut seen_partial = false;
    let mut finished = false;
    let mut last = Value::Null;
    for _ in 0..360 {
        let v = b
            .eval("(() => { const p = document.querySelector('#progress'); return p ? [p.value, p.max] : null; })()")
            .await
            .unwrap_or_default();
        if let (Some(v0), Some(max)) = (v[0].as_f64(), v[1].as_f64())
            && v0 > 0.0
            && v0 < max
        {
            seen_partial = true;
        }
        let row = b
            .eval(&format!(
                "!!document.querySelector('#runs-table tbody tr[data-sync-id={}]') && !!document.querySelector('#runs-chart .run[data-sync-id={}]')",
                js(&run),
                js(&run)
            ))
            .await
            .unwrap_or_default();
        last = v.clone();
        if row == true && v[0].as_f64().is_some() && v[0] == v[1] {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.check(
        "the progress bar moves and reaches the end; the run appears in the chart and the table",
        finished && seen_partial,
        format!("finished {finished}, partial progress seen {seen_partial}, last {last}"),
    );
    match b.screenshot_full(&shots.join("console.png")).await {
        Ok(n) => println!(
            "     screenshot {} ({n} bytes)",
            shots.join("console.png").display()
        ),
        Err(e) => println!("     no screenshot: {e}"),
    }

    // The run's detail in a click.
    let _ = b
        .eval(&click(&format!(
            "#runs-table tbody tr[data-sync-id={}]",
            js(&run)
        )))
        .await;
    let (opened, detail) = b
        .wait_for(
            &format!(
                "(() => {{ const d = document.querySelector('#run-detail'); \
                 return d && d.getAttribute('data-sync-id') === {} && d.offsetParent !== null \
                 && /updated/i.test(d.textContent) ? d.textContent.slice(0, 200) : ''; }})()",
                js(&run)
            ),
            Duration::from_secs(20),
        )
        .await;
    c.check("clicking a run opens its detail", opened, &detail);
    let _ = b.screenshot(&shots.join("console-detail.png")).await;
    let _ = b.eval(&click("#run-detail-close")).await;

    // A bad setting: the server's 400 shows next to the field; a good one is saved.
    let _ = b
        .eval(&fill("#settings-form [name=sync_batch_size]", "0"))
        .await;
    let _ = b.eval(&click("#settings-save")).await;
    let (refused, msg) = b
        .wait_for(
            &text(".field-error[data-for=sync_batch_size]"),
            Duration::from_secs(20),
        )
        .await;
    c.check(
        "a bad setting shows the API's 400 next to its field",
        refused && msg.as_str().is_some_and(|m| m.contains("sync_batch_size")),
        &msg,
    );
    let (_, before, _) = c.call("GET", "/api/v1/admin/sync/settings", true).await;
    let batch = before["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["setting_key"] == "sync_batch_size"))
        .and_then(|r| r["setting_value"].as_str())
        .unwrap_or("100")
        .to_string();
    let next = if batch == "50" { "60" } else { "50" };
    let _ = b
        .eval(&fill("#settings-form [name=sync_batch_size]", next))
        .await;
    let _ = b.eval(&click("#settings-save")).await;
    let (saved, msg) = b
        .wait_for(&text("#settings-message"), Duration::from_secs(20))
        .await;
    let (_, after, _) = c.call("GET", "/api/v1/admin/sync/settings", true).await;
    let stored = after["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["setting_key"] == "sync_batch_size"))
        .map(|r| r["setting_value"].clone())
        .unwrap_or_default();
    c.check(
        "a good setting is saved through the console",
        saved && stored == next,
        format!("{msg}; stored {stored}"),
    );
    // Put it back as it was.
    let _ = b
        .eval(&fill("#settings-form [name=sync_batch_size]", &batch))
        .await;
    let _ = b.eval(&click("#settings-save")).await;
    let _ = b
        .wait_for(&text("#settings-message"), Duration::from_secs(10))
        .await;

    quarantine(c, &mut b, sim, shots).await;
}

/// A property held back: the console shows every violation and the held payload under its
/// row, and discards it (the next sync checks it again).
async fn quarantine(c: &mut Ctx, b: &mut Browser, sim: &str, shots: &Path) {
    let id: i64 = cupid_sim::HOTEL_IDS
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(1_641_879);
    let url = |p: &str| format!("{sim}{p}");
    c.send(
        "POST",
        &url("/__sim/change"),
        false,
        Some(serde_json::json!({"hotel_ids": [id]})),
    )
    .await;
    c.sim_faults(
        sim,
        serde_json::json!({"per_id": {id.to_string(): {
            "kind": "wrong_hotel", "times": 0, "path_contains": "/v3.0/property/"}}}),
    )
    .await;
    let subset = Some(serde_json::json!({"hotel_ids": [id]}));
    let trigger = format!("{}/api/v1/admin/sync", c.base);
    c.send("POST", &trigger, true, subset.clone()).await;
    c.wait_idle().await;
    let _ = b.eval(&click("#quarantine-refresh")).await;
    let show = format!(
        "button[aria-label={}]",
        js(&format!(
            "Show every violation and the held payload of hotel {id}"
        ))
    );
    let (listed, _) = b
        .wait_for(
            &format!("!!document.querySelector({})", js(&show)),
            Duration::from_secs(20),
        )
        .await;
    let _ = b.eval(&click(&show)).await;
    let (shown, payload) = b
        .wait_for(&text(".q-payload pre"), Duration::from_secs(20))
        .await;
    c.check(
        "the console shows a held payload under its row (the other hotel's id in it)",
        listed
            && shown
            && payload
                .as_str()
                .is_some_and(|p| p.contains(&format!("\"hotel_id\": {}", id + 1))),
        payload
            .as_str()
            .map(|p| p.chars().take(200).collect::<String>())
            .unwrap_or_default(),
    );
    let _ = b.screenshot(&shots.join("console-quarantine.png")).await;
    // Discard asks for a second click.
    let discard = format!(
        "button[aria-label={}]",
        js(&format!("Discard the held payload of hotel {id}"))
    );
    let _ = b.eval(&click(&discard)).await;
    let _ = b.eval(&click(&discard)).await;
    let (discarded, msg) = b
        .wait_for(&text("#quarantine-message"), Duration::from_secs(20))
        .await;
    let (code, _, _) = c
        .call("GET", &format!("/api/v1/admin/quarantine/{id}"), true)
        .await;
    c.check(
        "the console discards it: no longer held",
        discarded && code == 404,
        format!("{msg}; GET answered {code}"),
    );
    // Upstream fixed: the next sync stores the good content.
    c.sim_faults(sim, serde_json::json!({})).await;
    c.send("POST", &trigger, true, subset).await;
    c.wait_idle().await;
}

/// Swagger UI at `/docs`, rendered by the browser, lists every route of the table.
pub async fn swagger(c: &mut Ctx) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut b = match Browser::launch(&chromium).await {
        Ok(b) => b,
        Err(e) => {
            c.check("headless Chromium renders /docs", false, e);
            return;
        }
    };
    if let Err(e) = b.open(&format!("{}/docs", c.base)).await {
        c.check("headless Chromium renders /docs", false, e);
        return;
    }
    let paths: Vec<&str> = cupid_sync::api::routes::ROUTES
        .iter()
        .map(|r| r.path)
        .collect();
    let expr = format!(
        "(() => {{ const want = {}; const have = new Set([...document.querySelectorAll('[data-path]')].map(e => e.getAttribute('data-path'))); \
         const missing = want.filter(p => !have.has(p)); return missing.length === 0 ? 'all' : ''; }})()",
        serde_json::to_string(&paths).unwrap_or_default()
    );
    let (mut ok, _) = b.wait_for(&expr, Duration::from_secs(60)).await;
    if !ok {
        // Seen once in CI (not reproduced in 100s of local loads): the page loaded but listed
        // no route. Say what the page saw, then load it once more; the check still fails if
        // the second load lists nothing.
        let seen = b
            .eval(SWAGGER_DIAGNOSIS)
            .await
            .unwrap_or_else(Value::String);
        println!("     /docs listed no route in 60 s; the page saw: {seen}; loading it again");
        if b.open(&format!("{}/docs", c.base)).await.is_ok() {
            ok = b.wait_for(&expr, Duration::from_secs(60)).await.0;
        }
    }
    let missing = b
        .eval(&format!(
            "(() => {{ const want = {}; const have = new Set([...document.querySelectorAll('[data-path]')].map(e => e.getAttribute('data-path'))); return want.filter(p => !have.has(p)); }})()",
            serde_json::to_string(&paths).unwrap_or_default()
        ))
        .await
        .unwrap_or_default();
    c.check(
        "headless Chromium renders /docs with every route listed",
        ok,
        format!("missing: {missing}"),
    );
}

/// What Swagger UI showed and what the page fetched, for a failed /docs check.
const SWAGGER_DIAGNOSIS: &str = "(async () => ({ \
    error: document.querySelector('.errors-wrapper')?.innerText || null, \
    loading: !!document.querySelector('.loading-container'), \
    fetched: performance.getEntriesByType('resource').map(e => `${e.name} ${e.responseStatus} ${Math.round(e.duration)}ms`), \
    spec_now: await fetch('/docs/swagger.json').then(r => r.status, e => String(e)) }))()";
