//! The admin API over HTTP with the API's own request and response types
//! (`cupid_sync::api::wire`): errors print the API's code and message, or name the URL tried.

use backon::{ExponentialBuilder, Retryable};
use cupid_sync::api::wire::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Api {
        status: u16,
        code: String,
        message: String,
    },
    Network {
        url: String,
        message: String,
    },
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => write!(f, "{m}"),
            CliError::Api {
                status,
                code,
                message,
            } => write!(f, "API error {status} {code}: {message}"),
            CliError::Network { url, message } => write!(f, "could not reach {url}: {message}"),
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    pub api: String,
    token: String,
}

/// A failure worth another try: no answer, or a 5xx (not for writes: see `send`).
type Attempt<T> = Result<T, (bool, CliError)>;

impl Client {
    pub fn new(api: &str, token: String) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("cupid-sync-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            api: api.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    async fn once<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Attempt<T> {
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            (
                true,
                CliError::Network {
                    url: url.to_string(),
                    message: e.to_string(),
                },
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let env: Envelope<T> = serde_json::from_str(&text).map_err(|e| {
            (
                status.is_server_error(),
                CliError::Network {
                    url: url.to_string(),
                    message: format!(
                        "HTTP {status}, not the answer expected ({e}): {}",
                        text.chars().take(200).collect::<String>()
                    ),
                },
            )
        })?;
        match (env.success, env.data, env.error) {
            (true, Some(d), _) => Ok(d),
            (_, _, Some(e)) => Err((
                status.is_server_error(),
                CliError::Api {
                    status: status.as_u16(),
                    code: e.code,
                    message: e.message,
                },
            )),
            _ => Err((
                false,
                CliError::Network {
                    url: url.to_string(),
                    message: format!("HTTP {status} without data or error"),
                },
            )),
        }
    }

    /// One call. Reads (and PUTs, which set state absolutely) are retried with backoff on no
    /// answer and 5xx; other writes are sent once.
    pub async fn send<T: DeserializeOwned, B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CliError> {
        let url = self.url(path);
        let method: reqwest::Method = method
            .parse()
            .map_err(|_| CliError::Usage(format!("bad method {method}")))?;
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| CliError::Usage(format!("encode the request: {e}")))?;
        let repeatable = matches!(method, reqwest::Method::GET | reqwest::Method::PUT);
        let call = || self.once::<T>(method.clone(), &url, body.as_ref());
        call.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_times(if repeatable { 3 } else { 0 }),
        )
        .when(|(retry, _)| *retry)
        .await
        .map_err(|(_, e)| e)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send::<T, ()>("GET", path, None).await
    }
}
