//! One property, start to end: fetch its facets, canonicalise and compare, decide (the pure
//! `domain::decide`), diff what changed, and write it by the protocol — claim the record, write
//! the changed documents into their free slots, commit the record. Every write is fenced.

use super::fence::FenceGuard;
use super::gate::{FetchStop, Gate};
use crate::domain::decide::{self, Decision, FacetOutcome, Plan, WritePlan};
use crate::domain::document::{self, CanonicalBody};
use crate::domain::facet::Facet;
use crate::domain::quarantine::{self, Acceptance, HeldFacet, QuarantineNote};
use crate::domain::run::{Change, Counters, FacetState, MAX_PATHS, RunDetail, SyncStatus, Tracked};
use crate::domain::time::Timestamp;
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
}

/// The end of one property task.
pub(crate) enum Report {
    Done {
        counters: Counters,
        /// What the run log keeps for this property (if it changed or failed).
        detail: Option<RunDetail>,
        status: StatusMove,
    },
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
struct Compared {
    outcome: FacetOutcome,
    packed: Option<std::io::Result<Vec<u8>>>,
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

/// Compares a fetched body with what is stored. Bytes identical to the stored version's (same
/// raw digest) are unchanged without being parsed; other bytes are parsed, canonicalised,
/// checked against the facet's contract and compared by content. Changed content that breaks
/// its contract is held back unless an operator accepted exactly that content.
fn compare(facet: &Facet, t: &Tracked, body: &[u8]) -> Compared {
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
    let doc = match facet.canonical_body(t.hotel_id, body) {
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
            Ok(Ok(body)) => out.push(compare(f, t, &body)),
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

/// A store write's refusal, as the run sees it.
enum Refusal {
    Stop(Stop),
    Untracked,
    Failed(String),
}

fn refusal(e: PortError, guard: &FenceGuard) -> Refusal {
    match e.kind {
        PortErrorKind::Fenced => {
            guard.lose(&e.to_string());
            Refusal::Stop(Stop::Lost)
        }
        PortErrorKind::Untracked => Refusal::Untracked,
        PortErrorKind::Conflict => Refusal::Failed(format!(
            "changed concurrently (data_version moved); will retry next sync: {e}"
        )),
        // The store itself failed: the run stops and says which call (every later property
        // would fail the same way).
        _ => Refusal::Stop(Stop::Dependency(e)),
    }
}

/// Writes one document into its free slot: the head first (it remembers every part index
/// written in the slot), then the other parts, then removes parts left beyond the new count.
/// None of it is reachable before the record's commit, so a crash anywhere leaves the old
/// version served and at most parts the next write of this slot removes.
async fn put_parts(ctx: &PropertyCtx, items: &[DocWrite]) -> Result<Usage, Refusal> {
    let Some(head) = items.first() else {
        return Ok(Usage::default());
    };
    if !ctx.guard.ok() {
        return Err(Refusal::Stop(Stop::Lost));
    }
    let put = ctx
        .writer
        .put_document(head)
        .await
        .map_err(|e| refusal(e, &ctx.guard))?;
    let mut usage = put.usage;
    let rest = items[1..].iter().map(|p| async move {
        if !ctx.guard.ok() {
            return Err(Refusal::Stop(Stop::Lost));
        }
        ctx.writer
            .put_document(p)
            .await
            .map(|r| r.usage)
            .map_err(|e| refusal(e, &ctx.guard))
    });
    for r in futures::future::join_all(rest).await {
        usage += r?;
    }
    if !put.stale.is_empty() {
        usage += fenced(
            &ctx.guard,
            ctx.writer
                .remove_parts(head.hotel_id, &head.key, &put.stale, head.fence),
        )
        .await?;
    }
    Ok(usage)
}

/// Runs one store write if the lease still holds.
async fn fenced<F>(guard: &FenceGuard, write: F) -> Result<Usage, Refusal>
where
    F: std::future::Future<Output = PortResult<Usage>>,
{
    if !guard.ok() {
        return Err(Refusal::Stop(Stop::Lost));
    }
    write.await.map_err(|e| refusal(e, guard))
}

async fn write(
    ctx: &PropertyCtx,
    t: &Tracked,
    decision: &Decision,
    compared: &mut [Compared],
) -> Result<Usage, Refusal> {
    let fence = ctx.guard.fence;
    let now = ctx.clock.now();
    let outcome = |status: SyncStatus, error: Option<String>| RecordOutcome {
        hotel_id: t.hotel_id,
        status,
        error,
        sync_id: ctx.sync_id.clone(),
        now,
        fence,
        quarantine: None,
    };
    match &decision.plan {
        Plan::NotFound => {
            let o = outcome(
                SyncStatus::NotFound,
                Some("not found upstream (404)".into()),
            );
            fenced(&ctx.guard, ctx.writer.record_outcome(&o)).await
        }
        Plan::Failed(reason) => {
            let o = outcome(SyncStatus::Failed, Some(reason.clone()));
            fenced(&ctx.guard, ctx.writer.record_outcome(&o)).await
        }
        Plan::Quarantine(held) => {
            // The payloads first, then the record: a crash between leaves payload items only
            // (expiring, and served only for a record whose note names their hash).
            let mut usage = Usage::default();
            for h in held {
                let index = ctx.facets.iter().position(|f| f.key() == h.facet);
                let packed = index.and_then(|i| compared[i].packed.take());
                if let (true, Some(Ok(compressed))) = (h.payload_kept, packed) {
                    let p = HeldPayload {
                        hotel_id: t.hotel_id,
                        facet: h.facet.clone(),
                        hash: h.hash.clone(),
                        compressed,
                        fence,
                        sync_id: ctx.sync_id.clone(),
                        now,
                        expires_at: now.secs() + quarantine::PAYLOAD_SECONDS,
                    };
                    usage += fenced(&ctx.guard, ctx.writer.put_held(&p)).await?;
                }
            }
            let note = QuarantineNote {
                sync_id: ctx.sync_id.clone(),
                at: now.secs(),
                facets: held.clone(),
            };
            let mut o = outcome(SyncStatus::Quarantined, Some(note.summary()));
            o.quarantine = Some(note);
            usage += fenced(&ctx.guard, ctx.writer.record_outcome(&o)).await?;
            Ok(usage)
        }
        Plan::Unchanged { touch: false, .. } => Ok(Usage::default()),
        Plan::Unchanged { status, error, .. } => {
            let o = outcome(*status, error.clone());
            fenced(&ctx.guard, ctx.writer.record_outcome(&o)).await
        }
        Plan::Write(plan) => {
            let mut usage = fenced(
                &ctx.guard,
                ctx.writer.claim(t.hotel_id, plan.expected_version, fence),
            )
            .await?;
            let mut docs = Vec::with_capacity(plan.docs.len());
            for d in &plan.docs {
                let compressed = match compared[d.index].packed.take() {
                    Some(Ok(z)) => z,
                    _ => {
                        return Err(Refusal::Failed(format!(
                            "{}: document not available",
                            d.facet
                        )));
                    }
                };
                let key = FacetState::doc_key(&d.facet, Some(d.slot));
                let parts = document::split_parts(&compressed, ctx.part_bytes);
                let n = parts.len() as u32;
                let items: Vec<DocWrite> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, bytes)| DocWrite {
                        hotel_id: t.hotel_id,
                        key: key.clone(),
                        part: i as u32,
                        parts: n,
                        data_version: plan.new_version(),
                        content_hash: d.hash.clone(),
                        compressed: bytes.to_vec(),
                        fence,
                        sync_id: ctx.sync_id.clone(),
                        now,
                    })
                    .collect();
                docs.push(items);
            }
            let puts = docs.iter().map(|items| put_parts(ctx, items));
            for r in futures::future::join_all(puts).await {
                usage += r?;
            }
            let commit = PropertyWrite {
                hotel_id: t.hotel_id,
                expected_version: plan.expected_version,
                facets: plan.facets.clone(),
                summary: plan.summary.clone(),
                status: plan.status,
                error: plan.error.clone(),
                sync_id: ctx.sync_id.clone(),
                now,
                fence,
            };
            usage += fenced(&ctx.guard, ctx.writer.commit(&commit)).await?;
            Ok(usage)
        }
    }
}

/// Processes one property to its end (or to why it cannot end here).
pub(crate) async fn process(ctx: Arc<PropertyCtx>, t: Tracked) -> (i64, Report) {
    use tracing::Instrument;
    let span = tracing::info_span!("property", hotel_id = t.hotel_id);
    process_in_span(ctx, t).instrument(span).await
}

async fn process_in_span(ctx: Arc<PropertyCtx>, t: Tracked) -> (i64, Report) {
    let id = t.hotel_id;
    let mut compared = match fetch_all(&ctx, &t).await {
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
        Plan::Write(plan) => changes(&ctx, &t, plan, &compared, &mut usage).await,
        _ => Vec::new(),
    };
    if !ctx.dry_run {
        match write(&ctx, &t, &decision, &mut compared).await {
            Ok(u) => usage += u,
            Err(Refusal::Stop(s)) => return (id, Report::Stop(s)),
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
    (
        id,
        Report::Done {
            counters,
            detail,
            status,
        },
    )
}
