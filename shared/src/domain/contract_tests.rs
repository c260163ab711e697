//! Tests of `contract.rs`: a module of it, compiled only under #[cfg(test)] (see its `mod tests`).

use super::*;
use crate::domain::json::Json;
use serde_json::{Value, json};

const ID: i64 = 1641879;

use crate::domain::fixtures::{property, reviews};

/// A translation as upstream serves it: the same document, names translated, some facilities
/// dropped.
fn translation() -> Value {
    let mut t = property();
    t["hotel_name"] = json!("Hotel Z Covent Garden");
    t["facilities"].as_array_mut().unwrap().truncate(29);
    t
}

/// The report on both tree types (they must agree).
fn report(facet: &Facet, doc: &Value) -> Report {
    let bytes = serde_json::to_vec(doc).unwrap();
    let tree = Json::parse(&bytes).unwrap();
    let a = check(facet, ID, doc);
    let b = check(facet, ID, &tree);
    assert_eq!(a, b, "Value and Json disagree");
    a
}

fn broken(facet: &Facet, doc: &Value) -> Vec<(String, Rule)> {
    report(facet, doc)
        .violations
        .into_iter()
        .map(|v| (v.path, v.rule))
        .collect()
}

fn one(path: &str, rule: Rule) -> Vec<(String, Rule)> {
    vec![(path.to_string(), rule)]
}

#[test]
fn the_recorded_bodies_pass() {
    assert_eq!(report(&Facet::Property, &property()), Report::default());
    assert_eq!(
        report(&Facet::Lang("es".into()), &translation()),
        Report::default()
    );
    assert_eq!(report(&Facet::Reviews(100), &reviews()), Report::default());
}

#[test]
fn the_older_shapes_in_the_recordings_pass() {
    // Flat check-in fields, no `checkin`, no `state`/`postal_code`, policies without ids,
    // reviews without the newer fields and with the older date format.
    let mut p = property();
    let m = p.as_object_mut().unwrap();
    m.remove("checkin");
    m.insert("checkin_start".into(), json!("15:00"));
    m["address"].as_object_mut().unwrap().remove("state");
    m["policies"][0].as_object_mut().unwrap().remove("id");
    m.insert("group_room_min".into(), json!(4));
    m.insert("parking".into(), Value::Null);
    assert!(report(&Facet::Property, &p).is_clean());
    let r = json!([{"review_id": 1, "date": "2024-11-10 20:32:40", "average_score": 0}]);
    assert!(report(&Facet::Reviews(10), &r).is_clean());
}

#[test]
fn a_payload_for_another_hotel_is_refused() {
    let mut p = property();
    p["hotel_id"] = json!(42);
    assert_eq!(broken(&Facet::Property, &p), one("hotel_id", Rule::HotelId));
    let mut p = property();
    p["rooms"][1]["hotel_id"] = json!("42");
    assert_eq!(
        broken(&Facet::Property, &p),
        one("rooms[1].hotel_id", Rule::HotelId)
    );
    let mut t = translation();
    t["hotel_id"] = json!(ID + 1);
    assert_eq!(
        broken(&Facet::Lang("fr".into()), &t),
        one("hotel_id", Rule::HotelId)
    );
}

#[test]
fn the_name_must_be_there_and_say_something() {
    let mut p = property();
    p["hotel_name"] = json!("  ");
    assert_eq!(broken(&Facet::Property, &p), one("hotel_name", Rule::Empty));
    p["hotel_name"] = Value::Null;
    assert_eq!(broken(&Facet::Property, &p), one("hotel_name", Rule::Type));
    p.as_object_mut().unwrap().remove("hotel_name");
    assert_eq!(
        broken(&Facet::Property, &p),
        one("hotel_name", Rule::Required)
    );
}

#[test]
fn coordinates_are_in_range_and_not_both_zero() {
    let mut p = property();
    p["latitude"] = json!(90.5);
    p["longitude"] = json!(-180.01);
    assert_eq!(
        broken(&Facet::Property, &p),
        vec![
            ("latitude".into(), Rule::Range),
            ("longitude".into(), Rule::Range)
        ]
    );
    p["latitude"] = json!(0);
    p["longitude"] = json!(0.0);
    assert_eq!(
        broken(&Facet::Property, &p),
        one("latitude,longitude", Rule::NullIsland)
    );
    // One of them 0 is a real place (the equator, the meridian).
    p["latitude"] = json!(51.5);
    assert!(report(&Facet::Property, &p).is_clean());
}

#[test]
fn scores_are_within_their_documented_ranges() {
    let mut p = property();
    p["rating"] = json!(10.5);
    p["stars"] = json!(6);
    p["review_count"] = json!(-1);
    assert_eq!(
        broken(&Facet::Property, &p),
        vec![
            ("rating".into(), Rule::Range),
            ("review_count".into(), Rule::Range),
            ("stars".into(), Rule::Range)
        ]
    );
    let mut r = reviews();
    r[3]["average_score"] = json!(11);
    assert_eq!(
        broken(&Facet::Reviews(100), &r),
        one("[3].average_score", Rule::Range)
    );
}

#[test]
fn a_field_whose_type_changed_is_refused_with_its_value() {
    let mut p = property();
    p["rating"] = json!("8.3");
    p["stars"] = json!(4.5);
    p["photos"] = json!({"0": "x"});
    let r = report(&Facet::Property, &p);
    assert_eq!(
        r.violations
            .iter()
            .map(|v| (v.path.as_str(), v.rule, v.value.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            ("photos", Rule::Type, Some(r#"{"0":"x"}"#)),
            ("rating", Rule::Type, Some(r#""8.3""#)),
            ("stars", Rule::Type, Some("4.5")),
        ]
    );
}

#[test]
fn photo_and_image_fields_are_http_urls() {
    let mut p = property();
    p["photos"][2]["url"] = json!("ftp://static.cupid.travel/x.jpg");
    p["photos"][4]["hd_url"] = json!("https://");
    p["rooms"][0]["photos"][0]["url"] = json!("https://static.cupid.travel/a b.jpg");
    p["main_image_th"] = json!("static.cupid.travel/x.jpg");
    assert_eq!(
        broken(&Facet::Property, &p),
        vec![
            ("main_image_th".into(), Rule::Url),
            ("photos[2].url".into(), Rule::Url),
            ("photos[4].hd_url".into(), Rule::Url),
            ("rooms[0].photos[0].url".into(), Rule::Url),
        ]
    );
    p = property();
    p["photos"][0].as_object_mut().unwrap().remove("url");
    assert_eq!(
        broken(&Facet::Property, &p),
        one("photos[0].url", Rule::Required)
    );
}

#[test]
fn reviews_are_objects_with_an_id_and_a_date_that_parses() {
    let mut r = reviews();
    r[0].as_object_mut().unwrap().remove("review_id");
    r[1]["date"] = json!("yesterday");
    r[2] = json!("a review");
    assert_eq!(
        broken(&Facet::Reviews(100), &r),
        vec![
            ("[0].review_id".into(), Rule::Required),
            ("[1].date".into(), Rule::Date),
            ("[2]".into(), Rule::Type),
        ]
    );
}

#[test]
fn violations_are_bounded_and_values_truncated() {
    let mut p = property();
    for photo in p["photos"].as_array_mut().unwrap() {
        photo["url"] = json!(format!("gopher://{}", "x".repeat(200)));
    }
    let r = report(&Facet::Property, &p);
    assert_eq!(r.total, p["photos"].as_array().unwrap().len());
    assert_eq!(r.violations.len(), MAX_VIOLATIONS);
    let v = r.violations[0].value.as_deref().unwrap();
    assert_eq!(v.chars().count(), MAX_VALUE_CHARS);
    assert!(v.ends_with('…'));
    assert_eq!(r.rules(), vec![Rule::Url]);
    // A rule broken only beyond the kept violations still counts (the listing filters by it).
    p["latitude"] = json!(0);
    p["longitude"] = json!(0);
    let r = report(&Facet::Property, &p);
    assert!(r.violations.iter().all(|v| v.rule == Rule::Url));
    assert_eq!(r.rules(), vec![Rule::NullIsland, Rule::Url]);
}

#[test]
fn rules_have_stable_names() {
    for r in Rule::ALL {
        assert_eq!(Rule::parse(r.as_str()), Some(r));
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!(r.as_str()),
            "the API spells it as the filter does"
        );
    }
    assert_eq!(Rule::parse("nope"), None);
}
