//! Follow-ups on PostgreSQL (see `store/follow_ups.rs`, same semantics). A new follow-up's
//! number is drawn under the incident's row lock, so replicas adding at once get distinct ones.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Row;

use super::{intent, Pg};
use crate::incident::follow_up::{
    Closure, FollowUp, FollowUpError, FollowUpRef, FollowUpState, Transition,
};
use crate::incident::{IncidentId, UserId};
use crate::store::{
    parse_ts, ts, AwaitingReview, FollowUpAdded, FollowUpClosed, NewFollowUp, OwnedFollowUp,
};

const COLUMNS: &str = "number, title, owner, due, state";

fn number(n: i32) -> Result<u32> {
    u32::try_from(n).with_context(|| format!("unreadable follow-up number {n}"))
}

fn due(d: Option<String>) -> Result<Option<NaiveDate>> {
    d.map(|d| {
        NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .with_context(|| format!("unreadable due date {d:?}"))
    })
    .transpose()
}

fn from_row(r: &Row) -> Result<FollowUp> {
    let state: String = r.try_get(4)?;
    let state = FollowUpState::parse(&state)
        .with_context(|| format!("unknown follow-up state {state:?} in the store"))?;
    Ok(FollowUp {
        number: number(r.try_get(0)?)?,
        title: r.try_get(1)?,
        owner: r.try_get::<_, Option<String>>(2)?.map(UserId),
        due: due(r.try_get(3)?)?,
        state,
    })
}

impl Pg {
    pub async fn add_follow_up(&self, f: NewFollowUp) -> Result<FollowUpAdded> {
        intent(self.add_follow_up_now(f)).await
    }

    async fn add_follow_up_now(&self, f: NewFollowUp) -> Result<FollowUpAdded> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // The incident's row lock serialises numbering across replicas.
        tx.execute(
            "SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE",
            &[&f.incident.0],
        )
        .await?;
        let n: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM follow_ups WHERE incident_id = $1",
                &[&f.incident.0],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "INSERT INTO follow_ups (incident_id, number, title, owner, due, state, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7)",
            &[
                &f.incident.0,
                &n,
                &f.title,
                &f.owner.as_ref().map(|o| o.as_str().to_string()),
                &f.due.map(|d| d.format("%Y-%m-%d").to_string()),
                &f.by.as_str(),
                &ts(f.at),
            ],
        )
        .await?;
        let number = number(n)?;
        for step in (f.steps)(number, f.owner.is_some()) {
            tx.execute(
                "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
                 VALUES ($1, $2, 'failed', 0, $3, $3) ON CONFLICT DO NOTHING",
                &[&f.incident.0, &step, &ts(f.at)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(FollowUpAdded(FollowUp::new(
            number, f.title, f.owner, f.due,
        )))
    }

    pub async fn follow_ups(&self, id: IncidentId) -> Result<Vec<FollowUp>> {
        let c = self.client().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM follow_ups WHERE incident_id = $1 ORDER BY number");
        let stmt = c.prepare_cached(&sql).await?;
        c.query(&stmt, &[&id.0])
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    pub async fn follow_ups_for_ack(&self, id: IncidentId) -> Result<Vec<FollowUp>> {
        intent(self.follow_ups(id)).await
    }

    pub async fn follow_up(&self, id: IncidentId, r: FollowUpRef) -> Result<Option<FollowUp>> {
        let c = self.client().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM follow_ups WHERE incident_id = $1 AND number = $2");
        c.query_opt(&sql, &[&id.0, &(r.0 as i32)])
            .await?
            .map(|row| from_row(&row))
            .transpose()
    }

    pub async fn close_follow_up(
        &self,
        id: IncidentId,
        r: FollowUpRef,
        closure: Closure,
        by: &UserId,
        at: DateTime<Utc>,
    ) -> Result<FollowUpClosed> {
        intent(self.close_follow_up_now(id, r, closure, by, at)).await
    }

    async fn close_follow_up_now(
        &self,
        id: IncidentId,
        r: FollowUpRef,
        closure: Closure,
        by: &UserId,
        at: DateTime<Utc>,
    ) -> Result<FollowUpClosed> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM follow_ups WHERE incident_id = $1 AND number = $2 FOR UPDATE"
        );
        let found = tx
            .query_opt(&sql, &[&id.0, &(r.0 as i32)])
            .await?
            .map(|row| from_row(&row))
            .transpose()?;
        let Some(mut f) = found else {
            return Ok(FollowUpClosed::Refused(FollowUpError::NotFound(r)));
        };
        match f.close(closure) {
            Err(e) => Ok(FollowUpClosed::Refused(e)),
            Ok(Transition::NoChange) => Ok(FollowUpClosed::NoChange(f)),
            Ok(Transition::Changed { from, to }) => {
                tx.execute(
                    "UPDATE follow_ups SET state = $3, closed_by = $4, closed_at = $5 \
                     WHERE incident_id = $1 AND number = $2 AND state = $6",
                    &[
                        &id.0,
                        &(r.0 as i32),
                        &to.as_str(),
                        &by.as_str(),
                        &ts(at),
                        &from.as_str(),
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok(FollowUpClosed::Changed(f))
            }
        }
    }

    pub async fn awaiting_review(&self) -> Result<Vec<AwaitingReview>> {
        let c = self.client().await?;
        c.query(
            "SELECT i.id, i.name, i.title, i.channel_id, i.resolved_at, \
             (SELECT COUNT(*) FROM follow_ups f WHERE f.incident_id = i.id AND f.state = 'open') \
             FROM incidents i WHERE i.status = 'resolved' ORDER BY i.resolved_at, i.id",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let open: i64 = r.try_get(5)?;
            Ok(AwaitingReview {
                incident: IncidentId(r.try_get(0)?),
                name: r.try_get(1)?,
                title: r.try_get(2)?,
                channel: r.try_get(3)?,
                resolved_at: r
                    .try_get::<_, Option<String>>(4)?
                    .map(|t| parse_ts(&t))
                    .transpose()?,
                open_follow_ups: usize::try_from(open).unwrap_or(0),
            })
        })
        .collect()
    }

    pub async fn open_follow_ups_of(&self, user: &UserId) -> Result<Vec<OwnedFollowUp>> {
        let c = self.client().await?;
        c.query(
            "SELECT f.incident_id, i.name, f.number, f.title, f.owner, f.due, f.state \
             FROM follow_ups f JOIN incidents i ON i.id = f.incident_id \
             WHERE f.owner = $1 AND f.state = 'open' \
             ORDER BY f.due IS NULL, f.due, f.incident_id, f.number",
            &[&user.as_str()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(OwnedFollowUp {
                incident: IncidentId(r.try_get(0)?),
                name: r.try_get(1)?,
                follow_up: FollowUp {
                    number: number(r.try_get(2)?)?,
                    title: r.try_get(3)?,
                    owner: r.try_get::<_, Option<String>>(4)?.map(UserId),
                    // As on SQLite: an unreadable due date shows as none here.
                    due: due(r.try_get(5)?).ok().flatten(),
                    state: FollowUpState::Open,
                },
            })
        })
        .collect()
    }

    pub async fn follow_up_closed_at(
        &self,
        id: IncidentId,
        r: FollowUpRef,
    ) -> Result<Option<DateTime<Utc>>> {
        let c = self.client().await?;
        let at: Option<Option<String>> = c
            .query_opt(
                "SELECT closed_at FROM follow_ups WHERE incident_id = $1 AND number = $2",
                &[&id.0, &(r.0 as i32)],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        at.flatten()
            .map(|s| parse_ts(&s).context("follow-up closing time"))
            .transpose()
    }
}
