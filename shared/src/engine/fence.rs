//! The invocation's hold on the lease: its fencing token, a heartbeat on a timer (independent
//! of batch progress), and the local deadline after which it must assume the lease is gone.
//!
//! Two layers keep a stale invocation out:
//! - structural: every write carries the token, and the store refuses it once a newer token
//!   has written the same item (see `ports::PropertyWriter`, `RunLog::save`);
//! - temporal: the guard stops the invocation (no upstream request, no write) once its lease
//!   *could* have expired by its own clock — `safety` before the stored expiry — so a takeover
//!   never overlaps a live worker while store calls finish within that margin.

use crate::domain::lease::LeaseRequest;
use crate::ports::Lease;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

pub(crate) struct FenceGuard {
    pub owner: String,
    pub fence: u64,
    ttl: Duration,
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
    lost_tx: watch::Sender<bool>,
}

impl FenceGuard {
    /// `acquired_at`: when the acquisition was sent (the stored expiry is at least `ttl` later).
    pub fn new(owner: String, fence: u64, ttl: Duration, acquired_at: Instant) -> Self {
        let (lost_tx, _) = watch::channel(false);
        let g = FenceGuard {
            owner,
            fence,
            ttl,
            valid_until: Mutex::new(acquired_at),
            lost: AtomicBool::new(false),
            lost_tx,
        };
        g.extend(acquired_at);
        g
    }

    /// How long before the stored expiry the guard stops trusting the lease.
    pub fn safety(ttl: Duration) -> Duration {
        (ttl / 4).max(Duration::from_millis(1))
    }

    fn interval(&self) -> Duration {
        (self.ttl / 6).max(Duration::from_millis(1))
    }

    fn valid_until(&self) -> Instant {
        *self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn extend(&self, sent: Instant) {
        let until = sent + self.ttl.saturating_sub(Self::safety(self.ttl));
        let mut v = self.valid_until.lock().unwrap_or_else(|p| p.into_inner());
        if until > *v {
            *v = until;
        }
    }

    /// Whether the invocation may still send a request or a write.
    pub fn ok(&self) -> bool {
        !self.lost.load(Ordering::SeqCst) && Instant::now() < self.valid_until()
    }

    /// The lease is gone (a write was fenced out, the heartbeat was refused, or time ran out).
    pub fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            warn!(owner = %self.owner, fence = self.fence, "lease lost: {why}; stopping");
            let _ = self.lost_tx.send(true);
        }
    }

    /// Heartbeats every `ttl/6` until the lease is lost; returns when it is. Runs beside the
    /// work (the caller selects on both), so a slow batch never outlives its lease.
    pub async fn keep_alive(self: &Arc<Self>, lease: Arc<dyn Lease>) {
        let expiry = async {
            loop {
                let until = self.valid_until();
                tokio::time::sleep_until(until).await;
                if Instant::now() >= self.valid_until() {
                    self.lose("no heartbeat succeeded in time");
                    return;
                }
            }
        };
        let mut rx = self.lost_tx.subscribe();
        let lost = async move {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let beats = async {
            loop {
                tokio::time::sleep(self.interval()).await;
                let sent = Instant::now();
                let req = LeaseRequest::Heartbeat {
                    owner: self.owner.clone(),
                    fence: self.fence,
                };
                match lease.apply(&req, self.ttl).await {
                    Ok(Ok(_)) => self.extend(sent),
                    Ok(Err(_)) => {
                        self.lose("the lease was taken by a newer invocation");
                        return;
                    }
                    // Keep trying; the local deadline stops the work if none succeeds in time.
                    Err(e) => warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        };
        tokio::select! {
            biased;
            _ = lost => {}
            _ = expiry => {}
            _ = beats => {}
        }
    }
}
