//! Deterministic simulation of the sync engine (see ARCHITECTURE.md, "Proof by simulation").
//!
//! One seed drives everything: the scenario (sizes, settings, faults, operator actions), the
//! simulated upstream, the store's faults, duplicate and delayed deliveries, and crashes (an
//! invocation's future dropped at its K-th call). It all runs on one current-thread tokio
//! runtime with a paused clock, so hours of virtual time take milliseconds and a seed replays
//! exactly. After quiescence and one clean run, `check::invariants` must find nothing.

mod actions;
pub mod check;
pub mod ports;
pub mod scenario;
pub mod upstream;
pub mod world;

pub use scenario::Scenario;

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub invocations: usize,
    pub crashes: usize,
    pub requests: usize,
    pub runs: usize,
    pub virtual_secs: u64,
    /// Properties quarantined (summed over runs) and held payloads stored by acceptance.
    pub quarantined: u64,
    pub accepted: usize,
    /// Runs halted by the circuit breaker.
    pub halted: usize,
    /// Schema drift reports (`SchemaChanged`, dry runs aside), and documents a frozen schema
    /// held that an operator's acceptance stored.
    pub drift_reports: usize,
    pub accepted_shapes: usize,
}

/// A failed seed: everything needed to replay and understand it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub violations: Vec<String>,
    pub scenario: String,
    pub invocations: Vec<String>,
    /// The lease's history and the runs' final states, for reading a failure.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed (replay: SIM_SEED={} make sim)",
            self.seed, self.seed
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  - {v}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "  ... and {} more", self.violations.len() - 20)?;
        }
        writeln!(f, "scenario: {}", self.scenario)?;
        writeln!(f, "invocations:")?;
        for i in self.invocations.iter().take(60) {
            writeln!(f, "  {i}")?;
        }
        writeln!(f, "trace:")?;
        for t in self.trace.iter().take(120) {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// Runs one seed to its end and checks every invariant.
pub fn run_seed(seed: u64) -> Result<Report, Failure> {
    let scenario = Scenario::draw(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let (result, violations, report, invocations, trace) = rt.block_on(async {
        let world = world::World::new(scenario.clone());
        let started = tokio::time::Instant::now();
        let result = world.run().await;
        let violations = match &result {
            Ok(()) => check::invariants(&world).await,
            Err(e) => vec![e.clone()],
        };
        let inv = world.invocations.lock().unwrap().clone();
        let report = Report {
            invocations: inv.len(),
            crashes: inv.iter().filter(|i| i.crashed).count(),
            requests: world.upstream.sent.lock().unwrap().len(),
            runs: world.store.runs().len(),
            virtual_secs: started.elapsed().as_secs(),
            quarantined: world
                .store
                .runs()
                .iter()
                .map(|r| r.counters.quarantined)
                .sum(),
            halted: world
                .store
                .runs()
                .iter()
                .filter(|r| r.status == cupid_sync::domain::run::RunStatus::Halted)
                .count(),
            accepted: world
                .accepted_stores
                .load(std::sync::atomic::Ordering::SeqCst) as usize,
            drift_reports: world
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.detail_type == "SchemaChanged" && e.detail["dry_run"] != true)
                .count(),
            accepted_shapes: world
                .accepted_shapes
                .load(std::sync::atomic::Ordering::SeqCst) as usize,
        };
        let lines = inv
            .iter()
            .map(|i| {
                format!(
                    "#{} attempt {} {:?} -> {}",
                    i.id, i.attempt, i.request, i.outcome
                )
            })
            .collect::<Vec<_>>();
        let mut trace: Vec<String> = world
            .store
            .writes()
            .iter()
            .filter(|w| {
                w.table == cupid_sync::adapters::memory::Table::Lease
                    || (w.table == cupid_sync::adapters::memory::Table::Runs && w.what == "create")
            })
            .filter(|w| w.what != "heartbeat")
            .map(|w| {
                format!(
                    "{:>9} ms {:?} {} fence {:?} {}",
                    w.at_ms - 1_767_225_600_000,
                    w.table,
                    w.what,
                    w.fence,
                    w.key
                )
            })
            .collect();
        for r in world.store.runs() {
            trace.push(format!(
                "run {} {} ({:?})",
                r.sync_id, r.status, r.error_message
            ));
        }
        (result, violations, report, lines, trace)
    });
    drop(result);
    if violations.is_empty() {
        Ok(report)
    } else {
        Err(Failure {
            seed,
            violations,
            scenario: format!("{scenario:?}"),
            invocations,
            trace,
        })
    }
}

/// Runs `seeds` on `threads` OS threads (each seed on its own runtime). Returns the first
/// failure (lowest seed) or the totals.
pub fn run_seeds(seeds: std::ops::Range<u64>, threads: usize) -> Result<Report, Failure> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let results: std::sync::Mutex<(Report, Option<Failure>)> = Default::default();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= seeds.end {
                        break;
                    }
                    let r = run_seed(seed);
                    let mut g = results.lock().unwrap();
                    match r {
                        Ok(rep) => {
                            g.0.invocations += rep.invocations;
                            g.0.crashes += rep.crashes;
                            g.0.requests += rep.requests;
                            g.0.runs += rep.runs;
                            g.0.virtual_secs += rep.virtual_secs;
                            g.0.quarantined += rep.quarantined;
                            g.0.accepted += rep.accepted;
                            g.0.halted += rep.halted;
                            g.0.drift_reports += rep.drift_reports;
                            g.0.accepted_shapes += rep.accepted_shapes;
                        }
                        Err(f) => {
                            if g.1.as_ref().is_none_or(|old| f.seed < old.seed) {
                                g.1 = Some(f);
                            }
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    let (report, failure) = results.into_inner().unwrap();
    match failure {
        Some(f) => Err(f),
        None => Ok(report),
    }
}
