//! The two stores of the contract suites (`tests/store_contract.rs`,
//! `tests/quarantine_contract.rs`): the in-memory one the simulation trusts and DynamoDB
//! (moto), behind the same ports.

use cupid_sync::adapters::dynamo::{
    DynamoLease, DynamoProperties, DynamoRunLog, DynamoSchema, DynamoSettings, DynamoStats,
    DynamoWebhooks,
};
use cupid_sync::adapters::memory::{MemoryStore, MemoryWebhooks};
use cupid_sync::ports::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Runs `case` (an `async fn(Kit)`) against both stores, as one test.
#[macro_export]
macro_rules! contract {
    ($name:ident, $case:ident) => {
        #[tokio::test]
        async fn $name() {
            $case($crate::kit::memory()).await;
            $case($crate::kit::dynamo().await).await;
        }
    };
}

/// A clock the test moves by hand (both stores read lease time from it).
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        1_800_000_000_000 + self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

pub struct Kit {
    pub name: &'static str,
    pub reader: Arc<dyn PropertyReader>,
    pub writer: Arc<dyn PropertyWriter>,
    pub tracking: Arc<dyn Tracking>,
    pub runs: Arc<dyn RunLog>,
    pub stats: Arc<dyn Stats>,
    pub lease: Arc<dyn Lease>,
    pub settings: Arc<dyn SettingsStore>,
    pub quarantine: Arc<dyn QuarantineDesk>,
    pub schemas: Arc<dyn SchemaStore>,
    pub webhooks: Arc<dyn Webhooks>,
    pub clock: Arc<ManualClock>,
}

pub fn memory() -> Kit {
    let clock = Arc::new(ManualClock::default());
    let m = Arc::new(MemoryStore::new(clock.clone()));
    Kit {
        name: "memory",
        reader: m.clone(),
        writer: m.clone(),
        tracking: m.clone(),
        runs: m.clone(),
        stats: m.clone(),
        lease: m.clone(),
        quarantine: m.clone(),
        schemas: m.clone(),
        webhooks: Arc::new(MemoryWebhooks::default()),
        settings: m,
        clock,
    }
}

pub async fn dynamo() -> Kit {
    let client = crate::ddb().await;
    let tables = crate::fresh_tables(&client).await;
    let clock = Arc::new(ManualClock::default());
    let props = Arc::new(DynamoProperties::new(client.clone(), &tables));
    Kit {
        name: "dynamodb",
        reader: props.clone(),
        writer: props.clone(),
        quarantine: props.clone(),
        tracking: props,
        runs: Arc::new(DynamoRunLog::new(client.clone(), &tables)),
        stats: Arc::new(DynamoStats::new(client.clone(), &tables)),
        schemas: Arc::new(DynamoSchema::new(client.clone(), &tables)),
        lease: Arc::new(DynamoLease::new(client.clone(), &tables, clock.clone())),
        webhooks: Arc::new(DynamoWebhooks::new(client.clone(), &tables)),
        settings: Arc::new(DynamoSettings::new(client, &tables)),
        clock,
    }
}
