//! Durable timers: due-at jobs in the store.
//!
//! A timer is scheduled under a unique key (scheduling the same key again moves it), found when
//! due, claimed with a short lease (so two processes never fire it together, and a process that
//! died while firing it leaves it to be fired again), and completed once. What a timer does is
//! up to `workflow::timers`, which re-checks when it fires whether it is still wanted.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{from_millis, millis, Lane, Store};
use crate::incident::IncidentId;

/// A timer to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTimer {
    /// Unique per job: scheduling it again moves the due time instead of adding a second job.
    pub key: String,
    pub incident: IncidentId,
    /// What to do when it fires (`workflow::timers::TimerKind`, as text).
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub id: i64,
    pub key: String,
    pub incident: IncidentId,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

impl Store {
    /// Schedule (or move, and re-arm) the timer `t.key`.
    pub async fn schedule_timer(&self, t: NewTimer) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.schedule_timer(t).await;
        }
        self.with(Lane::General, move |c| {
            c.prepare_cached(
                "INSERT INTO timers (key, incident_id, kind, due_at, state) \
                 VALUES (?1, ?2, ?3, ?4, 'pending') \
                 ON CONFLICT (key) DO UPDATE SET kind = ?3, due_at = ?4, state = 'pending', \
                 owner = NULL, lease_until = NULL, fired_at = NULL",
            )?
            .execute(params![t.key, t.incident.0, t.kind, millis(t.due_at)])?;
            Ok(())
        })
        .await
    }

    /// Cancel a pending timer. True when there was one.
    pub async fn cancel_timer(&self, key: &str) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.cancel_timer(key).await;
        }
        let key = key.to_string();
        self.with(Lane::General, move |c| {
            Ok(c.prepare_cached(
                "UPDATE timers SET state = 'cancelled' WHERE key = ?1 AND state = 'pending'",
            )?
            .execute([key])?
                == 1)
        })
        .await
    }

    /// Pending timers due at `now` whose claim (if any) has expired, earliest first.
    pub async fn due_timers(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        if let Some(pg) = self.pg() {
            return pg.due_timers(now, limit).await;
        }
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, key, incident_id, kind, due_at FROM timers \
                 WHERE state = 'pending' AND due_at <= ?1 \
                 AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY due_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![millis(now), limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            rows.map(|row| {
                let (id, key, incident, kind, due) = row?;
                Ok(Timer {
                    id,
                    key,
                    incident: IncidentId(incident),
                    kind,
                    due_at: from_millis(due)?,
                })
            })
            .collect()
        })
        .await
    }

    /// When the next pending timer is due, if any.
    pub async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        if let Some(pg) = self.pg() {
            return pg.next_timer_due().await;
        }
        self.with(Lane::General, |c| {
            let due: Option<i64> = c
                .prepare_cached("SELECT MIN(due_at) FROM timers WHERE state = 'pending'")?
                .query_row([], |r| r.get(0))
                .optional()?
                .flatten();
            due.map(from_millis).transpose()
        })
        .await
    }

    /// Claim a due timer for firing until `until`. False when it is not pending any more or
    /// another owner's claim is still valid.
    pub async fn claim_timer(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.claim_timer(id, owner, now, until).await;
        }
        let owner = owner.to_string();
        self.with(Lane::General, move |c| {
            Ok(c.prepare_cached(
                "UPDATE timers SET owner = ?2, lease_until = ?3 WHERE id = ?1 AND state = 'pending' \
                 AND (lease_until IS NULL OR lease_until <= ?4 OR owner = ?2)",
            )?
            .execute(params![id, owner, millis(until), millis(now)])?
                == 1)
        })
        .await
    }

    /// Mark a claimed timer fired. True only for the one call that fired it.
    pub async fn complete_timer(&self, id: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.complete_timer(id, owner, now).await;
        }
        let owner = owner.to_string();
        self.with(Lane::General, move |c| {
            Ok(c.prepare_cached(
                "UPDATE timers SET state = 'fired', fired_at = ?3 \
                 WHERE id = ?1 AND state = 'pending' AND owner = ?2",
            )?
            .execute(params![id, owner, millis(now)])?
                == 1)
        })
        .await
    }

    /// The state of the timer `key` (`pending`, `fired`, `cancelled`), for tests and checks.
    pub async fn timer_state(&self, key: &str) -> Result<Option<String>> {
        if let Some(pg) = self.pg() {
            return pg.timer_state(key).await;
        }
        let key = key.to_string();
        self.with(Lane::General, move |c| {
            c.prepare_cached("SELECT state FROM timers WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()
                .context("reading a timer")
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{declared, each_backend, t};

    fn timer(key: &str, incident: IncidentId, due: DateTime<Utc>) -> NewTimer {
        NewTimer {
            key: key.into(),
            incident,
            kind: "reminder".into(),
            due_at: due,
        }
    }

    #[tokio::test]
    async fn a_timer_is_due_only_from_its_time_on() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.schedule_timer(timer("r:1", id, t(60))).await.unwrap();
            assert!(s.due_timers(t(59), 10).await.unwrap().is_empty());
            let due = s.due_timers(t(60), 10).await.unwrap();
            assert_eq!(due.len(), 1);
            assert_eq!((due[0].key.as_str(), due[0].due_at), ("r:1", t(60)));
            assert_eq!(s.next_timer_due().await.unwrap(), Some(t(60)));
        })
        .await;
    }

    #[tokio::test]
    async fn a_timer_fires_once_even_when_two_owners_race() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.schedule_timer(timer("r:1", id, t(0))).await.unwrap();
            let due = s.due_timers(t(1), 10).await.unwrap();
            assert!(s.claim_timer(due[0].id, "a", t(1), t(31)).await.unwrap());
            assert!(!s.claim_timer(due[0].id, "b", t(2), t(32)).await.unwrap());
            // Claimed: no longer listed as due for anyone while the claim holds.
            assert!(s.due_timers(t(2), 10).await.unwrap().is_empty());
            assert!(!s.complete_timer(due[0].id, "b", t(3)).await.unwrap());
            assert!(s.complete_timer(due[0].id, "a", t(3)).await.unwrap());
            assert!(!s.complete_timer(due[0].id, "a", t(4)).await.unwrap());
            assert!(s.due_timers(t(100), 10).await.unwrap().is_empty());
            assert_eq!(
                s.timer_state("r:1").await.unwrap().as_deref(),
                Some("fired")
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_claim_whose_owner_died_expires_and_the_timer_fires_again() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.schedule_timer(timer("r:1", id, t(0))).await.unwrap();
            let due = s.due_timers(t(1), 10).await.unwrap();
            assert!(s.claim_timer(due[0].id, "a", t(1), t(31)).await.unwrap());
            // a died before completing; after its claim ran out b fires it.
            let again = s.due_timers(t(31), 10).await.unwrap();
            assert_eq!(again.len(), 1);
            assert!(s.claim_timer(again[0].id, "b", t(31), t(61)).await.unwrap());
            assert!(s.complete_timer(again[0].id, "b", t(32)).await.unwrap());
        })
        .await;
    }

    #[tokio::test]
    async fn rescheduling_moves_a_timer_and_cancelling_stops_it() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.schedule_timer(timer("r:1", id, t(10))).await.unwrap();
            s.schedule_timer(timer("r:1", id, t(100))).await.unwrap();
            assert!(s.due_timers(t(50), 10).await.unwrap().is_empty());
            assert_eq!(s.due_timers(t(100), 10).await.unwrap().len(), 1);
            assert!(s.cancel_timer("r:1").await.unwrap());
            assert!(!s.cancel_timer("r:1").await.unwrap());
            assert!(s.due_timers(t(1000), 10).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn timers_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let id = declared(&s).await;
            s.schedule_timer(timer("r:1", id, t(60))).await.unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let due = s.due_timers(t(60), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].kind, "reminder");
    }
}
