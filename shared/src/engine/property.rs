//! One property, start to end: fetch its facets, canonicalise, check and compare, decide (the
//! pure `domain::decide`), ask the circuit breaker, diff what changed, and write it by the
//! protocol (`write.rs`). A change during the breaker's probe waits, decided, for its verdict.

use super::fence::FenceGuard;
use super::gate::{FetchStop, Gate};
use super::write::{Refusal, write};
use crate::domain::breaker::{Admit, Breaker};
use crate::domain::contract::Inspect;
use crate::domain::contract::Report as Checked;
use crate::domain::decide::{self, Decision, FacetOutcome, Plan, WritePlan};
use crate::domain::document::{self, CanonicalBody};
use crate::domain::facet::Facet;
use crate::domain::quarantine::{Acceptance, HeldFacet};
use crate::domain::run::{Change, Counters, MAX_PATHS, RunDetail, SyncStatus, Tracked};
use crate::domain::shape::Watch;
use crate::domain::time::Timestamp;
use crate::domain::view::View;
use crate::ports::*;
use std::sync::Arc;
use tracing::{info, warn};

/// What one property task shares with the rest of the invocation.
pub(crate) struct PropertyCtx {
    pub reader: Arc<dyn PropertyReader>,
    pub writer: Arc<dyn PropertyWriter>,
    pub upstream: Arc<dyn Upstream>,
    pub clock: Arc<dyn Clock>,
    pub gate: Gate,
    pub guard: Arc<FenceGuard>,
    pub facets: Vec<Facet>,
    pub sync_id: String,
    pub dry_run: bool,
    pub touch_unchanged: bool,
    pub retries: u32,
    /// The run's circuit breaker (`domain::breaker`), shared by its property tasks.
    pub breaker: std::sync::Mutex<Breaker>,
    /// The run's schema watch (`domain::shape`): checks shapes under the policy, observes them.
    pub watch: Watch,
    /// Compressed bytes per document item (`domain::document::PART_BYTES`; smaller in the
    /// simulation, so documents in parts are the common case there).
    pub part_bytes: usize,
}

/// Why the invocation must stop.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The lease is gone: do nothing more, write nothing more.
    Lost,
    /// Close the run as failed with this reason.
    Abort(String),
    /// A dependency call failed: close the run as failed, naming it.
    Dependency(PortError),
    /// The circuit breaker tripped: close the run as halted with this reason.
    Halt(String),
}

/// A property decided but not written yet: a change waiting for the circuit breaker's probe.
pub(crate) struct Decided {
    t: Tracked,
    compared: Vec<Compared>,
    decision: Decision,
    /// For a property that had stored data: whether it changes (what the breaker counted).
    observed: Option<bool>,
}

/// The end of one property task.
pub(crate) enum Report {
    Done {
        counters: Counters,
        /// What the run log keeps for this property (if it changed or failed).
        detail: Option<RunDetail>,
        status: StatusMove,
        /// See [`Decided::observed`]: the run's breaker counts take it once the property is done.
        observed: Option<bool>,
    },
    /// Decided, waiting for the circuit breaker's probe (not done: a continuation redoes it).
    Deferred(Box<Decided>),
    /// The circuit breaker tripped: nothing written (not done).
    Halted,
    /// Not done in this invocation (time budget): the continuation does it.
    Cut,
    Stop(Stop),
}

/// What the property's stored sync status did (for the catalogue counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusMove {
    /// From what the run read to what is stored now (equal: unchanged, or a dry run).
    Known { from: SyncStatus, to: SyncStatus },
    /// Untracked meanwhile: no longer the run's to count.
    Untracked,
    /// A write failed in a way that leaves the stored status unknown to the run.
    Unknown,
}

/// A fetched facet: compared with the stored hash; a changed one kept compressed as it will be
/// stored (or, held back by its contract, as it is kept in quarantine), and parsed again only
/// for the diff.
pub(crate) struct Compared {
    pub(crate) outcome: FacetOutcome,
    pub(crate) packed: Option<std::io::Result<Vec<u8>>>,
    /// Stored despite its contract: the operator's acceptance it matched.
    accepted: Option<Acceptance>,
}

impl Compared {
    fn of(outcome: FacetOutcome) -> Self {
        Compared {
            outcome,
            packed: None,
            accepted: None,
        }
    }
}

/// The run's schema watch for one document (`Watch::inspect`): whether its content is stored
/// already or accepted by an operator is known once its hash is.
struct Inspector<'a> {
    watch: &'a Watch,
    kind: &'static str,
    hotel_id: i64,
    stored: Option<&'a str>,
    accepted: Option<&'a str>,
}

impl Inspect for Inspector<'_> {
    fn inspect<V: View>(&self, doc: &V, hash: &str, report: &mut Checked) {
        let known = (self.stored == Some(hash), self.accepted == Some(hash));
        self.watch
            .inspect(self.kind, self.hotel_id, doc, known, report);
    }
}

/// Compares a fetched body with what is stored. Bytes identical to the stored version's (same
/// raw digest) are unchanged without being parsed; other bytes are parsed, canonicalised,
/// checked against the facet's contract and compared by content. Changed content that breaks
/// its contract is held back unless an operator accepted exactly that content.
fn compare(facet: &Facet, t: &Tracked, body: &[u8], watch: &Watch) -> Compared {
    let key = facet.key();
    let stored = t.facets.get(&key);
    let raw = document::raw_digest(body);
    if let Some(st) = stored
        && st.raw.as_deref() == Some(raw.as_str())
    {
        return Compared::of(FacetOutcome::Fetched {
            hash: st.hash.clone(),
            raw: Some(raw),
            stored_bytes: 0,
            summary: None,
        });
    }
    let inspector = Inspector {
        watch,
        kind: facet.shape_kind(),
        hotel_id: t.hotel_id,
        stored: stored.map(|s| s.hash.as_str()),
        accepted: t.accepted.get(&key).map(|a| a.hash.as_str()),
    };
    let doc = match facet.canonical_body(t.hotel_id, body, &inspector) {
        Err(reason) => return Compared::of(FacetOutcome::Failed(reason)),
        Ok(doc) => doc,
    };
    let CanonicalBody {
        bytes,
        hash,
        summary,
        report,
    } = doc;
    let summary = (*facet == Facet::Property).then_some(summary);
    if stored.map(|s| s.hash.as_str()) == Some(hash.as_str()) {
        return Compared::of(FacetOutcome::Fetched {
            hash,
            raw: Some(raw),
            stored_bytes: 0,
            summary,
        });
    }
    let z = match document::compress(&bytes) {
        Ok(z) => z,
        Err(e) => {
            return Compared::of(FacetOutcome::Failed(format!(
                "could not compress the document: {e}"
            )));
        }
    };
    let accepted = t.accepted.get(&key).filter(|a| a.hash == hash).cloned();
    if !report.is_clean() && accepted.is_none() {
        return Compared {
            outcome: FacetOutcome::Quarantined(HeldFacet {
                facet: key,
                hash,
                payload_kept: z.len() <= document::PART_BYTES,
                report,
            }),
            packed: Some(Ok(z)),
            accepted: None,
        };
    }
    Compared {
        outcome: FacetOutcome::Fetched {
            hash,
            raw: Some(raw),
            stored_bytes: z.len(),
            summary,
        },
        packed: Some(Ok(z)),
        // Only an acceptance that was needed is reported (and consumed by the commit).
        accepted: accepted.filter(|_| !report.is_clean()),
    }
}

fn seed(fence: u64, id: i64, facet: usize) -> u64 {
    fence
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((id as u64).rotate_left(17))
        .wrapping_add(facet as u64)
}

fn failed_reason(e: &FetchError, retries: u32) -> String {
    if e.is_retryable() && retries > 0 {
        format!("{e} after {} attempts", retries + 1)
    } else {
        e.to_string()
    }
}

/// Fetches and compares every facet. `Err`: the property cannot be finished here.
async fn fetch_all(ctx: &PropertyCtx, t: &Tracked) -> Result<Vec<Compared>, Report> {
    let fetches = ctx.facets.iter().enumerate().map(|(i, f)| async move {
        let r = ctx
            .gate
            .fetch(
                ctx.upstream.as_ref(),
                &ctx.guard,
                t.hotel_id,
                f,
                seed(ctx.guard.fence, t.hotel_id, i),
            )
            .await;
        (f, r)
    });
    let results = futures::future::join_all(fetches).await;
    let mut out = Vec::with_capacity(results.len());
    let mut cut = false;
    for (f, r) in results {
        match r {
            Ok(Ok(body)) => out.push(compare(f, t, &body, &ctx.watch)),
            Ok(Err(FetchError::NotFound)) => out.push(Compared::of(FacetOutcome::NotFound)),
            Ok(Err(e)) => out.push(Compared::of(FacetOutcome::Failed(failed_reason(
                &e,
                ctx.retries,
            )))),
            Err(FetchStop::Lost) => return Err(Report::Stop(Stop::Lost)),
            Err(FetchStop::Refused(r)) => return Err(Report::Stop(Stop::Abort(r))),
            Err(FetchStop::Quota(r)) => return Err(Report::Stop(Stop::Abort(r))),
            Err(FetchStop::Deadline) => cut = true,
        }
    }
    if cut {
        return Err(Report::Cut);
    }
    Ok(out)
}

/// The changed paths of each written facet against its previous version.
async fn changes(
    ctx: &PropertyCtx,
    t: &Tracked,
    plan: &WritePlan,
    compared: &[Compared],
    usage: &mut Usage,
) -> Vec<Change> {
    let mut out = Vec::new();
    for d in &plan.docs {
        let facet = &ctx.facets[d.index];
        let old = match t.facets.get(&d.facet) {
            None => None,
            Some(state) => match ctx
                .reader
                .get_whole_document(t.hotel_id, &state.key(&d.facet))
                .await
            {
                Ok((doc, u)) => {
                    *usage += u;
                    doc.and_then(|doc| document::decompress(&doc.compressed).ok())
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                }
                Err(e) => {
                    warn!(hotel_id = t.hotel_id, facet = %d.facet, error = %e, "could not read the previous version for the diff");
                    None
                }
            },
        };
        // The new version is parsed again only when there is an old one to compare with (a
        // first sync of a facet is `$`).
        let new = || {
            compared[d.index]
                .packed
                .as_ref()
                .and_then(|z| z.as_ref().ok())
                .and_then(|z| document::decompress(z).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        };
        let (paths, truncated) = match old.map(|prev| (prev, new())) {
            Some((prev, Some(new))) => facet.diff(&prev, &new, MAX_PATHS),
            _ => (vec!["$".into()], false),
        };
        info!(hotel_id = t.hotel_id, facet = %d.facet, changed = paths.len(), "content changed");
        out.push(Change {
            hotel_id: t.hotel_id,
            facet: d.facet.clone(),
            paths,
            paths_truncated: truncated,
            accepted_by: compared[d.index]
                .accepted
                .as_ref()
                .map(|a| format!("{} at {}", a.by, Timestamp(a.at).rfc3339())),
        });
    }
    out
}

/// Processes one property to its end (or to why it cannot end here).
pub(crate) async fn process(ctx: Arc<PropertyCtx>, t: Tracked) -> (i64, Report) {
    use tracing::Instrument;
    let span = tracing::info_span!("property", hotel_id = t.hotel_id);
    process_in_span(ctx, t).instrument(span).await
}

async fn process_in_span(ctx: Arc<PropertyCtx>, t: Tracked) -> (i64, Report) {
    let id = t.hotel_id;
    let compared = match fetch_all(&ctx, &t).await {
        Ok(c) => c,
        Err(report) => return (id, report),
    };
    let results: Vec<(Facet, FacetOutcome)> = ctx
        .facets
        .iter()
        .cloned()
        .zip(compared.iter().map(|c| c.outcome.clone()))
        .collect();
    let decision = decide::decide(&t, &results, ctx.touch_unchanged);
    // The circuit breaker counts properties that had stored data, and whether this one would
    // change (or quarantine) it.
    // Data this run stored (before a crash or a hand-over, redone by a continuation that reads
    // its own write as unchanged) is this run's change all the same; and if that write was the
    // property's first data, the property had none before this run (a first sync: exempt).
    let ours = t.changed_by.as_deref() == Some(ctx.sync_id.as_str());
    let existing = (t.data_version > 0 || !t.facets.is_empty()) && !(ours && t.data_version <= 1);
    // Payloads an earlier run held exactly as they come now are nothing new: once an operator
    // forced a mass quarantine through, later runs facing the same broken upstream must not
    // halt (and pause the schedule) over it. Held by this very run (redone after a crash or a
    // hand-over), they are its change all the same.
    let change = match &decision.plan {
        Plan::Write(_) => true,
        Plan::Quarantine(held) => t
            .already_held(held)
            .is_none_or(|h| h.sync_id == ctx.sync_id),
        _ => false,
    };
    let admit = ctx
        .breaker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decide(t.hotel_id, existing, change || ours);
    let decided = Decided {
        t,
        compared,
        decision,
        observed: existing.then_some(change),
    };
    match admit {
        Admit::Go => (id, complete(&ctx, decided).await),
        Admit::Wait => {
            info!("a change during the circuit breaker's probe: waits, unwritten");
            (id, Report::Deferred(Box::new(decided)))
        }
        Admit::Halt => (id, Report::Halted),
    }
}

/// Writes a property that waited for the circuit breaker's probe.
pub(crate) async fn resume(ctx: Arc<PropertyCtx>, d: Decided) -> (i64, Report) {
    use tracing::Instrument;
    let id = d.t.hotel_id;
    let span = tracing::info_span!("property", hotel_id = id);
    (id, complete(&ctx, d).instrument(span).await)
}

/// Writes what was decided (or, in a dry run, only counts it) and reports it.
async fn complete(ctx: &PropertyCtx, d: Decided) -> Report {
    let Decided {
        t,
        mut compared,
        decision,
        observed,
    } = d;
    let id = t.hotel_id;
    let mut counters = decision.counters();
    if ctx.dry_run {
        counters.document_writes = 0;
    }
    let mut failures = decision.failure_reasons();
    for f in &failures {
        warn!(error = %f, "property failed or partial; previous data kept");
    }
    let mut usage = Usage::default();
    let mut status = StatusMove::Known {
        from: t.status,
        to: if ctx.dry_run {
            t.status
        } else {
            decision.status_after(t.status)
        },
    };
    let mut change_list = match &decision.plan {
        Plan::Write(plan) => changes(ctx, &t, plan, &compared, &mut usage).await,
        _ => Vec::new(),
    };
    if !ctx.dry_run {
        match write(ctx, &t, &decision, &mut compared).await {
            Ok(u) => usage += u,
            Err(Refusal::Stop(s)) => return Report::Stop(s),
            Err(Refusal::Untracked) => {
                info!("untracked while the run worked on it; left alone");
                counters = Counters {
                    processed: 1,
                    untracked: 1,
                    ..Default::default()
                };
                failures.clear();
                change_list.clear();
                status = StatusMove::Untracked;
            }
            Err(Refusal::Failed(reason)) => {
                status = StatusMove::Unknown;
                warn!(error = %reason, "property write failed; previous data kept");
                counters = Counters {
                    processed: 1,
                    failed: 1,
                    ..Default::default()
                };
                failures = vec![reason];
                change_list.clear();
            }
        }
    }
    counters.consumed_rcu += usage.rcu;
    counters.consumed_wcu += usage.wcu;
    let detail = (!failures.is_empty() || !change_list.is_empty()).then(|| {
        RunDetail {
            hotel_id: id,
            failures,
            changes: change_list,
        }
        .bounded()
    });
    Report::Done {
        counters,
        detail,
        status,
        observed,
    }
}
