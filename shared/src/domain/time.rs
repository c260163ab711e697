//! Time values used by the domain: whole seconds since the Unix epoch, rendered as RFC 3339 UTC.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with one-second precision (what the API shows and DynamoDB stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_secs() as i64),
            Err(e) => Timestamp(-(e.duration().as_secs() as i64)),
        }
    }
    pub fn secs(self) -> i64 {
        self.0
    }
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_secs() as i64))
    }
    /// Seconds from `earlier` to `self` (zero when `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_secs(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
    pub fn rfc3339(self) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(self.0.max(0) as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    }
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        humantime::parse_rfc3339_weak(s)
            .ok()
            .map(Timestamp::from_system)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s}")))
    }
}

/// Formats a duration the Go way, without zero units: `12h`, `2h30m`, `45s`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let total = d.as_secs();
    if total == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_in_seconds() {
        let t = Timestamp(1_705_314_600);
        assert_eq!(t.rfc3339(), "2024-01-15T10:30:00Z");
        assert_eq!(Timestamp::parse_rfc3339("2024-01-15T10:30:00Z"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn go_durations_drop_zero_units() {
        assert_eq!(format_go_duration(Duration::from_secs(12 * 3600)), "12h");
        assert_eq!(
            format_go_duration(Duration::from_secs(2 * 3600 + 1800)),
            "2h30m"
        );
        assert_eq!(format_go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_go_duration(Duration::from_secs(7 * 86400)), "168h");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
    }
}
