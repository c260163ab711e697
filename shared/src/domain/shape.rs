//! Schema drift: shapes (`drift.rs`: what changed, the baseline). The shape of each kind of document (the property, its translations, its
//! reviews) is a tree of JSON paths, each with the types seen at it and in how many documents.
//! A baseline shape is kept between runs; a run observes the documents it parses and, when it
//! ends, reports the paths that appeared, disappeared or changed type since the baseline (with
//! counts and example hotel ids), then folds what it saw into the baseline, so each change is
//! reported once. A path is gone when a run saw none of it though the baseline's frequency
//! predicted many; it stays in the baseline, marked (the documents a run parses are only the
//! changed ones: unchanged ones may still have it), until a run sees it again.
//!
//! Policy `evolve` (the default) accepts new shapes and reports them. Policy `freeze` holds back
//! a changed document with a path or type the baseline lacks (contract rule `schema`): it is
//! quarantined until an operator accepts it, and an accepted document teaches the baseline.
//!
//! Paths: `hotel_name`, `address.city`, `photos[]` (the items of an array), `photos[].url`;
//! a reviews document is an array: `[]`, `[].date`. Numbers are one type (integers and
//! decimals mix in the recorded bodies); a path only ever seen as null takes its first type
//! without a report (nullable fields are null in most recordings).
//!
//! What is observed: documents whose bytes changed (the others are not parsed) and that are
//! stored (they keep their contract, or an operator accepted them). Counts are of documents
//! observed; a property redone after a crash or a hand-over may count twice.

use super::contract::{Report, Rule};
use super::settings::SchemaPolicy;
use super::view::{Kind, View};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Paths tracked per kind of document; paths beyond are counted as untracked, not kept.
pub const MAX_PATHS: u64 = 2000;
/// Example hotel ids kept per changed path.
pub const MAX_EXAMPLES: usize = 3;
const NULL: u8 = 1;
const TYPES: [(u8, &str); 6] = [
    (NULL, "null"),
    (2, "boolean"),
    (4, "number"),
    (8, "string"),
    (16, "array"),
    (32, "object"),
];

fn bit(k: Kind) -> u8 {
    match k {
        Kind::Null => NULL,
        Kind::Bool => 2,
        Kind::Int | Kind::Float => 4,
        Kind::Str => 8,
        Kind::Array => 16,
        Kind::Object => 32,
    }
}

/// The names of the types in a set.
pub fn type_names(bits: u8) -> Vec<String> {
    TYPES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Whether a baseline knows no type but null at a path (its first type, and what is under
/// it, is taken in silently).
pub(super) fn only_null(kinds: u8) -> bool {
    kinds & !NULL == 0
}

/// Types in `now` the baseline's `was` lacks, when the baseline knew a type (not only null).
pub(super) fn new_types(was: u8, now: u8) -> u8 {
    if was & !NULL == 0 {
        return 0;
    }
    now & !was & !NULL
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One path of a shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Node {
    /// Types seen (a bit set).
    #[serde(rename = "k")]
    pub kinds: u8,
    /// Documents the path is in.
    #[serde(rename = "n")]
    pub seen: u64,
    /// (A run's shape) documents where the path is new or has a new type.
    #[serde(rename = "d", default, skip_serializing_if = "is_zero")]
    pub deviated: u64,
    /// (A run's shape) hotels of the first such documents.
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<i64>,
    /// Members, sorted by key.
    #[serde(rename = "f", default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, Node)>,
    /// The items of an array.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Node>>,
    /// (A baseline) reported gone: not reported again, until a run sees it again. A gone
    /// path stays in the baseline: the documents a run parses are the changed ones, and the
    /// others may still have it.
    #[serde(rename = "g", default, skip_serializing_if = "is_false")]
    pub gone: bool,
    /// The last document counted in `seen` / `deviated` (each document counts once per path).
    #[serde(skip)]
    stamp: u64,
    #[serde(skip)]
    dev_stamp: u64,
}

impl PartialEq for Node {
    fn eq(&self, o: &Self) -> bool {
        (
            self.kinds,
            self.seen,
            self.deviated,
            &self.examples,
            &self.fields,
            &self.items,
            self.gone,
        ) == (
            o.kinds,
            o.seen,
            o.deviated,
            &o.examples,
            &o.fields,
            &o.items,
            o.gone,
        )
    }
}

impl Node {
    pub fn field(&self, key: &str) -> Option<&Node> {
        self.fields
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.fields[i].1)
    }

    pub(super) fn size(&self) -> u64 {
        self.fields.iter().map(|(_, c)| 1 + c.size()).sum::<u64>()
            + self.items.as_ref().map_or(0, |i| 1 + i.size())
    }

    /// Without a run's deviations (as a baseline keeps it).
    pub(super) fn cleaned(&self) -> Node {
        Node {
            kinds: self.kinds,
            seen: self.seen,
            fields: self
                .fields
                .iter()
                .map(|(k, c)| (k.clone(), c.cleaned()))
                .collect(),
            items: self.items.as_ref().map(|i| Box::new(i.cleaned())),
            ..Node::default()
        }
    }

    fn deviate(&mut self, w: &Walk) {
        if self.dev_stamp != w.stamp {
            self.dev_stamp = w.stamp;
            self.deviated += 1;
            if self.examples.len() < MAX_EXAMPLES && !self.examples.contains(&w.hotel_id) {
                self.examples.push(w.hotel_id);
            }
        }
    }
}

/// The shape of one kind of document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Documents observed.
    pub docs: u64,
    /// Paths tracked (at most [`MAX_PATHS`]).
    pub paths: u64,
    /// Members met beyond [`MAX_PATHS`] (not tracked), counted each time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untracked: u64,
    pub root: Node,
}

/// The shapes of every kind of document, by kind (`Facet::shape_kind`).
pub type Shapes = BTreeMap<String, Shape>;

/// Where a walk stands in the baseline.
#[derive(Clone, Copy)]
enum Base<'a> {
    /// No baseline for this kind: nothing deviates.
    Off,
    At(&'a Node),
    /// This path is not in the baseline (it deviates; its children are part of it).
    New,
    /// Below a new path.
    Gone,
}

impl<'a> Base<'a> {
    fn field(self, key: &str) -> Base<'a> {
        match self {
            Base::At(b) if only_null(b.kinds) => Base::Off,
            Base::At(b) => b.field(key).map_or(Base::New, Base::At),
            Base::New | Base::Gone => Base::Gone,
            Base::Off => Base::Off,
        }
    }
    fn items(self) -> Base<'a> {
        match self {
            Base::At(b) if only_null(b.kinds) => Base::Off,
            Base::At(b) => b.items.as_deref().map_or(Base::New, Base::At),
            Base::New | Base::Gone => Base::Gone,
            Base::Off => Base::Off,
        }
    }
}

struct Walk {
    hotel_id: i64,
    stamp: u64,
    paths: u64,
    untracked: u64,
}

impl Shape {
    /// Adds one document of hotel `hotel_id`, noting where it deviates from `base`.
    pub fn observe<V: View>(&mut self, doc: &V, base: Option<&Shape>, hotel_id: i64) {
        self.docs += 1;
        let mut w = Walk {
            hotel_id,
            stamp: self.docs,
            paths: self.paths,
            untracked: 0,
        };
        let base = base.map_or(Base::Off, |b| Base::At(&b.root));
        observe(&mut self.root, doc, base, &mut w);
        self.paths = w.paths;
        self.untracked += w.untracked;
    }
}

fn observe<V: View>(acc: &mut Node, doc: &V, base: Base<'_>, w: &mut Walk) {
    let kind = doc.kind();
    let k = bit(kind);
    acc.kinds |= k;
    if acc.stamp != w.stamp {
        acc.stamp = w.stamp;
        acc.seen += 1;
    }
    match base {
        Base::New => acc.deviate(w),
        Base::At(b) if new_types(b.kinds, k) != 0 => acc.deviate(w),
        _ => {}
    }
    match kind {
        Kind::Object => {
            // Members arrive in key order (both trees sort them), like `fields`: the next one
            // is usually just after the last found, in either tree.
            let (mut hint, mut base_hint) = (0, 0);
            doc.each_member(&mut |key, child| {
                let i = match find(&acc.fields, key, hint) {
                    Ok(i) => i,
                    Err(_) if w.paths >= MAX_PATHS => {
                        w.untracked += 1;
                        return;
                    }
                    Err(i) => {
                        w.paths += 1;
                        acc.fields.insert(i, (key.to_string(), Node::default()));
                        i
                    }
                };
                hint = i + 1;
                let b = match base {
                    Base::At(b) if !only_null(b.kinds) => match find(&b.fields, key, base_hint) {
                        Ok(j) => {
                            base_hint = j + 1;
                            Base::At(&b.fields[j].1)
                        }
                        Err(_) => Base::New,
                    },
                    other => other.field(key),
                };
                observe(&mut acc.fields[i].1, child, b, w);
            })
        }
        Kind::Array => {
            let items = doc.items();
            if items.is_empty() {
                return;
            }
            if acc.items.is_none() {
                if w.paths >= MAX_PATHS {
                    w.untracked += 1;
                    return;
                }
                w.paths += 1;
                acc.items = Some(Box::default());
            }
            if let Some(node) = acc.items.as_deref_mut() {
                let b = base.items();
                for item in items {
                    observe(node, item, b, w);
                }
            }
        }
        _ => {}
    }
}

/// Where `key` is in sorted `fields`: `hint` first, else a binary search.
fn find(fields: &[(String, Node)], key: &str, hint: usize) -> Result<usize, usize> {
    match fields.get(hint) {
        Some((k, _)) if k == key => Ok(hint),
        _ => fields.binary_search_by(|(k, _)| k.as_str().cmp(key)),
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn describe(path: &str) -> &str {
    if path.is_empty() { "(document)" } else { path }
}

/// Where `doc` leaves the baseline `base`: (path, what), each path once, in document order.
pub fn deviations<V: View>(base: &Shape, doc: &V) -> Vec<(String, String)> {
    let mut out = Vec::new();
    deviate_at(&base.root, doc, &mut String::new(), &mut out);
    out
}

fn push(out: &mut Vec<(String, String)>, path: &str, what: impl FnOnce() -> String) {
    if !out.iter().any(|(p, _)| p == path) {
        out.push((describe(path).to_string(), what()));
    }
}

fn lacks(kind: Kind) -> String {
    format!(
        "a path the baseline lacks ({})",
        type_names(bit(kind)).join("")
    )
}

/// `path`: a buffer holding this node's path (extended and cut back around children, so a
/// path is spelled only when it deviates).
fn deviate_at<V: View>(b: &Node, doc: &V, path: &mut String, out: &mut Vec<(String, String)>) {
    let k = bit(doc.kind());
    if new_types(b.kinds, k) != 0 {
        push(out, path, || {
            format!(
                "{} where the baseline has {}",
                type_names(k).join(""),
                type_names(b.kinds).join(" or ")
            )
        });
    }
    if only_null(b.kinds) {
        // Its first type, and what is under it: taken in silently.
        return;
    }
    let len = path.len();
    match doc.kind() {
        Kind::Object => {
            let mut hint = 0;
            doc.each_member(&mut |key, child| {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match find(&b.fields, key, hint) {
                    Ok(i) => {
                        hint = i + 1;
                        deviate_at(&b.fields[i].1, child, path, out);
                    }
                    Err(_) => push(out, path, || lacks(child.kind())),
                }
                path.truncate(len);
            })
        }
        Kind::Array => {
            path.push_str("[]");
            for item in doc.items() {
                match b.items.as_deref() {
                    Some(c) => deviate_at(c, item, path, out),
                    None => push(out, path, || lacks(item.kind())),
                }
            }
            path.truncate(len);
        }
        _ => {}
    }
}

/// One run's schema watch: the baseline it compares with, its policy and what it observed
/// (shared by the run's property tasks).
pub struct Watch {
    policy: SchemaPolicy,
    base: Shapes,
    seen: std::sync::Mutex<Shapes>,
}

impl Watch {
    pub fn new(policy: SchemaPolicy, base: Shapes, seen: Shapes) -> Self {
        Watch {
            policy,
            base,
            seen: std::sync::Mutex::new(seen),
        }
    }

    /// Checks a `kind` document of `hotel_id` under the policy (a frozen shape adds `schema`
    /// violations to `report`, whatever else it breaks, unless its content is `stored`
    /// already), then observes it if it
    /// is to be stored: it keeps its contract, is stored already, or an operator `accepted` it
    /// (its violations stay in the report: the acceptance they needed is recorded).
    pub fn inspect<V: View>(
        &self,
        kind: &str,
        hotel_id: i64,
        doc: &V,
        (stored, accepted): (bool, bool),
        report: &mut Report,
    ) {
        let base = self.base.get(kind);
        // Judged whatever else the document breaks: the note then names every rule the
        // operator waives by accepting it.
        if let (SchemaPolicy::Freeze, Some(b), false) = (self.policy, base, stored) {
            for (path, what) in deviations(b, doc) {
                report.push(path, Rule::Schema, Some(what));
            }
        }
        if report.is_clean() || stored || accepted {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = seen.get_mut(kind) {
                s.observe(doc, base, hotel_id);
            } else {
                let mut s = Shape::default();
                s.observe(doc, base, hotel_id);
                seen.insert(kind.to_string(), s);
            }
        }
    }

    /// What the run observed so far (saved with each checkpoint).
    pub fn seen(&self) -> Shapes {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
