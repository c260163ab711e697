//! The `trigger` function: serves its routes of the route table (see cupid_sync::api::routes).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    cupid_sync::wiring::run_trigger().await
}
