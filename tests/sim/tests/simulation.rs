//! The deterministic simulation in the test suite: `SIM_SEEDS` seeds (default 10,000) must all
//! pass; a failure prints its seed, the scenario and the invocations, and `SIM_SEED=<seed>`
//! replays exactly that seed.

#[test]
fn every_seed_keeps_every_invariant() {
    if let Some(seed) = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        if let Err(f) = sim::run_seed(seed) {
            panic!("{f}");
        }
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let t = std::time::Instant::now();
    match sim::run_seeds(0..seeds, threads) {
        Ok(r) => println!(
            "simulation: {seeds} seeds passed in {:.1} s ({} invocations, {} killed, {} requests, {} runs)",
            t.elapsed().as_secs_f64(),
            r.invocations,
            r.crashes,
            r.requests,
            r.runs
        ),
        Err(f) => panic!("{f}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 1234] {
        let a = sim::run_seed(seed)
            .map(|r| format!("{r:?}"))
            .unwrap_or_else(|f| f.to_string());
        let b = sim::run_seed(seed)
            .map(|r| format!("{r:?}"))
            .unwrap_or_else(|f| f.to_string());
        assert_eq!(a, b, "seed {seed} is deterministic");
    }
}
