//! The Cupid content API over HTTPS (reqwest + rustls). One attempt per call; the engine owns
//! retries, rate limiting and concurrency.

use crate::config::Secret;
use crate::domain::facet::Facet;
use crate::ports::{FetchError, RetryAfter, Upstream};
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

    async fn get_body(&self, path: &str) -> Result<Vec<u8>, FetchError> {
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
                    .and_then(parse_retry_after);
                return Err(FetchError::RateLimited { retry_after });
            }
            500..=599 => return Err(FetchError::Server(status)),
            _ => return Err(FetchError::Client(status)),
        }
        let body = resp.bytes().await.map_err(|e| self.transport(e))?;
        Ok(body.to_vec())
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

/// `Retry-After` in either form (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
pub fn parse_retry_after(v: &str) -> Option<RetryAfter> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(RetryAfter::Delay(Duration::from_secs(secs)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(RetryAfter::At(ms as u64))
}

#[async_trait]
impl Upstream for CupidHttp {
    async fn fetch(&self, hotel_id: i64, facet: &Facet) -> Result<serde_json::Value, FetchError> {
        let body = self.get_body(&facet.path(hotel_id)).await?;
        crate::domain::document::parse_body(&body).map_err(FetchError::Malformed)
    }

    async fn fetch_raw(&self, hotel_id: i64, facet: &Facet) -> Result<Vec<u8>, FetchError> {
        self.get_body(&facet.path(hotel_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after(" 120 "),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RetryAfter::At(784_111_777_000))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
