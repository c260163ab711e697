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
/// (`check`, with the content hash: its contract and shape) and writes it. Errors read as
/// operators see them.
pub fn canonical_object(
    body: &[u8],
    check: impl FnOnce(&Json<'_>, &str) -> Report,
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
        report: check(&doc, &hash),
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
#[path = "document_tests.rs"]
mod tests;

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
