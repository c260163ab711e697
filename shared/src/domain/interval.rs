//! The sync interval: a whole number of minutes from 1 minute to 7 days.

use super::time::format_go_duration;
use std::fmt;
use std::time::Duration;

pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    #[error("`{0}` is not a duration (use Go style, e.g. 12h, 24h, 2h30m, 90m)")]
    Unparsable(String),
    #[error("`{0}` is shorter than the minimum interval of 1m")]
    TooShort(String),
    #[error("`{0}` is longer than the maximum interval of 7d (168h)")]
    TooLong(String),
    #[error("`{0}` is not a whole number of minutes (the schedule runs at minute precision)")]
    NotWholeMinutes(String),
}

impl Interval {
    /// One hour (the built-in default before the settings' own default applies).
    pub const HOUR: Interval = Interval(Duration::from_secs(3600));

    pub fn parse(raw: &str) -> Result<Self, IntervalError> {
        let s = raw.trim();
        if s.is_empty() || s.starts_with('-') || s.starts_with('+') {
            return Err(IntervalError::Unparsable(raw.to_string()));
        }
        let d =
            humantime::parse_duration(s).map_err(|_| IntervalError::Unparsable(raw.to_string()))?;
        Self::from_duration(d).map_err(|e| match e {
            IntervalError::TooShort(_) => IntervalError::TooShort(raw.to_string()),
            IntervalError::TooLong(_) => IntervalError::TooLong(raw.to_string()),
            IntervalError::NotWholeMinutes(_) => IntervalError::NotWholeMinutes(raw.to_string()),
            other => other,
        })
    }

    pub fn from_duration(d: Duration) -> Result<Self, IntervalError> {
        let shown = format_go_duration(d);
        if d < MIN_INTERVAL {
            return Err(IntervalError::TooShort(shown));
        }
        if d > MAX_INTERVAL {
            return Err(IntervalError::TooLong(shown));
        }
        if !d.as_secs().is_multiple_of(60) || d.subsec_nanos() != 0 {
            return Err(IntervalError::NotWholeMinutes(shown));
        }
        Ok(Interval(d))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// The EventBridge Scheduler expression: `rate(N unit)` in the largest exact unit.
    pub fn rate_expression(self) -> String {
        let mins = self.0.as_secs() / 60;
        let (n, unit) = if mins.is_multiple_of(1440) {
            (mins / 1440, "day")
        } else if mins.is_multiple_of(60) {
            (mins / 60, "hour")
        } else {
            (mins, "minute")
        };
        let plural = if n == 1 { "" } else { "s" };
        format!("rate({n} {unit}{plural})")
    }

    /// Parses a `rate(N unit)` expression back (what the schedule reports).
    pub fn from_rate_expression(expr: &str) -> Option<Self> {
        let inner = expr.trim().strip_prefix("rate(")?.strip_suffix(')')?;
        let mut parts = inner.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        let secs = match parts.next()?.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return None,
        };
        Self::from_duration(Duration::from_secs(n * secs)).ok()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_style_values_in_range() {
        assert_eq!(Interval::parse("12h").unwrap().to_string(), "12h");
        assert_eq!(
            Interval::parse("24h").unwrap().duration(),
            Duration::from_secs(86_400)
        );
        assert_eq!(Interval::parse("2h30m").unwrap().to_string(), "2h30m");
        assert_eq!(Interval::parse("1m").unwrap().duration(), MIN_INTERVAL);
        assert_eq!(Interval::parse("7d").unwrap().duration(), MAX_INTERVAL);
        assert_eq!(Interval::parse("168h").unwrap().duration(), MAX_INTERVAL);
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        assert!(matches!(
            Interval::parse("6x"),
            Err(IntervalError::Unparsable(_))
        ));
        assert!(matches!(
            Interval::parse(""),
            Err(IntervalError::Unparsable(_))
        ));
        assert!(matches!(
            Interval::parse("-1h"),
            Err(IntervalError::Unparsable(_))
        ));
        assert!(matches!(
            Interval::parse("0h"),
            Err(IntervalError::TooShort(_))
        ));
        assert!(matches!(
            Interval::parse("45s"),
            Err(IntervalError::TooShort(_))
        ));
        assert!(matches!(
            Interval::parse("8d"),
            Err(IntervalError::TooLong(_))
        ));
        assert!(matches!(
            Interval::parse("90s"),
            Err(IntervalError::NotWholeMinutes(_))
        ));
    }

    #[test]
    fn rate_expressions_use_the_largest_exact_unit_and_round_trip() {
        for (raw, expr) in [
            ("1m", "rate(1 minute)"),
            ("90m", "rate(90 minutes)"),
            ("12h", "rate(12 hours)"),
            ("24h", "rate(1 day)"),
            ("7d", "rate(7 days)"),
        ] {
            let i = Interval::parse(raw).unwrap();
            assert_eq!(i.rate_expression(), expr);
            assert_eq!(Interval::from_rate_expression(expr), Some(i));
        }
        assert_eq!(Interval::from_rate_expression("cron(0 * * * ? *)"), None);
    }
}
