//! The recorded Cupid bodies the domain's tests read (`tests/fixtures/`), parsed.

use serde_json::Value;

/// The recorded property 1641879.
pub fn property() -> Value {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/property_1641879.json"
    ))
    .expect("the recorded property is JSON")
}

/// The recorded 100 newest reviews of 1641879.
pub fn reviews() -> Value {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/reviews_1641879_100.json"
    ))
    .expect("the recorded reviews are JSON")
}
