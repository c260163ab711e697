//! The `sync` function: runs one SyncRequest (schedule, manual trigger or continuation).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    cupid_sync::wiring::run_sync().await
}
