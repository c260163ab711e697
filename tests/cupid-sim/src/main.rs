//! `cupid-sim [--port 9100] [--api-key KEY] [--synthetic N] [--synthetic-base ID] [--latency-ms MS]`

use cupid_sim::{Faults, SimConfig, spawn};

fn usage() -> ! {
    eprintln!(
        "usage: cupid-sim [--port 9100] [--api-key KEY] [--synthetic N] [--synthetic-base ID] [--latency-ms MS]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut cfg = SimConfig::default();
    let mut port: u16 = 9100;
    let mut latency = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--port" => port = val().parse().unwrap_or_else(|_| usage()),
            "--api-key" => cfg.api_key = val(),
            "--synthetic" => cfg.synthetic = val().parse().unwrap_or_else(|_| usage()),
            "--synthetic-base" => cfg.synthetic_base = val().parse().unwrap_or_else(|_| usage()),
            "--latency-ms" => latency = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let handle = match spawn(cfg.clone(), port).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cupid-sim: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    handle.sim.set_faults(Faults {
        latency_ms: latency,
        ..Default::default()
    });
    println!(
        "cupid-sim listening on {} ({} exercise ids + {} synthetic from {})",
        handle.url(),
        cupid_sim::exercise_ids().len(),
        cfg.synthetic,
        cfg.synthetic_base
    );
    let _ = tokio::signal::ctrl_c().await;
}
