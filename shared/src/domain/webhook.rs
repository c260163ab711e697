//! Webhooks: who is told about which events, where they may point, how a body is signed, and
//! what one delivery attempt left behind. Sending lives in `crate::webhooks` (the delivery
//! service) behind the `WebhookSender` port; storage behind `Webhooks`.

use crate::domain::time::Timestamp;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The header that carries the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Cupid-Sync-Signature";
/// Most webhooks one deployment keeps (each event is sent to every subscribed one).
pub const MAX_WEBHOOKS: usize = 20;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 200;

/// An event the system publishes, by its public name (`sync.completed`) and its EventBridge
/// detail type (`SyncCompleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    SyncCompleted,
    SyncFailed,
    SyncHalted,
    SyncPaused,
    SchemaChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::SyncCompleted,
        EventKind::SyncFailed,
        EventKind::SyncHalted,
        EventKind::SyncPaused,
        EventKind::SchemaChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SyncCompleted => "sync.completed",
            EventKind::SyncFailed => "sync.failed",
            EventKind::SyncHalted => "sync.halted",
            EventKind::SyncPaused => "sync.paused",
            EventKind::SchemaChanged => "schema.changed",
        }
    }

    /// The EventBridge detail type the engine publishes it under.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::SyncCompleted => "SyncCompleted",
            EventKind::SyncFailed => "SyncFailed",
            EventKind::SyncHalted => "SyncHalted",
            EventKind::SyncPaused => "SyncPaused",
            EventKind::SchemaChanged => "SchemaChanged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn from_detail_type(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.detail_type() == s)
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventKind::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown event {s}")))
    }
}

/// A registered receiver.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<EventKind>,
    pub description: String,
    /// The signing key (`whsec_` + 64 hex digits); shown once, when created.
    pub secret: String,
    pub created_at: Timestamp,
}

/// Everything but the secret (a debug print must not leak it).
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("description", &self.description)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Whether a string is a webhook id as this system makes them (`wh_` + a lowercase ULID).
pub fn is_webhook_id(id: &str) -> bool {
    id.len() == 29
        && id.starts_with("wh_")
        && id[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

impl Webhook {
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }
}

/// Where webhooks may point. Deployed: https to public addresses only. Local (`cargo lambda
/// watch`): http and https to loopback too, so a receiver on the developer's machine works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_loopback: bool,
}

/// Why a URL is refused (the message names the rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(pub String);

/// Whether an address may be sent to. Refused: private, loopback (unless allowed), link-local,
/// unique-local, shared (CGNAT), unspecified, multicast, broadcast and documentation ranges,
/// and IPv4 written inside IPv6.
pub fn address_allowed(ip: IpAddr, policy: TargetPolicy) -> bool {
    if ip.is_loopback() {
        return policy.allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => v4_public(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_public(v4) || (policy.allow_loopback && v4.is_loopback());
            }
            v6_public(v6)
        }
    }
}

fn v4_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0
        // 100.64.0.0/10: shared address space (carrier-grade NAT).
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // 192.0.0.0/24: protocol assignments; 198.18.0.0/15: benchmarking; 240/4: reserved.
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || o[0] >= 240)
}

/// Global unicast (2000::/3) only, less the ranges inside it that lead elsewhere: 6to4
/// (2002::/16, embeds an IPv4 address), IETF protocol assignments (2001::/23: Teredo and
/// others) and documentation (2001:db8::/32). Everything outside 2000::/3 (IPv4-compatible
/// `::a.b.c.d`, IPv4-translated, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, unique-local,
/// link-local, site-local, multicast, discard-only 100::/64) is refused.
fn v6_public(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0] & 0xe000) == 0x2000
        && s[0] != 0x2002
        && !(s[0] == 0x2001 && s[1] < 0x0200)
        && !(s[0] == 0x2001 && s[1] == 0x0db8)
}

/// Checks a webhook URL as registered: scheme, no credentials, a host, and — when the host is
/// an address — that it may be sent to. Names are checked again when sending (their addresses
/// at that moment), so a name that later points inside is refused then.
pub fn check_url(raw: &str, policy: TargetPolicy) -> Result<url::Url, UrlRefused> {
    let refuse = |why: &str| Err(UrlRefused(why.to_string()));
    if raw.len() > MAX_URL_LEN {
        return refuse("url is longer than 2048 characters");
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => return Err(UrlRefused(format!("url is not a valid URL: {e}"))),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("url must not carry credentials");
    }
    let host = match url.host() {
        Some(h) => h,
        None => return refuse("url has no host"),
    };
    let ip = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            } else {
                None
            }
        }
    };
    let loopback = ip.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_loopback && loopback => {}
        "http" if policy.allow_loopback => {
            return refuse("url must be https (http only for a loopback receiver in local mode)");
        }
        "http" => return refuse("url must be https"),
        other => return Err(UrlRefused(format!("url scheme {other} is not https"))),
    }
    if let Some(ip) = ip
        && !address_allowed(ip, policy)
    {
        return Err(UrlRefused(format!(
            "url points at {ip}, a private, loopback or link-local address"
        )));
    }
    Ok(url)
}

/// Parses an event filter; an empty list means every event. Duplicates are dropped.
pub fn parse_events(raw: &[String]) -> Result<Vec<EventKind>, String> {
    if raw.is_empty() {
        return Ok(EventKind::ALL.to_vec());
    }
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let k = EventKind::parse(s).ok_or_else(|| {
            let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "events[{i}]: unknown event `{s}` (known: {})",
                known.join(", ")
            )
        })?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out.sort();
    Ok(out)
}

/// A new signing secret from the operating system's random source.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    Ok(format!("whsec_{}", hex::encode(key)))
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    let mut m =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The signature header's value: HMAC-SHA256 over `"{t}.{body}"` with the webhook's secret.
pub fn sign(secret: &str, t: Timestamp, body: &[u8]) -> String {
    let tag = mac(secret, t.secs(), body).finalize().into_bytes();
    format!("t={},v1={}", t.secs(), hex::encode(tag))
}

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("the header is not t=…,v1=…")]
    Malformed,
    #[error("the timestamp is outside the tolerance (replay?)")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// What a receiver does: parse the header, refuse a timestamp further than `tolerance_secs`
/// from `now`, and compare the HMAC in constant time. Several `v1=` entries may be present
/// (while a secret rotates); one match suffices.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: i64,
) -> Result<(), BadSignature> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.trim().parse::<i64>().ok(),
            // An entry that is not hex matches nothing; the others may still match.
            Some(("v1", v)) => sigs.extend(hex::decode(v.trim()).ok()),
            _ => {}
        }
    }
    let t = t.ok_or(BadSignature::Malformed)?;
    if sigs.is_empty() {
        return Err(BadSignature::Malformed);
    }
    if now.secs().abs_diff(t) > tolerance_secs.max(0) as u64 {
        return Err(BadSignature::Stale);
    }
    if sigs
        .iter()
        .any(|s| mac(secret, t, body).verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(BadSignature::Mismatch)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed; another attempt follows.
    Retrying,
    /// Failed for the last time (attempts used up, or an answer not worth repeating: 4xx).
    GaveUp,
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub webhook_id: String,
    /// When the attempt started (RFC 3339).
    pub at: String,
    /// Milliseconds since the epoch when the attempt started (orders the log).
    #[serde(skip)]
    pub at_ms: i64,
    pub event: String,
    /// The event's id (the same for every attempt and every webhook: receivers dedupe on it).
    pub event_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The receiver's HTTP status; none when it could not be reached or timed out.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    #[schema(value_type = String)]
    pub outcome: DeliveryOutcome,
    pub error: Option<String>,
}

/// Whether an attempt's result is worth repeating: no answer (timeout, refused connection),
/// 5xx, 429 and 408. Other answers are final.
pub fn retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s >= 500 || s == 429 || s == 408,
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
