//! The delivery service: one event from the bus → every webhook subscribed to it, signed,
//! retried with backoff on no answer / 5xx / 429, each attempt written to the webhook's
//! delivery log. Runs in the `deliver` function (EventBridge rule target; locally, the local
//! publisher hands it every event).

use crate::domain::webhook::{
    Delivery, DeliveryOutcome, EventKind, SIGNATURE_HEADER, Webhook, retryable, sign,
};
use crate::ports::{Clock, PortResult, SendResult, WebhookSender, Webhooks};
use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// An event as EventBridge hands it to a target (`detail-type`, `detail`, `id`, `time`).
#[derive(Debug, Clone, Deserialize)]
pub struct BusEvent {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// How hard a delivery tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long one attempt waits for an answer.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts over ~15 s of waits, 10 s each at most: well inside the function's timeout.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What one event's delivery came to.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub event: String,
    pub event_id: String,
    pub webhooks: usize,
    pub delivered: usize,
    pub gave_up: usize,
}

pub struct Deliverer {
    pub hooks: Arc<dyn Webhooks>,
    pub sender: Arc<dyn WebhookSender>,
    pub clock: Arc<dyn Clock>,
    pub policy: RetryPolicy,
}

/// The body receivers get: the event, named as they subscribe to it.
pub fn body(kind: EventKind, ev: &BusEvent) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": ev.id,
        "type": kind.as_str(),
        "time": ev.time,
        "data": ev.detail,
    }))
    .unwrap_or_default()
}

impl Deliverer {
    /// Sends the event to every webhook that wants it, concurrently. An error means the
    /// webhooks could not be read (the invocation fails, and Lambda's retry runs it again).
    pub async fn deliver(&self, ev: &BusEvent) -> PortResult<Summary> {
        let Some(kind) = EventKind::from_detail_type(&ev.detail_type) else {
            info!(detail_type = %ev.detail_type, "not an event webhooks carry; skipped");
            return Ok(Summary {
                event: ev.detail_type.clone(),
                event_id: ev.id.clone(),
                ..Summary::default()
            });
        };
        let hooks: Vec<Webhook> = self
            .hooks
            .list()
            .await?
            .into_iter()
            .filter(|h| h.wants(kind))
            .collect();
        let body = body(kind, ev);
        let outcomes =
            futures::future::join_all(hooks.iter().map(|h| self.deliver_one(h, kind, ev, &body)))
                .await;
        let summary = Summary {
            event: kind.as_str().into(),
            event_id: ev.id.clone(),
            webhooks: hooks.len(),
            delivered: outcomes
                .iter()
                .filter(|o| **o == DeliveryOutcome::Delivered)
                .count(),
            gave_up: outcomes
                .iter()
                .filter(|o| **o == DeliveryOutcome::GaveUp)
                .count(),
        };
        info!(event = %summary.event, event_id = %ev.id, webhooks = summary.webhooks,
            delivered = summary.delivered, gave_up = summary.gave_up, "event delivered to webhooks");
        Ok(summary)
    }

    async fn deliver_one(
        &self,
        hook: &Webhook,
        kind: EventKind,
        ev: &BusEvent,
        body: &[u8],
    ) -> DeliveryOutcome {
        let mut waits = ExponentialBuilder::default()
            .with_min_delay(self.policy.first_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.attempts.saturating_sub(1) as usize)
            .build();
        let mut attempt = 1u32;
        loop {
            let at_ms = self.clock.now_ms() as i64;
            let now = self.clock.now();
            let headers = vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                (
                    "User-Agent".to_string(),
                    "cupid-sync-webhooks/1".to_string(),
                ),
                (SIGNATURE_HEADER.to_string(), sign(&hook.secret, now, body)),
                ("Cupid-Sync-Event".to_string(), kind.as_str().to_string()),
                ("Cupid-Sync-Event-Id".to_string(), ev.id.clone()),
                ("Cupid-Sync-Attempt".to_string(), attempt.to_string()),
            ];
            let started = Instant::now();
            let answer = self
                .sender
                .post(&hook.url, &headers, body, self.policy.timeout)
                .await;
            let latency_ms = started.elapsed().as_millis() as u64;
            let mut final_answer = false;
            let (status, error) = match answer {
                SendResult::Answered(s) if (200..300).contains(&s) => (Some(s), None),
                SendResult::Answered(s) => (Some(s), Some(format!("the receiver answered {s}"))),
                SendResult::NoAnswer(why) => (None, Some(why)),
                SendResult::Refused(why) => {
                    final_answer = true;
                    (None, Some(format!("refused: {why}")))
                }
            };
            let delivered = error.is_none();
            let wait = if delivered || final_answer || !retryable(status) {
                None
            } else {
                waits.next()
            };
            let outcome = match (delivered, wait) {
                (true, _) => DeliveryOutcome::Delivered,
                (false, Some(_)) => DeliveryOutcome::Retrying,
                (false, None) => DeliveryOutcome::GaveUp,
            };
            let d = Delivery {
                webhook_id: hook.id.clone(),
                at: crate::domain::time::Timestamp(at_ms / 1000).rfc3339(),
                at_ms,
                event: kind.as_str().into(),
                event_id: ev.id.clone(),
                attempt,
                status_code: status,
                latency_ms,
                outcome,
                error: error.clone(),
            };
            if let Err(e) = self.hooks.record(&d).await {
                warn!(webhook_id = %hook.id, error = %e, "could not record a delivery attempt");
            }
            match outcome {
                DeliveryOutcome::Delivered => {
                    info!(webhook_id = %hook.id, event = kind.as_str(), attempt, status = ?status, latency_ms, "webhook delivered");
                }
                DeliveryOutcome::Retrying => {
                    warn!(webhook_id = %hook.id, event = kind.as_str(), attempt, status = ?status, error = ?error, "webhook attempt failed; retrying");
                }
                DeliveryOutcome::GaveUp => {
                    warn!(webhook_id = %hook.id, event = kind.as_str(), attempt, status = ?status, error = ?error, "webhook delivery given up");
                }
            }
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => return outcome,
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryWebhooks;
    use crate::domain::time::Timestamp;
    use crate::domain::webhook::verify;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// One request as the receiver got it: url, headers, body.
    type Got = (String, Vec<(String, String)>, Vec<u8>);

    /// A receiver that answers from a script (then 200) and keeps what it got.
    #[derive(Default)]
    struct Receiver {
        script: Mutex<Vec<SendResult>>,
        got: Mutex<Vec<Got>>,
    }

    #[async_trait]
    impl WebhookSender for Receiver {
        async fn post(
            &self,
            url: &str,
            headers: &[(String, String)],
            body: &[u8],
            _: Duration,
        ) -> SendResult {
            self.got
                .lock()
                .unwrap()
                .push((url.into(), headers.to_vec(), body.to_vec()));
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                SendResult::Answered(200)
            } else {
                s.remove(0)
            }
        }
    }

    struct Fixed;
    impl Clock for Fixed {
        fn now_ms(&self) -> u64 {
            1_700_000_000_000
        }
    }

    fn hook(id: &str, events: &[EventKind]) -> Webhook {
        Webhook {
            id: id.into(),
            url: format!("https://hooks.example.com/{id}"),
            events: events.to_vec(),
            description: String::new(),
            secret: format!("whsec_{id}"),
            created_at: Timestamp(1),
        }
    }

    fn event(detail_type: &str) -> BusEvent {
        BusEvent {
            id: "ev-1".into(),
            detail_type: detail_type.into(),
            time: Some("2026-11-30T12:00:00Z".into()),
            detail: serde_json::json!({"sync_id": "s1", "status": "completed"}),
        }
    }

    async fn setup(script: Vec<SendResult>) -> (Deliverer, Arc<MemoryWebhooks>, Arc<Receiver>) {
        let store = Arc::new(MemoryWebhooks::default());
        let rx = Arc::new(Receiver {
            script: Mutex::new(script),
            ..Default::default()
        });
        let d = Deliverer {
            hooks: store.clone(),
            sender: rx.clone(),
            clock: Arc::new(Fixed),
            policy: RetryPolicy::default(),
        };
        (d, store, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscribed_webhook_gets_a_signed_body_and_others_are_filtered_out() {
        let (d, store, rx) = setup(vec![]).await;
        store
            .create(&hook("a", &[EventKind::SyncCompleted]))
            .await
            .unwrap();
        store
            .create(&hook("b", &[EventKind::SyncFailed]))
            .await
            .unwrap();
        let s = d.deliver(&event("SyncCompleted")).await.unwrap();
        assert_eq!((s.webhooks, s.delivered, s.gave_up), (1, 1, 0));
        let got = rx.got.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (url, headers, body) = &got[0];
        assert_eq!(url, "https://hooks.example.com/a");
        let sig = &headers
            .iter()
            .find(|(k, _)| k == SIGNATURE_HEADER)
            .unwrap()
            .1;
        assert_eq!(
            verify("whsec_a", sig, body, Timestamp(1_700_000_000), 300),
            Ok(())
        );
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "sync.completed");
        assert_eq!(v["id"], "ev-1");
        assert_eq!(v["data"]["sync_id"], "s1");
        let log = store.deliveries("a", 10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].outcome, DeliveryOutcome::Delivered);
        assert_eq!(log[0].status_code, Some(200));
        assert!(store.deliveries("b", 10).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_receiver_is_retried_with_backoff_then_given_up_and_recorded() {
        let fails = (0..10).map(|_| SendResult::Answered(500)).collect();
        let (d, store, rx) = setup(fails).await;
        store
            .create(&hook("a", &[EventKind::SyncFailed]))
            .await
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let s = d.deliver(&event("SyncFailed")).await.unwrap();
        assert_eq!((s.delivered, s.gave_up), (0, 1));
        assert_eq!(rx.got.lock().unwrap().len(), 5);
        // 1 + 2 + 4 + 8 s of waits between the five attempts.
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
        let log = store.deliveries("a", 10).await.unwrap();
        let attempts: Vec<_> = log.iter().map(|d| (d.attempt, d.outcome)).collect();
        assert_eq!(
            attempts,
            vec![
                (5, DeliveryOutcome::GaveUp),
                (4, DeliveryOutcome::Retrying),
                (3, DeliveryOutcome::Retrying),
                (2, DeliveryOutcome::Retrying),
                (1, DeliveryOutcome::Retrying),
            ]
        );
        assert!(log.iter().all(|d| d.status_code == Some(500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_then_success_is_delivered_on_the_second_attempt() {
        let (d, store, _) = setup(vec![SendResult::NoAnswer("timed out".into())]).await;
        store.create(&hook("a", &EventKind::ALL)).await.unwrap();
        let s = d.deliver(&event("SyncHalted")).await.unwrap();
        assert_eq!(s.delivered, 1);
        let log = store.deliveries("a", 10).await.unwrap();
        assert_eq!(log[1].error.as_deref(), Some("timed out"));
        assert_eq!(log[1].status_code, None);
        assert_eq!(log[0].attempt, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_the_policy_refuses_is_not_retried() {
        let (d, store, rx) = setup(vec![SendResult::Refused("private address".into())]).await;
        store.create(&hook("a", &EventKind::ALL)).await.unwrap();
        let s = d.deliver(&event("SyncCompleted")).await.unwrap();
        assert_eq!(s.gave_up, 1);
        assert_eq!(rx.got.lock().unwrap().len(), 1);
        let log = store.deliveries("a", 10).await.unwrap();
        assert_eq!(log[0].error.as_deref(), Some("refused: private address"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_4xx_answer_is_final() {
        let (d, store, rx) = setup(vec![SendResult::Answered(410)]).await;
        store.create(&hook("a", &EventKind::ALL)).await.unwrap();
        let s = d.deliver(&event("SyncCompleted")).await.unwrap();
        assert_eq!(s.gave_up, 1);
        assert_eq!(rx.got.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn events_webhooks_do_not_carry_are_skipped() {
        let (d, store, rx) = setup(vec![]).await;
        store.create(&hook("a", &EventKind::ALL)).await.unwrap();
        let s = d.deliver(&event("SomethingElse")).await.unwrap();
        assert_eq!(s.webhooks, 0);
        assert!(rx.got.lock().unwrap().is_empty());
    }
}
