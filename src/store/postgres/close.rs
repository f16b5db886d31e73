//! Closing and reopening on PostgreSQL (see `store/close.rs`, same semantics). Read-then-write
//! transitions lock the incident row (`FOR UPDATE`), so two replicas cannot both apply one.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};

use super::{intent, Pg};
use crate::incident::lifecycle::{Change, Transition};
use crate::incident::{IncidentId, Status, UserId};
use crate::store::close::FORGOTTEN_ON_REOPEN;
use crate::store::{from_millis, millis, parse_ts, ts, CloseRecorded, Closing, NewClose};

async fn pending_marker(
    tx: &deadpool_postgres::Transaction<'_>,
    id: IncidentId,
    marker: &str,
    at: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
         VALUES ($1, $2, 'failed', 0, $3, $3) \
         ON CONFLICT (incident_id, step) DO UPDATE SET state = 'failed', attempts = 0, \
         detail = NULL, first_at = $3, updated_at = $3",
        &[&id.0, &marker, &at],
    )
    .await?;
    Ok(())
}

impl Pg {
    pub async fn record_close(&self, n: NewClose) -> Result<CloseRecorded> {
        intent(self.record_close_now(n)).await
    }

    async fn record_close_now(&self, n: NewClose) -> Result<CloseRecorded> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT status, close_key FROM incidents WHERE id = $1 FOR UPDATE",
                &[&n.incident.0],
            )
            .await?
        else {
            return Ok(CloseRecorded::NotFound);
        };
        let (status, key): (String, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
        if key.as_deref() == Some(n.close_key.as_str()) {
            return Ok(CloseRecorded::Duplicate);
        }
        let status = Status::parse(&status)
            .with_context(|| format!("unknown incident status {status:?}"))?;
        let Some(change) = Transition::Close.apply(status) else {
            return Ok(CloseRecorded::Refused(status));
        };
        let at = ts(n.at);
        tx.execute(
            "UPDATE incidents SET status = $2, close_key = $3, closed_at = $4, closed_by = $5, \
             review_date = $6, review_notes = $7 WHERE id = $1 AND status = $8",
            &[
                &n.incident.0,
                &change.to.as_str(),
                &n.close_key,
                &at,
                &n.by.as_str(),
                &n.review_date.map(|d| d.format("%Y-%m-%d").to_string()),
                &n.notes,
                &change.from.as_str(),
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO timeline (incident_id, at, text) VALUES ($1, $2, $3)",
            &[&n.incident.0, &at, &format!("Closed by <@{}>", n.by)],
        )
        .await?;
        pending_marker(&tx, n.incident, &n.marker, &at).await?;
        tx.commit().await?;
        Ok(CloseRecorded::Started)
    }

    pub async fn closing(&self, id: IncidentId) -> Result<Option<Closing>> {
        let c = self.client().await?;
        let Some(r) = c
            .query_opt(
                "SELECT closed_at, closed_by, review_date, review_notes FROM incidents WHERE id = $1",
                &[&id.0],
            )
            .await?
        else {
            return Ok(None);
        };
        let (at, by, date, notes): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let (Some(at), Some(by)) = (at, by) else {
            return Ok(None);
        };
        let review_date = date
            .map(|d| {
                NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .with_context(|| format!("unreadable review date {d:?}"))
            })
            .transpose()?;
        Ok(Some(Closing {
            at: parse_ts(&at)?,
            by: UserId(by),
            review_date,
            notes: notes.unwrap_or_default(),
        }))
    }

    pub async fn record_reopen(
        &self,
        id: IncidentId,
        by: &UserId,
        at: DateTime<Utc>,
        marker: &str,
    ) -> Result<Option<Change>> {
        intent(self.record_reopen_now(id, by, at, marker)).await
    }

    async fn record_reopen_now(
        &self,
        id: IncidentId,
        by: &UserId,
        at: DateTime<Utc>,
        marker: &str,
    ) -> Result<Option<Change>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT status FROM incidents WHERE id = $1 FOR UPDATE",
                &[&id.0],
            )
            .await?
        else {
            return Ok(None);
        };
        let current: String = row.try_get(0)?;
        let current = Status::parse(&current)
            .with_context(|| format!("unknown incident status {current:?}"))?;
        let Some(change) = Transition::Reopen.apply(current) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE incidents SET status = $2, resolve_key = NULL, resolved_at = NULL, \
             resolved_by = NULL, resolution = NULL, review_reminded_for = NULL \
             WHERE id = $1 AND status = $3",
            &[&id.0, &change.to.as_str(), &change.from.as_str()],
        )
        .await?;
        for pattern in FORGOTTEN_ON_REOPEN {
            tx.execute(
                "DELETE FROM steps WHERE incident_id = $1 AND step LIKE $2",
                &[&id.0, pattern],
            )
            .await?;
        }
        let at = ts(at);
        tx.execute(
            "INSERT INTO timeline (incident_id, at, text) VALUES ($1, $2, $3)",
            &[&id.0, &at, &format!("Reopened by <@{by}>")],
        )
        .await?;
        pending_marker(&tx, id, marker, &at).await?;
        tx.commit().await?;
        Ok(Some(change))
    }

    pub async fn set_impact(&self, id: IncidentId, impact: &str) -> Result<()> {
        let set = async {
            let c = self.client().await?;
            c.execute(
                "UPDATE incidents SET impact = $2 WHERE id = $1 AND status IN ('declaring', 'open')",
                &[&id.0, &impact],
            )
            .await?;
            Ok(())
        };
        intent(set).await
    }

    pub async fn impact(&self, id: IncidentId) -> Result<Option<String>> {
        let c = self.client().await?;
        let v: Option<Option<String>> = c
            .query_opt("SELECT impact FROM incidents WHERE id = $1", &[&id.0])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        Ok(v.flatten().filter(|s| !s.trim().is_empty()))
    }

    pub async fn review_reminded_for(&self, id: IncidentId) -> Result<Option<DateTime<Utc>>> {
        let c = self.client().await?;
        let ms: Option<Option<i64>> = c
            .query_opt(
                "SELECT review_reminded_for FROM incidents WHERE id = $1",
                &[&id.0],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        ms.flatten().map(from_millis).transpose()
    }

    pub async fn record_review_reminder(
        &self,
        id: IncidentId,
        due_at: DateTime<Utc>,
        marker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE incidents SET review_reminded_for = $2 WHERE id = $1 \
                 AND (review_reminded_for IS NULL OR review_reminded_for < $2)",
                &[&id.0, &millis(due_at)],
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        pending_marker(&tx, id, marker, &ts(now)).await?;
        tx.commit().await?;
        Ok(true)
    }
}
