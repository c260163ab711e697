//! Schema drift, what changed: a run's shapes against the baseline (appeared, gone, type
//! changed: `drift`), the baseline after the run (`merged`, `Baseline`), and the report. The
//! shapes themselves and the policy: `shape.rs`.

use super::shape::{
    MAX_PATHS, Node, Shape, Shapes, describe, join, new_types, only_null, type_names,
};
use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A baseline path is reported gone when the run saw none of it though its baseline frequency
/// predicted at least this many (so a small run, or a rare optional field, is never "gone").
pub const MIN_EXPECTED: u64 = 20;
/// Entries kept per list (appeared, disappeared, type changed) per kind; `more` counts the rest.
pub const MAX_REPORTED: usize = 20;

/// One changed path in a drift report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PathDrift {
    pub path: String,
    /// Documents of the run with the path (appeared) or the new type (type changed); for a
    /// disappeared path, how many the baseline's frequency predicted.
    pub count: u64,
    /// Hotels of the first documents (appeared, type changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<i64>,
    /// The baseline's types (type changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub was: Vec<String>,
    /// The types this run saw (type changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub now: Vec<String>,
}

/// How one kind of document's shape changed in a run, against the baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FacetDrift {
    /// `property`, `lang` (every translation) or `reviews`.
    pub facet: String,
    /// Documents of this kind the run observed (parsed, stored).
    pub documents: u64,
    pub appeared: Vec<PathDrift>,
    pub disappeared: Vec<PathDrift>,
    pub type_changed: Vec<PathDrift>,
    /// Changed paths beyond the [`MAX_REPORTED`] kept per list.
    #[serde(default)]
    pub more: u64,
    /// New paths the baseline has no room for (it keeps at most [`MAX_PATHS`] per kind): not
    /// tracked, so not reported as appeared (they would be, every run).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untracked: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FacetDrift {
    pub fn is_empty(&self) -> bool {
        self.appeared.is_empty() && self.disappeared.is_empty() && self.type_changed.is_empty()
    }

    fn add(list: &mut Vec<PathDrift>, more: &mut u64, d: PathDrift) {
        if list.len() < MAX_REPORTED {
            list.push(d);
        } else {
            *more += 1;
        }
    }
}

/// How many paths changed, per kind of document (for summaries: events, status).
/// How many paths changed, per kind of document (status and the run event show these; the
/// run log has the paths).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftCount {
    pub facet: String,
    pub appeared: usize,
    pub disappeared: usize,
    pub type_changed: usize,
}

pub fn drift_counts(drift: &[FacetDrift]) -> Vec<DriftCount> {
    drift
        .iter()
        .map(|d| DriftCount {
            facet: d.facet.clone(),
            appeared: d.appeared.len(),
            disappeared: d.disappeared.len(),
            type_changed: d.type_changed.len(),
        })
        .collect()
}

/// Whether a baseline path seen in `seen` of `base_docs` documents is gone from a run that
/// observed `run_docs` documents without it.
fn gone(seen: u64, base_docs: u64, run_docs: u64) -> bool {
    base_docs > 0
        && u128::from(run_docs) * u128::from(seen)
            >= u128::from(MIN_EXPECTED) * u128::from(base_docs)
}

/// What changed between the baseline and a run's shape of one kind (`None`: nothing).
pub fn drift(kind: &str, base: &Shape, run: &Shape) -> Option<FacetDrift> {
    if run.docs == 0 {
        return None;
    }
    let mut out = FacetDrift {
        facet: kind.to_string(),
        documents: run.docs,
        ..FacetDrift::default()
    };
    // A new path is reported only if the baseline takes it in (else every run would).
    let next = merged(Some(base), run);
    let at = At {
        docs: (base.docs, run.docs),
        path: String::new(),
    };
    drift_at(&base.root, &run.root, &next.root, at, &mut out);
    (!out.is_empty()).then_some(out)
}

/// Where `drift_at` is: the documents (baseline, run) and the path.
struct At {
    docs: (u64, u64),
    path: String,
}

fn items(x: &Node) -> Option<&Node> {
    x.items.as_deref()
}

/// `b`, `r`, `n`: the baseline's, the run's and the next baseline's node at one path.
fn drift_at(b: &Node, r: &Node, n: &Node, at: At, out: &mut FacetDrift) {
    let (docs, path) = (at.docs, at.path.as_str());
    if new_types(b.kinds, r.kinds) != 0 {
        let d = PathDrift {
            path: describe(path).to_string(),
            count: r.deviated,
            examples: r.examples.clone(),
            was: type_names(b.kinds),
            now: type_names(r.kinds),
        };
        FacetDrift::add(&mut out.type_changed, &mut out.more, d);
    }
    let children = r
        .fields
        .iter()
        .map(|(k, c)| (join(path, k), Some(c), b.field(k), n.field(k)))
        .chain(items(r).map(|c| (format!("{path}[]"), Some(c), items(b), items(n))));
    let lost = b
        .fields
        .iter()
        .filter(|(k, _)| r.field(k).is_none())
        .map(|(k, c)| (join(path, k), None, Some(c), None))
        .chain(
            items(b)
                .filter(|_| r.items.is_none())
                .map(|c| (format!("{path}[]"), None, Some(c), None)),
        );
    for (p, rc, bc, nc) in children.chain(lost) {
        match (rc, bc, nc) {
            (Some(rc), Some(bc), Some(nc)) => drift_at(bc, rc, nc, At { docs, path: p }, out),
            // Below a path only ever null: its first shape, taken in silently.
            (Some(_), None, _) if only_null(b.kinds) => {}
            (Some(rc), None, Some(_)) => {
                let d = PathDrift {
                    path: p,
                    count: rc.seen,
                    examples: rc.examples.clone(),
                    ..PathDrift::default()
                };
                FacetDrift::add(&mut out.appeared, &mut out.more, d);
            }
            (Some(_), None, None) => out.untracked += 1,
            (None, Some(bc), _) if !bc.gone && gone(bc.seen, docs.0, docs.1) => {
                let d = PathDrift {
                    path: p,
                    count: docs.1.saturating_mul(bc.seen) / docs.0.max(1),
                    ..PathDrift::default()
                };
                FacetDrift::add(&mut out.disappeared, &mut out.more, d);
            }
            _ => {}
        }
    }
}

/// The baseline after a run: what both saw, the paths the run found gone marked so (reported
/// once), the paths it saw unmarked; at most [`MAX_PATHS`] paths, the baseline's first (a new
/// path joins only while there is room for it and everything under it).
pub fn merged(base: Option<&Shape>, run: &Shape) -> Shape {
    let Some(base) = base else {
        let root = run.root.cleaned();
        return Shape {
            docs: run.docs,
            paths: root.size(),
            untracked: 0,
            root,
        };
    };
    let mut room = MAX_PATHS.saturating_sub(base.root.size());
    let root = merge_at(
        &base.root,
        Some(&run.root),
        (base.docs, run.docs),
        &mut room,
    );
    Shape {
        docs: base.docs + run.docs,
        paths: root.size(),
        untracked: 0,
        root,
    }
}

/// `r`: the run's node at this path (`None`: the run never reached it, nothing is judged).
/// `room`: paths the baseline may still take in.
fn merge_at(b: &Node, r: Option<&Node>, docs: (u64, u64), room: &mut u64) -> Node {
    let mut out = Node::default();
    out.kinds = b.kinds | r.map_or(0, |r| r.kinds);
    out.seen = b.seen + r.map_or(0, |r| r.seen);
    out.gone = b.gone;
    let mark = |c: &Node, in_run: bool| match r {
        None => c.gone,
        Some(_) if in_run => false,
        Some(_) => c.gone || gone(c.seen, docs.0, docs.1),
    };
    for (k, bc) in &b.fields {
        let rc = r.and_then(|r| r.field(k));
        let mut m = merge_at(bc, rc, docs, room);
        m.gone = mark(bc, rc.is_some());
        out.fields.push((k.clone(), m));
    }
    if let Some(bi) = b.items.as_deref() {
        let ri = r.and_then(|r| r.items.as_deref());
        let mut m = merge_at(bi, ri, docs, room);
        m.gone = mark(bi, ri.is_some());
        out.items = Some(Box::new(m));
    }
    let Some(r) = r else { return out };
    let mut take = |c: &Node| {
        let need = 1 + c.size();
        (need <= *room).then(|| {
            *room -= need;
            c.cleaned()
        })
    };
    let mut added = false;
    for (k, rc) in &r.fields {
        if b.field(k).is_none()
            && let Some(c) = take(rc)
        {
            out.fields.push((k.clone(), c));
            added = true;
        }
    }
    if added {
        out.fields.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(ri) = r.items.as_deref()
        && b.items.is_none()
    {
        out.items = take(ri).map(Box::new);
    }
    out
}

/// The stored baseline of every kind of document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The run that stored it, and its lease's fencing token (a run never replaces the
    /// baseline of a later run: its token is lower).
    pub updated_by: String,
    pub fence: u64,
    /// Seconds since the epoch.
    pub updated_at: i64,
    pub shapes: Shapes,
    /// What `updated_by` compared with: a retried end of that run compares with it again,
    /// so its drift is the same and reported by it alone.
    pub previous: Shapes,
}

impl Baseline {
    /// What run `sync_id` compares with.
    pub fn for_run(&self, sync_id: &str) -> &Shapes {
        if self.updated_by == sync_id {
            &self.previous
        } else {
            &self.shapes
        }
    }

    /// The baseline after run `sync_id` (lease token `fence`) observed `seen`, compared with
    /// `base` (its `for_run`).
    pub fn after(base: &Shapes, seen: &Shapes, sync_id: &str, fence: u64, at: Timestamp) -> Self {
        let mut shapes = base.clone();
        for (kind, run) in seen {
            shapes.insert(kind.clone(), merged(base.get(kind), run));
        }
        Baseline {
            updated_by: sync_id.to_string(),
            fence,
            updated_at: at.0,
            shapes,
            previous: base.clone(),
        }
    }
}

/// How a run's shapes changed against its baseline, one entry per kind that changed. A kind
/// the baseline does not know yet (the first run to see it) reports nothing: it sets it.
pub fn report(base: &Shapes, seen: &Shapes) -> Vec<FacetDrift> {
    seen.iter()
        .filter_map(|(kind, run)| base.get(kind).and_then(|b| drift(kind, b, run)))
        .collect()
}
