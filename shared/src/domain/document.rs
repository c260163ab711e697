//! The upstream property document: canonical form, content hash and field-level diff.
//!
//! Canonical form = keys sorted, no insignificant whitespace, and every `photos` array put in a
//! total order (main photo first, then `class_order` ascending, `score` descending, `url`
//! ascending). Upstream returns equal-score photos in a non-deterministic order; without this,
//! identical content would look changed on every other sync.

use super::contract::Report;
use super::json::Json;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;

/// Upstream bodies come bare, or wrapped as `{"data": {...}}` (docs example). Unwrap the latter.
pub fn unwrap_envelope(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("data") => {
            m.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// A photo's place in the canonical order: main photo first, then `class_order` ascending,
/// `score` descending, `url` ascending (read once per photo, not once per comparison).
struct PhotoKey {
    main: bool,
    class_order: i64,
    score: f64,
    url: String,
}

impl PhotoKey {
    fn of(v: &Value) -> Self {
        PhotoKey {
            main: v
                .get("main_photo")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            class_order: v
                .get("class_order")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX),
            score: v.get("score").and_then(Value::as_f64).unwrap_or(0.0),
            url: v
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }
    }

    /// The same key read from a `Json` photo (the engine's fast path: one pass over its
    /// members, not a lookup per field).
    fn of_json(v: &Json<'_>) -> Self {
        let mut key = PhotoKey {
            main: false,
            class_order: i64::MAX,
            score: 0.0,
            url: String::new(),
        };
        for (k, field) in v.members() {
            match k.as_ref() {
                "main_photo" => key.main = field.as_bool().unwrap_or(false),
                "class_order" => key.class_order = field.as_i64().unwrap_or(i64::MAX),
                "score" => key.score = field.as_f64().unwrap_or(0.0),
                "url" => key.url = field.as_str().unwrap_or("").to_string(),
                _ => {}
            }
        }
        key
    }

    fn cmp(&self, o: &PhotoKey) -> Ordering {
        o.main
            .cmp(&self.main)
            .then(self.class_order.cmp(&o.class_order))
            .then(o.score.partial_cmp(&self.score).unwrap_or(Ordering::Equal))
            .then(self.url.cmp(&o.url))
    }
}

/// Sorts photos into the canonical order (stable: ties keep their order).
fn sort_photos<T>(items: &mut Vec<T>, key: impl Fn(&T) -> PhotoKey) {
    let mut keyed: Vec<(PhotoKey, T)> = items.drain(..).map(|v| (key(&v), v)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    items.extend(keyed.into_iter().map(|(_, v)| v));
}

/// Puts the document in canonical order (in place).
pub fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                normalize(child);
                if k == "photos"
                    && let Value::Array(items) = child
                {
                    sort_photos(items, PhotoKey::of);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// `normalize` for a parsed body (its objects are already in key order).
fn normalize_json(v: &mut Json<'_>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m.iter_mut() {
                normalize_json(child);
                if k == "photos"
                    && let Json::Array(items) = child
                {
                    sort_photos(items, PhotoKey::of_json);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalize_json),
        _ => {}
    }
}

/// A property or translation body in canonical form, straight from the response bytes (the
/// engine's path: no `Value` tree is built). Equal to `CanonicalDoc::new` of the parsed body,
/// byte for byte (tested), so hashes stored by either agree.
pub struct CanonicalBody {
    pub bytes: Vec<u8>,
    pub hash: String,
    pub summary: Summary,
    /// What the document breaks of its contract (`domain::contract`).
    pub report: Report,
}

/// Parses, unwraps `{"data": …}`, checks for an object, puts it in canonical order, checks it
/// (`check`: its contract) and writes it. Errors read as operators see them.
pub fn canonical_object(
    body: &[u8],
    check: impl FnOnce(&Json<'_>) -> Report,
) -> Result<CanonicalBody, String> {
    let parsed = Json::parse(body)
        .map_err(|e| format!("malformed upstream body: {e} ({} bytes)", body.len()))?;
    let mut doc = match parsed {
        Json::Object(mut m) if m.len() == 1 && m[0].0 == "data" => {
            m.pop().map(|(_, v)| v).unwrap_or(Json::Null)
        }
        other => other,
    };
    if !doc.is_object() {
        return Err("malformed upstream body: expected a JSON object".into());
    }
    normalize_json(&mut doc);
    let mut bytes = Vec::with_capacity(body.len() + 64);
    doc.write(&mut bytes);
    let hash = content_hash(&bytes);
    Ok(CanonicalBody {
        summary: Summary::of_json(&doc),
        report: check(&doc),
        bytes,
        hash,
    })
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            // `serde_json::Map` is a BTreeMap here (no `preserve_order`): its keys iterate in
            // sorted order (`map_iterates_in_key_order` fails if a dependency turns that off).
            out.push(b'{');
            for (i, (k, child)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, k);
                out.push(b':');
                write_canonical(child, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => write_json(out, other),
    }
}

/// Writes a key or scalar straight into the buffer (no temporary String). serde_json's escaping
/// is deterministic, and writing into a Vec cannot fail.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// The canonical bytes of a document (normalised, sorted keys, compact).
pub fn canonical_bytes(v: &Value) -> Vec<u8> {
    let mut owned = v.clone();
    normalize(&mut owned);
    let mut out = Vec::with_capacity(64 * 1024);
    write_canonical(&owned, &mut out);
    out
}

/// Digest of a raw response body (hex BLAKE3; equal bytes, equal digest). It only ever meets
/// digests of the same kind: a record holding another kind (SHA-256, before BLAKE3) just takes
/// the parse path once and is refreshed. BLAKE3, not SHA-256: every request computes it, and it
/// costs a third as much (BENCHMARKS.md, engine ceiling).
pub fn raw_digest(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

/// A response body parsed, or why it is malformed (as an operator reads it).
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("{e} ({} bytes)", body.len()))
}

/// Hex SHA-256 of the canonical bytes.
pub fn content_hash(canonical: &[u8]) -> String {
    let digest = Sha256::digest(canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A canonicalised upstream document, ready to compare and store.
#[derive(Debug, Clone)]
pub struct CanonicalDoc {
    pub value: Value,
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl CanonicalDoc {
    /// The canonical form of a document (already out of its envelope: `Facet::canonical`
    /// unwraps it, once).
    pub fn new(mut value: Value) -> Self {
        normalize(&mut value);
        let mut bytes = Vec::with_capacity(64 * 1024);
        write_canonical(&value, &mut bytes);
        let hash = content_hash(&bytes);
        CanonicalDoc { value, bytes, hash }
    }
}

/// JSON paths of what differs between `old` and `new` (`hotel_name`, `rooms[2].room_name`,
/// `photos[81]` for an added/removed element). At most `limit` paths; the bool says whether
/// more were cut.
pub fn changed_paths(old: &Value, new: &Value, limit: usize) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut truncated = false;
    diff_into(old, new, String::new(), limit, &mut out, &mut truncated);
    (out, truncated)
}

fn push(out: &mut Vec<String>, path: String, limit: usize, truncated: &mut bool) {
    if out.len() < limit {
        out.push(if path.is_empty() {
            "$".to_string()
        } else {
            path
        });
    } else {
        *truncated = true;
    }
}

fn diff_into(
    old: &Value,
    new: &Value,
    path: String,
    limit: usize,
    out: &mut Vec<String>,
    truncated: &mut bool,
) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(x, y, p, limit, out, truncated),
                    _ => push(out, p, limit, truncated),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => diff_into(x, y, p, limit, out, truncated),
                    _ => push(out, p, limit, truncated),
                }
            }
        }
        _ => push(out, path, limit, truncated),
    }
}

/// Summary fields kept on the small sync record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub name: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub stars: Option<i64>,
    pub rating: Option<f64>,
}

impl Summary {
    pub fn of_json(doc: &Json<'_>) -> Self {
        let s = |v: Option<&Json<'_>>| v.and_then(Json::as_str).map(str::to_string);
        let address = doc.get("address");
        Summary {
            name: s(doc.get("hotel_name")),
            city: s(address.and_then(|a| a.get("city"))),
            country: s(address.and_then(|a| a.get("country"))),
            stars: doc.get("stars").and_then(Json::as_i64),
            rating: doc.get("rating").and_then(Json::as_f64),
        }
    }
}

#[cfg(test)]
mod tests {
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
        let fast = canonical_object(body, |_| Report::default()).map(|c| (c.bytes, c.hash));
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
        let old =
            json!({"hotel_name": "A", "rating": 8.1, "rooms": [{"room_name": "x"}], "gone": 1});
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
        let s = canonical_object(body, |_| Report::default())
            .unwrap()
            .summary;
        assert_eq!(s.name.as_deref(), Some("The Z Hotel Covent Garden"));
        assert_eq!(s.country.as_deref(), Some("gb"));
        assert!(s.rating.is_some() && s.stars.is_some());
    }
}

/// Compressed bytes per document item: DynamoDB's item limit is 400 KB including the attribute
/// names and the other attributes, so a larger document is stored in parts of this size.
pub const PART_BYTES: usize = 350_000;
/// Most parts per document (~11 MB compressed, far beyond any recorded Cupid body).
pub const MAX_PARTS: usize = 32;
/// The largest compressed document we store.
pub const MAX_COMPRESSED_BYTES: usize = PART_BYTES * MAX_PARTS;

/// The item key of part `part` of the document item `doc_key` (part 0 is the head item, keyed
/// by the document key itself; it holds the part count).
pub fn part_key(doc_key: &str, part: u32) -> String {
    if part == 0 {
        doc_key.to_string()
    } else {
        format!("{doc_key}~{part}")
    }
}

/// Splits a compressed document into parts of at most `part_bytes` (at least one part).
pub fn split_parts(compressed: &[u8], part_bytes: usize) -> Vec<&[u8]> {
    if compressed.is_empty() {
        return vec![compressed];
    }
    compressed.chunks(part_bytes.max(1)).collect()
}

/// zstd level 3: ~10x on the recorded bodies, fast enough to stay far off the critical path.
/// One compression context per thread, reused: creating a context costs more than compressing
/// a typical document (it dominated a profile of the simulation).
pub fn compress(canonical: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CCTX: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    CCTX.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(3)?);
        }
        match c.as_mut() {
            Some(z) => z.compress(canonical),
            None => zstd::bulk::compress(canonical, 3),
        }
    })
}

/// Decompresses a stored document (bounded to 16 MiB to refuse garbage), with a reused
/// per-thread context.
pub fn decompress(stored: &[u8]) -> std::io::Result<Vec<u8>> {
    const LIMIT: usize = 16 * 1024 * 1024;
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        // Size the output from the frame header (our frames carry it) instead of reserving
        // the whole limit on every call.
        let capacity = match zstd::zstd_safe::get_frame_content_size(stored) {
            Ok(Some(n)) if (n as usize) <= LIMIT => n as usize,
            _ => LIMIT,
        };
        match d.as_mut() {
            Some(z) => z.decompress(stored, capacity),
            None => zstd::bulk::decompress(stored, LIMIT),
        }
    })
}

#[cfg(test)]
mod codec_tests {
    use super::*;

    #[test]
    fn compression_round_trips_and_shrinks_the_recorded_body() {
        let raw = include_bytes!("../../../tests/fixtures/property_1641879.json");
        let doc = CanonicalDoc::new(serde_json::from_slice(raw).unwrap());
        let z = compress(&doc.bytes).unwrap();
        assert!(
            z.len() * 4 < doc.bytes.len(),
            "{} -> {}",
            doc.bytes.len(),
            z.len()
        );
        assert_eq!(decompress(&z).unwrap(), doc.bytes);
    }
}
