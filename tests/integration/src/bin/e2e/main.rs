//! End-to-end check through `cargo lambda watch`: `e2e http://127.0.0.1:18080 TOKEN`.
//! Started by `tests/stack.sh e2e` (part of `make test`) against a fresh local stack.

mod cli;
mod console;
mod quality;
mod webhooks;

use serde_json::Value;
use std::time::{Duration, Instant};

struct Ctx {
    base: String,
    token: String,
    http: reqwest::Client,
    passed: u32,
    failed: u32,
}

impl Ctx {
    async fn call(&self, method: &str, path: &str, auth: bool) -> (u16, Value, Duration) {
        self.send(method, &format!("{}{}", self.base, path), auth, None)
            .await
    }

    /// A call with a JSON body (`url` whole: the simulator's control routes too).
    async fn send(
        &self,
        method: &str,
        url: &str,
        auth: bool,
        body: Option<Value>,
    ) -> (u16, Value, Duration) {
        let started = Instant::now();
        let build = || {
            let mut req = self.http.request(method.parse().unwrap(), url);
            if auth {
                req = req.bearer_auth(&self.token);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            req
        };
        let read = |sent: Result<reqwest::Response, reqwest::Error>| async move {
            match sent {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    (
                        status,
                        serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    )
                }
                Err(e) => (0, Value::String(e.to_string())),
            }
        };
        let (mut status, mut body) = read(build().send().await).await;
        // A read is safe to send again when `cargo lambda watch` itself failed it: no answer
        // (it lost the request), or its own 500 (problem+json, never our envelope: seen when
        // it starts a function on demand). A write is not sent twice.
        let watch_failed = status == 0 || (status == 500 && body.get("success").is_none());
        if method == "GET" && watch_failed {
            println!("     {method} {url}: {status} {body} from watch; sending it again");
            (status, body) = read(build().send().await).await;
        }
        (status, body, started.elapsed())
    }

    /// Sets the Cupid simulator's faults (`{}`: none).
    async fn sim_faults(&self, sim: &str, faults: Value) {
        self.send("POST", &format!("{sim}/__sim/faults"), false, Some(faults))
            .await;
    }

    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("ok   {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }

    async fn wait_idle(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            let (_, b, _) = self.call("GET", "/api/v1/admin/sync/status", true).await;
            let cur = &b["data"]["current_run"];
            if cur.is_null() && b["success"] == true {
                return true;
            }
            println!("     progress {}/{}", cur["processed"], cur["total"]);
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        false
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18080".into());
    let token = args.next().unwrap_or_else(|| "local-admin-token".into());
    let sim = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:19100".into());
    let mut c = Ctx {
        base,
        token,
        // Nothing here takes a minute; a request `cargo lambda watch` loses (seen once, in CI:
        // a function instance started on demand never got the request) must not hang the suite.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client"),
        passed: 0,
        failed: 0,
    };

    let (s, b, _) = c.call("GET", "/api/v1/health", false).await;
    c.check(
        "GET /api/v1/health answers 200 with the envelope",
        s == 200 && b["success"] == true,
        &b,
    );
    let (s, b, _) = c.call("GET", "/api/v1/admin/sync/status", false).await;
    c.check(
        "admin routes refuse a missing token",
        s == 401 && b["error"]["code"] == "unauthorized",
        &b,
    );

    // The answer does not wait for the run: the run is still going when it arrives. (How fast
    // the answer is belongs to the benchmarks, not to a wall-clock bound here.)
    let (s, b, took) = c.call("POST", "/api/v1/admin/sync", true).await;
    let first = b["data"]["sync_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, st, _) = c.call("GET", "/api/v1/admin/sync/status", true).await;
    c.check(
        "POST /admin/sync answers 202 while the run goes on in the background",
        s == 202 && !first.is_empty() && st["data"]["current_run"]["sync_id"] == first.as_str(),
        format!(
            "{s} in {took:?}: {b}; then status: {}",
            st["data"]["current_run"]
        ),
    );
    let (s, b, _) = c.call("POST", "/api/v1/admin/sync", true).await;
    c.check(
        "a second trigger while running is 409",
        s == 409 && b["error"]["details"]["sync_id"] == first.as_str(),
        &b,
    );
    let idle = c.wait_idle().await;
    c.check("the first sync finishes", idle, "still running after 180 s");
    let (s, b, _) = c
        .call("GET", &format!("/api/v1/admin/sync/logs/{first}"), true)
        .await;
    let d = &b["data"];
    c.check(
        "first sync: 100 properties synced",
        d["status"] == "completed" && d["updated_properties"] == 100,
        format!("{s} {b}"),
    );
    let (_, b, _) = c.call("GET", "/api/v1/properties/1641879", true).await;
    c.check(
        "a synced property reads back",
        b["data"]["document"]["hotel_name"] == "The Z Hotel Covent Garden",
        &b["data"]["sync_status"],
    );

    let (s, b, _) = c.call("POST", "/api/v1/admin/sync", true).await;
    let second = b["data"]["sync_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.check("a second sync starts", s == 202, &b);
    c.wait_idle().await;
    let (_, b, _) = c
        .call("GET", &format!("/api/v1/admin/sync/logs/{second}"), true)
        .await;
    let d = &b["data"];
    c.check(
        "an unchanged re-sync writes no document",
        d["unchanged_properties"] == 100 && d["document_writes"] == 0,
        d,
    );

    let (s, b, _) = c.call("GET", "/api/v1/admin/sync/status", true).await;
    c.check(
        "status has the seed's fields",
        s == 200 && b["data"]["total_properties"] == 100 && b["data"]["last_sync"].is_string(),
        &b,
    );
    let (s, b, _) = c
        .call("POST", "/api/v1/admin/sync/start?interval=24h", true)
        .await;
    c.check(
        "start?interval=24h enables the schedule",
        s == 200 && b["data"]["schedule_expression"] == "rate(1 day)",
        &b,
    );
    let (s, b, _) = c.call("GET", "/api/v1/admin/sync/health", true).await;
    c.check(
        "health is healthy",
        s == 200 && b["data"]["status"] == "healthy",
        &b,
    );
    let (s, b, _) = c.call("POST", "/api/v1/admin/sync/stop", true).await;
    c.check(
        "stop disables the schedule",
        s == 200 && b["data"]["enabled"] == false,
        &b,
    );
    let (s, b, _) = c
        .call("GET", "/api/v1/admin/sync/logs?limit=10&offset=0", true)
        .await;
    c.check(
        "logs list both runs newest first",
        s == 200 && b["data"]["total"] == 2 && b["data"]["items"][0]["sync_id"] == second.as_str(),
        &b["data"]["total"],
    );
    let (s, b, _) = c.call("GET", "/docs/swagger.json", false).await;
    let n = b["paths"].as_object().map(|p| p.len()).unwrap_or(0);
    c.check(
        "the OpenAPI document is served",
        s == 200 && n >= 10,
        format!("{s}, {n} paths"),
    );
    hung_up_clients(&mut c).await;
    // Scale: a run's details page by property, status reads counts, the log pages by cursor.
    let mut details = 0;
    let mut after: Option<i64> = None;
    let mut pages = 0;
    loop {
        let q = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (_, b, _) = c
            .call(
                "GET",
                &format!("/api/v1/admin/sync/logs/{first}?limit=40{q}"),
                true,
            )
            .await;
        pages += 1;
        details += b["data"]["details"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        match b["data"]["next_after"].as_i64() {
            Some(a) if pages < 10 => after = Some(a),
            _ => break,
        }
    }
    c.check(
        "the first run's 100 changes page by property (40 per page)",
        details == 100 && pages == 3,
        format!("{details} details in {pages} pages"),
    );
    let (_, b, _) = c.call("GET", "/api/v1/admin/sync/status", true).await;
    c.check(
        "status shows the counts per sync status and the run count",
        b["data"]["properties_by_status"]["synced"] == 100
            && b["data"]["total_properties"] == 100
            && b["data"]["total_runs"].as_u64().is_some_and(|n| n >= 2),
        &b["data"],
    );
    let (_, b, _) = c.call("GET", "/api/v1/admin/sync/logs?limit=1", true).await;
    let newest = b["data"]["items"][0]["sync_id"].clone();
    let cursor = b["data"]["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, b2, _) = c
        .call(
            "GET",
            &format!("/api/v1/admin/sync/logs?limit=1&cursor={cursor}"),
            true,
        )
        .await;
    c.check(
        "the run log pages by cursor",
        !cursor.is_empty() && b2["data"]["items"][0]["sync_id"] != newest,
        format!("{b} then {b2}"),
    );

    quality::quarantine(&mut c, &sim).await;

    // Prometheus metrics, through watch like every route.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/admin/sync/metrics", c.base))
        .bearer_auth(&c.token)
        .send()
        .await;
    let (code, ctype, text) = match resp {
        Ok(r) => {
            let code = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (code, ctype, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, String::new(), e.to_string()),
    };
    c.check(
        "GET /admin/sync/metrics answers the Prometheus text format with the catalogue counts",
        code == 200
            && ctype.starts_with("text/plain; version=0.0.4")
            && text.contains("# TYPE cupid_sync_properties gauge")
            && text.contains("cupid_sync_last_run_status{status=\"completed\"} 1"),
        format!(
            "{code} {ctype}: {}",
            text.chars().take(300).collect::<String>()
        ),
    );

    webhooks::checks(&mut c).await;

    // The operator console, in a real browser.
    let shots = std::env::var("E2E_SCREENSHOTS").unwrap_or_else(|_| ".local/screenshots".into());
    console::checks(&mut c, std::path::Path::new(&shots), &sim).await;

    // The operator CLI.
    cli::checks(&mut c).await;

    quality::drift(&mut c, &sim).await;
    quality::breaker(&mut c, &sim).await;

    // Bulk tracking from a file with the CLI: 12,000 lines in two calls.
    let file = std::env::temp_dir().join(format!("e2e-ids-{}.txt", std::process::id()));
    let mut lines = vec!["# ids for the e2e".to_string(), "1641879".into()];
    lines.extend((0..11_996).map(|i| (50_000_000 + i).to_string()));
    lines.push("not-an-id".into());
    lines.push("-3".into());
    std::fs::write(&file, lines.join("\n")).expect("write the ids file");
    let cli = std::env::var("CUPID_SYNC_CLI").unwrap_or_else(|_| "target/debug/cupid-sync".into());
    let out = std::process::Command::new(&cli)
        .args([
            "--api", &c.base, "--token", &c.token, "--json", "track", "--file",
        ])
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    match out {
        Ok(o) if o.status.success() => {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            let lines: Vec<i64> = v["invalid"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["line"].as_i64()).collect())
                .unwrap_or_default();
            c.check(
                "`cupid-sync track --file` tracks 11,996 new ids and names the invalid lines",
                v["new"] == 11_996 && v["already_tracked"] == 1 && lines == [11_999, 12_000],
                &v,
            );
            let (_, b, _) = c.call("GET", "/api/v1/admin/sync/status", true).await;
            c.check(
                "status counts the newly tracked ids as pending",
                b["data"]["total_properties"] == 12_096
                    && b["data"]["properties_by_status"]["pending"] == 11_996,
                &b["data"]["properties_by_status"],
            );
        }
        Ok(o) => c.check(
            "`cupid-sync track --file` succeeds",
            false,
            String::from_utf8_lossy(&o.stderr),
        ),
        Err(e) => c.check("`cupid-sync track` runs", false, format!("{cli}: {e}")),
    }

    let (s, b, _) = c.call("GET", "/docs", false).await;
    c.check(
        "the Swagger UI page is served",
        s == 200 && b.as_str().is_some_and(|h| h.contains("SwaggerUIBundle")),
        s,
    );

    // Swagger UI, rendered by a real browser, lists every route of the table.
    console::swagger(&mut c).await;

    println!("e2e: {} passed, {} failed", c.passed, c.failed);
    std::process::exit(if c.failed == 0 { 0 } else { 1 });
}

/// Clients that hang up before the answer (a closed browser tab, a client timeout) must not
/// take a function down: the runtime's post of that answer fails, and the function once exited
/// on it, after which watch left every later request to it unanswered. With watch's log at
/// hand (`E2E_WATCH_LOG`, set by tests/stack.sh), the check also requires that such a failed
/// post happened, so it cannot pass by never reaching the case.
async fn hung_up_clients(c: &mut Ctx) {
    let log = std::env::var("E2E_WATCH_LOG").ok();
    let failed_posts = || {
        log.as_ref().map(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("posting an answer to the Lambda Runtime API failed"))
                .count()
        })
    };
    let before = failed_posts();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(5))
        .build()
        .expect("an HTTP client");
    let mut hung_up = 0;
    for _ in 0..20 {
        if impatient
            .get(format!("{}/docs", c.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .is_err()
        {
            hung_up += 1;
        }
    }
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    let after = patient.get(format!("{}/docs", c.base)).send().await;
    let answered = match after {
        Ok(r) => format!("{} in {:?}", r.status(), started.elapsed()),
        Err(e) => format!("no answer: {e}"),
    };
    let posts = match (before, failed_posts()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    c.check(
        "a function still answers after 20 clients hung up on it mid-request",
        hung_up > 0 && posts != Some(0) && answered.starts_with("200"),
        format!(
            "{hung_up} hung up, {} answers the function could not post; then {answered}",
            posts.map_or("(no log to count)".to_string(), |n| n.to_string())
        ),
    );
}
