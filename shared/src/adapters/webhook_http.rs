//! Sends webhook bodies over HTTPS (reqwest + rustls). The address policy holds at send time,
//! not only when the URL was registered: names are resolved by a resolver that drops every
//! address the policy refuses (so a name re-pointed at 169.254.169.254 or 10.0.0.1 after it was
//! registered reaches nothing), literal addresses are checked again, and redirects are not
//! followed.

use crate::domain::webhook::{TargetPolicy, address_allowed, check_url};
use crate::ports::{SendResult, WebhookSender};
use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::sync::Arc;
use std::time::Duration;

/// Marks a resolver refusal in the error chain (so it is final, not retried).
const REFUSED_NAME: &str = "refused by the address policy";

/// Resolves with the system resolver, keeping only allowed addresses.
struct PolicyResolver(TargetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<_> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<_> = all
                .iter()
                .copied()
                .filter(|a| address_allowed(a.ip(), policy))
                .collect();
            if allowed.is_empty() {
                // The addresses are not named: the delivery log is readable by every admin, and
                // must not become a way to map internal DNS.
                let msg = format!(
                    "{REFUSED_NAME}: {host} resolves only to private, loopback or link-local addresses"
                );
                return Err(msg.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub struct HttpWebhookSender {
    client: reqwest::Client,
    policy: TargetPolicy,
}

impl HttpWebhookSender {
    pub fn new(policy: TargetPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve the target itself, past the policy.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver(policy)))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("cupid-sync-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpWebhookSender { client, policy })
    }
}

/// The innermost cause, which says what actually happened (refused, timed out, DNS).
fn cause(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    if e.is_timeout() {
        format!("timed out ({msg})")
    } else {
        msg
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> SendResult {
        if let Err(e) = check_url(url, self.policy) {
            return SendResult::Refused(e.to_string());
        }
        let mut req = self.client.post(url).timeout(timeout).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) => SendResult::Answered(resp.status().as_u16()),
            Err(e) => {
                let why = cause(&e);
                if why.contains(REFUSED_NAME) {
                    SendResult::Refused(why)
                } else {
                    SendResult::NoAnswer(why)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A name that resolves only to loopback (here `localhost`, which `check_url` also refuses
    /// by name; any name re-pointed at a private address meets the same resolver) reaches
    /// nothing, and the error does not say which addresses it found.
    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let deployed = PolicyResolver(TargetPolicy {
            allow_loopback: false,
        });
        let err = deployed
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(msg.contains(REFUSED_NAME), "{msg}");
        assert!(!msg.contains("127.0.0.1"), "{msg}");
        let local = PolicyResolver(TargetPolicy {
            allow_loopback: true,
        });
        let addrs: Vec<_> = local
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .expect("allowed locally")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
