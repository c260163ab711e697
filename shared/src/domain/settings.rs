//! Run-time settings: what each key means, how its value is validated, and the effective values.

use super::interval::Interval;
pub use super::setting_keys::{Kind, MAX_RATE, MIN_RATE, SPECS, SettingError, SettingKey, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// What a document whose shape is new to the baseline does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaPolicy {
    /// Stored; the change is reported once and joins the baseline.
    #[default]
    Evolve,
    /// Quarantined (rule `schema`) until an operator accepts it.
    Freeze,
}

impl SchemaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaPolicy::Evolve => "evolve",
            SchemaPolicy::Freeze => "freeze",
        }
    }
}

impl FromStr for SchemaPolicy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "evolve" => Ok(SchemaPolicy::Evolve),
            "freeze" => Ok(SchemaPolicy::Freeze),
            _ => Err(()),
        }
    }
}

/// A validated value for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Interval(Interval),
    Count(u32),
    Flag(bool),
    Rate(f64),
    Languages(Vec<String>),
    Policy(SchemaPolicy),
}

impl SettingValue {
    /// The canonical text stored in the table and shown by the API.
    pub fn render(&self) -> String {
        match self {
            SettingValue::Interval(i) => i.to_string(),
            SettingValue::Count(n) => n.to_string(),
            SettingValue::Flag(b) => b.to_string(),
            SettingValue::Languages(l) => l.join(","),
            SettingValue::Policy(p) => p.as_str().to_string(),
            SettingValue::Rate(r) => {
                if r.fract() == 0.0 {
                    format!("{}", *r as u64)
                } else {
                    format!("{r}")
                }
            }
        }
    }
}

fn int_in(key: SettingKey, raw: &str, lo: u32, hi: u32) -> Result<SettingValue, SettingError> {
    let bad = |reason: String| SettingError::InvalidValue {
        key,
        value: raw.to_string(),
        reason,
    };
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(format!("must be a whole number from {lo} to {hi}")))?;
    if n < lo as i64 || n > hi as i64 {
        return Err(bad(format!("must be from {lo} to {hi}")));
    }
    Ok(SettingValue::Count(n as u32))
}

/// ISO 639-1 language codes this system accepts (the 29 the Cupid catalogue translates to,
/// plus English).
pub const LANGUAGES: [&str; 30] = [
    "en", "it", "fr", "es", "de", "tr", "ar", "nl", "pl", "cs", "hu", "pt", "ro", "ru", "el", "bg",
    "sv", "hr", "sk", "lt", "nb", "da", "ja", "lv", "uk", "zh", "sl", "fi", "ca", "et",
];

fn languages(key: SettingKey, raw: &str) -> Result<SettingValue, SettingError> {
    let mut out: Vec<String> = Vec::new();
    for code in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let code_l = code.to_ascii_lowercase();
        if !LANGUAGES.contains(&code_l.as_str()) {
            return Err(SettingError::InvalidValue {
                key,
                value: raw.to_string(),
                reason: format!(
                    "`{code}` is not a supported ISO 639-1 code ({})",
                    LANGUAGES.join(", ")
                ),
            });
        }
        if code_l == "en" {
            // English is the property facet itself.
            continue;
        }
        if !out.contains(&code_l) {
            out.push(code_l);
        }
    }
    Ok(SettingValue::Languages(out))
}

/// Validates `raw` for `key`, by the kind its declaration gives.
pub fn parse_value(key: SettingKey, raw: &str) -> Result<SettingValue, SettingError> {
    let bad = |reason: String| SettingError::InvalidValue {
        key,
        value: raw.to_string(),
        reason,
    };
    match key.spec().kind {
        Kind::Interval => Interval::parse(raw)
            .map(SettingValue::Interval)
            .map_err(|e| bad(e.to_string())),
        Kind::Count { lo, hi } => int_in(key, raw, lo, hi),
        Kind::Flag => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(SettingValue::Flag(true)),
            "false" => Ok(SettingValue::Flag(false)),
            _ => Err(bad("must be true or false".into())),
        },
        Kind::Languages => languages(key, raw),
        Kind::Policy => raw
            .parse()
            .map(SettingValue::Policy)
            .map_err(|_| bad("must be evolve or freeze".into())),
        Kind::Number { lo, hi, unit } => {
            let r: f64 = raw
                .trim()
                .parse()
                .map_err(|_| bad(format!("must be a number from {lo} to {hi}{unit}")))?;
            if !r.is_finite() || !(lo..=hi).contains(&r) {
                return Err(bad(format!("must be a number from {lo} to {hi}{unit}")));
            }
            Ok(SettingValue::Rate(r))
        }
    }
}

/// The effective settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub interval: Interval,
    pub batch_size: u32,
    pub max_concurrent: u32,
    pub retry_attempts: u32,
    pub enable_auto: bool,
    pub rate_limit: f64,
    /// Translations to sync (never "en").
    pub languages: Vec<String>,
    /// Newest reviews to sync; 0 = none.
    pub review_count: u32,
    /// The circuit breaker's threshold (`domain::breaker`).
    pub max_change_ratio: f64,
    /// Failed or halted scheduled runs in a row before the schedule pauses (0 = never).
    pub max_consecutive_failures: u32,
    /// What a document with a new shape does (`domain::shape`).
    pub schema_policy: SchemaPolicy,
}

impl Default for Settings {
    /// The built-in defaults of [`SPECS`] (the literal below is only a frame they fill).
    fn default() -> Self {
        let mut s = Settings {
            interval: Interval::HOUR,
            batch_size: 0,
            max_concurrent: 0,
            retry_attempts: 0,
            enable_auto: false,
            rate_limit: 0.0,
            languages: Vec::new(),
            review_count: 0,
            max_change_ratio: 0.0,
            max_consecutive_failures: 0,
            schema_policy: SchemaPolicy::Evolve,
        };
        // Every default parses (`settings_tests` checks each one).
        for k in SettingKey::ALL {
            if let Ok(v) = parse_value(k, k.default_raw()) {
                s.apply(k, v);
            }
        }
        s
    }
}

impl Settings {
    pub fn apply(&mut self, key: SettingKey, value: SettingValue) {
        match (key, value) {
            (SettingKey::SyncInterval, SettingValue::Interval(i)) => self.interval = i,
            (SettingKey::SyncBatchSize, SettingValue::Count(n)) => self.batch_size = n,
            (SettingKey::SyncMaxConcurrent, SettingValue::Count(n)) => self.max_concurrent = n,
            (SettingKey::SyncRetryAttempts, SettingValue::Count(n)) => self.retry_attempts = n,
            (SettingKey::SyncEnableAuto, SettingValue::Flag(b)) => self.enable_auto = b,
            (SettingKey::SyncRateLimit, SettingValue::Rate(r)) => self.rate_limit = r,
            (SettingKey::SyncLanguages, SettingValue::Languages(l)) => self.languages = l,
            (SettingKey::SyncReviewCount, SettingValue::Count(n)) => self.review_count = n,
            (SettingKey::SyncMaxChangeRatio, SettingValue::Rate(r)) => self.max_change_ratio = r,
            (SettingKey::SyncMaxConsecutiveFailures, SettingValue::Count(n)) => {
                self.max_consecutive_failures = n
            }
            (SettingKey::SyncSchemaPolicy, SettingValue::Policy(p)) => self.schema_policy = p,
            _ => {}
        }
    }

    pub fn value(&self, key: SettingKey) -> SettingValue {
        match key {
            SettingKey::SyncInterval => SettingValue::Interval(self.interval),
            SettingKey::SyncBatchSize => SettingValue::Count(self.batch_size),
            SettingKey::SyncMaxConcurrent => SettingValue::Count(self.max_concurrent),
            SettingKey::SyncRetryAttempts => SettingValue::Count(self.retry_attempts),
            SettingKey::SyncEnableAuto => SettingValue::Flag(self.enable_auto),
            SettingKey::SyncRateLimit => SettingValue::Rate(self.rate_limit),
            SettingKey::SyncLanguages => SettingValue::Languages(self.languages.clone()),
            SettingKey::SyncReviewCount => SettingValue::Count(self.review_count),
            SettingKey::SyncMaxChangeRatio => SettingValue::Rate(self.max_change_ratio),
            SettingKey::SyncMaxConsecutiveFailures => {
                SettingValue::Count(self.max_consecutive_failures)
            }
            SettingKey::SyncSchemaPolicy => SettingValue::Policy(self.schema_policy),
        }
    }

    /// Upstream requests one property costs: the property, each translation, the reviews.
    pub fn requests_per_property(&self) -> u64 {
        1 + self.languages.len() as u64 + u64::from(self.review_count > 0)
    }

    /// Overlays stored values (key → raw text). A stored value that does not validate (one
    /// written before a rule tightened, or by hand) is an error naming it: a sync never runs
    /// on values nobody chose.
    pub fn overlay(&mut self, stored: &BTreeMap<String, String>) -> Result<(), StoredSettingError> {
        for (k, raw) in stored {
            let key = match k.parse::<SettingKey>() {
                Ok(key) => key,
                // A key this version does not know (written by a newer one): not ours to judge.
                Err(_) => continue,
            };
            match parse_value(key, raw) {
                Ok(v) => self.apply(key, v),
                Err(e) => {
                    return Err(StoredSettingError {
                        key,
                        value: raw.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Like `overlay`, but skips invalid stored values: for the settings routes, which must
    /// still show and replace a broken value.
    pub fn overlay_valid(&mut self, stored: &BTreeMap<String, String>) {
        for (k, raw) in stored {
            if let Ok(key) = k.parse::<SettingKey>()
                && let Ok(v) = parse_value(key, raw)
            {
                self.apply(key, v);
            }
        }
    }
}

/// A stored setting that does not validate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "stored setting {key} = `{value}` is invalid ({reason}); replace it with PUT /api/v1/admin/sync/settings"
)]
pub struct StoredSettingError {
    pub key: SettingKey,
    pub value: String,
    pub reason: String,
}

/// One row as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingRow {
    pub setting_key: String,
    pub setting_value: String,
    pub description: String,
    /// RFC 3339; null when the value is the deployment default and was never changed.
    pub updated_at: Option<String>,
}

/// One requested change (PUT body item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettingChange {
    pub setting_key: String,
    pub setting_value: serde_json::Value,
}

/// Validates a whole change list before anything is written: every error names its key.
pub fn validate_changes(
    changes: &[SettingChange],
) -> Result<Vec<(SettingKey, SettingValue)>, SettingError> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let key: SettingKey = c.setting_key.parse()?;
        let raw = match &c.setting_value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(SettingError::InvalidValue {
                    key,
                    value: other.to_string(),
                    reason: "must be a string, number or boolean".into(),
                });
            }
        };
        out.push((key, parse_value(key, &raw)?));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
