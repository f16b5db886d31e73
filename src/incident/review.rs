//! Review reminders: the post-incident review, 30 days after resolve and every 30 days after
//! that until the incident is closed and no follow-up is open.
//!
//! Owns the schedule (`INCD_REVIEW_AFTER`, `INCD_REVIEW_EVERY`, both humantime), the decision a
//! durable reminder timer makes when it fires (remind now, wait, or stop for good), which due time
//! a reminder stands for (so that it fires once per due time across restarts, and once, not in a
//! burst, after a long downtime), and who receives it (the channel and the commander, or after the
//! channel is archived, direct messages to the commander and every owner of an open follow-up).
//! The reminder's content is computed by the caller when it fires. No I/O and no clock here.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::follow_up::FollowUp;
use super::ids::UserId;
use super::nudge::{parse_duration, to_chrono, DurationError, MIN_INTERVAL};

/// Default wait from resolve to the first reminder, and between reminders: 30 days.
pub const DEFAULT_REVIEW_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// When review reminders are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSchedule {
    /// From resolve to the first reminder.
    after: Duration,
    /// Between reminders; at least [`MIN_INTERVAL`].
    every: Duration,
}

impl Default for ReviewSchedule {
    fn default() -> Self {
        ReviewSchedule {
            after: DEFAULT_REVIEW_PERIOD,
            every: DEFAULT_REVIEW_PERIOD,
        }
    }
}

/// What a reminder timer knows when it fires, read fresh from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewFacts {
    /// The latest resolve (a reopen and a second resolve start the schedule again).
    pub resolved_at: DateTime<Utc>,
    /// The due time the last reminder sent stood for, if one was sent since that resolve.
    pub last_reminded_for: Option<DateTime<Utc>>,
    /// Closed after the review.
    pub closed: bool,
    /// Follow-ups still open.
    pub open_follow_ups: usize,
}

/// What a review reminder timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecision {
    /// Send a reminder now, record `due_at` as the due time it stands for, and fire again at
    /// `next_at`.
    Remind {
        due_at: DateTime<Utc>,
        next_at: DateTime<Utc>,
    },
    /// Not yet: fire again at this time.
    Wait { until: DateTime<Utc> },
    /// The incident is closed and nothing is open: cancel the timer.
    Stop,
}

/// Whether review reminders go on: until the incident is closed **and** no follow-up is open.
pub fn reminders_continue(closed: bool, open_follow_ups: usize) -> bool {
    !closed || open_follow_ups > 0
}

impl ReviewSchedule {
    /// A schedule from durations; `every` must be at least [`MIN_INTERVAL`].
    pub fn new(after: Duration, every: Duration) -> Result<ReviewSchedule, DurationError> {
        if every < MIN_INTERVAL {
            return Err(DurationError::TooShort {
                given: humantime::format_duration(every).to_string(),
            });
        }
        Ok(ReviewSchedule { after, every })
    }

    /// A schedule from humantime text such as `30d` or `3s` (`INCD_REVIEW_AFTER`,
    /// `INCD_REVIEW_EVERY`).
    pub fn parse(after: &str, every: &str) -> Result<ReviewSchedule, DurationError> {
        ReviewSchedule::new(
            parse_duration(after, Duration::ZERO)?,
            parse_duration(every, MIN_INTERVAL)?,
        )
    }

    /// From resolve to the first reminder.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// Between reminders.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The first reminder's due time.
    pub fn first_due(&self, resolved_at: DateTime<Utc>) -> DateTime<Utc> {
        resolved_at + to_chrono(self.after)
    }

    /// The first due time strictly after `t` (the first one if `t` is before it).
    fn due_after(&self, resolved_at: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
        let first = self.first_due(resolved_at);
        if t < first {
            return first;
        }
        first + self.periods(first, t + chrono::Duration::milliseconds(self.every_ms()))
    }

    /// The latest due time at or before `t`, if any.
    fn due_at_or_before(
        &self,
        resolved_at: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let first = self.first_due(resolved_at);
        if t < first {
            return None;
        }
        Some(first + self.periods(first, t))
    }

    fn every_ms(&self) -> i64 {
        to_chrono(self.every).num_milliseconds()
    }

    /// The whole number of `every` periods from `first` to `t` (`t >= first`), as a duration.
    fn periods(&self, first: DateTime<Utc>, t: DateTime<Utc>) -> chrono::Duration {
        let every = self.every_ms();
        chrono::Duration::milliseconds((t - first).num_milliseconds() / every * every)
    }

    /// When the next reminder is due, given the last one sent.
    pub fn next_due(&self, facts: &ReviewFacts) -> DateTime<Utc> {
        match facts.last_reminded_for {
            Some(last) => self.due_after(facts.resolved_at, last),
            None => self.first_due(facts.resolved_at),
        }
    }

    /// What the timer should do at `now`. Missed due times (incd was down) give one reminder,
    /// for the latest of them, never one per missed time.
    pub fn decide(&self, now: DateTime<Utc>, facts: &ReviewFacts) -> ReviewDecision {
        if !reminders_continue(facts.closed, facts.open_follow_ups) {
            return ReviewDecision::Stop;
        }
        let next = self.next_due(facts);
        if now < next {
            return ReviewDecision::Wait { until: next };
        }
        let due_at = self
            .due_at_or_before(facts.resolved_at, now)
            .expect("now is past a due time");
        ReviewDecision::Remind {
            due_at,
            next_at: self.due_after(facts.resolved_at, now),
        }
    }

    /// Whether a reminder is to be sent at `now`.
    pub fn should_remind(&self, now: DateTime<Utc>, facts: &ReviewFacts) -> bool {
        matches!(self.decide(now, facts), ReviewDecision::Remind { .. })
    }
}

/// Who receives a review reminder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipients {
    /// Post in the incident channel.
    pub channel: bool,
    /// Send a direct message to each of these, in this order, each once.
    pub direct: Vec<UserId>,
}

/// Who a reminder goes to: while the channel is not archived, the channel and the commander;
/// once it is, the commander and every owner of an open follow-up, by direct message.
pub fn recipients(
    channel_archived: bool,
    commander: Option<&UserId>,
    follow_ups: &[FollowUp],
) -> Recipients {
    let mut direct: Vec<UserId> = commander.into_iter().cloned().collect();
    if channel_archived {
        for owner in follow_ups
            .iter()
            .filter(|f| f.is_open())
            .filter_map(|f| f.owner.as_ref())
        {
            if !direct.contains(owner) {
                direct.push(owner.clone());
            }
        }
    }
    Recipients {
        channel: !channel_archived,
        direct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::follow_up::{Closure, FollowUp};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 14, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn three_seconds() -> ReviewSchedule {
        ReviewSchedule::parse("3s", "3s").unwrap()
    }

    fn facts(last: Option<i64>, closed: bool, open: usize) -> ReviewFacts {
        ReviewFacts {
            resolved_at: t(0),
            last_reminded_for: last.map(t),
            closed,
            open_follow_ups: open,
        }
    }

    fn u(s: &str) -> UserId {
        UserId::new(s)
    }

    #[test]
    fn defaults_are_thirty_days_then_every_thirty_days() {
        let s = ReviewSchedule::default();
        assert_eq!(s.first_due(t(0)), t(30 * 86_400));
        assert_eq!(s, ReviewSchedule::parse("30d", "30d").unwrap());
        assert_eq!(
            s.next_due(&facts(Some(30 * 86_400), false, 1)),
            t(60 * 86_400)
        );
    }

    #[test]
    fn the_first_reminder_waits_for_its_due_time() {
        let s = three_seconds();
        assert_eq!(
            s.decide(t(2), &facts(None, false, 1)),
            ReviewDecision::Wait { until: t(3) }
        );
        assert_eq!(
            s.decide(t(3), &facts(None, false, 1)),
            ReviewDecision::Remind {
                due_at: t(3),
                next_at: t(6)
            }
        );
    }

    #[test]
    fn a_sent_reminder_is_not_sent_again_for_the_same_due_time() {
        let s = three_seconds();
        // After a restart at 4s with the 3s reminder recorded: wait for 6s.
        assert_eq!(
            s.decide(t(4), &facts(Some(3), false, 1)),
            ReviewDecision::Wait { until: t(6) }
        );
        assert!(!s.should_remind(t(5), &facts(Some(3), false, 1)));
        assert!(s.should_remind(t(6), &facts(Some(3), false, 1)));
    }

    #[test]
    fn missed_due_times_give_one_reminder_for_the_latest() {
        let s = three_seconds();
        assert_eq!(
            s.decide(t(20), &facts(Some(3), false, 1)),
            ReviewDecision::Remind {
                due_at: t(18),
                next_at: t(21)
            }
        );
    }

    #[test]
    fn reminders_go_on_until_closed_and_nothing_is_open() {
        let s = three_seconds();
        assert!(s.should_remind(t(3), &facts(None, false, 0)), "not closed");
        assert!(s.should_remind(t(3), &facts(None, true, 2)), "still open");
        assert_eq!(s.decide(t(3), &facts(None, true, 0)), ReviewDecision::Stop);
        assert_eq!(s.decide(t(1), &facts(None, true, 0)), ReviewDecision::Stop);
        assert!(reminders_continue(false, 0));
        assert!(!reminders_continue(true, 0));
    }

    #[test]
    fn a_new_resolve_starts_the_schedule_again() {
        let s = three_seconds();
        let mut f = facts(Some(3), false, 1);
        // Reopened and resolved again at 100s; the old record is before the new first due time.
        f.resolved_at = t(100);
        assert_eq!(s.next_due(&f), t(103));
    }

    #[test]
    fn schedules_refuse_unreadable_or_zero_intervals() {
        assert!(ReviewSchedule::parse("soon", "3s").is_err());
        assert!(matches!(
            ReviewSchedule::parse("3s", "0s"),
            Err(DurationError::TooShort { .. })
        ));
        assert!(ReviewSchedule::new(Duration::ZERO, Duration::from_millis(10)).is_err());
        let s = ReviewSchedule::parse("0s", "1s").unwrap();
        assert_eq!(s.first_due(t(0)), t(0));
        assert_eq!(s.after(), Duration::ZERO);
        assert_eq!(s.every(), Duration::from_secs(1));
    }

    #[test]
    fn before_archive_the_channel_and_the_commander_are_reminded() {
        let follow_ups = [FollowUp::new(1, "a", Some(u("U2")), None)];
        assert_eq!(
            recipients(false, Some(&u("U1")), &follow_ups),
            Recipients {
                channel: true,
                direct: vec![u("U1")]
            }
        );
    }

    #[test]
    fn after_archive_the_commander_and_each_open_owner_get_one_dm() {
        let mut done = FollowUp::new(3, "c", Some(u("U4")), None);
        done.close(Closure::Done).unwrap();
        let follow_ups = [
            FollowUp::new(1, "a", Some(u("U2")), None),
            FollowUp::new(2, "b", Some(u("U1")), None),
            done,
            FollowUp::new(4, "d", None, None),
            FollowUp::new(5, "e", Some(u("U2")), None),
        ];
        assert_eq!(
            recipients(true, Some(&u("U1")), &follow_ups),
            Recipients {
                channel: false,
                direct: vec![u("U1"), u("U2")]
            }
        );
        assert_eq!(recipients(true, None, &[]), Recipients::default());
    }

    proptest! {
        #[test]
        fn every_due_time_is_reminded_at_most_once_and_never_early(
            after in 0u64..50, every in 1u64..50,
            wakes in proptest::collection::vec(0i64..500, 1..40),
        ) {
            let s = ReviewSchedule::new(Duration::from_secs(after), Duration::from_secs(every)).unwrap();
            let mut wakes = wakes;
            wakes.sort();
            let mut f = facts(None, false, 1);
            let mut reminded = Vec::new();
            for now in wakes {
                if let ReviewDecision::Remind { due_at, next_at } = s.decide(t(now), &f) {
                    prop_assert!(due_at <= t(now));
                    prop_assert!(next_at > t(now));
                    prop_assert!(due_at >= s.first_due(f.resolved_at));
                    prop_assert!(!reminded.contains(&due_at));
                    reminded.push(due_at);
                    f.last_reminded_for = Some(due_at);
                }
            }
        }
    }
}
