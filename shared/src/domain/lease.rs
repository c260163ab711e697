//! The run lease: at most one sync invocation works at a time, and every acquisition hands out a
//! new, strictly increasing fencing token.
//!
//! The rules live here once, as a pure function of (stored state, request, now). Both stores
//! apply them the same way: read the lease, compute the next state here, and write it back
//! conditional on the revision read (compare-and-set). The in-memory store does the same under a
//! lock, so the two cannot drift; the contract suite runs the same cases against both.

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseState {
    /// The run (sync id) that holds or last held the lease; `None` once released.
    pub owner: Option<String>,
    /// The fencing token of the current holder. Goes up by one on every acquisition, takeover
    /// and continuation pickup; never goes down.
    pub fence: u64,
    /// Milliseconds since the epoch after which the lease is free for anyone.
    pub expires_at_ms: u64,
    /// The holder has handed the run over to a continuation (or the trigger has reserved it for
    /// the dispatched invocation): only a pickup with this fence, or expiry, ends the wait.
    pub handoff: bool,
    /// Runs whose holder vanished (the lease expired under them and was taken): the next holder
    /// closes them as abandoned, then forgets them. Kept here so a crash while closing one
    /// cannot leave it `running` for good.
    pub orphans: Vec<String>,
    /// Bumped by every write; the compare-and-set condition.
    pub rev: u64,
}

impl LeaseState {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.owner.is_some() && self.expires_at_ms > now_ms
    }
}

/// What an invocation (or the trigger) asks of the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseRequest {
    /// Start a new run `owner` when the lease is free or expired. `handoff`: reserve it for an
    /// invocation that will pick it up (the trigger), instead of holding it now.
    Take { owner: String, handoff: bool },
    /// Continue run `owner`: allowed when its lease was handed over with token `from`, or when
    /// the lease is still `owner`'s but expired (its last holder died: resume from the
    /// checkpoint). Anything else — a duplicate delivery, a live holder — is refused.
    Pickup { owner: String, from: Option<u64> },
    /// The holder passes the run to a continuation: the lease waits for a pickup with `fence`.
    HandOver { owner: String, fence: u64 },
    /// The holder extends its lease.
    Heartbeat { owner: String, fence: u64 },
    /// The holder is done.
    Release { owner: String, fence: u64 },
    /// The holder has closed an orphaned run.
    ForgetOrphan {
        owner: String,
        fence: u64,
        orphan: String,
    },
}

/// The answer to an acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Ours now, with this fencing token. `orphans`: runs to close as abandoned.
    Granted { fence: u64, orphans: Vec<String> },
    /// Someone else (or a live invocation of the same run) holds it.
    Held {
        owner: String,
        expires_at_ms: u64,
        handoff: bool,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Acquisition refused: held by someone (or by a live invocation of the same run).
    Held {
        owner: String,
        expires_at_ms: u64,
        handoff: bool,
    },
    /// Holder operation refused: the lease is no longer this owner's at this fence.
    Fenced,
}

/// The next state for `req`, or why not. `ttl_ms` is the lease duration from `now_ms`.
pub fn apply(
    state: Option<&LeaseState>,
    req: &LeaseRequest,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<LeaseState, Refused> {
    let cur = state.cloned().unwrap_or_default();
    let held = |s: &LeaseState| Refused::Held {
        owner: s.owner.clone().unwrap_or_default(),
        expires_at_ms: s.expires_at_ms,
        handoff: s.handoff,
    };
    let mut next = LeaseState {
        rev: cur.rev + 1,
        ..cur.clone()
    };
    let holds = |owner: &str, fence: u64| cur.owner.as_deref() == Some(owner) && cur.fence == fence;
    match req {
        LeaseRequest::Take { owner, handoff } => {
            if cur.is_live(now_ms) {
                return Err(held(&cur));
            }
            if let Some(prev) = &cur.owner
                && prev != owner
                && !next.orphans.contains(prev)
            {
                next.orphans.push(prev.clone());
            }
            next.owner = Some(owner.clone());
            next.fence = cur.fence + 1;
            next.handoff = *handoff;
            next.expires_at_ms = now_ms + ttl_ms;
        }
        LeaseRequest::Pickup { owner, from } => {
            let ours = cur.owner.as_deref() == Some(owner.as_str());
            let handed = cur.handoff && *from == Some(cur.fence);
            if !ours || !(handed || cur.expires_at_ms <= now_ms) {
                return Err(held(&cur));
            }
            next.fence = cur.fence + 1;
            next.handoff = false;
            next.expires_at_ms = now_ms + ttl_ms;
        }
        LeaseRequest::HandOver { owner, fence } => {
            if !holds(owner, *fence) || cur.handoff {
                return Err(Refused::Fenced);
            }
            next.handoff = true;
            next.expires_at_ms = now_ms + ttl_ms;
        }
        LeaseRequest::Heartbeat { owner, fence } => {
            if !holds(owner, *fence) || cur.handoff {
                return Err(Refused::Fenced);
            }
            next.expires_at_ms = now_ms + ttl_ms;
        }
        LeaseRequest::Release { owner, fence } => {
            if !holds(owner, *fence) {
                return Err(Refused::Fenced);
            }
            next.owner = None;
            next.handoff = false;
            next.expires_at_ms = 0;
        }
        LeaseRequest::ForgetOrphan {
            owner,
            fence,
            orphan,
        } => {
            if !holds(owner, *fence) {
                return Err(Refused::Fenced);
            }
            next.orphans.retain(|o| o != orphan);
        }
    }
    Ok(next)
}

/// The grant an acquisition's new state stands for.
pub fn granted(next: &LeaseState) -> Acquired {
    Acquired::Granted {
        fence: next.fence,
        orphans: next.orphans.clone(),
    }
}

impl From<Refused> for Acquired {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Held {
                owner,
                expires_at_ms,
                handoff,
            } => Acquired::Held {
                owner,
                expires_at_ms,
                handoff,
            },
            Refused::Fenced => Acquired::Held {
                owner: String::new(),
                expires_at_ms: 0,
                handoff: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 60_000;

    fn take(owner: &str) -> LeaseRequest {
        LeaseRequest::Take {
            owner: owner.into(),
            handoff: false,
        }
    }

    #[test]
    fn a_free_lease_is_taken_and_each_acquisition_gets_a_new_token() {
        let s1 = apply(None, &take("a"), 1_000, TTL).unwrap();
        assert_eq!(
            (s1.owner.as_deref(), s1.fence, s1.expires_at_ms),
            (Some("a"), 1, 61_000)
        );
        let rel = LeaseRequest::Release {
            owner: "a".into(),
            fence: 1,
        };
        let s2 = apply(Some(&s1), &rel, 2_000, TTL).unwrap();
        assert_eq!(s2.owner, None);
        let s3 = apply(Some(&s2), &take("b"), 3_000, TTL).unwrap();
        assert_eq!(s3.fence, 2);
        assert!(s3.orphans.is_empty(), "a released run is not an orphan");
        assert!(s3.rev > s2.rev && s2.rev > s1.rev);
    }

    #[test]
    fn a_live_lease_refuses_takes_including_a_duplicate_of_the_same_run() {
        let s = apply(None, &take("a"), 0, TTL).unwrap();
        assert!(matches!(
            apply(Some(&s), &take("b"), 59_999, TTL),
            Err(Refused::Held { .. })
        ));
        assert!(matches!(
            apply(Some(&s), &take("a"), 1, TTL),
            Err(Refused::Held { .. })
        ));
    }

    #[test]
    fn an_expired_holder_becomes_an_orphan_of_the_next_taker() {
        let s = apply(None, &take("a"), 0, TTL).unwrap();
        let t = apply(Some(&s), &take("b"), TTL, TTL).unwrap();
        assert_eq!((t.fence, t.orphans.clone()), (2, vec!["a".to_string()]));
        // The old holder is fenced out of every holder operation.
        for req in [
            LeaseRequest::Heartbeat {
                owner: "a".into(),
                fence: 1,
            },
            LeaseRequest::HandOver {
                owner: "a".into(),
                fence: 1,
            },
            LeaseRequest::Release {
                owner: "a".into(),
                fence: 1,
            },
        ] {
            assert_eq!(apply(Some(&t), &req, TTL + 1, TTL), Err(Refused::Fenced));
        }
        let forget = LeaseRequest::ForgetOrphan {
            owner: "b".into(),
            fence: 2,
            orphan: "a".into(),
        };
        assert!(
            apply(Some(&t), &forget, TTL + 1, TTL)
                .unwrap()
                .orphans
                .is_empty()
        );
    }

    #[test]
    fn a_handover_is_picked_up_once() {
        let s = apply(None, &take("a"), 0, TTL).unwrap();
        let h = apply(
            Some(&s),
            &LeaseRequest::HandOver {
                owner: "a".into(),
                fence: 1,
            },
            10,
            TTL,
        )
        .unwrap();
        assert!(h.handoff);
        // Heartbeats of the handing-over invocation no longer count.
        let hb = LeaseRequest::Heartbeat {
            owner: "a".into(),
            fence: 1,
        };
        assert_eq!(apply(Some(&h), &hb, 11, TTL), Err(Refused::Fenced));
        let pick = LeaseRequest::Pickup {
            owner: "a".into(),
            from: Some(1),
        };
        let p = apply(Some(&h), &pick, 20, TTL).unwrap();
        assert_eq!((p.fence, p.handoff), (2, false));
        // The duplicate delivery of the same continuation is refused while the lease is live.
        assert!(matches!(
            apply(Some(&p), &pick, 30, TTL),
            Err(Refused::Held { .. })
        ));
        // A take by anyone else is refused too.
        assert!(matches!(
            apply(Some(&h), &take("b"), 20, TTL),
            Err(Refused::Held { .. })
        ));
    }

    #[test]
    fn a_run_whose_holder_died_is_picked_up_after_expiry_by_its_own_run_only() {
        let s = apply(None, &take("a"), 0, TTL).unwrap();
        let pick = LeaseRequest::Pickup {
            owner: "a".into(),
            from: None,
        };
        assert!(apply(Some(&s), &pick, TTL - 1, TTL).is_err());
        let p = apply(Some(&s), &pick, TTL, TTL).unwrap();
        assert_eq!((p.fence, p.orphans.len()), (2, 0));
        let other = LeaseRequest::Pickup {
            owner: "b".into(),
            from: None,
        };
        assert!(apply(Some(&s), &other, TTL * 2, TTL).is_err());
        // A wrong handoff token does not pick up a live handoff.
        let h = apply(
            Some(&s),
            &LeaseRequest::HandOver {
                owner: "a".into(),
                fence: 1,
            },
            1,
            TTL,
        )
        .unwrap();
        let wrong = LeaseRequest::Pickup {
            owner: "a".into(),
            from: Some(0),
        };
        assert!(apply(Some(&h), &wrong, 2, TTL).is_err());
    }

    #[test]
    fn fences_never_go_down_over_any_sequence() {
        // Every request kind from every state: the fence is monotonic and the revision grows.
        let owners = ["a", "b"];
        let mut states = vec![None];
        let mut seen = Vec::new();
        for step in 0..6u64 {
            let mut next_states = Vec::new();
            for s in &states {
                for o in owners {
                    let f = s.as_ref().map(|s: &LeaseState| s.fence).unwrap_or(0);
                    for req in [
                        take(o),
                        LeaseRequest::Take {
                            owner: o.into(),
                            handoff: true,
                        },
                        LeaseRequest::Pickup {
                            owner: o.into(),
                            from: Some(f),
                        },
                        LeaseRequest::HandOver {
                            owner: o.into(),
                            fence: f,
                        },
                        LeaseRequest::Release {
                            owner: o.into(),
                            fence: f,
                        },
                    ] {
                        let now = step * 40_000;
                        if let Ok(n) = apply(s.as_ref(), &req, now, TTL) {
                            assert!(n.fence >= f);
                            assert!(n.rev > s.as_ref().map(|s| s.rev).unwrap_or(0));
                            if matches!(
                                req,
                                LeaseRequest::Take { .. } | LeaseRequest::Pickup { .. }
                            ) {
                                assert_eq!(n.fence, f + 1, "{req:?}");
                            }
                            seen.push(n.fence);
                            next_states.push(Some(n));
                        }
                    }
                }
            }
            next_states.truncate(64);
            states = next_states;
        }
        assert!(!seen.is_empty());
    }
}
