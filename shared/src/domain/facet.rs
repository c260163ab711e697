//! Facets: the separately stored, separately versioned parts of a property — the English
//! property document, one translation per language, and the newest reviews.

use super::contract::{self, Inspect};
use super::document::{self, CanonicalBody, CanonicalDoc};
use super::settings::Settings;
use serde_json::Value;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facet {
    Property,
    /// A translation (ISO 639-1 code, never "en").
    Lang(String),
    /// The newest `n` reviews.
    Reviews(u32),
}

pub const PROPERTY: &str = "property";
pub const REVIEWS: &str = "reviews";

impl Facet {
    /// The sort key in `property_documents` (`property`, `lang#fr`, `reviews`).
    pub fn key(&self) -> String {
        match self {
            Facet::Property => PROPERTY.into(),
            Facet::Lang(l) => format!("lang#{l}"),
            Facet::Reviews(_) => REVIEWS.into(),
        }
    }

    /// The upstream path of this facet for one hotel.
    pub fn path(&self, hotel_id: i64) -> String {
        match self {
            Facet::Property => format!("/v3.0/property/{hotel_id}"),
            Facet::Lang(l) => format!("/v3.0/property/{hotel_id}/lang/{l}"),
            Facet::Reviews(n) => format!("/v3.0/property/reviews/{hotel_id}/{n}"),
        }
    }

    /// The kind of document this facet's body is, for schema shapes (`domain::shape`):
    /// `property`, `lang` (every translation: they share a shape) or `reviews`.
    pub fn shape_kind(&self) -> &'static str {
        match self {
            Facet::Property => "property",
            Facet::Lang(_) => "lang",
            Facet::Reviews(_) => "reviews",
        }
    }

    /// The canonical document of an upstream body for this facet.
    pub fn canonical(&self, raw: Value) -> Result<CanonicalDoc, String> {
        match self {
            Facet::Property | Facet::Lang(_) => {
                let v = document::unwrap_envelope(raw);
                if !v.is_object() {
                    return Err("malformed upstream body: expected a JSON object".into());
                }
                Ok(CanonicalDoc::new(v))
            }
            Facet::Reviews(_) => canonical_reviews(raw).map(CanonicalDoc::new),
        }
    }

    /// The canonical document of a response body, from its bytes: the engine's path. A property
    /// or translation never becomes a `Value` (`document::canonical_object`); reviews do (they
    /// are re-sorted and their dates rewritten). Same bytes and hash as `canonical`.
    /// The document is checked against its contract for `hotel_id`, then by `inspect` (the
    /// run's schema watch) (`CanonicalBody::report`).
    pub fn canonical_body(
        &self,
        hotel_id: i64,
        body: &[u8],
        inspect: &impl Inspect,
    ) -> Result<CanonicalBody, String> {
        match self {
            Facet::Property | Facet::Lang(_) => document::canonical_object(body, |doc, hash| {
                let mut report = contract::check(self, hotel_id, doc);
                inspect.inspect(doc, hash, &mut report);
                report
            }),
            Facet::Reviews(_) => {
                let raw = document::parse_body(body)
                    .map_err(|e| format!("malformed upstream body: {e}"))?;
                let doc = canonical_reviews(raw).map(CanonicalDoc::new)?;
                let mut report = contract::check(self, hotel_id, &doc.value);
                inspect.inspect(&doc.value, &doc.hash, &mut report);
                Ok(CanonicalBody {
                    report,
                    bytes: doc.bytes,
                    hash: doc.hash,
                    summary: Default::default(),
                })
            }
        }
    }

    /// What changed between two canonical documents of this facet.
    pub fn diff(&self, old: &Value, new: &Value, limit: usize) -> (Vec<String>, bool) {
        match self {
            Facet::Reviews(_) => review_diff(old, new, limit),
            _ => document::changed_paths(old, new, limit),
        }
    }
}

/// The facets a run syncs with these settings, property first.
pub fn facets_for(settings: &Settings) -> Vec<Facet> {
    let mut out = vec![Facet::Property];
    out.extend(settings.languages.iter().map(|l| Facet::Lang(l.clone())));
    if settings.review_count > 0 {
        out.push(Facet::Reviews(settings.review_count));
    }
    out
}

/// `2024-11-10 20:32:40` (older upstream format) → `2024-11-10T20:32:40Z`; RFC 3339 kept.
pub fn normalize_review_date(s: &str) -> String {
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() == 19 && b[10] == b' ' && b[4] == b'-' && b[13] == b':' {
        format!("{}T{}Z", &t[..10], &t[11..])
    } else {
        t.to_string()
    }
}

fn review_id(v: &Value) -> Option<i64> {
    v.get("review_id").and_then(Value::as_i64)
}

/// Reviews newest first (date, then id, both descending), dates in RFC 3339, ids as 64-bit
/// integers. Accepts a bare array or `{"data": [...]}`.
pub fn canonical_reviews(raw: Value) -> Result<Value, String> {
    let v = document::unwrap_envelope(raw);
    let Value::Array(mut items) = v else {
        return Err("malformed upstream body: expected a JSON array of reviews".into());
    };
    for item in items.iter_mut() {
        let Value::Object(m) = item else {
            return Err("malformed upstream body: a review is not an object".into());
        };
        if let Some(Value::String(d)) = m.get("date") {
            let n = normalize_review_date(d);
            m.insert("date".into(), Value::String(n));
        }
        if let Some(id) = m.get("review_id")
            && !id.is_null()
            && !id.is_i64()
        {
            return Err(format!(
                "malformed upstream body: review_id {id} is not a 64-bit integer"
            ));
        }
    }
    items.sort_by(|a, b| {
        let d = |v: &Value| {
            v.get("date")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        d(b).cmp(&d(a))
            .then(review_id(b).cmp(&review_id(a)))
            .then_with(|| {
                // Reviews without ids: a stable order by content.
                a.to_string().cmp(&b.to_string()).then(Ordering::Equal)
            })
    });
    Ok(Value::Array(items))
}

/// `added:ID`, `removed:ID`, `changed:ID` (reviews without an id count as `unidentified`).
pub fn review_diff(old: &Value, new: &Value, limit: usize) -> (Vec<String>, bool) {
    use std::collections::BTreeMap;
    let index = |v: &Value| -> BTreeMap<i64, Value> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| Some((review_id(r)?, r.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (o, n) = (index(old), index(new));
    let mut out = Vec::new();
    for (id, r) in &n {
        match o.get(id) {
            None => out.push(format!("added:{id}")),
            Some(prev) if prev != r => out.push(format!("changed:{id}")),
            _ => {}
        }
    }
    for id in o.keys().filter(|id| !n.contains_key(id)) {
        out.push(format!("removed:{id}"));
    }
    let unidentified = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter(|r| review_id(r).is_none()).count())
            .unwrap_or(0)
    };
    if out.is_empty() && old != new {
        out.push(format!("unidentified:{}", unidentified(new)));
    }
    let truncated = out.len() > limit;
    out.truncate(limit);
    (out, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_and_paths() {
        assert_eq!(Facet::Lang("fr".into()).key(), "lang#fr");
        assert_eq!(Facet::Reviews(100).path(7), "/v3.0/property/reviews/7/100");
        assert_eq!(Facet::Lang("es".into()).path(7), "/v3.0/property/7/lang/es");
        let s = Settings::default();
        assert_eq!(
            facets_for(&s).iter().map(Facet::key).collect::<Vec<_>>(),
            ["property", "lang#fr", "lang#es", "reviews"]
        );
    }

    #[test]
    fn both_review_date_formats_sort_together_newest_first() {
        let raw = json!([
            {"review_id": 1, "date": "2024-11-10 20:32:40"},
            {"review_id": 5_200_062_561i64, "date": "2025-08-21T00:00:00Z"},
            {"review_id": 3, "date": "2025-01-02 08:00:00"}
        ]);
        let c = canonical_reviews(raw).unwrap();
        let ids: Vec<i64> = c
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["review_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![5_200_062_561, 3, 1]);
        assert_eq!(c[2]["date"], "2024-11-10T20:32:40Z");
        assert!(canonical_reviews(json!({"data": [{"review_id": 1}]})).is_ok());
        assert!(canonical_reviews(json!({"review_id": 1})).is_err());
        assert!(canonical_reviews(json!([{"review_id": "x"}])).is_err());
    }

    #[test]
    fn the_recorded_reviews_are_canonical_and_stable() {
        let raw: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/reviews_1641879_100.json"
        ))
        .unwrap();
        let a = Facet::Reviews(100).canonical(raw.clone()).unwrap();
        let b = Facet::Reviews(100).canonical(raw).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.value.as_array().unwrap().len(), 100);
    }

    #[test]
    fn review_diffs_name_ids_not_paths() {
        let old = json!([{"review_id": 1, "headline": "a"}, {"review_id": 2, "headline": "b"}]);
        let new = json!([{"review_id": 3, "headline": "c"}, {"review_id": 1, "headline": "a!"}]);
        let (d, t) = review_diff(&old, &new, 10);
        assert_eq!(d, vec!["changed:1", "added:3", "removed:2"]);
        assert!(!t);
        assert!(review_diff(&old, &old, 10).0.is_empty());
    }

    #[test]
    fn translations_must_be_objects_and_may_be_wrapped() {
        let f = Facet::Lang("fr".into());
        assert!(f.canonical(json!({"data": {"hotel_name": "x"}})).is_ok());
        assert!(f.canonical(json!([1])).is_err());
    }
}
