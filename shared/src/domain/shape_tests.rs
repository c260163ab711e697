//! Tests of `shape.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;
use crate::domain::drift::*;
use crate::domain::json::Json;
use crate::domain::time::Timestamp;
use serde_json::{Value, json};

use crate::domain::fixtures::{property, reviews};

/// A shape of `n` documents made by `doc(i)` (hotel ids 1..=n), compared with `base`.
fn shape_of(n: i64, base: Option<&Shape>, doc: impl Fn(i64) -> Value) -> Shape {
    let mut s = Shape::default();
    for i in 1..=n {
        s.observe(&doc(i), base, i);
    }
    s
}

fn paths(d: &[PathDrift]) -> Vec<&str> {
    d.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn a_shape_counts_each_path_once_per_document_and_numbers_are_one_type() {
    let s = shape_of(
        3,
        None,
        |i| json!({"a": i, "b": {"c": if i == 1 { json!(1.5) } else { json!(2) }}, "l": [{"u": "x"}, {"u": "y"}]}),
    );
    assert_eq!(s.docs, 3);
    assert_eq!(s.paths, 6, "a, b, b.c, l, l[], l[].u");
    let l = s.root.field("l").unwrap();
    let u = l.items.as_ref().unwrap().field("u").unwrap();
    assert_eq!(
        (l.seen, u.seen),
        (3, 3),
        "two items count once per document"
    );
    assert_eq!(
        type_names(s.root.field("b").unwrap().field("c").unwrap().kinds),
        ["number"]
    );
}

#[test]
fn the_json_tree_and_value_observe_the_same_shape() {
    let doc = property();
    let bytes = serde_json::to_vec(&doc).unwrap();
    let tree = Json::parse(&bytes).unwrap();
    let mut a = Shape::default();
    a.observe(&doc, None, 1);
    let mut b = Shape::default();
    b.observe(&tree, None, 1);
    assert_eq!(a, b);
    assert!(a.paths > 50, "the recorded property has {} paths", a.paths);
}

#[test]
fn the_recorded_bodies_do_not_drift_from_a_baseline_of_themselves() {
    for doc in [property(), reviews()] {
        let base = shape_of(30, None, |_| doc.clone());
        let base = merged(None, &base);
        assert!(deviations(&base, &doc).is_empty());
        let run = shape_of(30, Some(&base), |_| doc.clone());
        assert_eq!(drift("k", &base, &run), None);
    }
}

#[test]
fn a_run_reports_appeared_disappeared_and_type_changed_paths_with_counts_and_examples() {
    let base = merged(
        None,
        &shape_of(100, None, |i| {
            let mut d = json!({"name": "h", "stars": 4, "fax": null, "old": {"x": 1}});
            if i % 10 == 0 {
                d["rare"] = json!(1);
            }
            d
        }),
    );
    // 40 documents: `old` gone, `stars` a string in 5 of them, a new `extra.deep` in 2, `rare`
    // absent (it was in a tenth: 4 expected, too few to call gone), `fax` filled.
    let run = shape_of(40, Some(&base), |i| {
        let mut d =
            json!({"name": "h", "stars": if i <= 5 { json!("4") } else { json!(4) }, "fax": "+44"});
        if i > 38 {
            d["extra"] = json!({"deep": true});
        }
        d
    });
    let d = drift("property", &base, &run).expect("a drift");
    assert_eq!(d.documents, 40);
    assert_eq!(paths(&d.appeared), ["extra"], "only the topmost new path");
    assert_eq!(
        (d.appeared[0].count, &d.appeared[0].examples[..]),
        (2, &[39, 40][..])
    );
    assert_eq!(paths(&d.disappeared), ["old"]);
    assert_eq!(
        d.disappeared[0].count, 40,
        "predicted from a baseline of 100 in 100"
    );
    assert_eq!(paths(&d.type_changed), ["stars"]);
    let t = &d.type_changed[0];
    assert_eq!((t.count, &t.examples[..]), (5, &[1, 2, 3][..]));
    assert_eq!(
        (t.was.clone(), t.now.clone()),
        (
            vec!["number".to_string()],
            vec!["number".to_string(), "string".to_string()]
        )
    );
}

#[test]
fn drift_is_reported_once_the_baseline_takes_it_in() {
    let base = merged(None, &shape_of(50, None, |_| json!({"a": 1, "b": 2})));
    let run = shape_of(50, Some(&base), |_| json!({"a": "1", "c": 3}));
    let d = drift("k", &base, &run).unwrap();
    assert_eq!(
        (
            paths(&d.appeared),
            paths(&d.disappeared),
            paths(&d.type_changed)
        ),
        (vec!["c"], vec!["b"], vec!["a"])
    );
    let next = merged(Some(&base), &run);
    assert!(
        next.root.field("b").is_some_and(|b| b.gone),
        "a gone path stays, marked: unchanged documents may still have it"
    );
    assert!(deviations(&next, &json!({"a": 1, "b": 2})).is_empty());
    assert_eq!(next.docs, 100);
    let again = shape_of(50, Some(&next), |_| json!({"a": "1", "c": 3}));
    assert_eq!(
        drift("k", &next, &again),
        None,
        "the same shape again: nothing to report"
    );
    assert!(deviations(&next, &json!({"a": "1", "c": 3})).is_empty());
    // Seen again: unmarked; gone again later, reported again.
    let back = merged(
        Some(&next),
        &shape_of(50, Some(&next), |_| json!({"a": 1, "b": 2})),
    );
    assert!(!back.root.field("b").unwrap().gone);
    let later = shape_of(60, Some(&back), |_| json!({"a": 1}));
    assert_eq!(
        paths(&drift("k", &back, &later).unwrap().disappeared),
        ["b"]
    );
}

#[test]
fn a_small_run_or_a_rare_field_is_not_called_gone() {
    let base = merged(None, &shape_of(100, None, |_| json!({"a": 1, "b": 2})));
    let small = shape_of(19, Some(&base), |_| json!({"a": 1}));
    assert_eq!(drift("k", &base, &small), None, "19 expected: too few");
    assert!(!merged(Some(&base), &small).root.field("b").unwrap().gone);
    let enough = shape_of(20, Some(&base), |_| json!({"a": 1}));
    assert_eq!(
        paths(&drift("k", &base, &enough).unwrap().disappeared),
        ["b"]
    );
}

#[test]
fn a_path_only_ever_null_takes_its_first_type_without_a_report() {
    let base = merged(None, &shape_of(10, None, |_| json!({"fax": null})));
    let run = shape_of(10, Some(&base), |_| json!({"fax": "+1"}));
    assert_eq!(drift("k", &base, &run), None);
    let back = shape_of(
        1,
        Some(&merged(Some(&base), &run)),
        |_| json!({"fax": null}),
    );
    assert_eq!(
        back.root.field("fax").unwrap().deviated,
        0,
        "null is never a new type"
    );
}

#[test]
fn deviations_name_each_new_path_or_type_once() {
    let base = merged(
        None,
        &shape_of(5, None, |_| json!({"p": [{"u": "x"}], "n": 1})),
    );
    let doc = json!({"p": [{"u": "x", "w": 1}, {"u": 2, "w": 2}], "n": 1, "z": {"deep": 1}});
    let d = deviations(&base, &doc);
    let got: Vec<&str> = d.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(got, ["p[].w", "p[].u", "z"], "in document order");
    assert_eq!(d[0].1, "a path the baseline lacks (number)");
    assert_eq!(d[1].1, "number where the baseline has string");
}

#[test]
fn paths_beyond_the_cap_are_counted_not_kept() {
    let mut doc = serde_json::Map::new();
    for i in 0..(MAX_PATHS + 500) {
        doc.insert(format!("k{i:05}"), json!(i));
    }
    let s = shape_of(2, None, |_| Value::Object(doc.clone()));
    assert_eq!((s.paths, s.untracked), (MAX_PATHS, 1000));
    let m = merged(None, &s);
    assert_eq!(m.paths, MAX_PATHS);
    let bigger = merged(Some(&m), &shape_of(1, None, |_| json!({"new": 1})));
    assert!(bigger.root.field("new").is_none() && bigger.paths == MAX_PATHS);
}

#[test]
fn a_shape_read_back_continues_counting() {
    let mut s = shape_of(3, None, |_| json!({"a": [1, 2]}));
    let text = serde_json::to_string(&s).unwrap();
    let mut back: Shape = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    s.observe(&json!({"a": [1]}), None, 9);
    back.observe(&json!({"a": [1]}), None, 9);
    assert_eq!(back, s);
    assert_eq!(
        back.root.field("a").unwrap().items.as_ref().unwrap().seen,
        4
    );
}

#[test]
fn a_retried_end_compares_with_the_same_baseline() {
    let base: Shapes = [(
        "property".to_string(),
        merged(None, &shape_of(30, None, |_| json!({"a": 1}))),
    )]
    .into();
    let mut seen = Shapes::new();
    seen.insert(
        "property".into(),
        shape_of(30, base.get("property"), |_| json!({"a": 1, "b": 1})),
    );
    let after = Baseline::after(&base, &seen, "S1", 7, Timestamp(5));
    assert_eq!(
        report(after.for_run("S1"), &seen).len(),
        1,
        "S1 again: same drift"
    );
    assert!(
        report(after.for_run("S2"), &seen).is_empty(),
        "a later run: already known"
    );
    let again = Baseline::after(after.for_run("S1"), &seen, "S1", 7, Timestamp(6));
    assert_eq!(
        again.shapes, after.shapes,
        "ending twice stores the same baseline"
    );
}

#[test]
fn a_new_kind_sets_its_baseline_without_a_report() {
    let mut seen = Shapes::new();
    seen.insert("reviews".into(), shape_of(30, None, |_| reviews()));
    assert!(report(&Shapes::new(), &seen).is_empty());
}

#[test]
fn a_frozen_watch_holds_new_shapes_unless_known_and_learns_only_what_is_stored() {
    let base: Shapes = [(
        "property".to_string(),
        merged(None, &shape_of(30, None, |_| json!({"a": 1}))),
    )]
    .into();
    let w = Watch::new(SchemaPolicy::Freeze, base.clone(), Shapes::new());
    let mut r = Report::default();
    w.inspect(
        "property",
        1,
        &json!({"a": 1, "b": 2}),
        (false, false),
        &mut r,
    );
    assert_eq!(r.rules(), [Rule::Schema]);
    assert_eq!(r.violations[0].path, "b");
    assert!(w.seen().is_empty(), "a held document is not observed");
    let mut r = Report::default();
    w.inspect(
        "property",
        2,
        &json!({"a": 1, "b": 2}),
        (false, true),
        &mut r,
    );
    assert_eq!(
        r.rules(),
        [Rule::Schema],
        "the acceptance it needed is on record"
    );
    assert_eq!(
        w.seen()["property"].docs,
        1,
        "an accepted document teaches the baseline"
    );
    let mut r = Report::default();
    w.inspect(
        "property",
        3,
        &json!({"a": 1, "c": 2}),
        (true, false),
        &mut r,
    );
    assert!(r.is_clean(), "content stored already is not held again");
    assert_eq!(w.seen()["property"].docs, 2);
    let evolve = Watch::new(SchemaPolicy::Evolve, base, Shapes::new());
    let mut r = Report::default();
    evolve.inspect(
        "property",
        3,
        &json!({"a": 1, "b": 2}),
        (false, false),
        &mut r,
    );
    assert!(r.is_clean());
    assert_eq!(
        evolve.seen()["property"].root.field("b").unwrap().examples,
        [3]
    );
}

#[test]
fn a_frozen_watch_without_a_baseline_holds_nothing() {
    let w = Watch::new(SchemaPolicy::Freeze, Shapes::new(), Shapes::new());
    let mut r = Report::default();
    w.inspect("lang", 1, &json!({"a": 1}), (false, false), &mut r);
    assert!(r.is_clean());
}

#[test]
fn the_policy_parses_from_its_setting_text() {
    assert_eq!("Freeze ".parse(), Ok(SchemaPolicy::Freeze));
    assert_eq!("evolve".parse(), Ok(SchemaPolicy::Evolve));
    assert!("thaw".parse::<SchemaPolicy>().is_err());
}

#[test]
fn a_full_baseline_takes_no_new_path_and_does_not_report_it_every_run() {
    // 1,990 paths in the baseline; a run brings 20 new ones that sort first.
    let mut old = serde_json::Map::new();
    for i in 0..1990 {
        old.insert(format!("z{i:05}"), json!(i));
    }
    let base = merged(None, &shape_of(30, None, |_| Value::Object(old.clone())));
    assert_eq!(base.paths, 1990);
    let mut new = old.clone();
    for i in 0..20 {
        new.insert(format!("a{i:02}"), json!(i));
    }
    let run = shape_of(30, Some(&base), |_| Value::Object(new.clone()));
    let next = merged(Some(&base), &run);
    assert_eq!(
        next.paths, MAX_PATHS,
        "capped, whatever the order of the keys"
    );
    let d = drift("k", &base, &run).unwrap();
    assert_eq!((d.appeared.len() as u64 + d.more, d.untracked), (10, 10));
    let again = shape_of(30, Some(&next), |_| Value::Object(new.clone()));
    assert_eq!(
        drift("k", &next, &again),
        None,
        "those taken in are known now; the others stay untracked, never reported"
    );
}

#[test]
fn what_a_null_only_path_first_holds_is_taken_in_silently() {
    let base = merged(None, &shape_of(30, None, |_| json!({"x": null, "y": 1})));
    let doc = json!({"x": {"a": 1, "b": [2]}, "y": 1});
    assert!(deviations(&base, &doc).is_empty());
    let run = shape_of(30, Some(&base), |_| doc.clone());
    assert_eq!(drift("k", &base, &run), None);
    let next = merged(Some(&base), &run);
    assert!(next.root.field("x").unwrap().field("a").is_some());
    // From then on, it is known: a new member under it is a change.
    let later = json!({"x": {"a": 1, "b": [2], "c": true}, "y": 1});
    assert_eq!(deviations(&next, &later)[0].0, "x.c");
}
