//! Structured JSON logs (tracing) with the level from LOG_LEVEL.

/// Installs the JSON subscriber once. A bad LOG_LEVEL is a startup error naming the variable.
pub fn init() -> Result<(), crate::config::ConfigError> {
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
        crate::config::ConfigError::Invalid {
            var: "LOG_LEVEL",
            reason: format!("`{level}`: {e}"),
        }
    })?;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
    Ok(())
}
