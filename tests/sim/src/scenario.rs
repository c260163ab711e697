//! One seed's scenario: everything the world around the engine will do, drawn up front from
//! the seed so a failure can print it and `SIM_SEED` replays it exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Fault rates of the simulated upstream (per request).
#[derive(Debug, Clone)]
pub struct UpstreamFaults {
    pub p_5xx: f64,
    pub p_429: f64,
    /// 0: no Retry-After; 1: seconds; 2: HTTP-date.
    pub retry_after_form: u8,
    pub retry_after_secs: u64,
    pub p_timeout: f64,
    pub p_malformed: f64,
    pub p_truncated: f64,
    pub p_404: f64,
    pub p_401: f64,
    /// A body that breaks its contract (`upstream::bad_payload`).
    pub p_bad: f64,
    /// A window (start, length) in seconds from the scenario start when every request gets 429
    /// (the quota is exhausted).
    pub quota_out: Option<(u64, u64)>,
    pub max_latency_ms: u64,
}

/// Store fault rates (per call): an error instead of the write, or after it was applied.
#[derive(Debug, Clone)]
pub struct StoreFaults {
    pub p_fail_before: f64,
    pub p_fail_after: f64,
    pub max_latency_ms: u64,
}

/// Something the operators or upstream do at a time (seconds from the start).
#[derive(Debug, Clone)]
pub enum Action {
    /// `POST /admin/sync`, for a subset (indexes into the tracked ids) or everything.
    Trigger {
        subset: Option<Vec<usize>>,
        dry_run: bool,
        /// `"force": true`: the circuit breaker off for this run.
        force: bool,
    },
    /// `DELETE /admin/properties/{id}` (index into the ids).
    Untrack(usize),
    /// `PUT /admin/properties` of an id untracked earlier (index).
    Retrack(usize),
    /// Upstream content changes for this share of the ids (seeded pick).
    Change { fraction: f64, pick: u64 },
    /// Upstream's response shape changes for this share of the ids (seeded pick): each
    /// property and translation gains a field `extra_v<n>` of a new name, loses the previous
    /// one, and every other step loses `address` (schema drift).
    Drift { fraction: f64, pick: u64 },
    /// Upstream deletes this property (404 from now on).
    Delete(usize),
    /// `GET /properties/{id}` (index): what a reader is served must match its record.
    Read(usize),
    /// `POST /admin/quarantine/{id}/accept` of the i-th quarantined property (modulo how
    /// many there are; the i-th id when none is).
    Accept(usize),
    /// `DELETE /admin/quarantine/{id}`, chosen as for `Accept`.
    Discard(usize),
    /// `PUT /admin/sync/settings`: batch size and concurrency.
    Settings {
        batch_size: u32,
        max_concurrent: u32,
    },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub properties: usize,
    pub languages: Vec<String>,
    pub review_count: u32,
    pub batch_size: u32,
    pub max_concurrent: u32,
    pub retries: u32,
    pub rate_limit: f64,
    pub lease_ttl_s: u64,
    pub max_run_s: u64,
    pub margin_s: u64,
    /// The function's timeout: the platform kills an invocation still running then.
    pub lambda_timeout_s: u64,
    pub scan_page: usize,
    /// Compressed bytes per document item: often tiny here, so most documents are stored in
    /// parts and crashes land between them.
    pub part_bytes: usize,
    /// `sync_schema_policy` of every run but the clean last one.
    pub schema_policy: cupid_sync::domain::settings::SchemaPolicy,
    pub touch_unchanged: bool,
    pub interval_s: u64,
    pub slots: u32,
    pub upstream: UpstreamFaults,
    pub store: StoreFaults,
    /// Chance that an invocation is killed at a random call.
    pub p_crash: f64,
    /// Chance that an event is delivered twice.
    pub p_duplicate: f64,
    pub max_delivery_delay_ms: u64,
    /// Chance that dispatching a continuation fails.
    pub p_dispatch_fail: f64,
    pub actions: Vec<(u64, Action)>,
}

fn chance(rng: &mut ChaCha8Rng, p_on: f64, max: f64) -> f64 {
    if rng.random_bool(p_on) {
        rng.random_range(0.0..max)
    } else {
        0.0
    }
}

impl Scenario {
    pub fn draw(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // 10..300 properties, most seeds small (the interleavings matter, not the volume).
        let u: f64 = rng.random();
        let properties = 10 + (290.0 * u.powi(4)) as usize;
        let languages: Vec<String> = ["fr", "es"]
            .iter()
            .take(rng.random_range(0..=2))
            .map(|s| s.to_string())
            .collect();
        let review_count = if rng.random_bool(0.3) { 5 } else { 0 };
        let interval_s = rng.random_range(600..=3600);
        let slots = rng.random_range(1..=3);
        let horizon = interval_s * slots as u64;
        let upstream = UpstreamFaults {
            p_5xx: chance(&mut rng, 0.5, 0.15),
            p_429: chance(&mut rng, 0.4, 0.15),
            retry_after_form: rng.random_range(0..=2),
            retry_after_secs: [0, 1, 5, 30, 3600][rng.random_range(0..5)],
            p_timeout: chance(&mut rng, 0.3, 0.05),
            p_malformed: chance(&mut rng, 0.3, 0.05),
            p_truncated: chance(&mut rng, 0.2, 0.05),
            p_404: chance(&mut rng, 0.2, 0.03),
            p_401: if rng.random_bool(0.03) { 0.02 } else { 0.0 },
            // Drawn last (below), so the scenarios of earlier seeds stay what they were.
            p_bad: 0.0,
            quota_out: rng
                .random_bool(0.1)
                .then(|| (rng.random_range(0..horizon), rng.random_range(60..1800))),
            max_latency_ms: rng.random_range(1..=300),
        };
        let store = StoreFaults {
            p_fail_before: chance(&mut rng, 0.2, 0.01),
            p_fail_after: chance(&mut rng, 0.2, 0.01),
            max_latency_ms: rng.random_range(0..=20),
        };
        let mut actions = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let subset = rng.random_bool(0.4).then(|| {
                (0..rng.random_range(1..=5))
                    .map(|_| rng.random_range(0..properties))
                    .collect()
            });
            actions.push((
                rng.random_range(0..horizon),
                Action::Trigger {
                    subset,
                    dry_run: rng.random_bool(0.2),
                    force: false,
                },
            ));
        }
        for _ in 0..rng.random_range(0..=4) {
            let i = rng.random_range(0..properties);
            let t = rng.random_range(0..horizon);
            actions.push((t, Action::Untrack(i)));
            if rng.random_bool(0.3) {
                actions.push((t + rng.random_range(1..600), Action::Retrack(i)));
            }
        }
        for _ in 0..rng.random_range(0..=6) {
            actions.push((
                rng.random_range(0..horizon),
                Action::Change {
                    fraction: rng.random_range(0.02..0.5),
                    pick: rng.random(),
                },
            ));
        }
        for _ in 0..rng.random_range(0..=2) {
            if rng.random_bool(0.3) {
                actions.push((
                    rng.random_range(0..horizon),
                    Action::Delete(rng.random_range(0..properties)),
                ));
            }
        }
        for _ in 0..rng.random_range(0..=30) {
            actions.push((
                rng.random_range(0..horizon),
                Action::Read(rng.random_range(0..properties)),
            ));
        }
        if rng.random_bool(0.3) {
            actions.push((
                rng.random_range(0..horizon),
                Action::Settings {
                    batch_size: rng.random_range(1..=20),
                    max_concurrent: rng.random_range(1..=8),
                },
            ));
        }
        actions.sort_by_key(|(t, _)| *t);
        let lease_ttl_s = rng.random_range(10..=120);
        let max_run_s = rng.random_range(15..=300);
        let mut scenario = Scenario {
            seed,
            properties,
            languages,
            review_count,
            batch_size: rng.random_range(1..=20),
            max_concurrent: rng.random_range(1..=8),
            retries: rng.random_range(0..=4),
            rate_limit: [2.0, 5.0, 10.0, 25.0, 50.0][rng.random_range(0..5)],
            lease_ttl_s,
            max_run_s,
            margin_s: rng.random_range(2..=(max_run_s / 3).max(3)),
            // Sometimes shorter than SYNC_MAX_RUN_SECONDS: the deadline, not the cap, binds.
            lambda_timeout_s: if rng.random_bool(0.3) {
                rng.random_range(20..=max_run_s.max(21))
            } else {
                900
            },
            scan_page: rng.random_range(3..=50),
            touch_unchanged: rng.random_bool(0.7),
            interval_s,
            slots,
            upstream,
            store,
            p_crash: chance(&mut rng, 0.6, 0.5),
            p_duplicate: chance(&mut rng, 0.6, 0.5),
            max_delivery_delay_ms: rng.random_range(0..=5_000),
            p_dispatch_fail: chance(&mut rng, 0.2, 0.2),
            actions,
            part_bytes: if rng.random_bool(0.6) {
                rng.random_range(16..=400)
            } else {
                cupid_sync::domain::document::PART_BYTES
            },
            schema_policy: Default::default(),
        };
        // Data quality (drawn after everything else: earlier seeds keep their scenarios).
        scenario.upstream.p_bad = chance(&mut rng, 0.5, 0.3);
        for _ in 0..rng.random_range(0..=3) {
            let i = rng.random_range(0..properties);
            let t = rng.random_range(0..horizon);
            scenario.actions.push((
                t,
                if rng.random_bool(0.7) {
                    Action::Accept(i)
                } else {
                    Action::Discard(i)
                },
            ));
        }
        // An upstream bug that changes every property at once (the circuit breaker), and an
        // operator who later forces a run through.
        if rng.random_bool(0.2) {
            scenario.actions.push((
                rng.random_range(0..horizon),
                Action::Change {
                    fraction: 1.0,
                    pick: rng.random(),
                },
            ));
            if rng.random_bool(0.5) {
                scenario.actions.push((
                    rng.random_range(0..horizon),
                    Action::Trigger {
                        subset: None,
                        dry_run: false,
                        force: true,
                    },
                ));
            }
        }
        // Schema drift (drawn after the data-quality draws, for the same reason).
        if rng.random_bool(0.3) {
            scenario.schema_policy = cupid_sync::domain::settings::SchemaPolicy::Freeze;
        }
        for _ in 0..rng.random_range(0..=2) {
            scenario.actions.push((
                rng.random_range(0..horizon),
                Action::Drift {
                    fraction: [0.1, 0.3, 1.0][rng.random_range(0..3)],
                    pick: rng.random(),
                },
            ));
        }
        scenario.actions.sort_by_key(|(t, _)| *t);
        scenario
    }
}
