//! Configuration from the environment. A bad value stops the function at start with one clear
//! error naming the variable; nothing silently falls back.

use crate::adapters::tables;
use crate::domain::settings::{SettingKey, Settings, parse_value};
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("environment variable {var} is required: {why}")]
    Missing {
        var: &'static str,
        why: &'static str,
    },
}

/// A value that must never be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub properties: String,
    pub documents: String,
    pub sync_logs: String,
    pub settings: String,
}

/// How the trigger starts the sync function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// Lambda Invoke with InvocationType Event, awaited (AWS: returns at once).
    Invoke,
    /// The same Invoke, sent from a background task so the HTTP answer does not wait
    /// (`cargo lambda watch` runs Event invokes synchronously).
    Detached,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub settings: Settings,
    pub cupid_base_url: String,
    pub cupid_api_key: Option<Secret>,
    pub cupid_timeout: Duration,
    pub admin_token: Option<Secret>,
    pub event_bus: String,
    pub sync_function: String,
    pub max_run: Duration,
    pub deadline_margin: Duration,
    pub lease_ttl: Duration,
    pub touch_unchanged: bool,
    pub dispatch_mode: DispatchMode,
    pub schedule_name: String,
    pub schedule_group: String,
    /// The schedule's target (the sync function) and the role Scheduler assumes: required by
    /// the functions that write the schedule (no made-up default: a wrong ARN would only fail
    /// at the first scheduled run).
    pub schedule_target_arn: Option<String>,
    pub schedule_role_arn: Option<String>,
    /// Dead-letter queue for schedule deliveries that fail; kept when the schedule is replaced.
    pub schedule_dlq_arn: Option<String>,
    /// Local mode only: webhooks may point at loopback receivers over http
    /// (`WEBHOOKS_ALLOW_LOOPBACK=true`; never set in the template).
    pub webhooks_allow_loopback: bool,
    /// Local mode only: the function that receives every published event (moto's EventBridge
    /// delivers none), invoked the way a rule target would be (`LOCAL_EVENT_TARGET=deliver`).
    pub local_event_target: Option<String>,
}

fn secs(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    match get(var) {
        None => Ok(Duration::from_secs(default)),
        Some(raw) => {
            let n: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
                var,
                reason: format!("`{raw}` is not a whole number of seconds"),
            })?;
            if n < lo || n > hi {
                return Err(ConfigError::Invalid {
                    var,
                    reason: format!("{n} is outside {lo}..{hi} seconds"),
                });
            }
            Ok(Duration::from_secs(n))
        }
    }
}

fn flag(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(var).as_deref().map(str::trim) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            var,
            reason: format!("`{other}` is not true or false"),
        }),
    }
}

fn name(
    get: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    if v.trim().is_empty() {
        return Err(ConfigError::Invalid {
            var,
            reason: "must not be empty".into(),
        });
    }
    Ok(v)
}

/// A table's name: its variable, else its default (both declared once, in `adapters::tables`).
fn table(
    get: &dyn Fn(&str) -> Option<String>,
    def: &tables::TableDef,
) -> Result<String, ConfigError> {
    name(get, def.env_var, def.default_name)
}

/// The deployment's setting defaults: each setting's environment variable over its built-in
/// default (`domain::settings::SPECS`); a bad value is an error naming the variable.
pub fn settings_from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    for k in SettingKey::ALL {
        if let Some(raw) = get(k.env_var()) {
            let v = parse_value(k, &raw).map_err(|e| ConfigError::Invalid {
                var: k.env_var(),
                reason: e.to_string(),
            })?;
            s.apply(k, v);
        }
    }
    Ok(s)
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&|k| std::env::var(k).ok())
    }

    pub fn from_source(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let base = name(get, "CUPID_BASE_URL", "https://content-api.cupid.travel")?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                var: "CUPID_BASE_URL",
                reason: format!("`{base}` is not an http(s) URL"),
            });
        }
        let dispatch_mode = match get("SYNC_DISPATCH").as_deref() {
            None | Some("invoke") => DispatchMode::Invoke,
            Some("detached") => DispatchMode::Detached,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "SYNC_DISPATCH",
                    reason: format!("`{other}` is not invoke or detached"),
                });
            }
        };
        let secret = |var: &str| get(var).filter(|s| !s.is_empty()).map(Secret::new);
        let max_run = secs(get, "SYNC_MAX_RUN_SECONDS", 840, 1, 900)?;
        let lease_ttl = secs(get, "SYNC_LEASE_SECONDS", 120, 2, 3600)?;
        // A retry after a holder died must see its lease expire while it still has time to
        // work: the lease is at most a third of an invocation's share.
        if lease_ttl * 3 > max_run {
            return Err(ConfigError::Invalid {
                var: "SYNC_LEASE_SECONDS",
                reason: format!(
                    "{} s is more than a third of SYNC_MAX_RUN_SECONDS ({} s)",
                    lease_ttl.as_secs(),
                    max_run.as_secs()
                ),
            });
        }
        Ok(Config {
            tables: Tables {
                properties: table(get, &tables::PROPERTIES)?,
                documents: table(get, &tables::DOCUMENTS)?,
                sync_logs: table(get, &tables::SYNC_LOGS)?,
                settings: table(get, &tables::SETTINGS)?,
            },
            settings: settings_from_env(get)?,
            cupid_base_url: base.trim_end_matches('/').to_string(),
            cupid_api_key: secret("CUPID_API_KEY"),
            cupid_timeout: secs(get, "CUPID_TIMEOUT_SECONDS", 10, 1, 120)?,
            admin_token: secret("ADMIN_TOKEN"),
            event_bus: name(get, "EVENT_BUS_NAME", "cupid-sync")?,
            sync_function: name(get, "SYNC_FUNCTION_NAME", "sync")?,
            max_run,
            deadline_margin: secs(get, "SYNC_DEADLINE_MARGIN_SECONDS", 30, 0, 300)?,
            lease_ttl,
            touch_unchanged: flag(get, "SYNC_TOUCH_UNCHANGED", true)?,
            dispatch_mode,
            schedule_name: name(get, "SCHEDULE_NAME", "cupid-sync")?,
            schedule_group: name(get, "SCHEDULE_GROUP", "default")?,
            schedule_target_arn: get("SCHEDULE_TARGET_ARN").filter(|s| !s.trim().is_empty()),
            schedule_role_arn: get("SCHEDULE_ROLE_ARN").filter(|s| !s.trim().is_empty()),
            schedule_dlq_arn: get("SCHEDULE_DLQ_ARN").filter(|s| !s.is_empty()),
            webhooks_allow_loopback: flag(get, "WEBHOOKS_ALLOW_LOOPBACK", false)?,
            local_event_target: get("LOCAL_EVENT_TARGET").filter(|s| !s.trim().is_empty()),
        })
    }

    /// The schedule's target and role ARNs, for the functions that write the schedule.
    pub fn require_schedule_target(&self) -> Result<(String, String), ConfigError> {
        let target = self
            .schedule_target_arn
            .clone()
            .ok_or(ConfigError::Missing {
                var: "SCHEDULE_TARGET_ARN",
                why: "the schedule's target: the sync function's ARN",
            })?;
        let role = self.schedule_role_arn.clone().ok_or(ConfigError::Missing {
            var: "SCHEDULE_ROLE_ARN",
            why: "the role EventBridge Scheduler assumes to invoke the sync function",
        })?;
        Ok((target, role))
    }

    /// The admin token; HTTP functions refuse to start without one.
    pub fn require_admin_token(&self) -> Result<Secret, ConfigError> {
        self.admin_token.clone().ok_or(ConfigError::Missing {
            var: "ADMIN_TOKEN",
            why: "admin routes compare the bearer token against it",
        })
    }

    pub fn require_cupid_key(&self) -> Result<Secret, ConfigError> {
        self.cupid_api_key.clone().ok_or(ConfigError::Missing {
            var: "CUPID_API_KEY",
            why: "the Cupid API needs an x-api-key",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&move |k| m.get(k).cloned())
    }

    #[test]
    fn defaults_work_without_any_env() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.settings.batch_size, 10);
        assert_eq!(c.max_run, Duration::from_secs(840));
        assert!(c.admin_token.is_none());
        assert!(
            c.require_admin_token()
                .unwrap_err()
                .to_string()
                .contains("ADMIN_TOKEN")
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (var, val) in [
            ("SYNC_INTERVAL", "6x"),
            ("SYNC_BATCH_SIZE", "0"),
            ("SYNC_MAX_CONCURRENT", "100"),
            ("SYNC_RETRY_ATTEMPTS", "-1"),
            ("SYNC_ENABLE_AUTO", "maybe"),
            ("SYNC_RATE_LIMIT", "0"),
            ("SYNC_MAX_RUN_SECONDS", "soon"),
            ("SYNC_TOUCH_UNCHANGED", "1"),
            ("CUPID_BASE_URL", "ftp://x"),
            ("PROPERTIES_TABLE", ""),
            ("SYNC_DISPATCH", "carrier-pigeon"),
            ("SYNC_LEASE_SECONDS", "600"),
        ] {
            let err = cfg(&[(var, val)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn the_schedule_arns_have_no_made_up_default_and_a_missing_one_names_itself() {
        let c = cfg(&[]).unwrap();
        let e = c.require_schedule_target().unwrap_err().to_string();
        assert!(e.contains("SCHEDULE_TARGET_ARN"), "{e}");
        let c = cfg(&[(
            "SCHEDULE_TARGET_ARN",
            "arn:aws:lambda:eu-west-1:1:function:s",
        )])
        .unwrap();
        let e = c.require_schedule_target().unwrap_err().to_string();
        assert!(e.contains("SCHEDULE_ROLE_ARN"), "{e}");
        let c = cfg(&[
            (
                "SCHEDULE_TARGET_ARN",
                "arn:aws:lambda:eu-west-1:1:function:s",
            ),
            ("SCHEDULE_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])
        .unwrap();
        assert_eq!(
            c.require_schedule_target().unwrap(),
            (
                "arn:aws:lambda:eu-west-1:1:function:s".to_string(),
                "arn:aws:iam::1:role/r".to_string()
            )
        );
    }

    #[test]
    fn setting_defaults_come_from_the_environment_and_a_bad_one_names_its_variable() {
        let env = |k: &str| match k {
            "SYNC_INTERVAL" => Some("24h".to_string()),
            "SYNC_RATE_LIMIT" => Some("2.5".to_string()),
            _ => None,
        };
        let s = settings_from_env(&env).unwrap();
        assert_eq!(s.interval.to_string(), "24h");
        assert_eq!(s.rate_limit, 2.5);
        let bad = |k: &str| (k == "SYNC_BATCH_SIZE").then(|| "lots".to_string());
        let err = settings_from_env(&bad).unwrap_err();
        assert!(err.to_string().contains("SYNC_BATCH_SIZE"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let c = cfg(&[("ADMIN_TOKEN", "hunter2"), ("CUPID_API_KEY", "k-123")]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("k-123"),
            "{shown}"
        );
        assert_eq!(c.require_cupid_key().unwrap().expose(), "k-123");
    }
}
