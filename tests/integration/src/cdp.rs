//! Headless Chromium driven over the DevTools protocol (a WebSocket on 127.0.0.1): enough to
//! load a page, run script in it, wait for a condition, and take a screenshot. Used by the
//! end-to-end suite's console checks.

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    child: tokio::process::Child,
    profile: PathBuf,
    ws: Ws,
    next: u64,
}

impl Browser {
    /// Starts `chromium` headless (1280×900) and attaches to its first page.
    pub async fn launch(chromium: &str) -> Result<Browser, String> {
        let profile =
            std::env::temp_dir().join(format!("cdp-{}-{}", std::process::id(), rand_tag()));
        let mut child = tokio::process::Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {chromium}: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().map(str::to_string);
                }
            }
            None
        })
        .await
        .map_err(|_| "chromium did not open its DevTools port in 30 s".to_string())?
        .ok_or("chromium exited before opening its DevTools port")?;
        // Keep draining stderr so chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|x| x["type"] == "page"))
            .and_then(|p| p["webSocketDebuggerUrl"].as_str())
            .ok_or(format!("no page target: {targets}"))?
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .map_err(|e| format!("DevTools socket {page}: {e}"))?;
        let mut b = Browser {
            child,
            profile,
            ws,
            next: 0,
        };
        b.call("Page.enable", json!({})).await?;
        b.call("Runtime.enable", json!({})).await?;
        Ok(b)
    }

    /// One DevTools command; events that arrive meanwhile are skipped.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.call_within(method, params, Duration::from_secs(60))
            .await
    }

    /// [`Browser::call`], waiting at most `wait` for the answer.
    pub async fn call_within(
        &mut self,
        method: &str,
        params: Value,
        wait: Duration,
    ) -> Result<Value, String> {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::Text(msg.into()))
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.ws.next())
                .await
                .map_err(|_| format!("{method}: no answer in {} s", wait.as_secs()))?;
            let Some(Ok(Message::Text(text))) = next else {
                match next {
                    Some(Ok(_)) => continue,
                    other => return Err(format!("{method}: socket ended: {other:?}")),
                }
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!(
                "script threw: {}",
                ex["exception"]["description"]
                    .as_str()
                    .unwrap_or(&ex.to_string())
            ));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expr` until it is truthy; returns its last value either way.
    pub async fn wait_for(&mut self, expr: &str, timeout: Duration) -> (bool, Value) {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.eval(expr).await {
                Ok(v) => {
                    let truthy = match &v {
                        Value::Null => false,
                        Value::Bool(b) => *b,
                        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
                        Value::String(s) => !s.is_empty(),
                        _ => true,
                    };
                    if truthy {
                        return (true, v);
                    }
                    last = v;
                }
                Err(e) => last = Value::String(e),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (false, last)
    }

    /// Loads `url` and waits for the document to finish loading. A navigation left without an
    /// answer for 20 s (seen twice in CI: the browser's first load through `cargo lambda watch`
    /// never answered, while later requests were) is reported with what a plain GET of the
    /// same URL gets, stopped, and tried once more.
    pub async fn open(&mut self, url: &str) -> Result<(), String> {
        let navigate = json!({"url": url});
        let wait = Duration::from_secs(20);
        if let Err(e) = self
            .call_within("Page.navigate", navigate.clone(), wait)
            .await
        {
            let started = Instant::now();
            let plain = match reqwest::Client::new().get(url).timeout(wait).send().await {
                Ok(r) => format!("{} in {:?}", r.status(), started.elapsed()),
                Err(e) => format!("{e} after {:?}", started.elapsed()),
            };
            println!("     {e}; a plain GET of {url}: {plain}; navigating again");
            let _ = self.call("Page.stopLoading", json!({})).await;
            self.call_within("Page.navigate", navigate, wait).await?;
        }
        let (ok, v) = self
            .wait_for(
                "document.readyState === 'complete' && location.href !== 'about:blank'",
                Duration::from_secs(30),
            )
            .await;
        if ok {
            Ok(())
        } else {
            Err(format!("{url} did not load: {v}"))
        }
    }

    /// A PNG of the viewport; returns its size in bytes.
    pub async fn screenshot(&mut self, path: &Path) -> Result<usize, String> {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        write_png(path, r["data"].as_str().unwrap_or_default())
    }
}

impl Browser {
    /// A PNG of the whole page (beyond the viewport); returns its size in bytes.
    pub async fn screenshot_full(&mut self, path: &Path) -> Result<usize, String> {
        let m = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &m["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(1280.0),
            size["height"].as_f64().unwrap_or(900.0).min(4000.0),
        );
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
            )
            .await?;
        write_png(path, r["data"].as_str().unwrap_or_default())
    }
}

fn write_png(path: &Path, b64: &str) -> Result<usize, String> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, &png).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(png.len())
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
