//! `make sim SEEDS=100000` (a long soak) or `SIM_SEED=42 make sim` (replay one seed, verbose).

fn main() {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    if let Some(seed) = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        println!("{:#?}", sim::Scenario::draw(seed));
        match sim::run_seed(seed) {
            Ok(r) => println!("seed {seed} passed: {r:?}"),
            Err(f) => {
                eprintln!("{f}");
                std::process::exit(1);
            }
        }
        return;
    }
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let from: u64 = std::env::var("SIM_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let t = std::time::Instant::now();
    match sim::run_seeds(from..from + seeds, threads) {
        Ok(r) => println!(
            "{seeds} seeds passed in {:.1} s: {} invocations ({} killed), {} upstream requests, {} runs, {} h of virtual time; {} properties quarantined, {} held payloads stored on acceptance, {} runs halted by the circuit breaker, {} schema drift reports, {} documents of a frozen schema stored on acceptance",
            t.elapsed().as_secs_f64(),
            r.invocations,
            r.crashes,
            r.requests,
            r.runs,
            r.virtual_secs / 3600,
            r.quarantined,
            r.accepted,
            r.halted,
            r.drift_reports,
            r.accepted_shapes
        ),
        Err(f) => {
            eprintln!("{f}");
            std::process::exit(1);
        }
    }
}
