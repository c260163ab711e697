//! Writing one decided property by the protocol: claim the record, write the changed documents
//! into their free slots (a document in parts: head first), commit the record; or record an
//! outcome; or keep the held payloads and record the quarantine. Every write is fenced.

use super::fence::FenceGuard;
use super::property::{Compared, PropertyCtx, Stop};
use crate::domain::decide::{Decision, FacetOutcome, Plan};
use crate::domain::document;
use crate::domain::quarantine::{self, QuarantineNote};
use crate::domain::run::{FacetState, SyncStatus, Tracked};
use crate::ports::*;

/// A store write's refusal, as the run sees it.
pub(crate) enum Refusal {
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

pub(crate) async fn write(
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
            // Held again exactly as before: the note keeps the run that first held it and
            // since when (an operator's acceptance of what they read stays valid); the payload
            // is written again, which keeps it from expiring while it is still held.
            let already = t.already_held(held);
            let (first_by, first_at) = match already {
                Some(h) => (h.sync_id.clone(), h.at),
                None => (ctx.sync_id.clone(), now.secs()),
            };
            // A facet this run could not fetch stays held as it was (its payload is still
            // kept): the note never loses it, so the next run that fetches it finds it held.
            let mut facets = held.clone();
            for old in already.map(|h| h.facets.as_slice()).unwrap_or_default() {
                let failed = ctx
                    .facets
                    .iter()
                    .position(|f| f.key() == old.facet)
                    .is_some_and(|i| matches!(compared[i].outcome, FacetOutcome::Failed(_)));
                if failed && !facets.iter().any(|f| f.facet == old.facet) {
                    facets.push(old.clone());
                }
            }
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
                        sync_id: first_by.clone(),
                        now,
                        expires_at: now.secs() + quarantine::PAYLOAD_SECONDS,
                    };
                    usage += fenced(&ctx.guard, ctx.writer.put_held(&p)).await?;
                }
            }
            let note = QuarantineNote {
                sync_id: first_by,
                at: first_at,
                facets,
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
