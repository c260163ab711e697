//! Tests of `document.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;
use crate::domain::facet::Facet;
use serde_json::json;

fn fixture() -> Value {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/property_1641879.json"
    ))
    .unwrap()
}

#[test]
fn canonical_form_ignores_key_order_whitespace_and_photo_ties() {
    let a = json!({"b": 1, "a": {"y": [1, 2], "x": "é"}, "photos": [
        {"url": "u2", "main_photo": false, "class_order": 0, "score": 4.5},
        {"url": "u1", "main_photo": false, "class_order": 0, "score": 4.5},
        {"url": "u0", "main_photo": true, "class_order": 0, "score": 1.0}]});
    let b: Value = serde_json::from_str(
        r#"{ "photos": [ {"url":"u0","main_photo":true,"class_order":0,"score":1.0},
             {"url":"u1","main_photo":false,"class_order":0,"score":4.5},
             {"url":"u2","main_photo":false,"class_order":0,"score":4.5} ],
             "a": {"x": "é", "y": [1, 2]}, "b": 1 }"#,
    )
    .unwrap();
    let (ca, cb) = (CanonicalDoc::new(a), CanonicalDoc::new(b));
    assert_eq!(ca.bytes, cb.bytes);
    assert_eq!(ca.hash, cb.hash);
    assert!(String::from_utf8(ca.bytes).unwrap().starts_with(
        r#"{"a":{"x":"é","y":[1,2]},"b":1,"photos":[{"class_order":0,"main_photo":true"#
    ));
}

/// The engine's path (`canonical_object`, from bytes) and the reference (`CanonicalDoc`,
/// from a `Value`) write the same bytes and hash.
fn same_as_reference(body: &[u8]) {
    let fast = canonical_object(body, |_, _| Report::default()).map(|c| (c.bytes, c.hash));
    let reference = serde_json::from_slice::<Value>(body)
        .map_err(|e| e.to_string())
        .and_then(|v| Facet::Property.canonical(v))
        .map(|c| (c.bytes, c.hash));
    match (fast, reference) {
        (Ok(a), Ok(b)) => assert!(a == b, "{}", String::from_utf8_lossy(body)),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "{}: {:?} vs {:?}",
            String::from_utf8_lossy(body),
            a.map(|x| x.1),
            b.map(|x| x.1)
        ),
    }
}

#[test]
fn the_fast_canonical_form_equals_the_reference_on_recorded_and_edge_bodies() {
    same_as_reference(include_bytes!(
        "../../../tests/fixtures/property_1641879.json"
    ));
    let pretty = serde_json::to_vec_pretty(&fixture()).unwrap();
    same_as_reference(&pretty);
    let reviews = include_str!("../../../tests/fixtures/reviews_1641879_100.json");
    same_as_reference(format!(r#"{{"reviews": {reviews}, "a": 1}}"#).as_bytes());
    same_as_reference(format!(r#"{{"data": {{"hotel_id": 1, "r": {reviews}}}}}"#).as_bytes());
    for body in [
        r#"{"photos": [{"url": "b", "score": 2}, {"url": "a", "score": 2}, {"main_photo": true}]}"#,
        r#"{"x": {"photos": [{"url": "b", "class_order": 2}, {"url": "a"}]}}"#,
        r#"{"b": 1, "a": 2, "b": {"c": "\/é	"}}"#,
        r#"{"data": {"data": 1}}"#,
        r#"{"data": [1]}"#,
        r#"{"data": 1, "data": {"hotel_id": 2}}"#,
        r#"{"n": [0, -0, 1.0, 1e2, -1.5e-7, 18446744073709551615, -9223372036854775808]}"#,
        r#"[1]"#,
        r#""text""#,
        r#"{"a": 1,}"#,
        r#"{}"#,
    ] {
        same_as_reference(body.as_bytes());
    }
}

/// Random documents (keys repeated and out of order, escapes, numbers of every kind, photo
/// arrays with ties) written with random whitespace: both paths agree on every one.
#[test]
fn the_fast_canonical_form_equals_the_reference_on_generated_bodies() {
    struct Gen(u64);
    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn ws(&mut self, out: &mut String) {
            for _ in 0..self.next(3) {
                out.push([' ', '\n', '\t'][self.next(3) as usize]);
            }
        }
        fn string(&mut self, out: &mut String) {
            const PARTS: [&str; 9] = [
                "a", "photos", "url", "\\u00e9", "\\\"", "\\/", "é", "score", "\\n",
            ];
            out.push('"');
            for _ in 0..self.next(3) {
                out.push_str(PARTS[self.next(PARTS.len() as u64) as usize]);
            }
            out.push('"');
        }
        fn value(&mut self, depth: u32, out: &mut String) {
            self.ws(out);
            match self.next(if depth > 3 { 4 } else { 7 }) {
                0 => out.push_str(["null", "true", "false"][self.next(3) as usize]),
                1 => out.push_str(
                    [
                        "0",
                        "-0",
                        "7",
                        "-3",
                        "2.5",
                        "1e3",
                        "-0.0",
                        "18446744073709551615",
                    ][self.next(8) as usize],
                ),
                2 => self.string(out),
                3 => out.push_str(["1", "2", "3"][self.next(3) as usize]),
                4 | 5 => {
                    out.push('{');
                    for i in 0..self.next(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        if self.next(3) == 0 {
                            out.push_str("\"photos\"");
                        } else {
                            self.string(out);
                        }
                        self.ws(out);
                        out.push(':');
                        self.value(depth + 1, out);
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..self.next(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.value(depth + 1, out);
                    }
                    out.push(']');
                }
            }
            self.ws(out);
        }
    }
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let mut body = String::from("{\"photos\":");
        g.value(0, &mut body);
        body.push_str(",\"z\":");
        g.value(0, &mut body);
        body.push('}');
        same_as_reference(body.as_bytes());
    }
}

#[test]
fn map_iterates_in_key_order() {
    // `write_canonical` relies on it (serde_json's `preserve_order` would break it).
    let m: serde_json::Map<String, Value> =
        serde_json::from_str(r#"{"b": 1, "a": 2, "c": 3}"#).unwrap();
    assert!(m.keys().is_sorted());
}

#[test]
fn array_order_outside_photos_is_content() {
    let a = CanonicalDoc::new(json!({"facilities": [1, 2]}));
    let b = CanonicalDoc::new(json!({"facilities": [2, 1]}));
    assert_ne!(a.hash, b.hash);
}

#[test]
fn data_wrapper_is_unwrapped() {
    let doc = fixture();
    let wrapped = json!({ "data": doc.clone() });
    let canonical = |v| Facet::Property.canonical(v).unwrap().hash;
    assert_eq!(canonical(doc), canonical(wrapped));
}

#[test]
fn real_fixture_hashes_stably_and_is_compact() {
    let doc = fixture();
    let c = CanonicalDoc::new(doc.clone());
    assert_eq!(c.hash.len(), 64);
    assert!(c.bytes.len() < 70_000, "{}", c.bytes.len());
    assert_eq!(CanonicalDoc::new(doc).hash, c.hash);
}

#[test]
fn diff_names_changed_added_and_removed_paths() {
    let old = json!({"hotel_name": "A", "rating": 8.1, "rooms": [{"room_name": "x"}], "gone": 1});
    let new = json!({"hotel_name": "B", "rating": 8.1, "rooms": [{"room_name": "y"}, {"room_name": "z"}], "new": 2});
    let (paths, truncated) = changed_paths(&old, &new, 100);
    assert_eq!(
        paths,
        vec![
            "gone",
            "hotel_name",
            "new",
            "rooms[0].room_name",
            "rooms[1]"
        ]
    );
    assert!(!truncated);
    let (paths, truncated) = changed_paths(&old, &new, 2);
    assert_eq!(paths.len(), 2);
    assert!(truncated);
    assert!(changed_paths(&old, &old, 10).0.is_empty());
}

#[test]
fn parts_split_and_join_back() {
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let parts = split_parts(&bytes, 300);
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [300, 300, 300, 100]
    );
    assert_eq!(parts.concat(), bytes);
    assert_eq!(split_parts(&[], 300).len(), 1);
    assert_eq!(part_key("lang#fr@a", 0), "lang#fr@a");
    assert_eq!(part_key("lang#fr@a", 2), "lang#fr@a~2");
}

#[test]
fn summary_reads_the_recorded_shape() {
    let body = include_bytes!("../../../tests/fixtures/property_1641879.json");
    let s = canonical_object(body, |_, _| Report::default())
        .unwrap()
        .summary;
    assert_eq!(s.name.as_deref(), Some("The Z Hotel Covent Garden"));
    assert_eq!(s.country.as_deref(), Some("gb"));
    assert!(s.rating.is_some() && s.stars.is_some());
}
