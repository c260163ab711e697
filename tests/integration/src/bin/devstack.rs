//! Local stack helper: `devstack bootstrap <ids-file>` creates the tables (from the shared
//! definition), the event bus and the schedule on the local AWS endpoint and tracks the ids.
//! `devstack router` prints the watch router table the route table implies.

use cupid_sync::adapters::dynamo::{DynamoProperties, ensure_tables};
use cupid_sync::config::Config;
use cupid_sync::domain::time::Timestamp;
use cupid_sync::ports::{Clock, Schedule, SystemClock, Tracking};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bootstrap") => bootstrap(args.get(1).map(String::as_str)).await,
        Some("router") => {
            print!("{}", cupid_sync::api::routes::watch_router_toml());
            Ok(())
        }
        _ => Err("usage: devstack bootstrap <ids-file> | devstack router".to_string()),
    };
    if let Err(e) = result {
        eprintln!("devstack: {e}");
        std::process::exit(1);
    }
}

async fn bootstrap(ids_file: Option<&str>) -> Result<(), String> {
    let cfg = Config::from_env().map_err(|e| e.to_string())?;
    let conf = cupid_sync::adapters::aws::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    ensure_tables(&ddb, &cfg.tables)
        .await
        .map_err(|e| e.to_string())?;
    let eb = aws_sdk_eventbridge::Client::new(&conf);
    if eb
        .describe_event_bus()
        .name(&cfg.event_bus)
        .send()
        .await
        .is_err()
    {
        eb.create_event_bus()
            .name(&cfg.event_bus)
            .send()
            .await
            .map_err(|e| format!("CreateEventBus: {e}"))?;
    }
    let sched =
        cupid_sync::adapters::aws::Scheduler::new(&conf, &cfg).map_err(|e| e.to_string())?;
    if sched.get().await.map_err(|e| e.to_string())?.is_none() {
        let now: Timestamp = SystemClock.now();
        sched
            .put(cfg.settings.enable_auto, cfg.settings.interval, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    if let Some(path) = ids_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let ids: Vec<i64> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| format!("{path}: `{s}` is not a hotel id"))
            })
            .collect::<Result<_, _>>()?;
        let props = DynamoProperties::new(ddb, &cfg.tables);
        let added = props.track(&ids).await.map_err(|e| e.to_string())?.new;
        println!(
            "devstack: tables ready; {} ids tracked ({added} new)",
            ids.len()
        );
    } else {
        println!("devstack: tables ready");
    }
    Ok(())
}
