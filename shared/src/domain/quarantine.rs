//! Quarantine: a changed document that breaks its contract is held back instead of written.
//! The previous version stays served; the record says `quarantined` and carries a note of
//! what was held and why; the held payload is kept (compressed, 30 days) for inspection; an
//! operator may accept that exact payload (by its content hash), and the next sync stores it.

use super::contract::{Report, Rule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a held payload is kept.
pub const PAYLOAD_SECONDS: i64 = 30 * 24 * 3600;

/// The document-table key of a held payload of `facet` (`quarantine#property`).
pub fn payload_key(facet: &str) -> String {
    format!("quarantine#{facet}")
}

/// One facet held back: which content (its canonical hash) and what it broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFacet {
    pub facet: String,
    pub hash: String,
    pub report: Report,
    /// Whether the payload was kept (a payload over one item's size is not).
    pub payload_kept: bool,
}

/// What a quarantined record carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineNote {
    /// The run that quarantined it, and when (epoch seconds).
    pub sync_id: String,
    pub at: i64,
    pub facets: Vec<HeldFacet>,
}

impl QuarantineNote {
    /// The distinct rules broken, in a fixed order (`?rule=` filters by them).
    pub fn rules(&self) -> Vec<Rule> {
        let mut r: Vec<Rule> = self.facets.iter().flat_map(|f| f.report.rules()).collect();
        r.sort();
        r.dedup();
        r
    }

    /// Facet key → the content hash held back.
    pub fn held_hashes(&self) -> BTreeMap<String, String> {
        self.facets
            .iter()
            .map(|f| (f.facet.clone(), f.hash.clone()))
            .collect()
    }

    /// One line for `last_error` and the run log (see [`summary`]).
    pub fn summary(&self) -> String {
        summary(&self.facets)
    }
}

/// One line for `last_error` and the run log: each held facet's first violations.
pub fn summary(facets: &[HeldFacet]) -> String {
    {
        let parts: Vec<String> = facets
            .iter()
            .map(|f| {
                let first: Vec<String> = f
                    .report
                    .violations
                    .iter()
                    .take(3)
                    .map(|v| match &v.value {
                        Some(val) => format!("{} {} ({val})", v.path, v.rule.as_str()),
                        None => format!("{} {}", v.path, v.rule.as_str()),
                    })
                    .collect();
                let more = f.report.total.saturating_sub(first.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{}: {}{more}", f.facet, first.join(", "))
            })
            .collect();
        format!(
            "quarantined (contract broken; previous version kept): {}",
            parts.join("; ")
        )
    }
}

/// An operator's acceptance of one held payload, by content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub hash: String,
    pub by: String,
    /// Epoch seconds.
    pub at: i64,
}

/// Facet key → acceptance.
pub type Accepted = BTreeMap<String, Acceptance>;

/// An operator's name as given to accept: trimmed, 1–100 characters, no control characters.
pub fn valid_operator(by: &str) -> Result<String, String> {
    let t = by.trim();
    if t.is_empty() {
        return Err("must name who accepts (1-100 characters)".into());
    }
    if t.chars().count() > 100 || t.chars().any(char::is_control) {
        return Err("must be 1-100 characters without control characters".into());
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contract::Violation;

    #[test]
    fn the_summary_names_each_facet_and_its_first_violations() {
        let v = |path: &str, rule, value: Option<&str>| Violation {
            path: path.into(),
            rule,
            value: value.map(String::from),
        };
        let note = QuarantineNote {
            sync_id: "s".into(),
            at: 1,
            facets: vec![
                HeldFacet {
                    facet: "property".into(),
                    hash: "h".into(),
                    report: Report {
                        violations: vec![
                            v("hotel_id", Rule::HotelId, Some("42")),
                            v("hotel_name", Rule::Required, None),
                            v("latitude", Rule::Range, Some("91")),
                            v("longitude", Rule::Range, Some("181")),
                        ],
                        total: 5,
                        broken: vec![],
                    },
                    payload_kept: true,
                },
                HeldFacet {
                    facet: "reviews".into(),
                    hash: "r".into(),
                    report: Report {
                        violations: vec![v("[0].date", Rule::Date, Some("\"x\""))],
                        total: 1,
                        broken: vec![],
                    },
                    payload_kept: false,
                },
            ],
        };
        assert_eq!(
            note.summary(),
            "quarantined (contract broken; previous version kept): property: hotel_id hotel_id (42), hotel_name required, latitude range (91) and 2 more; reviews: [0].date date (\"x\")"
        );
        assert_eq!(
            note.rules(),
            vec![Rule::Required, Rule::HotelId, Rule::Range, Rule::Date]
        );
    }

    #[test]
    fn an_operator_is_named() {
        assert_eq!(valid_operator("  ana ").unwrap(), "ana");
        assert!(valid_operator(" ").is_err());
        assert!(valid_operator(&"x".repeat(101)).is_err());
        assert!(valid_operator("a\nb").is_err());
    }
}
