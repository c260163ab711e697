//! Run-time settings: what each key means, how its value is validated, and the effective values.

use super::interval::Interval;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
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

/// Every setting the system knows. The env variable gives the default; the settings table overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettingKey {
    SyncInterval,
    SyncBatchSize,
    SyncMaxConcurrent,
    SyncRetryAttempts,
    SyncEnableAuto,
    SyncRateLimit,
    SyncLanguages,
    SyncReviewCount,
    SyncMaxChangeRatio,
    SyncMaxConsecutiveFailures,
    SyncSchemaPolicy,
}

impl SettingKey {
    pub const ALL: [SettingKey; 11] = [
        SettingKey::SyncInterval,
        SettingKey::SyncBatchSize,
        SettingKey::SyncMaxConcurrent,
        SettingKey::SyncRetryAttempts,
        SettingKey::SyncEnableAuto,
        SettingKey::SyncRateLimit,
        SettingKey::SyncLanguages,
        SettingKey::SyncReviewCount,
        SettingKey::SyncMaxChangeRatio,
        SettingKey::SyncMaxConsecutiveFailures,
        SettingKey::SyncSchemaPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::SyncInterval => "sync_interval",
            SettingKey::SyncBatchSize => "sync_batch_size",
            SettingKey::SyncMaxConcurrent => "sync_max_concurrent",
            SettingKey::SyncRetryAttempts => "sync_retry_attempts",
            SettingKey::SyncEnableAuto => "sync_enable_auto",
            SettingKey::SyncRateLimit => "sync_rate_limit",
            SettingKey::SyncLanguages => "sync_languages",
            SettingKey::SyncReviewCount => "sync_review_count",
            SettingKey::SyncMaxChangeRatio => "sync_max_change_ratio",
            SettingKey::SyncMaxConsecutiveFailures => "sync_max_consecutive_failures",
            SettingKey::SyncSchemaPolicy => "sync_schema_policy",
        }
    }

    /// The environment variable that gives this key's default.
    pub fn env_var(self) -> &'static str {
        match self {
            SettingKey::SyncInterval => "SYNC_INTERVAL",
            SettingKey::SyncBatchSize => "SYNC_BATCH_SIZE",
            SettingKey::SyncMaxConcurrent => "SYNC_MAX_CONCURRENT",
            SettingKey::SyncRetryAttempts => "SYNC_RETRY_ATTEMPTS",
            SettingKey::SyncEnableAuto => "SYNC_ENABLE_AUTO",
            SettingKey::SyncRateLimit => "SYNC_RATE_LIMIT",
            SettingKey::SyncLanguages => "SYNC_LANGUAGES",
            SettingKey::SyncReviewCount => "SYNC_REVIEW_COUNT",
            SettingKey::SyncMaxChangeRatio => "SYNC_MAX_CHANGE_RATIO",
            SettingKey::SyncMaxConsecutiveFailures => "SYNC_MAX_CONSECUTIVE_FAILURES",
            SettingKey::SyncSchemaPolicy => "SYNC_SCHEMA_POLICY",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            SettingKey::SyncInterval => {
                "Time between scheduled syncs (Go duration, 1m..168h, whole minutes; e.g. 12h or 24h)"
            }
            SettingKey::SyncBatchSize => {
                "Properties fetched per batch; progress is checkpointed after each batch (1..100)"
            }
            SettingKey::SyncMaxConcurrent => "Upstream requests in flight at once (1..64)",
            SettingKey::SyncRetryAttempts => {
                "Retries of one upstream request on timeout, 5xx or 429, with exponential backoff (0..10)"
            }
            SettingKey::SyncEnableAuto => {
                "Whether the schedule runs syncs automatically (true or false)"
            }
            SettingKey::SyncRateLimit => "Upstream requests per second at most (0.1..1000)",
            SettingKey::SyncLanguages => {
                "Translations synced per property, ISO 639-1 codes separated by commas (e.g. fr,es); empty for none"
            }
            SettingKey::SyncReviewCount => {
                "Newest reviews synced per property (0..1000); 0 syncs no reviews"
            }
            SettingKey::SyncMaxChangeRatio => {
                "Circuit breaker: a run that would change or quarantine more than this share of the properties with stored data it fetched halts, writing nothing more (0.01..1; 1 = never)"
            }
            SettingKey::SyncMaxConsecutiveFailures => {
                "Auto-pause: after this many failed or halted scheduled runs in a row the schedule disables itself (0..100; 0 = never)"
            }
            SettingKey::SyncSchemaPolicy => {
                "Schema drift: evolve (report paths that appeared, disappeared or changed type once, then accept them) or freeze (quarantine documents with a path or type the baseline lacks until an operator accepts them)"
            }
        }
    }

    fn default_raw(self) -> &'static str {
        match self {
            SettingKey::SyncInterval => "12h",
            SettingKey::SyncBatchSize => "10",
            SettingKey::SyncMaxConcurrent => "5",
            SettingKey::SyncRetryAttempts => "3",
            SettingKey::SyncEnableAuto => "true",
            SettingKey::SyncRateLimit => "10",
            SettingKey::SyncLanguages => "fr,es",
            SettingKey::SyncReviewCount => "100",
            SettingKey::SyncMaxChangeRatio => "0.5",
            SettingKey::SyncMaxConsecutiveFailures => "5",
            SettingKey::SyncSchemaPolicy => "evolve",
        }
    }
}

impl fmt::Display for SettingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SettingKey {
    type Err = SettingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SettingKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| SettingError::UnknownKey(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    #[error(
        "unknown setting `{0}` (known: sync_interval, sync_batch_size, sync_max_concurrent, sync_retry_attempts, sync_enable_auto, sync_rate_limit, sync_languages, sync_review_count, sync_max_change_ratio, sync_max_consecutive_failures, sync_schema_policy)"
    )]
    UnknownKey(String),
    #[error("invalid value `{value}` for {key}: {reason}")]
    InvalidValue {
        key: SettingKey,
        value: String,
        reason: String,
    },
}

impl SettingError {
    /// The field a client should fix.
    pub fn key(&self) -> String {
        match self {
            SettingError::UnknownKey(k) => k.clone(),
            SettingError::InvalidValue { key, .. } => key.as_str().to_string(),
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

/// The accepted range of `sync_rate_limit` (requests per second). Below 0.1 a run of 100
/// properties would take hours; the bounds also keep every derived duration finite.
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 1000.0;

/// Validates `raw` for `key`.
pub fn parse_value(key: SettingKey, raw: &str) -> Result<SettingValue, SettingError> {
    let bad = |reason: String| SettingError::InvalidValue {
        key,
        value: raw.to_string(),
        reason,
    };
    match key {
        SettingKey::SyncInterval => Interval::parse(raw)
            .map(SettingValue::Interval)
            .map_err(|e| bad(e.to_string())),
        SettingKey::SyncBatchSize => int_in(key, raw, 1, 100),
        SettingKey::SyncMaxConcurrent => int_in(key, raw, 1, 64),
        SettingKey::SyncRetryAttempts => int_in(key, raw, 0, 10),
        SettingKey::SyncEnableAuto => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(SettingValue::Flag(true)),
            "false" => Ok(SettingValue::Flag(false)),
            _ => Err(bad("must be true or false".into())),
        },
        SettingKey::SyncLanguages => languages(key, raw),
        SettingKey::SyncReviewCount => int_in(key, raw, 0, 1000),
        SettingKey::SyncMaxConsecutiveFailures => int_in(key, raw, 0, 100),
        SettingKey::SyncSchemaPolicy => raw
            .parse()
            .map(SettingValue::Policy)
            .map_err(|_| bad("must be evolve or freeze".into())),
        SettingKey::SyncMaxChangeRatio => {
            let r: f64 = raw
                .trim()
                .parse()
                .map_err(|_| bad("must be a number from 0.01 to 1".into()))?;
            if !r.is_finite() || !(0.01..=1.0).contains(&r) {
                return Err(bad("must be a number from 0.01 to 1".into()));
            }
            Ok(SettingValue::Rate(r))
        }
        SettingKey::SyncRateLimit => {
            let r: f64 = raw
                .trim()
                .parse()
                .map_err(|_| bad("must be a number of requests per second".into()))?;
            if !r.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&r) {
                return Err(bad(format!(
                    "must be a number from {MIN_RATE} to {MAX_RATE} requests per second"
                )));
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
    fn default() -> Self {
        let mut s = Settings {
            interval: Interval::parse("12h").expect("valid default"),
            batch_size: 10,
            max_concurrent: 5,
            retry_attempts: 3,
            enable_auto: true,
            rate_limit: 10.0,
            languages: vec!["fr".into(), "es".into()],
            review_count: 100,
            max_change_ratio: 0.5,
            max_consecutive_failures: 5,
            schema_policy: SchemaPolicy::Evolve,
        };
        for k in SettingKey::ALL {
            let v = parse_value(k, k.default_raw()).expect("defaults are valid");
            s.apply(k, v);
        }
        s
    }
}

impl Settings {
    /// Defaults from the environment; a bad value is an error naming the variable.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut s = Settings::default();
        for k in SettingKey::ALL {
            if let Some(raw) = get(k.env_var()) {
                let v = parse_value(k, &raw).map_err(|e| crate::config::ConfigError::Invalid {
                    var: k.env_var(),
                    reason: e.to_string(),
                })?;
                s.apply(k, v);
            }
        }
        Ok(s)
    }

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
