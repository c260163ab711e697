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
//!
//! A loop can also panic: watch answers a `/next` that waited longer than its `--timeout` (an
//! idle function) with a bare 408, and lambda_runtime 1.5 panics on the missing request-id
//! header. The process used to end there, so under `make run` every function left idle for 15
//! minutes stopped answering. A panic is caught and handled as a failure (in the dev profile;
//! the release profile aborts, and Lambda's own Runtime API never answers so). A loop that
//! stayed up for [`HEALTHY_AFTER`] was healthy: its failure starts the idle count again.

use futures::FutureExt;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
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

/// A loop that ran this long before failing was healthy (an idle one, ended by watch's
/// timeout): its failure does not count towards [`MAX_IDLE_FAILURES`].
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// How a loop failed: its error, or a panic (kept to be resumed should the loop give up).
enum Failure<E> {
    Error(E),
    Panic(Box<dyn std::any::Any + Send>),
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs `start(served)` (one Lambda runtime loop) and starts it again after a failure or a
/// panic. Returns when a loop ends cleanly, or with the error (or the panic) of the fifth
/// failed loop in a row that handled no invocation and failed within [`HEALTHY_AFTER`].
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
        let started = tokio::time::Instant::now();
        let failure = match AssertUnwindSafe(start(served.clone())).catch_unwind().await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => Failure::Error(e),
            Err(p) => Failure::Panic(p),
        };
        let error = match &failure {
            Failure::Error(e) => e.to_string(),
            Failure::Panic(p) => format!("panicked: {}", panic_message(p.as_ref())),
        };
        let served_some = served.count() > before;
        if served_some || started.elapsed() >= HEALTHY_AFTER {
            idle_failures = 0;
        } else {
            idle_failures += 1;
        }
        if idle_failures >= MAX_IDLE_FAILURES {
            tracing::error!(
                function,
                error,
                idle_failures,
                "the Lambda Runtime API keeps failing before any invocation; exiting"
            );
            return match failure {
                Failure::Error(e) => Err(e),
                Failure::Panic(p) => std::panic::resume_unwind(p),
            };
        }
        if matches!(failure, Failure::Panic(_)) && idle_failures == 0 {
            tracing::warn!(
                function,
                error,
                "the Lambda runtime loop panicked (watch answers a /next that waited past its --timeout without an invocation); serving on"
            );
        } else if served_some {
            tracing::warn!(
                function,
                error,
                "posting an answer to the Lambda Runtime API failed (the invoker hung up?); serving on"
            );
        } else if idle_failures == 0 {
            tracing::warn!(
                function,
                error,
                "the Lambda Runtime API failed after a long wait for an invocation; serving on"
            );
        } else {
            tracing::warn!(
                function,
                error,
                idle_failures,
                "the Lambda Runtime API failed before any invocation; trying again"
            );
        }
        tokio::time::sleep(pause).await;
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

    /// watch answers an idle `/next` after its `--timeout` with a bare 408, and lambda_runtime
    /// panics on it: the loop is started again, however often that happens.
    #[tokio::test(start_paused = true)]
    async fn a_loop_that_waited_long_and_panicked_is_started_again_every_time() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), String> = keep_serving("docs", Duration::ZERO, |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 * MAX_IDLE_FAILURES {
                    tokio::time::sleep(Duration::from_secs(900)).await;
                    panic!("missing lambda-runtime-aws-request-id header");
                }
                Ok(())
            }
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 3 * MAX_IDLE_FAILURES + 1);
    }

    #[tokio::test]
    async fn panics_at_once_with_nothing_served_give_up_with_the_panic() {
        let calls = AtomicUsize::new(0);
        let r = AssertUnwindSafe(keep_serving("docs", Duration::ZERO, |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 100 {
                    panic!("a broken Runtime API");
                }
                Ok::<(), String>(())
            }
        }))
        .catch_unwind()
        .await;
        let p = r.expect_err("the fifth panic is resumed");
        assert_eq!(panic_message(p.as_ref()), "a broken Runtime API");
        assert_eq!(calls.load(Ordering::SeqCst), MAX_IDLE_FAILURES);
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
