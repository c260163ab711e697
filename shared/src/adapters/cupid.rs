//! The Cupid content API over HTTPS (reqwest + rustls). One attempt per call; the engine owns
//! retries, rate limiting and concurrency.

use crate::config::Secret;
use crate::domain::facet::Facet;
use crate::ports::{FetchError, Upstream};
use async_trait::async_trait;
use std::time::Duration;

pub struct CupidHttp {
    client: reqwest::Client,
    base: String,
    key: Secret,
    timeout: Duration,
}

impl CupidHttp {
    pub fn new(base_url: &str, key: Secret, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("cupid-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(CupidHttp {
            client,
            base: base_url.trim_end_matches('/').to_string(),
            key,
            timeout,
        })
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value, FetchError> {
        let url = format!("{}{}", self.base, path);
        let resp = self
            .client
            .get(&url)
            .header("x-api-key", self.key.expose())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            404 => return Err(FetchError::NotFound),
            401 | 403 => return Err(FetchError::Unauthorized(status)),
            429 => {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(FetchError::RateLimited { retry_after });
            }
            500..=599 => return Err(FetchError::Server(status)),
            _ => return Err(FetchError::Client(status)),
        }
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| FetchError::Malformed(format!("{e} ({} bytes)", body.len())))
    }

    fn transport(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.timeout)
        } else if e.is_body() || e.is_decode() {
            FetchError::Malformed(format!("body cut off: {}", e.without_url()))
        } else {
            FetchError::Transport(e.without_url().to_string())
        }
    }
}

#[async_trait]
impl Upstream for CupidHttp {
    async fn fetch(&self, hotel_id: i64, facet: &Facet) -> Result<serde_json::Value, FetchError> {
        self.get_json(&facet.path(hotel_id)).await
    }
}
