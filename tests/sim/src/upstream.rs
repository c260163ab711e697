//! The simulated Cupid upstream: content per id and facet that changes over time, faults drawn
//! from the seed, and a record of every request (who sent it, when) for the invariants.

use crate::scenario::UpstreamFaults;
use cupid_sync::domain::facet::Facet;
use cupid_sync::ports::{FetchError, RetryAfter};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// One request as upstream saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at_ms: u64,
    pub invocation: u64,
    pub hotel_id: i64,
    pub facet: String,
}

#[derive(Default)]
struct Content {
    /// (id, facet key) → version; absent = 0.
    versions: BTreeMap<(i64, String), u32>,
    /// id → shape step (`drift`); absent = 0.
    shapes: BTreeMap<i64, u32>,
    deleted: BTreeSet<i64>,
}

pub struct SimUpstream {
    content: Mutex<Content>,
    faults: UpstreamFaults,
    pub sent: Mutex<Vec<Sent>>,
    /// No faults at all (the final clean run).
    pub calm: std::sync::atomic::AtomicBool,
    pub timeout: Duration,
}

impl SimUpstream {
    pub fn new(faults: UpstreamFaults, timeout: Duration) -> Self {
        SimUpstream {
            content: Mutex::default(),
            faults,
            sent: Mutex::default(),
            calm: Default::default(),
            timeout,
        }
    }

    fn version(&self, id: i64, facet: &str) -> u32 {
        let c = self.content.lock().unwrap();
        c.versions
            .get(&(id, facet.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn is_deleted(&self, id: i64) -> bool {
        self.content.lock().unwrap().deleted.contains(&id)
    }

    /// The body upstream serves now for this facet (what the store must converge to), or
    /// `None` when upstream has none (404).
    pub fn body(&self, id: i64, facet: &Facet) -> Option<Value> {
        if self.is_deleted(id) {
            return None;
        }
        let v = self.version(id, &facet.key());
        let step = self
            .content
            .lock()
            .unwrap()
            .shapes
            .get(&id)
            .copied()
            .unwrap_or(0);
        let mut body = match facet {
            Facet::Property => json!({
                "hotel_id": id,
                "hotel_name": format!("Hotel {id} v{v}"),
                "latitude": 38.0 + (id % 100) as f64 / 100.0,
                "longitude": -9.0 - (id % 50) as f64 / 100.0,
                "rating": (id % 50) as f64 / 10.0,
                "stars": 1 + id % 5,
                "address": {"city": "Lisbon", "country": "pt"},
                "photos": [
                    {"url": format!("https://p/{id}/1.jpg"), "score": 1.0, "class_order": 1},
                    {"url": format!("https://p/{id}/2.jpg"), "score": 1.0, "class_order": 1}
                ],
                "v": v
            }),
            Facet::Lang(l) => {
                json!({"hotel_id": id, "hotel_name": format!("[{l}] Hotel {id} v{v}")})
            }
            Facet::Reviews(n) => Value::Array(
                (0..(*n as i64))
                    .map(|k| {
                        json!({
                            "review_id": id * 100 + k + v as i64 * 10,
                            "date": "2025-08-21 10:00:00",
                            "headline": format!("r{k}")
                        })
                    })
                    .collect(),
            ),
        };
        if step > 0
            && let Some(doc) = body.as_object_mut()
        {
            doc.insert(
                format!("extra_v{step}"),
                json!({"note": step, "tags": ["a"]}),
            );
            if step % 2 == 1 {
                doc.remove("address");
            }
        }
        Some(body)
    }

    /// The response shape of a share of the ids moves one step (see `Action::Drift`).
    pub fn drift(&self, ids: &[i64], fraction: f64, pick: u64) {
        let mut c = self.content.lock().unwrap();
        for id in ids {
            let h = (*id as u64 ^ pick).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            if (h as f64 / (1u64 << 53) as f64) < fraction {
                *c.shapes.entry(*id).or_default() += 1;
            }
        }
    }

    /// Every facet of a share of the ids gets a new version.
    pub fn change(&self, ids: &[i64], facets: &[Facet], fraction: f64, pick: u64) {
        let mut c = self.content.lock().unwrap();
        for id in ids {
            let h = (*id as u64 ^ pick).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            if (h as f64 / (1u64 << 53) as f64) < fraction {
                for f in facets {
                    *c.versions.entry((*id, f.key())).or_default() += 1;
                }
            }
        }
    }

    pub fn delete(&self, id: i64) {
        self.content.lock().unwrap().deleted.insert(id);
    }

    /// One attempt. `rng` is the world's; `now_ms` the wall clock; `elapsed_s` since the start.
    pub async fn fetch(
        &self,
        rng: &Mutex<ChaCha8Rng>,
        invocation: u64,
        id: i64,
        facet: &Facet,
        now_ms: u64,
        elapsed_s: u64,
    ) -> Result<Value, FetchError> {
        self.sent.lock().unwrap().push(Sent {
            at_ms: now_ms,
            invocation,
            hotel_id: id,
            facet: facet.key(),
        });
        let calm = self.calm.load(std::sync::atomic::Ordering::SeqCst);
        let f = &self.faults;
        let (latency, roll) = {
            let mut r = rng.lock().unwrap();
            (r.random_range(0..=f.max_latency_ms), r.random::<f64>())
        };
        tokio::time::sleep(Duration::from_millis(latency)).await;
        if !calm {
            let retry_after = match f.retry_after_form {
                1 => Some(RetryAfter::Delay(Duration::from_secs(f.retry_after_secs))),
                2 => Some(RetryAfter::At(now_ms + f.retry_after_secs * 1000)),
                _ => None,
            };
            if let Some((start, len)) = f.quota_out
                && (start..start + len).contains(&elapsed_s)
            {
                return Err(FetchError::RateLimited {
                    retry_after: Some(RetryAfter::Delay(Duration::from_secs(3600))),
                });
            }
            let mut edge = 0.0;
            let mut hit = |p: f64| {
                edge += p;
                roll < edge
            };
            if hit(f.p_401) {
                return Err(FetchError::Unauthorized(401));
            }
            if hit(f.p_5xx) {
                return Err(FetchError::Server(503));
            }
            if hit(f.p_429) {
                return Err(FetchError::RateLimited { retry_after });
            }
            if hit(f.p_timeout) {
                tokio::time::sleep(self.timeout).await;
                return Err(FetchError::Timeout(self.timeout));
            }
            if hit(f.p_malformed) {
                return Err(FetchError::Malformed("expected value at line 1".into()));
            }
            if hit(f.p_truncated) {
                return Err(FetchError::Malformed("body cut off".into()));
            }
            if hit(f.p_404) {
                return Err(FetchError::NotFound);
            }
            if hit(f.p_bad)
                && let Some(body) = self.body(id, facet)
            {
                // A data regression: always the same bad body for the same content (its kind
                // follows from the id), so an operator's acceptance of it can match a later
                // fetch.
                let kind = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                return Ok(bad_payload(body, id, facet, kind as usize));
            }
        }
        self.body(id, facet).ok_or(FetchError::NotFound)
    }
}

/// A body that breaks its facet's contract in one of the ways upstream regressions do:
/// another hotel's payload, an empty name, (0, 0) coordinates, a field whose type changed,
/// a required field gone, a score out of range, a photo URL that is not one; for reviews, a
/// review without an id or with a date that does not parse.
pub fn bad_payload(mut body: Value, id: i64, facet: &Facet, kind: usize) -> Value {
    match facet {
        Facet::Property => match kind % 7 {
            0 => body["hotel_id"] = json!(id + 1),
            1 => body["hotel_name"] = json!(""),
            2 => {
                body["latitude"] = json!(0.0);
                body["longitude"] = json!(0.0);
            }
            3 => body["rating"] = json!(body["rating"].to_string()),
            4 => {
                body.as_object_mut().map(|m| m.remove("latitude"));
            }
            5 => body["rating"] = json!(11.5),
            _ => body["photos"][0]["url"] = json!("photo-1.jpg"),
        },
        Facet::Lang(_) => match kind % 2 {
            0 => body["hotel_id"] = json!(id + 1),
            _ => body["hotel_name"] = json!(" "),
        },
        Facet::Reviews(_) => {
            if let Some(first) = body.get_mut(0) {
                match kind % 2 {
                    0 => {
                        first.as_object_mut().map(|m| m.remove("review_id"));
                    }
                    _ => first["date"] = json!("last tuesday"),
                }
            } else {
                body = json!([{"review_id": "r1", "date": "2025-08-21 10:00:00"}]);
            }
        }
    }
    body
}
