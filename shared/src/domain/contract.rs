//! Data contracts: what a facet document must look like before it may replace stored data.
//! Declared once, here, as tables of fields (derived from the recorded bodies in
//! `tests/fixtures/` and the upstream field notes in ARCHITECTURE.md, "Contracts"); checked on
//! every changed document before it is written. A document that breaks its contract is
//! quarantined instead (the previous version stays served).

use super::facet::Facet;
pub use super::view::{Kind, View};
use serde::{Deserialize, Serialize};

/// Why a value breaks its contract (the `rule` of a violation; `?rule=` filters by it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A required field is absent.
    Required,
    /// The field has another JSON type (or is null where it may not be).
    Type,
    /// The document (or a room in it) is for another hotel than the one asked for.
    HotelId,
    /// A string that must say something is empty.
    Empty,
    /// A number outside its documented range.
    Range,
    /// Latitude and longitude both 0 ("null island": a missing position sent as zeros).
    NullIsland,
    /// Not an http(s) URL.
    Url,
    /// A date that does not parse.
    Date,
    /// A path or type the frozen schema baseline lacks (`domain::shape`, policy `freeze`).
    Schema,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::Required,
        Rule::Type,
        Rule::HotelId,
        Rule::Empty,
        Rule::Range,
        Rule::NullIsland,
        Rule::Url,
        Rule::Date,
        Rule::Schema,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::Type => "type",
            Rule::HotelId => "hotel_id",
            Rule::Empty => "empty",
            Rule::Range => "range",
            Rule::NullIsland => "null_island",
            Rule::Url => "url",
            Rule::Date => "date",
            Rule::Schema => "schema",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One broken rule: where, which rule, and the offending value (JSON, truncated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Violation {
    /// `hotel_name`, `photos[3].url`, `[7].date` (reviews).
    pub path: String,
    pub rule: Rule,
    /// The value as JSON, at most [`MAX_VALUE_CHARS`] characters (`…` when cut); absent for a
    /// missing field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Characters of an offending value kept in a violation.
pub const MAX_VALUE_CHARS: usize = 80;
/// Violations kept per document (the first ones in document order); the count says how many.
pub const MAX_VIOLATIONS: usize = 20;

/// The type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    /// Int or float.
    Num,
    Str,
    Bool,
    Array,
    Object,
    /// Anything (the field is documented, its type is not ours to check).
    Any,
}

impl Ty {
    fn admits(self, k: Kind) -> bool {
        match self {
            Ty::Int => k == Kind::Int,
            Ty::Num => matches!(k, Kind::Int | Kind::Float),
            Ty::Str => k == Kind::Str,
            Ty::Bool => k == Kind::Bool,
            Ty::Array => k == Kind::Array,
            Ty::Object => k == Kind::Object,
            Ty::Any => true,
        }
    }
}

/// A rule on a value of the right type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    None,
    /// The hotel asked for (a number, or its decimal string: rooms carry it as a string).
    HotelId,
    NonEmpty,
    Range(f64, f64),
    /// http(s) URL; an empty string passes (no photo yet).
    Url,
    /// RFC 3339 (`2025-08-21T00:00:00Z`) or the older `2024-11-10 20:32:40`.
    Date,
}

/// One field of a contract. `path` walks objects by key; `[]` walks every item of an array.
struct Field {
    path: &'static [&'static str],
    ty: Ty,
    nullable: bool,
    required: bool,
    check: Check,
}

const fn f(path: &'static [&'static str], ty: Ty) -> Field {
    Field {
        path,
        ty,
        nullable: false,
        required: false,
        check: Check::None,
    }
}

impl Field {
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    const fn check(mut self, c: Check) -> Self {
        self.check = c;
        self
    }
}

/// The property document (E1). Every recorded live body has every key, but older shapes lack
/// some (`checkin`, `state`, ids of beds and policies), so only what a catalogue cannot do
/// without is required: the id, the name and the position.
const PROPERTY: &[Field] = &[
    f(&["hotel_id"], Ty::Int).required().check(Check::HotelId),
    f(&["cupid_id"], Ty::Int),
    f(&["hotel_name"], Ty::Str)
        .required()
        .check(Check::NonEmpty),
    f(&["latitude"], Ty::Num)
        .required()
        .check(Check::Range(-90.0, 90.0)),
    f(&["longitude"], Ty::Num)
        .required()
        .check(Check::Range(-180.0, 180.0)),
    f(&["main_image_th"], Ty::Str).check(Check::Url),
    f(&["hotel_type"], Ty::Str),
    f(&["hotel_type_id"], Ty::Int),
    f(&["chain"], Ty::Str),
    f(&["chain_id"], Ty::Int),
    f(&["phone"], Ty::Str),
    f(&["fax"], Ty::Str),
    f(&["email"], Ty::Str),
    f(&["airport_code"], Ty::Str),
    f(&["address"], Ty::Object),
    f(&["address", "address"], Ty::Str),
    f(&["address", "city"], Ty::Str),
    f(&["address", "state"], Ty::Str),
    f(&["address", "country"], Ty::Str),
    f(&["address", "postal_code"], Ty::Str),
    f(&["stars"], Ty::Int).check(Check::Range(0.0, 5.0)),
    f(&["rating"], Ty::Num).check(Check::Range(0.0, 10.0)),
    f(&["review_count"], Ty::Int).check(Check::Range(0.0, f64::MAX)),
    f(&["checkin"], Ty::Object),
    f(&["parking"], Ty::Str).nullable(),
    f(&["group_room_min"], Ty::Int).nullable(),
    f(&["child_allowed"], Ty::Bool).nullable(),
    f(&["pets_allowed"], Ty::Bool).nullable(),
    f(&["photos"], Ty::Array),
    f(&["photos", "[]"], Ty::Object),
    f(&["photos", "[]", "url"], Ty::Str)
        .required()
        .check(Check::Url),
    f(&["photos", "[]", "hd_url"], Ty::Str).check(Check::Url),
    f(&["photos", "[]", "main_photo"], Ty::Bool),
    f(&["photos", "[]", "score"], Ty::Num),
    f(&["photos", "[]", "class_id"], Ty::Int),
    f(&["photos", "[]", "class_order"], Ty::Int),
    f(&["description"], Ty::Str),
    f(&["markdown_description"], Ty::Str),
    f(&["important_info"], Ty::Str),
    f(&["facilities"], Ty::Array),
    f(&["facilities", "[]"], Ty::Object),
    f(&["facilities", "[]", "facility_id"], Ty::Int).required(),
    f(&["facilities", "[]", "name"], Ty::Str),
    f(&["policies"], Ty::Array),
    f(&["policies", "[]"], Ty::Object),
    f(&["policies", "[]", "policy_type"], Ty::Str),
    f(&["policies", "[]", "id"], Ty::Int),
    f(&["rooms"], Ty::Array),
    f(&["rooms", "[]"], Ty::Object),
    f(&["rooms", "[]", "id"], Ty::Int),
    f(&["rooms", "[]", "room_name"], Ty::Str),
    f(&["rooms", "[]", "hotel_id"], Ty::Str).check(Check::HotelId),
    f(&["rooms", "[]", "room_size_square"], Ty::Num),
    f(&["rooms", "[]", "photos"], Ty::Array),
    f(&["rooms", "[]", "photos", "[]", "url"], Ty::Str)
        .required()
        .check(Check::Url),
    f(&["reviews"], Ty::Any).nullable(),
];

/// A translation (E2): the same document in another language. Its text is what it brings, so
/// it must be for the same hotel and have a name; the rest is checked where present.
const TRANSLATION: &[Field] = &[
    f(&["hotel_id"], Ty::Int).required().check(Check::HotelId),
    f(&["hotel_name"], Ty::Str)
        .required()
        .check(Check::NonEmpty),
    f(&["latitude"], Ty::Num).check(Check::Range(-90.0, 90.0)),
    f(&["longitude"], Ty::Num).check(Check::Range(-180.0, 180.0)),
    f(&["main_image_th"], Ty::Str).check(Check::Url),
    f(&["stars"], Ty::Int).check(Check::Range(0.0, 5.0)),
    f(&["rating"], Ty::Num).check(Check::Range(0.0, 10.0)),
    f(&["address"], Ty::Object),
    f(&["photos"], Ty::Array),
    f(&["photos", "[]", "url"], Ty::Str)
        .required()
        .check(Check::Url),
    f(&["facilities"], Ty::Array),
    f(&["rooms"], Ty::Array),
    f(&["rooms", "[]", "hotel_id"], Ty::Str).check(Check::HotelId),
];

/// The reviews list (E3): objects with an id and a date that parses, scores on 0–10.
const REVIEWS: &[Field] = &[
    f(&["[]"], Ty::Object),
    f(&["[]", "review_id"], Ty::Int).required(),
    f(&["[]", "date"], Ty::Str).required().check(Check::Date),
    f(&["[]", "average_score"], Ty::Num).check(Check::Range(0.0, 10.0)),
    f(&["[]", "name"], Ty::Str),
    f(&["[]", "headline"], Ty::Str),
    f(&["[]", "pros"], Ty::Str),
    f(&["[]", "cons"], Ty::Str),
];

/// What a check found: the first violations and how many there were in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub total: usize,
    /// Every rule broken (also by violations beyond the kept ones), in a fixed order.
    #[serde(default)]
    pub broken: Vec<Rule>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }

    pub(crate) fn push(&mut self, path: String, rule: Rule, value: Option<String>) {
        self.total += 1;
        if let Err(at) = self.broken.binary_search(&rule) {
            self.broken.insert(at, rule);
        }
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                path,
                rule,
                value: value.map(truncate),
            });
        }
    }

    /// The distinct rules broken, in a fixed order (a report read from an older store has
    /// only its kept violations to tell).
    pub fn rules(&self) -> Vec<Rule> {
        let mut r: Vec<Rule> = self.violations.iter().map(|v| v.rule).collect();
        r.extend(self.broken.iter().copied());
        r.sort();
        r.dedup();
        r
    }
}

fn truncate(s: String) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s;
    }
    let mut t: String = s.chars().take(MAX_VALUE_CHARS - 1).collect();
    t.push('…');
    t
}

/// Checks a facet document (out of its envelope, as it would be stored) for hotel `hotel_id`.
pub fn check<V: View>(facet: &Facet, hotel_id: i64, doc: &V) -> Report {
    let mut report = Report::default();
    let plan = match facet {
        Facet::Property => &*PROPERTY_PLAN,
        Facet::Lang(_) => &*TRANSLATION_PLAN,
        Facet::Reviews(_) => &*REVIEWS_PLAN,
    };
    visit(doc, plan, &mut Vec::with_capacity(8), hotel_id, &mut report);
    if *facet == Facet::Property {
        let zero = |k: &str| doc.field(k).and_then(View::f64) == Some(0.0);
        if zero("latitude") && zero("longitude") {
            report.push(
                "latitude,longitude".into(),
                Rule::NullIsland,
                Some("[0,0]".into()),
            );
        }
    }
    // Report in path order.
    report.violations.sort_by(|a, b| a.path.cmp(&b.path));
    report
}

/// One step of the path to the value being checked.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The path as violations spell it (`rooms[0].photos[2].url`), formatted only for a violation:
/// a document has thousands of values and (usually) no violation.
fn spell(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A contract's fields as a tree of path steps, so that one walk of the document checks every
/// field (an array's items are visited once, not once per field under them).
#[derive(Default)]
struct Plan {
    /// Fields whose path ends here: their value is checked here.
    fields: Vec<&'static Field>,
    /// Object members to descend into (key order).
    members: Vec<(&'static str, Plan)>,
    /// Array items (`[]`).
    items: Option<Box<Plan>>,
}

impl Plan {
    fn of(fields: &'static [Field]) -> Plan {
        let mut root = Plan::default();
        for f in fields {
            let mut node = &mut root;
            for seg in f.path {
                node = if *seg == "[]" {
                    node.items.get_or_insert_with(Default::default)
                } else {
                    let at = match node.members.iter().position(|(k, _)| k == seg) {
                        Some(at) => at,
                        None => {
                            node.members.push((seg, Plan::default()));
                            node.members.len() - 1
                        }
                    };
                    &mut node.members[at].1
                };
            }
            node.fields.push(f);
        }
        root
    }
}

static PROPERTY_PLAN: std::sync::LazyLock<Plan> = std::sync::LazyLock::new(|| Plan::of(PROPERTY));
static TRANSLATION_PLAN: std::sync::LazyLock<Plan> =
    std::sync::LazyLock::new(|| Plan::of(TRANSLATION));
static REVIEWS_PLAN: std::sync::LazyLock<Plan> = std::sync::LazyLock::new(|| Plan::of(REVIEWS));

/// Checks `node` (at `path`) against the fields ending here, then descends where the plan goes:
/// into members of an object (a missing member is a violation of the required fields ending
/// there) and into the items of an array (a value of another type is its own field's
/// violation, not descended into).
fn visit<'p, V: View>(
    node: &V,
    plan: &'p Plan,
    path: &mut Vec<Seg<'p>>,
    hotel_id: i64,
    report: &mut Report,
) {
    for f in &plan.fields {
        check_value(node, path, f, hotel_id, report);
    }
    if let Some(items) = &plan.items {
        for (i, item) in node.items().iter().enumerate() {
            path.push(Seg::Index(i));
            visit(item, items, path, hotel_id, report);
            path.pop();
        }
    }
    if plan.members.is_empty() || node.kind() != Kind::Object {
        return;
    }
    for (key, child) in &plan.members {
        path.push(Seg::Key(key));
        match node.field(key) {
            Some(v) => visit(v, child, path, hotel_id, report),
            None => {
                if child.fields.iter().any(|f| f.required) {
                    report.push(spell(path), Rule::Required, None);
                }
            }
        }
        path.pop();
    }
}

fn check_value<V: View>(
    v: &V,
    path: &[Seg<'_>],
    field: &Field,
    hotel_id: i64,
    report: &mut Report,
) {
    let kind = v.kind();
    if kind == Kind::Null {
        if !field.nullable {
            report.push(spell(path), Rule::Type, Some("null".into()));
        }
        return;
    }
    if !field.ty.admits(kind) {
        report.push(spell(path), Rule::Type, Some(v.json()));
        return;
    }
    let broken = match field.check {
        Check::None => None,
        Check::HotelId => {
            let ours = match kind {
                Kind::Str => v.str().and_then(|s| s.trim().parse::<i64>().ok()),
                _ => v.i64(),
            };
            (ours != Some(hotel_id)).then_some(Rule::HotelId)
        }
        Check::NonEmpty => v
            .str()
            .is_some_and(|s| s.trim().is_empty())
            .then_some(Rule::Empty),
        Check::Range(lo, hi) => v
            .f64()
            .is_some_and(|x| !(lo..=hi).contains(&x))
            .then_some(Rule::Range),
        Check::Url => v.str().is_some_and(|s| !is_url(s)).then_some(Rule::Url),
        Check::Date => v.str().is_some_and(|s| !is_date(s)).then_some(Rule::Date),
    };
    if let Some(rule) = broken {
        report.push(spell(path), rule, Some(v.json()));
    }
}

/// An http(s) URL with a host and no whitespace; empty passes (no image yet).
fn is_url(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// RFC 3339 in UTC or `YYYY-MM-DD HH:MM:SS` (the older review format).
fn is_date(s: &str) -> bool {
    humantime::parse_rfc3339_weak(s.trim().trim_end_matches('Z')).is_ok()
}

/// What checks a parsed document after its contract (the engine: its run's schema watch, `domain::shape::Watch`), given
/// the document's content hash. `()` checks nothing.
pub trait Inspect {
    fn inspect<V: View>(&self, doc: &V, hash: &str, report: &mut Report);
}

impl Inspect for () {
    fn inspect<V: View>(&self, _: &V, _: &str, _: &mut Report) {}
}

#[cfg(test)]
#[path = "contract_tests.rs"]
mod tests;
