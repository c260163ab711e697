//! Read access to a parsed document, whichever tree it is: the engine checks `Json` trees (its
//! fast path), reviews and tests `serde_json::Value`s, under the same contracts.

use super::json::Json;
use serde_json::Value;

/// A JSON type as contracts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Array,
    Object,
}

/// Read access to a parsed document: the engine checks `Json` trees, tests and tools
/// `serde_json::Value`s, under the same contracts.
pub trait View: Sized {
    fn kind(&self) -> Kind;
    fn field(&self, key: &str) -> Option<&Self>;
    fn items(&self) -> &[Self];
    /// Calls `f` with each member of an object (none for other values).
    fn each_member(&self, f: &mut dyn FnMut(&str, &Self));
    fn str(&self) -> Option<&str>;
    fn f64(&self) -> Option<f64>;
    fn i64(&self) -> Option<i64>;
    /// The value as compact JSON (for a violation's `value`).
    fn json(&self) -> String;
}

fn number_kind(n: &serde_json::Number) -> Kind {
    if n.is_f64() { Kind::Float } else { Kind::Int }
}

impl View for Value {
    fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) => number_kind(n),
            Value::String(_) => Kind::Str,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }
    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn items(&self) -> &[Self] {
        self.as_array().map(Vec::as_slice).unwrap_or(&[])
    }
    fn each_member(&self, f: &mut dyn FnMut(&str, &Self)) {
        if let Value::Object(m) = self {
            m.iter().for_each(|(k, v)| f(k, v));
        }
    }
    fn str(&self) -> Option<&str> {
        self.as_str()
    }
    fn f64(&self) -> Option<f64> {
        self.as_f64()
    }
    fn i64(&self) -> Option<i64> {
        self.as_i64()
    }
    fn json(&self) -> String {
        self.to_string()
    }
}

impl View for Json<'_> {
    fn kind(&self) -> Kind {
        match self {
            Json::Null => Kind::Null,
            Json::Bool(_) => Kind::Bool,
            Json::Number(n) => number_kind(n),
            Json::Str(_) => Kind::Str,
            Json::Array(_) => Kind::Array,
            Json::Object(_) => Kind::Object,
        }
    }
    fn field(&self, key: &str) -> Option<&Self> {
        self.get(key)
    }
    fn items(&self) -> &[Self] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }
    fn each_member(&self, f: &mut dyn FnMut(&str, &Self)) {
        self.members().iter().for_each(|(k, v)| f(k, v));
    }
    fn str(&self) -> Option<&str> {
        self.as_str()
    }
    fn f64(&self) -> Option<f64> {
        self.as_f64()
    }
    fn i64(&self) -> Option<i64> {
        self.as_i64()
    }
    fn json(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
