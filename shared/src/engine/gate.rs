//! What every upstream request of one invocation passes through: the concurrency cap
//! (semaphore, granted in request order), the rate limit (governor's GCRA on tokio's clock, so
//! paused-time tests are exact), bounded retries with backoff (backon), Retry-After honoured and
//! capped, and the stops: lost lease, time budget, refused key, exhausted quota.

use super::fence::FenceGuard;
use crate::domain::facet::Facet;
use crate::ports::{Clock, FetchError, Upstream};
use backon::{ExponentialBuilder, Retryable};
use governor::clock::Clock as _;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

/// governor's clock on tokio's time (which tests pause and advance).
#[derive(Clone)]
pub(crate) struct TokioClock {
    start: Instant,
}

impl governor::clock::Clock for TokioClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

/// Why a request stopped without an upstream answer to act on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FetchStop {
    /// The lease is gone: send nothing more.
    Lost,
    /// Not enough time left in this invocation: the continuation does it.
    Deadline,
    /// Upstream refused our key (401/403): the run aborts.
    Refused(String),
    /// Upstream's quota is exhausted: the run ends, the next one continues.
    Quota(String),
}

/// One request's result.
pub(crate) type Fetched = Result<Result<Vec<u8>, FetchError>, FetchStop>;

/// What a retryable attempt ends with.
#[derive(Debug)]
enum Attempt {
    Upstream(FetchError),
    Stop(FetchStop),
}

pub(crate) struct GateConfig {
    pub max_concurrent: u32,
    pub rate_limit: f64,
    pub retries: u32,
    pub retry_base: Duration,
    /// Retry-After is honoured up to this long.
    pub max_retry_after: Duration,
    /// No attempt (or retry wait) may run past this.
    pub stop_fetching: Instant,
}

/// Upstream attempts by outcome, between two checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UpstreamOutcomes {
    pub requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub unreachable: u64,
    pub retries: u64,
}

pub(crate) struct Gate {
    permits: Semaphore,
    limiter: Limiter,
    clock: TokioClock,
    wall: Arc<dyn Clock>,
    cfg: GateConfig,
    /// Attempts sent (progress and the run's upstream_requests).
    pub sent: AtomicU64,
    /// Attempts answered 429, 5xx, or that timed out or could not connect; and retries made
    /// (the run's `upstream_*` counters, taken at each checkpoint).
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub unreachable: AtomicU64,
    pub retried: AtomicU64,
    refused: OnceLock<String>,
    /// Requests in a row that exhausted their attempts on 429.
    exhausted_429: AtomicU32,
    quota_gone: AtomicBool,
}

impl Gate {
    pub fn new(cfg: GateConfig, wall: Arc<dyn Clock>) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        // The rate is validated to 0.1..1000 req/s; a value outside (stored before validation
        // tightened) is refused before a run starts, so this cannot fail, but never panic.
        let period = Duration::try_from_secs_f64(1.0 / cfg.rate_limit)
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Gate {
            permits: Semaphore::new(cfg.max_concurrent.max(1) as usize),
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            wall,
            cfg,
            sent: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            refused: OnceLock::new(),
            exhausted_429: AtomicU32::new(0),
            quota_gone: AtomicBool::new(false),
        }
    }

    /// Consecutive requests exhausted on 429 after which the quota counts as gone.
    fn quota_trip(&self) -> u32 {
        self.cfg.max_concurrent.max(3)
    }

    fn check_stops(&self, guard: &FenceGuard) -> Result<(), FetchStop> {
        if !guard.ok() {
            return Err(FetchStop::Lost);
        }
        if let Some(r) = self.refused.get() {
            return Err(FetchStop::Refused(r.clone()));
        }
        if self.quota_gone.load(Ordering::SeqCst) {
            return Err(FetchStop::Quota(
                "upstream quota exhausted (429 on every request after retries)".into(),
            ));
        }
        if Instant::now() >= self.cfg.stop_fetching {
            return Err(FetchStop::Deadline);
        }
        Ok(())
    }

    async fn wait_rate(&self) {
        loop {
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait.max(Duration::from_micros(1))).await;
                }
            }
        }
    }

    /// One attempt: a concurrency slot, the rate limit, then the call.
    async fn attempt(
        &self,
        upstream: &dyn Upstream,
        guard: &FenceGuard,
        id: i64,
        facet: &Facet,
    ) -> Result<Vec<u8>, Attempt> {
        self.check_stops(guard).map_err(Attempt::Stop)?;
        let _permit = self.permits.acquire().await;
        self.wait_rate().await;
        // Waiting may have taken long: decide again before sending.
        self.check_stops(guard).map_err(Attempt::Stop)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        match upstream.fetch_raw(id, facet).await {
            Err(FetchError::Unauthorized(code)) => {
                let reason = FetchError::Unauthorized(code).to_string();
                let _ = self.refused.set(reason.clone());
                Err(Attempt::Stop(FetchStop::Refused(reason)))
            }
            Err(e) => {
                let counter = match e {
                    FetchError::RateLimited { .. } => Some(&self.throttled),
                    FetchError::Server(_) => Some(&self.server_errors),
                    FetchError::Timeout(_) | FetchError::Transport(_) => Some(&self.unreachable),
                    _ => None,
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                Err(Attempt::Upstream(e))
            }
            Ok(v) => Ok(v),
        }
    }

    /// What the attempts since the last call met (taken: the next call counts afresh).
    pub fn take_outcomes(&self) -> UpstreamOutcomes {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        UpstreamOutcomes {
            requests: take(&self.sent),
            throttled: take(&self.throttled),
            server_errors: take(&self.server_errors),
            unreachable: take(&self.unreachable),
            retries: take(&self.retried),
        }
    }

    /// One request: at most `retries + 1` attempts whatever upstream answers. Retries on
    /// timeouts, transport errors, 5xx and 429; a 429's Retry-After (seconds or HTTP-date) is
    /// the wait, capped at `max_retry_after` and never shorter than the backoff's first delay
    /// (so `Retry-After: 0` is no busy loop). `seed` makes the jitter reproducible.
    pub async fn fetch(
        &self,
        upstream: &dyn Upstream,
        guard: &FenceGuard,
        id: i64,
        facet: &Facet,
        seed: u64,
    ) -> Fetched {
        let base = self.cfg.retry_base;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(base)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.cfg.retries as usize)
            .with_jitter()
            .with_jitter_seed(seed);
        let out_of_time = AtomicBool::new(false);
        let key = facet.key();
        let result = (|| self.attempt(upstream, guard, id, facet))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &Attempt| matches!(e, Attempt::Upstream(u) if u.is_retryable()))
            .adjust(|e: &Attempt, next: Option<Duration>| {
                // `None`: attempts exhausted — stays exhausted whatever upstream asked.
                let planned = next?;
                let wait = match e {
                    Attempt::Upstream(u) => match u.retry_after() {
                        Some(ra) => ra
                            .wait_from(self.wall.now_ms())
                            .min(self.cfg.max_retry_after)
                            .max(base),
                        None => planned,
                    },
                    Attempt::Stop(_) => return None,
                };
                if Instant::now() + wait >= self.cfg.stop_fetching {
                    out_of_time.store(true, Ordering::SeqCst);
                    return None;
                }
                Some(wait)
            })
            .notify(|e: &Attempt, d: Duration| {
                self.retried.fetch_add(1, Ordering::Relaxed);
                warn!(hotel_id = id, facet = %key, error = ?e, retry_in_ms = d.as_millis() as u64, "retrying upstream call")
            })
            .await;
        match result {
            Ok(v) => {
                self.exhausted_429.store(0, Ordering::SeqCst);
                Ok(Ok(v))
            }
            Err(Attempt::Stop(s)) => Err(s),
            Err(Attempt::Upstream(_)) if out_of_time.load(Ordering::SeqCst) => {
                Err(FetchStop::Deadline)
            }
            Err(Attempt::Upstream(e)) => {
                if matches!(e, FetchError::RateLimited { .. }) {
                    let n = self.exhausted_429.fetch_add(1, Ordering::SeqCst) + 1;
                    if n >= self.quota_trip() {
                        self.quota_gone.store(true, Ordering::SeqCst);
                    }
                } else {
                    self.exhausted_429.store(0, Ordering::SeqCst);
                }
                Ok(Err(e))
            }
        }
    }
}
