//! Keeps a function's Lambda runtime loop alive through a failed call to the Runtime API.
//!
//! `lambda_runtime::run` returns on the first call to the Runtime API that fails at the
//! connection, and the process exits. The common cause is harmless: the invoker hung up before
//! the answer was posted, and `cargo lambda watch` then closes the socket while the function is
//! still sending its answer (a large one, such as the Swagger UI page). Exiting is recoverable
//! in Lambda (a cold start follows) but not under watch, which does not start the function
//! again: every later request to it went unanswered.
//!
//! So the loop is started again. A loop that fails after handling an invocation made progress
//! and is always restarted; only loops that fail before handling anything count, and after
//! five of those in a row the Runtime API itself is gone and the error is returned.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts the invocations a loop handled; the handler marks each one.
#[derive(Debug, Clone, Default)]
pub struct Served(Arc<AtomicU64>);

impl Served {
    pub fn mark(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Failed loops that handled nothing, in a row, before giving up.
pub const MAX_IDLE_FAILURES: usize = 5;

/// Runs `start(served)` (one Lambda runtime loop) and starts it again after a failure. Returns
/// when a loop ends cleanly, or with the error of the fifth failed loop in a row that handled
/// no invocation.
pub async fn keep_serving<F, Fut, E>(function: &str, pause: Duration, mut start: F) -> Result<(), E>
where
    F: FnMut(Served) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let served = Served::default();
    let mut idle_failures = 0;
    loop {
        let before = served.count();
        match start(served.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                if served.count() > before {
                    idle_failures = 0;
                } else {
                    idle_failures += 1;
                }
                if idle_failures >= MAX_IDLE_FAILURES {
                    tracing::error!(function, error = %e, idle_failures,
                        "the Lambda Runtime API keeps failing before any invocation; exiting");
                    return Err(e);
                }
                if idle_failures == 0 {
                    tracing::warn!(function, error = %e,
                        "posting an answer to the Lambda Runtime API failed (the invoker hung up?); serving on");
                } else {
                    tracing::warn!(function, error = %e, idle_failures,
                        "the Lambda Runtime API failed before any invocation; trying again");
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn loops_that_served_before_failing_are_always_started_again() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), String> = keep_serving("docs", Duration::ZERO, |served| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 50 {
                    served.mark(); // an invocation handled, then its answer could not be posted
                    Err(format!("broken pipe {n}"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 51);
    }

    #[tokio::test]
    async fn only_idle_failures_in_a_row_count_a_served_loop_starts_the_count_again() {
        // 4 idle, 1 served, 4 idle, then a clean end: never 5 idle in a row.
        let plan = [0, 0, 0, 0, 1, 0, 0, 0, 0, 2];
        let calls = AtomicUsize::new(0);
        let r: Result<(), String> = keep_serving("status", Duration::ZERO, |served| {
            let step = plan[calls.fetch_add(1, Ordering::SeqCst)];
            async move {
                match step {
                    2 => Ok(()),
                    1 => {
                        served.mark();
                        Err("broken pipe".to_string())
                    }
                    _ => Err("connection refused".to_string()),
                }
            }
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), plan.len());
    }

    #[tokio::test]
    async fn a_runtime_api_that_fails_before_any_invocation_ends_the_process_with_its_error() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), String> = keep_serving("sync", Duration::ZERO, |served| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    served.mark();
                }
                Err(format!("refused {n}"))
            }
        })
        .await;
        // The first loop served; the next five handled nothing.
        assert_eq!(r, Err("refused 5".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 1 + MAX_IDLE_FAILURES);
    }
}
