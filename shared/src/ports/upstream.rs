//! The upstream content API, one attempt per call (the engine owns retries, rate limit and
//! concurrency).

use crate::domain::facet::Facet;
use async_trait::async_trait;
use std::time::Duration;

/// When upstream asked us to come back (`Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`
    Delay(Duration),
    /// `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`, as milliseconds since the epoch.
    At(u64),
}

impl RetryAfter {
    /// The wait from `now_ms` (zero for a date in the past).
    pub fn wait_from(self, now_ms: u64) -> Duration {
        match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(at) => Duration::from_millis(at.saturating_sub(now_ms)),
        }
    }
}

/// Why one upstream call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    #[error("not found upstream (404)")]
    NotFound,
    #[error("upstream refused the API key ({0}); check CUPID_API_KEY")]
    Unauthorized(u16),
    #[error("rate limited (429)")]
    RateLimited { retry_after: Option<RetryAfter> },
    #[error("upstream server error ({0})")]
    Server(u16),
    #[error("upstream rejected the request ({0})")]
    Client(u16),
    #[error("upstream timed out after {0:?}")]
    Timeout(Duration),
    #[error("could not reach upstream: {0}")]
    Transport(String),
    #[error("malformed upstream body: {0}")]
    Malformed(String),
}

impl FetchError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchError::RateLimited { .. }
                | FetchError::Server(_)
                | FetchError::Timeout(_)
                | FetchError::Transport(_)
        )
    }
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            FetchError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[async_trait]
pub trait Upstream: Send + Sync {
    /// One attempt at one facet of one hotel (`GET /v3.0/property/{id}`, `.../lang/{lang}`,
    /// `/v3.0/property/reviews/{id}/{count}`): the parsed JSON body.
    async fn fetch(&self, hotel_id: i64, facet: &Facet) -> Result<serde_json::Value, FetchError>;

    /// The same attempt's body as it arrived, unparsed: the engine digests it first and parses
    /// only bytes it has not stored before. By default, `fetch` serialised.
    async fn fetch_raw(&self, hotel_id: i64, facet: &Facet) -> Result<Vec<u8>, FetchError> {
        let v = self.fetch(hotel_id, facet).await?;
        serde_json::to_vec(&v).map_err(|e| FetchError::Malformed(e.to_string()))
    }
}
