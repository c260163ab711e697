//! The run lease: at most one sync at a time. The adapter enforces these rules atomically with a
//! conditional write; here they are stated once and unit-tested with an injected clock.

use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub owner: Option<String>,
    /// Goes up by one on every acquisition by a new owner: a stale owner's writes are fenced.
    pub fence: u64,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Ours now. `took_over` names an owner whose lease had expired without release.
    Granted {
        fence: u64,
        took_over: Option<String>,
    },
    /// Someone else holds a live lease.
    Held {
        owner: String,
        expires_at: Timestamp,
    },
}

/// May `me` take the lease at `now`? Absent, released, expired, or already ours.
pub fn can_acquire(state: Option<&LeaseState>, me: &str, now: Timestamp) -> bool {
    match state {
        None => true,
        Some(s) => match &s.owner {
            None => true,
            Some(o) if o == me => true,
            Some(_) => s.expires_at <= now,
        },
    }
}

/// The state after `me` acquires (assuming `can_acquire`).
pub fn acquire(
    state: Option<&LeaseState>,
    me: &str,
    now: Timestamp,
    ttl_secs: u64,
) -> (LeaseState, Acquired) {
    let prev_fence = state.map(|s| s.fence).unwrap_or(0);
    let already_ours = state.and_then(|s| s.owner.as_deref()) == Some(me);
    let fence = if already_ours {
        prev_fence
    } else {
        prev_fence + 1
    };
    let took_over = state.and_then(|s| s.owner.clone()).filter(|o| o != me);
    let next = LeaseState {
        owner: Some(me.to_string()),
        fence,
        expires_at: now.plus(std::time::Duration::from_secs(ttl_secs)),
    };
    (next, Acquired::Granted { fence, took_over })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(owner: &str, fence: u64, exp: i64) -> LeaseState {
        LeaseState {
            owner: Some(owner.into()),
            fence,
            expires_at: Timestamp(exp),
        }
    }

    #[test]
    fn free_expired_or_own_leases_can_be_taken() {
        let now = Timestamp(1000);
        assert!(can_acquire(None, "a", now));
        assert!(can_acquire(
            Some(&LeaseState {
                owner: None,
                fence: 3,
                expires_at: Timestamp(0)
            }),
            "a",
            now
        ));
        assert!(can_acquire(Some(&held("a", 1, 2000)), "a", now));
        assert!(!can_acquire(Some(&held("b", 1, 2000)), "a", now));
        assert!(can_acquire(Some(&held("b", 1, 1000)), "a", now));
    }

    #[test]
    fn a_new_owner_bumps_the_fence_and_names_whom_it_took_over() {
        let now = Timestamp(1000);
        let (s, a) = acquire(Some(&held("b", 4, 900)), "a", now, 60);
        assert_eq!(s.fence, 5);
        assert_eq!(s.expires_at, Timestamp(1060));
        assert_eq!(
            a,
            Acquired::Granted {
                fence: 5,
                took_over: Some("b".into())
            }
        );
        let (s2, a2) = acquire(Some(&s), "a", Timestamp(1010), 60);
        assert_eq!(s2.fence, 5);
        assert_eq!(
            a2,
            Acquired::Granted {
                fence: 5,
                took_over: None
            }
        );
    }
}
