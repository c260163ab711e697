//! The `sync` function: runs one SyncRequest (schedule, manual trigger or continuation).

/// The engine parses, canonicalises and drops large JSON documents: mimalloc keeps the allocator
/// off the critical path (BENCHMARKS.md, engine ceiling).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    cupid_sync::wiring::run_sync().await
}
