//! Durable timers on PostgreSQL. Claiming is one conditional `UPDATE` (the row lock makes a
//! second replica re-check the condition after the first committed, so only one claim wins),
//! and completing requires the claim: a timer fires once across replicas. Same semantics as
//! `store/timers.rs`.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::Pg;
use crate::incident::IncidentId;
use crate::store::{from_millis, millis, NewTimer, Timer};

impl Pg {
    pub async fn schedule_timer(&self, t: NewTimer) -> Result<()> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO timers (key, incident_id, kind, due_at, state) \
                 VALUES ($1, $2, $3, $4, 'pending') \
                 ON CONFLICT (key) DO UPDATE SET kind = $3, due_at = $4, state = 'pending', \
                 owner = NULL, lease_until = NULL, fired_at = NULL",
            )
            .await?;
        c.execute(&stmt, &[&t.key, &t.incident.0, &t.kind, &millis(t.due_at)])
            .await?;
        Ok(())
    }

    pub async fn cancel_timer(&self, key: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE timers SET state = 'cancelled' WHERE key = $1 AND state = 'pending'",
            &[&key],
        )
        .await?
            == 1)
    }

    pub async fn due_timers(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Timer>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, key, incident_id, kind, due_at FROM timers \
                 WHERE state = 'pending' AND due_at <= $1 \
                 AND (lease_until IS NULL OR lease_until <= $1) ORDER BY due_at, id LIMIT $2",
            )
            .await?;
        c.query(&stmt, &[&millis(now), &(limit as i64)])
            .await?
            .iter()
            .map(|r| {
                Ok(Timer {
                    id: r.try_get(0)?,
                    key: r.try_get(1)?,
                    incident: IncidentId(r.try_get(2)?),
                    kind: r.try_get(3)?,
                    due_at: from_millis(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    pub async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        let c = self.client().await?;
        let due: Option<i64> = c
            .query_one(
                "SELECT MIN(due_at) FROM timers WHERE state = 'pending'",
                &[],
            )
            .await?
            .try_get(0)?;
        due.map(from_millis).transpose()
    }

    pub async fn claim_timer(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE timers SET owner = $2, lease_until = $3 WHERE id = $1 AND state = 'pending' \
                 AND (lease_until IS NULL OR lease_until <= $4 OR owner = $2)",
            )
            .await?;
        Ok(
            c.execute(&stmt, &[&id, &owner, &millis(until), &millis(now)])
                .await?
                == 1,
        )
    }

    pub async fn complete_timer(&self, id: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE timers SET state = 'fired', fired_at = $3 \
                 WHERE id = $1 AND state = 'pending' AND owner = $2",
            )
            .await?;
        Ok(c.execute(&stmt, &[&id, &owner, &millis(now)]).await? == 1)
    }

    pub async fn timer_state(&self, key: &str) -> Result<Option<String>> {
        let c = self.client().await?;
        c.query_opt("SELECT state FROM timers WHERE key = $1", &[&key])
            .await?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
    }
}
