//! A JSON document parsed for canonicalisation: strings without escapes borrow the response
//! body instead of being copied, and objects are sorted key/value vectors instead of maps.
//!
//! serde_json parses it (this is a `Deserialize` impl, not a parser), with the same number and
//! duplicate-key rules as `serde_json::Value`, so the canonical bytes written from it are the
//! bytes `document::CanonicalDoc` writes from a `Value` (a test holds the two to it). It exists
//! for speed: the engine's per-request CPU was dominated by building `Value` trees (a map insert
//! and an allocation per key and string) only to write them out again (see BENCHMARKS.md).

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// Why a body is not JSON.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not UTF-8: {0}")]
    Utf8(std::str::Utf8Error),
    #[error("{0}")]
    Json(serde_json::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    /// Borrowed only by `parse`, and only for a string without escapes: `write` copies a
    /// borrowed string as it is.
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Keys sorted (byte order, as `serde_json::Map`), each once (the last value of a
    /// duplicated key wins, as in `serde_json::Value`).
    Object(Members<'a>),
}

impl<'a> Json<'a> {
    /// Parses a response body (borrowing its strings). The body is checked to be UTF-8 once,
    /// as a whole (serde_json would check string by string: 5% of a request's CPU).
    pub fn parse(body: &'a [u8]) -> Result<Json<'a>, ParseError> {
        let text = std::str::from_utf8(body).map_err(ParseError::Utf8)?;
        serde_json::from_str(text).map_err(ParseError::Json)
    }

    /// The members of an object (sorted by key), or none.
    pub fn members(&self) -> &[(Cow<'a, str>, Json<'a>)] {
        match self {
            Json::Object(m) => m,
            _ => &[],
        }
    }

    /// The member `key` of an object (binary search: keys are sorted).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(m) => m
                .binary_search_by(|(k, _)| k.as_ref().cmp(key))
                .ok()
                .map(|i| &m[i].1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// Writes the compact form (keys in their stored, sorted order) with serde_json's escaping.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(true) => out.extend_from_slice(b"true"),
            Json::Bool(false) => out.extend_from_slice(b"false"),
            Json::Number(n) => {
                let _ = serde_json::to_writer(&mut *out, n);
            }
            // serde_json borrows a string only when it has no escape sequence, and a JSON
            // string cannot hold a raw `"`, `\` or control character: its bytes are already
            // what serde_json would write.
            Json::Str(Cow::Borrowed(s)) => write_verbatim(out, s),
            Json::Str(Cow::Owned(s)) => write_str(out, s),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(m) => {
                out.push(b'{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match k {
                        Cow::Borrowed(k) => write_verbatim(out, k),
                        Cow::Owned(k) => write_str(out, k),
                    }
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// A string as serde_json writes it: quoted, with `"`, `\` and control characters escaped
/// (and nothing else). Most strings need no escape and are copied as they are.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        write_verbatim(out, s);
    }
}

fn write_verbatim(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Sorts an object's members by key and keeps the last value of a repeated key.
type Members<'a> = Vec<(Cow<'a, str>, Json<'a>)>;

fn sorted_members(mut m: Members<'_>) -> Members<'_> {
    if !m.is_sorted_by(|a, b| a.0 < b.0) {
        // Stable: of equal keys, the one parsed last stays last.
        m.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Members<'_> = Vec::with_capacity(m.len());
        for member in m {
            match out.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => out.push(member),
            }
        }
        return out;
    }
    m
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut m = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            m.push((key, map.next_value()?));
        }
        Ok(Json::Object(sorted_members(m)))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// An object key, borrowed from the body when it has no escapes (`Cow`'s own impl always
/// copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed_and_members_sorted_once() {
        let body = br#"{"b": "plain", "a": "tab\there", "b": "last", "c": [1, -2, 3.5e0]}"#;
        let j = Json::parse(body).unwrap();
        let Json::Object(m) = &j else { panic!() };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(matches!(j.get("b"), Some(Json::Str(Cow::Borrowed("last")))));
        assert!(matches!(j.get("a"), Some(Json::Str(Cow::Owned(_)))));
        assert_eq!(j.get("a").and_then(Json::as_str), Some("tab\there"));
        assert_eq!(j.get("zz"), None);
        let mut out = Vec::new();
        j.write(&mut out);
        assert_eq!(out, br#"{"a":"tab\there","b":"last","c":[1,-2,3.5]}"#);
    }

    #[test]
    fn writes_what_serde_json_writes_for_the_same_value() {
        for text in [
            r#"{"z":null,"y":true,"x":false,"w":18446744073709551615,"v":-9223372036854775808}"#,
            r#"{"s":"\u00e9\/\"\\\u0001\n","t":"日本","n":[1e2,-0,0.1,1.5e300,-0.0]}"#,
            r#"[{"b":{"d":1,"c":2},"a":[]},{},"",0]"#,
            r#"{"dup":{"x":1},"dup":{"y":2},"a":1,"dup":3}"#,
        ] {
            let mut ours = Vec::new();
            Json::parse(text.as_bytes()).unwrap().write(&mut ours);
            let theirs =
                serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(text).unwrap())
                    .unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_bodies_fail_as_serde_json_fails() {
        let not_utf8 = Json::parse(b"{\"a\": \"\xff\"}").unwrap_err().to_string();
        assert!(
            not_utf8.starts_with("not UTF-8: invalid utf-8 sequence"),
            "{not_utf8}"
        );
        for text in [
            &b"{"[..],
            b"{\"a\":1,}",
            b"\"\x01\"",
            b"[1 2]",
            b"1e400",
            b"",
        ] {
            let ours = Json::parse(text).map(|_| ()).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<serde_json::Value>(text)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(text));
            assert!(ours.is_err());
        }
    }
}
