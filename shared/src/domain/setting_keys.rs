//! The settings, declared once each ([`SPECS`]): name, environment variable, built-in default,
//! accepted values and description. `domain::settings` validates and applies them.

use std::fmt;
use std::str::FromStr;

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

/// What values a setting takes (its range is part of it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A Go duration of whole minutes (`Interval::parse`).
    Interval,
    Count {
        lo: u32,
        hi: u32,
    },
    Flag,
    /// A number in a closed range; `unit` is named in errors.
    Number {
        lo: f64,
        hi: f64,
        unit: &'static str,
    },
    Languages,
    Policy,
}

/// One setting, declared once: key, name (API and table), environment variable (the
/// deployment's default), built-in default, accepted values, and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: SettingKey,
    pub name: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

const fn spec(
    key: SettingKey,
    name: &'static str,
    env: &'static str,
    default: &'static str,
    kind: Kind,
    description: &'static str,
) -> Spec {
    Spec {
        key,
        name,
        env,
        default,
        kind,
        description,
    }
}

/// Every setting, in `SettingKey` order (a test holds them to it).
pub const SPECS: [Spec; 11] = [
    spec(
        SettingKey::SyncInterval,
        "sync_interval",
        "SYNC_INTERVAL",
        "12h",
        Kind::Interval,
        "Time between scheduled syncs (Go duration, 1m..168h, whole minutes; e.g. 12h or 24h)",
    ),
    spec(
        SettingKey::SyncBatchSize,
        "sync_batch_size",
        "SYNC_BATCH_SIZE",
        "10",
        Kind::Count { lo: 1, hi: 100 },
        "Properties fetched per batch; progress is checkpointed after each batch (1..100)",
    ),
    spec(
        SettingKey::SyncMaxConcurrent,
        "sync_max_concurrent",
        "SYNC_MAX_CONCURRENT",
        "5",
        Kind::Count { lo: 1, hi: 64 },
        "Upstream requests in flight at once (1..64)",
    ),
    spec(
        SettingKey::SyncRetryAttempts,
        "sync_retry_attempts",
        "SYNC_RETRY_ATTEMPTS",
        "3",
        Kind::Count { lo: 0, hi: 10 },
        "Retries of one upstream request on timeout, 5xx or 429, with exponential backoff (0..10)",
    ),
    spec(
        SettingKey::SyncEnableAuto,
        "sync_enable_auto",
        "SYNC_ENABLE_AUTO",
        "true",
        Kind::Flag,
        "Whether the schedule runs syncs automatically (true or false)",
    ),
    spec(
        SettingKey::SyncRateLimit,
        "sync_rate_limit",
        "SYNC_RATE_LIMIT",
        "10",
        Kind::Number {
            lo: MIN_RATE,
            hi: MAX_RATE,
            unit: " requests per second",
        },
        "Upstream requests per second at most (0.1..1000)",
    ),
    spec(
        SettingKey::SyncLanguages,
        "sync_languages",
        "SYNC_LANGUAGES",
        "fr,es",
        Kind::Languages,
        "Translations synced per property, ISO 639-1 codes separated by commas (e.g. fr,es); empty for none",
    ),
    spec(
        SettingKey::SyncReviewCount,
        "sync_review_count",
        "SYNC_REVIEW_COUNT",
        "100",
        Kind::Count { lo: 0, hi: 1000 },
        "Newest reviews synced per property (0..1000); 0 syncs no reviews",
    ),
    spec(
        SettingKey::SyncMaxChangeRatio,
        "sync_max_change_ratio",
        "SYNC_MAX_CHANGE_RATIO",
        "0.5",
        Kind::Number {
            lo: 0.01,
            hi: 1.0,
            unit: "",
        },
        "Circuit breaker: a run that would change or quarantine more than this share of the properties with stored data it fetched halts, writing nothing more (0.01..1; 1 = never)",
    ),
    spec(
        SettingKey::SyncMaxConsecutiveFailures,
        "sync_max_consecutive_failures",
        "SYNC_MAX_CONSECUTIVE_FAILURES",
        "5",
        Kind::Count { lo: 0, hi: 100 },
        "Auto-pause: after this many failed or halted scheduled runs in a row the schedule disables itself (0..100; 0 = never)",
    ),
    spec(
        SettingKey::SyncSchemaPolicy,
        "sync_schema_policy",
        "SYNC_SCHEMA_POLICY",
        "evolve",
        Kind::Policy,
        "Schema drift: evolve (report paths that appeared, disappeared or changed type once, then accept them) or freeze (quarantine documents with a path or type the baseline lacks until an operator accepts them)",
    ),
];

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

    /// Its declaration in [`SPECS`].
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The environment variable that gives this key's default.
    pub fn env_var(self) -> &'static str {
        self.spec().env
    }

    pub fn description(self) -> &'static str {
        self.spec().description
    }

    pub(super) fn default_raw(self) -> &'static str {
        self.spec().default
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
    #[error("unknown setting `{0}` (known: {known})", known = known_names())]
    UnknownKey(String),
    #[error("invalid value `{value}` for {key}: {reason}")]
    InvalidValue {
        key: SettingKey,
        value: String,
        reason: String,
    },
}

fn known_names() -> String {
    SPECS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
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

/// The accepted range of `sync_rate_limit` (requests per second). Below 0.1 a run of 100
/// properties would take hours; the bounds also keep every derived duration finite.
pub const MIN_RATE: f64 = 0.1;
pub const MAX_RATE: f64 = 1000.0;
