//! Status nudges: when an open incident's commander is reminded to post an update.
//!
//! Owns the interval per severity (defaults SEV1 15 min, SEV2 30 min, SEV3 60 min, SEV4 never),
//! the override that replaces them all (`INCD_NUDGE_AFTER`), the reading of intervals written as
//! humantime (`2s`, `15m`) or `off`, and the decision a durable timer makes when it fires: nudge
//! now, wait until a time, or stop. The decision depends only on stored times, so a restart
//! neither loses nor repeats a nudge. No I/O and no clock here: `now` is an argument.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The shortest interval accepted: a timer that fires more often than this is a mistake.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest duration accepted anywhere in the lifecycle (100 years): far beyond any real
/// setting, and small enough that adding it to a time never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why a configured duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{given}` is not a duration: use a number and a unit such as 30s, 15m, 2h or 30d{}", if *.off_allowed { ", or off" } else { "" })]
    Unreadable { given: String, off_allowed: bool },
    #[error("`{given}` is too short: use at least 1s")]
    TooShort { given: String },
    #[error("`{given}` is too long: use at most 100 years")]
    TooLong { given: String },
}

/// Read a humantime duration (`3s`, `15m`, `30d`) within [`MAX_DURATION`]; `min` is the
/// shortest accepted.
pub fn parse_duration(s: &str, min: Duration) -> Result<Duration, DurationError> {
    let given = s.trim();
    let d = humantime::parse_duration(given).map_err(|_| DurationError::Unreadable {
        given: given.to_string(),
        off_allowed: false,
    })?;
    if d < min {
        return Err(DurationError::TooShort {
            given: given.to_string(),
        });
    }
    if d > MAX_DURATION {
        return Err(DurationError::TooLong {
            given: given.to_string(),
        });
    }
    Ok(d)
}

/// `d` as a chrono duration; every duration parsed here fits.
pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d.min(MAX_DURATION)).expect("at most MAX_DURATION")
}

/// How often the commander is nudged while no status update is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Never.
    Off,
    /// After this long without an update, and again each time this long passes.
    Every(Duration),
}

impl FromStr for Interval {
    type Err = DurationError;

    /// `off` (any case) or a humantime duration of at least [`MIN_INTERVAL`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Interval::Off);
        }
        parse_duration(s, MIN_INTERVAL)
            .map(Interval::Every)
            .map_err(|e| match e {
                DurationError::Unreadable { given, .. } => DurationError::Unreadable {
                    given,
                    off_allowed: true,
                },
                other => other,
            })
    }
}

impl fmt::Display for Interval {
    /// `off`, or the duration as humantime writes it (`15m`, `1h`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interval::Off => f.write_str("off"),
            Interval::Every(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The nudge interval of every severity level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudgePolicy {
    /// Keyed by the level id in lower case.
    per_severity: BTreeMap<String, Interval>,
    /// `INCD_NUDGE_AFTER`: replaces every level's interval when set.
    override_all: Option<Interval>,
}

/// The default intervals by position, most severe first: 15 min, 30 min, 60 min, then never.
const DEFAULT_MINUTES: [u64; 3] = [15, 30, 60];

impl Default for NudgePolicy {
    /// `sev1` 15m, `sev2` 30m, `sev3` 60m, `sev4` off.
    fn default() -> Self {
        NudgePolicy::defaults_for(&["sev1", "sev2", "sev3", "sev4"])
    }
}

impl NudgePolicy {
    /// Set intervals for the given level ids (a level not listed is never nudged).
    pub fn new<K: AsRef<str>>(per_severity: impl IntoIterator<Item = (K, Interval)>) -> Self {
        NudgePolicy {
            per_severity: per_severity
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_lowercase(), v))
                .collect(),
            override_all: None,
        }
    }

    /// The default intervals for configured levels, most severe first: the first three get
    /// 15, 30 and 60 minutes, any others are never nudged.
    pub fn defaults_for(levels: &[impl AsRef<str>]) -> Self {
        NudgePolicy::new(levels.iter().enumerate().map(|(i, level)| {
            let interval = DEFAULT_MINUTES.get(i).map_or(Interval::Off, |m| {
                Interval::Every(Duration::from_secs(m * 60))
            });
            (level.as_ref().to_string(), interval)
        }))
    }

    /// Replace every level's interval (`INCD_NUDGE_AFTER`), or keep them (`None`).
    pub fn with_override(mut self, all: Option<Interval>) -> Self {
        self.override_all = all;
        self
    }

    /// The interval for a severity level (its id, any case).
    pub fn interval(&self, severity: &str) -> Interval {
        self.override_all.unwrap_or_else(|| {
            self.per_severity
                .get(&severity.to_lowercase())
                .copied()
                .unwrap_or(Interval::Off)
        })
    }

    /// When the next nudge is due, or `None` if this severity is never nudged.
    pub fn next_nudge_at(&self, severity: &str, clock: &NudgeClock) -> Option<DateTime<Utc>> {
        let Interval::Every(every) = self.interval(severity) else {
            return None;
        };
        let since = clock
            .last_nudged_at
            .map_or(clock.last_update_at, |n| n.max(clock.last_update_at));
        let due = since + to_chrono(every);
        Some(clock.snoozed_until.map_or(due, |s| s.max(due)))
    }

    /// What a nudge timer should do when it fires at `now`. `active` is whether the incident is
    /// open and not resolved (resolve stops nudges).
    pub fn decide(
        &self,
        severity: &str,
        clock: &NudgeClock,
        active: bool,
        now: DateTime<Utc>,
    ) -> NudgeDecision {
        if !active {
            return NudgeDecision::Stop;
        }
        match self.next_nudge_at(severity, clock) {
            None => NudgeDecision::Stop,
            Some(due) if due > now => NudgeDecision::Wait { until: due },
            Some(_) => NudgeDecision::Nudge {
                since_update: now - clock.last_update_at,
            },
        }
    }
}

/// The stored times a nudge decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudgeClock {
    /// The last status update (or severity change), or the declaration when there was none.
    pub last_update_at: DateTime<Utc>,
    /// When the last nudge was sent; set it to `now` when sending one.
    pub last_nudged_at: Option<DateTime<Utc>>,
    /// No nudge before this time (the Snooze button).
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// What a nudge timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudgeDecision {
    /// Nudge the commander now, saying how long it has been since the last update; then record
    /// the nudge and wait for the next one.
    Nudge { since_update: chrono::Duration },
    /// Not yet: fire again at this time.
    Wait { until: DateTime<Utc> },
    /// No more nudges (the incident is no longer active, or its severity is never nudged).
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 14, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn every(s: &str) -> Interval {
        s.parse().unwrap()
    }

    fn clock(update: i64) -> NudgeClock {
        NudgeClock {
            last_update_at: t(update),
            last_nudged_at: None,
            snoozed_until: None,
        }
    }

    #[test]
    fn default_intervals_follow_severity() {
        let p = NudgePolicy::default();
        assert_eq!(p.interval("sev1"), every("15m"));
        assert_eq!(p.interval("SEV2"), every("30m"));
        assert_eq!(p.interval("sev3"), every("60m"));
        assert_eq!(p.interval("sev4"), Interval::Off);
        assert_eq!(p.interval("sev9"), Interval::Off);
    }

    #[test]
    fn custom_levels_get_the_defaults_by_position() {
        let p = NudgePolicy::defaults_for(&["P1", "P2", "P3", "P4", "P5"]);
        assert_eq!(p.interval("p1"), every("15m"));
        assert_eq!(p.interval("P3"), every("1h"));
        assert_eq!(p.interval("P5"), Interval::Off);
    }

    #[test]
    fn the_override_replaces_every_level_including_never() {
        let p = NudgePolicy::default().with_override(Some(every("2s")));
        assert_eq!(p.interval("sev1"), every("2s"));
        assert_eq!(p.interval("sev4"), every("2s"));
        let off = NudgePolicy::default().with_override(Some(Interval::Off));
        assert_eq!(off.interval("sev1"), Interval::Off);
    }

    #[test]
    fn intervals_read_humantime_or_off() {
        assert_eq!(every("2s"), Interval::Every(Duration::from_secs(2)));
        assert_eq!(every(" 15m "), Interval::Every(Duration::from_secs(900)));
        assert_eq!(every("OFF"), Interval::Off);
        assert_eq!(every("15m").to_string(), "15m");
        assert_eq!(Interval::Off.to_string(), "off");
        let e = "soon".parse::<Interval>().unwrap_err().to_string();
        assert!(e.contains("15m") && e.contains("or off"), "{e}");
        assert!(matches!(
            "0s".parse::<Interval>(),
            Err(DurationError::TooShort { .. })
        ));
        assert!(matches!(
            "500ms".parse::<Interval>(),
            Err(DurationError::TooShort { .. })
        ));
        assert!(matches!(
            "1000years".parse::<Interval>(),
            Err(DurationError::TooLong { .. })
        ));
    }

    #[test]
    fn intervals_come_from_toml_strings() {
        #[derive(Deserialize)]
        struct Cfg {
            sev1: Interval,
            sev4: Interval,
        }
        let c: Cfg = toml::from_str("sev1 = \"15m\"\nsev4 = \"off\"").unwrap();
        assert_eq!(c.sev1, every("15m"));
        assert_eq!(c.sev4, Interval::Off);
        assert!(toml::from_str::<Cfg>("sev1 = \"fast\"\nsev4 = \"off\"").is_err());
    }

    #[test]
    fn the_first_nudge_is_due_one_interval_after_the_last_update() {
        let p = NudgePolicy::default();
        assert_eq!(p.next_nudge_at("sev2", &clock(0)), Some(t(30)));
        assert_eq!(
            p.decide("sev2", &clock(0), true, t(29)),
            NudgeDecision::Wait { until: t(30) }
        );
        assert_eq!(
            p.decide("sev2", &clock(0), true, t(30)),
            NudgeDecision::Nudge {
                since_update: chrono::Duration::minutes(30)
            }
        );
    }

    #[test]
    fn an_update_resets_the_clock() {
        let p = NudgePolicy::default();
        let mut c = clock(0);
        c.last_nudged_at = Some(t(15));
        c.last_update_at = t(20);
        assert_eq!(p.next_nudge_at("sev1", &c), Some(t(35)));
    }

    #[test]
    fn after_a_nudge_the_next_is_one_interval_later_not_at_once() {
        let p = NudgePolicy::default();
        let mut c = clock(0);
        // Sent late (incd was down) at 40: the next is due at 55, not immediately.
        c.last_nudged_at = Some(t(40));
        assert_eq!(
            p.decide("sev1", &c, true, t(41)),
            NudgeDecision::Wait { until: t(55) }
        );
    }

    #[test]
    fn snooze_pushes_the_nudge_back() {
        let p = NudgePolicy::default();
        let mut c = clock(0);
        c.snoozed_until = Some(t(120));
        assert_eq!(p.next_nudge_at("sev1", &c), Some(t(120)));
        // A snooze that already ran out changes nothing.
        c.snoozed_until = Some(t(5));
        assert_eq!(p.next_nudge_at("sev1", &c), Some(t(15)));
    }

    #[test]
    fn resolve_and_never_levels_stop_the_timer() {
        let p = NudgePolicy::default();
        assert_eq!(
            p.decide("sev1", &clock(0), false, t(100)),
            NudgeDecision::Stop
        );
        assert_eq!(
            p.decide("sev4", &clock(0), true, t(100)),
            NudgeDecision::Stop
        );
    }

    proptest! {
        #[test]
        fn a_nudge_is_never_due_before_an_interval_has_passed_since_update_and_nudge(
            update in 0i64..10_000, nudged in proptest::option::of(0i64..10_000),
            now in 0i64..20_000, secs in 1u64..100_000,
        ) {
            let p = NudgePolicy::default().with_override(Some(Interval::Every(Duration::from_secs(secs))));
            let c = NudgeClock { last_update_at: t(update), last_nudged_at: nudged.map(t), snoozed_until: None };
            let now = t(now);
            if let NudgeDecision::Nudge { .. } = p.decide("sev1", &c, true, now) {
                let interval = chrono::Duration::seconds(secs as i64);
                prop_assert!(now - c.last_update_at >= interval);
                if let Some(n) = c.last_nudged_at {
                    prop_assert!(now - n >= interval);
                }
            }
        }

        #[test]
        fn reading_arbitrary_text_never_panics(s in "\\PC*") {
            let _ = s.parse::<Interval>();
        }
    }
}
