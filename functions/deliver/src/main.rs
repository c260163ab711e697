//! The `deliver` function: the target of the EventBridge rule on the sync's bus; sends each
//! event to the webhooks subscribed to it (see cupid_sync::webhooks).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    cupid_sync::wiring::run_deliver().await
}
