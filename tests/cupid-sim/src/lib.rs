//! A Cupid content API simulator for tests and local runs.
//!
//! Serves `/v3.0/property/{id}`, `/v3.0/property/{id}/lang/{lang}` and
//! `/v3.0/property/reviews/{id}/{count}` in the recorded shapes (tests/fixtures), varied
//! deterministically per id, for the 100 exercise ids and for a synthetic range of any size
//! (`synthetic_base .. synthetic_base + synthetic`, computed on demand, never held in memory).
//! Requires `x-api-key`. Faults and content changes are set over `/__sim/*` or in process.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub const PROPERTY_FIXTURE: &str = include_str!("../../fixtures/property_1641879.json");
pub const REVIEWS_FIXTURE: &str = include_str!("../../fixtures/reviews_1641879_100.json");
pub const HOTEL_IDS: &str = include_str!("../../fixtures/hotel_ids.txt");
pub const DEFAULT_SYNTHETIC_BASE: i64 = 50_000_000;

/// The 100 exercise hotel ids, in the exercise's order.
pub fn exercise_ids() -> Vec<i64> {
    HOTEL_IDS
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub api_key: String,
    pub synthetic: u64,
    pub synthetic_base: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: "local-dev-key".into(),
            synthetic: 0,
            synthetic_base: DEFAULT_SYNTHETIC_BASE,
        }
    }
}

/// What can go wrong, per id or as rates (rates are deterministic per id and attempt).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    /// Added to every request.
    pub latency_ms: u64,
    /// Fractions of requests (0..1) answered 500 / 429 / after a long stall / with broken JSON.
    pub error_rate: f64,
    pub rate_429: f64,
    pub retry_after_secs: u64,
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    pub malformed_rate: f64,
    pub truncated_rate: f64,
    /// Only requests whose path contains this are affected by the rates (e.g. "/lang/").
    pub path_filter: Option<String>,
    /// Per-id faults: the first `times` requests of that id get `kind`
    /// ("500", "503", "429", "timeout", "malformed", "truncated", "404", "401", "403"), or a
    /// body with a data regression (see [`regress`]).
    pub per_id: HashMap<i64, IdFault>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IdFault {
    pub kind: String,
    /// How many requests it applies to; 0 = all.
    #[serde(default)]
    pub times: u64,
    /// Only requests whose path contains this (e.g. "/lang/fr"); all of the id's when absent.
    #[serde(default)]
    pub path_contains: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeRequest {
    pub hotel_ids: Vec<i64>,
    /// Changes `fraction` of all ids, chosen by hash with `seed`.
    pub fraction: Option<f64>,
    pub seed: u64,
    /// "reviews": the ids gain a new review and nothing else changes. Otherwise the content
    /// changes (`hotel_name`, `rating`, in the property and every translation).
    pub facet: Option<String>,
}

#[derive(Default)]
struct Changes {
    rules: Vec<(u64, f64)>,
    ids: HashMap<i64, u64>,
    review_ids: HashMap<i64, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub total: u64,
    pub max_in_flight: u64,
    /// Most requests that started within any one-second window.
    pub max_per_second: u64,
    pub per_id: HashMap<i64, u64>,
}

pub struct Sim {
    cfg: SimConfig,
    template: Value,
    reviews: Vec<Value>,
    known: HashSet<i64>,
    faults: RwLock<Faults>,
    changes: RwLock<Changes>,
    per_id: Mutex<HashMap<i64, u64>>,
    starts: Mutex<Vec<Instant>>,
    total: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

fn h64(parts: &[u64]) -> u64 {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p.to_le_bytes());
    }
    let out = d.finalize();
    u64::from_le_bytes(out[..8].try_into().unwrap_or([0; 8]))
}

fn frac(parts: &[u64]) -> f64 {
    (h64(parts) >> 11) as f64 / (1u64 << 53) as f64
}

const CITIES: [(&str, &str); 6] = [
    ("London", "gb"),
    ("Paris", "fr"),
    ("Madrid", "es"),
    ("Rome", "it"),
    ("Berlin", "de"),
    ("Lisbon", "pt"),
];

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let template: Value = serde_json::from_str(PROPERTY_FIXTURE).expect("fixture is JSON");
        let reviews: Vec<Value> = serde_json::from_str(REVIEWS_FIXTURE).expect("fixture is JSON");
        Sim {
            known: exercise_ids().into_iter().collect(),
            cfg,
            template,
            reviews,
            faults: RwLock::new(Faults::default()),
            changes: RwLock::new(Changes::default()),
            per_id: Mutex::new(HashMap::new()),
            starts: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    pub fn is_known(&self, id: i64) -> bool {
        self.known.contains(&id)
            || (id >= self.cfg.synthetic_base
                && id < self.cfg.synthetic_base + self.cfg.synthetic as i64)
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// Changes the content of these ids (or a fraction of all ids) from now on.
    pub fn change(&self, req: &ChangeRequest) {
        let mut c = self.changes.write().unwrap_or_else(|e| e.into_inner());
        if req.facet.as_deref() == Some("reviews") {
            for id in &req.hotel_ids {
                *c.review_ids.entry(*id).or_insert(0) += 1;
            }
            return;
        }
        for id in &req.hotel_ids {
            *c.ids.entry(*id).or_insert(0) += 1;
        }
        if let Some(f) = req.fraction {
            c.rules.push((req.seed, f));
        }
    }

    /// Whether a fraction rule with `seed` picks `id` (for tests to know which ids changed).
    pub fn picked(id: i64, seed: u64, fraction: f64) -> bool {
        frac(&[id as u64, seed, 0xC4A7]) < fraction
    }

    fn generation(&self, id: i64) -> u64 {
        let c = self.changes.read().unwrap_or_else(|e| e.into_inner());
        c.ids.get(&id).copied().unwrap_or(0)
            + c.rules
                .iter()
                .filter(|(seed, f)| Self::picked(id, *seed, *f))
                .count() as u64
    }

    pub fn reset(&self) {
        self.set_faults(Faults::default());
        *self.changes.write().unwrap_or_else(|e| e.into_inner()) = Changes::default();
        self.per_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.total.store(0, Ordering::SeqCst);
        self.max_in_flight.store(0, Ordering::SeqCst);
    }

    pub fn stats(&self) -> Stats {
        let starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted = starts.clone();
        sorted.sort();
        let (mut best, mut j) = (0usize, 0usize);
        for i in 0..sorted.len() {
            while sorted[i].duration_since(sorted[j]) >= Duration::from_secs(1) {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        Stats {
            total: self.total.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
            max_per_second: best as u64,
            per_id: self
                .per_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// The English property document for `id` at its current generation.
    pub fn property(&self, id: i64) -> Value {
        let mut doc = self.template.clone();
        let h = h64(&[id as u64]);
        let g = self.generation(id);
        let original = id == 1_641_879;
        doc["hotel_id"] = json!(id);
        doc["cupid_id"] = json!(id);
        if !original {
            let (city, country) = CITIES[(h % CITIES.len() as u64) as usize];
            doc["hotel_name"] = json!(format!("Simulated Hotel {id}"));
            doc["stars"] = json!(1 + (h >> 8) % 5);
            doc["rating"] = json!(((60 + (h >> 16) % 40) as f64) / 10.0);
            doc["review_count"] = json!((h >> 24) % 5000);
            doc["address"]["city"] = json!(city);
            doc["address"]["country"] = json!(country);
            doc["latitude"] = json!(((h >> 32) % 180_000) as f64 / 1000.0 - 90.0);
            doc["longitude"] = json!(((h >> 40) % 360_000) as f64 / 1000.0 - 180.0);
            if let Some(photos) = doc["photos"].as_array_mut() {
                photos.truncate(10 + (h % 72) as usize);
            }
        }
        if let Some(rooms) = doc["rooms"].as_array_mut() {
            for r in rooms {
                r["hotel_id"] = json!(id.to_string());
            }
        }
        if g > 0 {
            let name = doc["hotel_name"].as_str().unwrap_or_default().to_string();
            doc["hotel_name"] = json!(format!("{name} (renovated {g})"));
            let rating = doc["rating"].as_f64().unwrap_or(5.0);
            doc["rating"] =
                json!(((rating * 10.0).round() as i64 % 90 + 1 + g as i64 % 9) as f64 / 10.0);
        }
        doc
    }

    pub fn translated(&self, id: i64, lang: &str) -> Value {
        let mut doc = self.property(id);
        let salt = lang
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
        let name = doc["hotel_name"].as_str().unwrap_or_default().to_string();
        doc["hotel_name"] = json!(format!("[{lang}] {name}"));
        if let Some(f) = doc["facilities"].as_array_mut() {
            f.retain(|x| (x["facility_id"].as_u64().unwrap_or(0).wrapping_add(salt)) % 5 != 0);
        }
        doc
    }

    fn review_generation(&self, id: i64) -> u64 {
        self.changes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .review_ids
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    pub fn reviews_for(&self, id: i64, count: usize) -> Value {
        let g = self.review_generation(id);
        let mut out: Vec<Value> = Vec::new();
        for k in (0..g.min(50)).rev() {
            let mut r = self.reviews[0].clone();
            r["review_id"] = json!(id * 10_000 + 9_000 + k as i64);
            r["headline"] = json!(format!("New review {k}"));
            r["date"] = json!(format!("2026-{:02}-01T00:00:00Z", 1 + k % 12));
            out.push(r);
        }
        for (i, r) in self.reviews.iter().enumerate() {
            let mut r = r.clone();
            r["review_id"] = json!(id * 10_000 + i as i64);
            out.push(r);
        }
        out.truncate(count);
        Value::Array(out)
    }

    fn fault_for(&self, id: i64, path: &str, attempt: u64) -> Option<String> {
        let f = self.faults.read().unwrap_or_else(|e| e.into_inner());
        if let Some(pf) = f.per_id.get(&id)
            && (pf.times == 0 || attempt <= pf.times)
            && pf.path_contains.as_deref().is_none_or(|p| path.contains(p))
        {
            return Some(pf.kind.clone());
        }
        if f.path_filter.as_deref().is_some_and(|p| !path.contains(p)) {
            return None;
        }
        let roll = frac(&[id as u64, attempt, path.len() as u64]);
        let mut edge = 0.0;
        for (rate, kind) in [
            (f.error_rate, "500"),
            (f.rate_429, "429"),
            (f.timeout_rate, "timeout"),
            (f.malformed_rate, "malformed"),
            (f.truncated_rate, "truncated"),
        ] {
            edge += rate;
            if roll < edge {
                return Some(kind.to_string());
            }
        }
        None
    }
}

struct InFlight<'a>(&'a Sim);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_body(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

async fn serve_doc(
    sim: Arc<Sim>,
    headers: HeaderMap,
    id_raw: String,
    path: String,
    body: impl FnOnce(&Sim, i64) -> Value,
) -> Response {
    let key_ok =
        headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(sim.cfg.api_key.as_str());
    let Ok(id) = id_raw.parse::<i64>() else {
        return json_body(
            StatusCode::NOT_FOUND,
            &json!({"message": format!("Property {id_raw} not found")}),
        );
    };
    sim.total.fetch_add(1, Ordering::SeqCst);
    let now_in = sim.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    sim.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
    let _guard = InFlight(&sim);
    sim.starts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Instant::now());
    let attempt = {
        let mut m = sim.per_id.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(id).or_insert(0);
        *n += 1;
        *n
    };
    let (latency, retry_after, timeout_ms) = {
        let f = sim.faults.read().unwrap_or_else(|e| e.into_inner());
        (
            f.latency_ms,
            f.retry_after_secs,
            if f.timeout_ms == 0 {
                30_000
            } else {
                f.timeout_ms
            },
        )
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if !key_ok {
        return json_body(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Invalid or missing x-api-key"}),
        );
    }
    if !sim.is_known(id) {
        return json_body(
            StatusCode::NOT_FOUND,
            &json!({"message": format!("Property {id} not found")}),
        );
    }
    let doc = body(&sim, id);
    match sim.fault_for(id, &path, attempt).as_deref() {
        Some("500") => json_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"message": "simulated server error"}),
        ),
        Some("503") => json_body(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"message": "simulated outage"}),
        ),
        Some("429") => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.to_string())],
            "{\"message\":\"slow down\"}",
        )
            .into_response(),
        Some("404") => json_body(
            StatusCode::NOT_FOUND,
            &json!({"message": format!("Property {id} not found")}),
        ),
        Some("401") => json_body(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Invalid or missing x-api-key"}),
        ),
        Some("403") => json_body(StatusCode::FORBIDDEN, &json!({"message": "Forbidden"})),
        Some("timeout") => {
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            json_body(StatusCode::OK, &doc)
        }
        Some("malformed") => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"hotel_id\": 1, \"hotel_name\": <html>",
        )
            .into_response(),
        Some("truncated") => {
            let mut bytes = serde_json::to_vec(&doc).unwrap_or_default();
            bytes.truncate(bytes.len() / 2);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        }
        Some(kind) => match regress(kind, &doc, id) {
            Some(bad) => json_body(StatusCode::OK, &bad),
            None => json_body(StatusCode::OK, &doc),
        },
        None => json_body(StatusCode::OK, &doc),
    }
}

/// A data regression (a per-id fault kind): the body with one thing upstream gets wrong.
/// `wrong_hotel`, `empty_name`, `null_island`, `type_change` (rating as a string),
/// `drop_field` (no latitude), `reshape` (schema drift within the contract: a new
/// `sustainability` object, no `airport_code`), `sprout` (a new `loyalty` object); for reviews, `bad_review_date`. Other kinds:
/// `None`.
pub fn regress(kind: &str, doc: &Value, id: i64) -> Option<Value> {
    let mut bad = doc.clone();
    // A property-shaped regression does not apply to a reviews list, nor the other way round.
    if doc.is_object() == (kind == "bad_review_date") {
        return None;
    }
    match kind {
        "wrong_hotel" => bad["hotel_id"] = json!(id + 1),
        "empty_name" => bad["hotel_name"] = json!(""),
        "null_island" => {
            bad["latitude"] = json!(0.0);
            bad["longitude"] = json!(0.0);
        }
        "type_change" => bad["rating"] = json!(doc["rating"].to_string()),
        "drop_field" => {
            bad.as_object_mut()?.remove("latitude");
        }
        "bad_review_date" => bad.get_mut(0)?["date"] = json!("last tuesday"),
        // Schema drift that keeps the contract: a new section, an optional field gone.
        "reshape" => {
            let o = bad.as_object_mut()?;
            o.insert(
                "sustainability".into(),
                json!({"level": 2, "certified": true}),
            );
            o.remove("airport_code");
        }
        // Another new section (a second drift, for a frozen schema).
        "sprout" => {
            bad.as_object_mut()?
                .insert("loyalty".into(), json!({"program": "stars", "tier": 1}));
        }
        _ => return None,
    }
    Some(bad)
}

async fn property(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/v3.0/property/{id}");
    serve_doc(sim, headers, id, path, |s, id| s.property(id)).await
}

async fn translated(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((id, lang)): Path<(String, String)>,
) -> Response {
    let path = format!("/v3.0/property/{id}/lang/{lang}");
    serve_doc(sim, headers, id, path, move |s, id| s.translated(id, &lang)).await
}

async fn reviews(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((id, count)): Path<(String, String)>,
) -> Response {
    let path = format!("/v3.0/property/reviews/{id}/{count}");
    let n: usize = count.parse().unwrap_or(0);
    serve_doc(sim, headers, id, path, move |s, id| s.reviews_for(id, n)).await
}

async fn get_stats(State(sim): State<Arc<Sim>>) -> Response {
    json_body(
        StatusCode::OK,
        &serde_json::to_value(sim.stats()).unwrap_or_default(),
    )
}

async fn post_reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset();
    json_body(StatusCode::OK, &json!({"reset": true}))
}

async fn post_faults(State(sim): State<Arc<Sim>>, axum::Json(f): axum::Json<Faults>) -> Response {
    sim.set_faults(f);
    json_body(StatusCode::OK, &json!({"faults": "set"}))
}

async fn post_change(
    State(sim): State<Arc<Sim>>,
    axum::Json(c): axum::Json<ChangeRequest>,
) -> Response {
    sim.change(&c);
    json_body(StatusCode::OK, &json!({"changed": true}))
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v3.0/property/reviews/{id}/{count}", get(reviews))
        .route("/v3.0/property/{id}/lang/{lang}", get(translated))
        .route("/v3.0/property/{id}", get(property))
        .route("/__sim/stats", get(get_stats))
        .route("/__sim/reset", post(post_reset))
        .route("/__sim/faults", post(post_faults))
        .route("/__sim/change", post(post_change))
        .with_state(sim)
}

/// A running simulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on 127.0.0.1 (`port` 0 = any free port).
pub async fn spawn(cfg: SimConfig, port: u16) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(cfg));
    let app = router(sim.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim, task })
}
