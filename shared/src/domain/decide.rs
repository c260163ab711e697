//! The decision at the heart of a sync: given what is stored for one property and what its
//! facets' fetches gave, what to write and which status to record. Pure: no store, no clock.

use super::document::{MAX_COMPRESSED_BYTES, MAX_PARTS, Summary};
use super::facet::{self, Facet};
use super::quarantine::HeldFacet;
use super::run::{Counters, FacetState, SyncStatus, Tracked};
use std::collections::BTreeMap;

/// What fetching one facet gave.
#[derive(Debug, Clone, PartialEq)]
pub enum FacetOutcome {
    /// A canonical document: its hash, its stored (compressed) size, and for the property facet
    /// the summary fields of the small record.
    Fetched {
        hash: String,
        /// Digest of the raw body (see `FacetState::raw`).
        raw: Option<String>,
        stored_bytes: usize,
        summary: Option<Summary>,
    },
    /// Upstream has no such document (404).
    NotFound,
    /// The fetch or the body failed; the reason as an operator should read it.
    Failed(String),
    /// Changed content that breaks its contract (and no operator accepted it): held back.
    Quarantined(HeldFacet),
}

/// One facet document to write: `results[index]`, into `slot`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDoc {
    pub index: usize,
    pub facet: String,
    pub slot: &'static str,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WritePlan {
    pub docs: Vec<PlannedDoc>,
    /// The record version read; the commit is conditional on it.
    pub expected_version: u64,
    /// Every facet's state once committed (unchanged facets keep theirs).
    pub facets: BTreeMap<String, FacetState>,
    /// The summary fields, when the property facet changed.
    pub summary: Option<Summary>,
    pub status: SyncStatus,
    pub error: Option<String>,
}

impl WritePlan {
    pub fn new_version(&self) -> u64 {
        self.expected_version + 1
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The property is gone upstream: record `not_found`, keep the data.
    NotFound,
    /// The property facet failed: record `failed` with the reason, keep the data.
    Failed(String),
    /// Nothing to store. `touch`: record the outcome on the small record (status, time).
    Unchanged {
        status: SyncStatus,
        error: Option<String>,
        touch: bool,
    },
    /// Write the changed facets into their free slots, then switch the record to them.
    Write(WritePlan),
    /// Changed documents broke their contracts: write none of them (whatever else changed),
    /// keep the held payloads, record `quarantined` with the note.
    Quarantine(Vec<HeldFacet>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub plan: Plan,
    /// Facet failures (`lang#fr: reason`); the property keeps those facets' previous versions.
    pub facet_failures: Vec<String>,
}

impl Decision {
    /// The run counters this decision adds once its writes succeed (or in a dry run).
    pub fn counters(&self) -> Counters {
        let mut c = Counters {
            processed: 1,
            ..Default::default()
        };
        let partial = !self.facet_failures.is_empty();
        match &self.plan {
            Plan::NotFound => c.not_found = 1,
            Plan::Failed(_) => c.failed = 1,
            Plan::Quarantine(_) => c.quarantined = 1,
            Plan::Unchanged { .. } => {
                c.unchanged = 1;
                c.partial = u64::from(partial);
            }
            Plan::Write(w) => {
                c.updated = 1;
                c.partial = u64::from(partial);
                c.document_writes = w.docs.len() as u64;
            }
        }
        c
    }

    /// The record's sync status once this decision is written over a record at `stored`.
    pub fn status_after(&self, stored: SyncStatus) -> SyncStatus {
        match &self.plan {
            Plan::NotFound => SyncStatus::NotFound,
            Plan::Failed(_) => SyncStatus::Failed,
            Plan::Quarantine(_) => SyncStatus::Quarantined,
            Plan::Unchanged { touch: false, .. } => stored,
            Plan::Unchanged { status, .. } => *status,
            Plan::Write(w) => w.status,
        }
    }

    /// What an operator reads on the run for this property, if anything went wrong.
    pub fn failure_reasons(&self) -> Vec<String> {
        match &self.plan {
            Plan::Failed(r) => vec![r.clone()],
            Plan::Quarantine(held) => std::iter::once(super::quarantine::summary(held))
                .chain(self.facet_failures.iter().cloned())
                .collect(),
            _ => self.facet_failures.clone(),
        }
    }
}

/// Decides for one property. `results` are in facet order, property first.
pub fn decide(
    tracked: &Tracked,
    results: &[(Facet, FacetOutcome)],
    touch_unchanged: bool,
) -> Decision {
    let mut facet_failures = Vec::new();
    let mut quarantined = Vec::new();
    let mut docs = Vec::new();
    let mut summary = None;
    let mut next = tracked.facets.clone();
    let new_version = tracked.data_version + 1;
    for (index, (f, outcome)) in results.iter().enumerate() {
        let key = f.key();
        let is_property = *f == Facet::Property;
        match outcome {
            FacetOutcome::NotFound if is_property => {
                return Decision {
                    plan: Plan::NotFound,
                    facet_failures: Vec::new(),
                };
            }
            // A translation or review list upstream does not have: nothing to store.
            FacetOutcome::NotFound => {}
            FacetOutcome::Failed(reason) if is_property => {
                return Decision {
                    plan: Plan::Failed(reason.clone()),
                    facet_failures: Vec::new(),
                };
            }
            FacetOutcome::Failed(reason) => facet_failures.push(format!("{key}: {reason}")),
            FacetOutcome::Quarantined(held) => quarantined.push(held.clone()),
            FacetOutcome::Fetched {
                hash,
                raw,
                stored_bytes,
                summary: s,
            } => {
                if is_property {
                    summary = s.clone();
                }
                if tracked.hash(&key) == Some(hash.as_str()) {
                    // Same content from other bytes: should this write happen, it keeps the
                    // new bytes' digest so they take the fast path next time.
                    if raw.is_some()
                        && let Some(st) = next.get_mut(&key)
                    {
                        st.raw = raw.clone();
                    }
                    continue;
                }
                if *stored_bytes > MAX_COMPRESSED_BYTES {
                    let reason = format!(
                        "document is {stored_bytes} bytes after compression, over the {MAX_COMPRESSED_BYTES} bytes stored per document ({MAX_PARTS} items of 350 KB); previous version kept"
                    );
                    if is_property {
                        return Decision {
                            plan: Plan::Failed(reason),
                            facet_failures: Vec::new(),
                        };
                    }
                    facet_failures.push(format!("{key}: {reason}"));
                    continue;
                }
                let slot = FacetState::next_slot(tracked.facets.get(&key));
                next.insert(
                    key.clone(),
                    FacetState {
                        hash: hash.clone(),
                        version: new_version,
                        slot: Some(slot.to_string()),
                        raw: raw.clone(),
                    },
                );
                docs.push(PlannedDoc {
                    index,
                    facet: key,
                    slot,
                    hash: hash.clone(),
                });
            }
        }
    }
    if !quarantined.is_empty() {
        return Decision {
            plan: Plan::Quarantine(quarantined),
            facet_failures,
        };
    }
    let (status, error) = if facet_failures.is_empty() {
        (SyncStatus::Synced, None)
    } else {
        (SyncStatus::Partial, Some(facet_failures.join("; ")))
    };
    let plan = if docs.is_empty() {
        let touch = touch_unchanged || status != SyncStatus::Synced || !tracked.synced();
        Plan::Unchanged {
            status,
            error,
            touch,
        }
    } else {
        let property_changed = docs.iter().any(|d| d.facet == facet::PROPERTY);
        Plan::Write(WritePlan {
            docs,
            expected_version: tracked.data_version,
            facets: next,
            summary: if property_changed { summary } else { None },
            status,
            error,
        })
    };
    Decision {
        plan,
        facet_failures,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
