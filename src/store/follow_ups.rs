//! Follow-ups in the store: `F-<n>` numbered per incident, their state, and the steps that
//! announce a new one (recorded in the same transaction, so a follow-up acknowledged to a person
//! is always posted and sent to its owner, even across a crash).

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::{parse_ts, ts, write_tx, Lane, Store};
use crate::incident::follow_up::{
    Closure, FollowUp, FollowUpError, FollowUpRef, FollowUpState, Transition,
};
use crate::incident::{IncidentId, UserId};

/// A follow-up to add (the intent, recorded inside the command's ack).
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub incident: IncidentId,
    pub title: String,
    pub owner: Option<UserId>,
    pub due: Option<NaiveDate>,
    pub by: UserId,
    pub at: DateTime<Utc>,
    /// Steps to record as pending for it (their key text), given the number it gets.
    pub steps: fn(u32, bool) -> Vec<String>,
}

/// The follow-up as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpAdded(pub FollowUp);

/// What closing a follow-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpClosed {
    /// It was open and is now closed.
    Changed(FollowUp),
    /// It already had that state.
    NoChange(FollowUp),
    /// Unknown number, or the other closed state.
    Refused(FollowUpError),
}

/// A resolved, not closed incident for App Home's "Awaiting review".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingReview {
    pub incident: IncidentId,
    pub name: String,
    pub title: String,
    pub channel: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub open_follow_ups: usize,
}

/// An open follow-up someone owns, for App Home's "Your open follow-ups".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFollowUp {
    pub incident: IncidentId,
    pub name: String,
    pub follow_up: FollowUp,
}

const COLUMNS: &str = "number, title, owner, due, state";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<FollowUp>> {
    let state: String = r.get(4)?;
    let Some(state) = FollowUpState::parse(&state) else {
        return Ok(Err(anyhow::anyhow!(
            "unknown follow-up state {state:?} in the store"
        )));
    };
    let due = match r.get::<_, Option<String>>(3)? {
        None => None,
        Some(d) => match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(e) => return Ok(Err(anyhow::anyhow!("unreadable due date {d:?}: {e}"))),
        },
    };
    Ok(Ok(FollowUp {
        number: r.get(0)?,
        title: r.get(1)?,
        owner: r.get::<_, Option<String>>(2)?.map(UserId),
        due,
        state,
    }))
}

fn read_all(c: &rusqlite::Connection, id: IncidentId) -> Result<Vec<FollowUp>> {
    let sql = format!("SELECT {COLUMNS} FROM follow_ups WHERE incident_id = ?1 ORDER BY number");
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([id.0], from_row)?;
    rows.map(|r| r?).collect()
}

impl Store {
    /// Record a new follow-up with the next number of its incident, and its pending steps, in one
    /// transaction. Intent lane: the command's ack names the number.
    pub async fn add_follow_up(&self, f: NewFollowUp) -> Result<FollowUpAdded> {
        self.with(Lane::Intent, move |c| {
            let tx = write_tx(c)?;
            let number: u32 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM follow_ups WHERE incident_id = ?1",
                )?
                .query_row([f.incident.0], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO follow_ups (incident_id, number, title, owner, due, state, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7)",
            )?
            .execute(params![
                f.incident.0,
                number,
                f.title,
                f.owner.as_ref().map(|o| o.as_str().to_string()),
                f.due.map(|d| d.format("%Y-%m-%d").to_string()),
                f.by.as_str(),
                ts(f.at),
            ])?;
            // Pending (failed, never attempted): the runner's rescan finds them if the process
            // dies before it posts.
            for step in (f.steps)(number, f.owner.is_some()) {
                tx.prepare_cached(
                    "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
                     VALUES (?1, ?2, 'failed', 0, ?3, ?3) ON CONFLICT DO NOTHING",
                )?
                .execute(params![f.incident.0, step, ts(f.at)])?;
            }
            tx.commit()?;
            Ok(FollowUpAdded(FollowUp::new(number, f.title, f.owner, f.due)))
        })
        .await
    }

    /// Every follow-up of an incident, by number.
    pub async fn follow_ups(&self, id: IncidentId) -> Result<Vec<FollowUp>> {
        self.with(Lane::General, move |c| read_all(c, id)).await
    }

    /// [`Store::follow_ups`] on the intent lane: the list is the command's ack.
    pub async fn follow_ups_for_ack(&self, id: IncidentId) -> Result<Vec<FollowUp>> {
        self.with(Lane::Intent, move |c| read_all(c, id)).await
    }

    /// One follow-up.
    pub async fn follow_up(&self, id: IncidentId, r: FollowUpRef) -> Result<Option<FollowUp>> {
        self.with(Lane::General, move |c| {
            let sql =
                format!("SELECT {COLUMNS} FROM follow_ups WHERE incident_id = ?1 AND number = ?2");
            c.prepare_cached(&sql)?
                .query_row(params![id.0, r.0], from_row)
                .optional()?
                .transpose()
        })
        .await
    }

    /// Close a follow-up as done or won't do (the domain decides; see
    /// [`FollowUp::close`]). Intent lane: commands and buttons answer with the outcome.
    pub async fn close_follow_up(
        &self,
        id: IncidentId,
        r: FollowUpRef,
        closure: Closure,
        by: &UserId,
        at: DateTime<Utc>,
    ) -> Result<FollowUpClosed> {
        let by = by.as_str().to_string();
        self.with(Lane::Intent, move |c| {
            let tx = write_tx(c)?;
            let sql =
                format!("SELECT {COLUMNS} FROM follow_ups WHERE incident_id = ?1 AND number = ?2");
            let found = tx
                .prepare_cached(&sql)?
                .query_row(params![id.0, r.0], from_row)
                .optional()?
                .transpose()?;
            let Some(mut f) = found else {
                return Ok(FollowUpClosed::Refused(FollowUpError::NotFound(r)));
            };
            match f.close(closure) {
                Err(e) => Ok(FollowUpClosed::Refused(e)),
                Ok(Transition::NoChange) => Ok(FollowUpClosed::NoChange(f)),
                Ok(Transition::Changed { from, to }) => {
                    tx.prepare_cached(
                        "UPDATE follow_ups SET state = ?3, closed_by = ?4, closed_at = ?5 \
                         WHERE incident_id = ?1 AND number = ?2 AND state = ?6",
                    )?
                    .execute(params![
                        id.0,
                        r.0,
                        to.as_str(),
                        by,
                        ts(at),
                        from.as_str()
                    ])?;
                    tx.commit()?;
                    Ok(FollowUpClosed::Changed(f))
                }
            }
        })
        .await
    }

    /// Resolved incidents not closed yet, oldest resolution first, with their open follow-ups
    /// (App Home's "Awaiting review").
    pub async fn awaiting_review(&self) -> Result<Vec<AwaitingReview>> {
        self.with(Lane::General, |c| {
            let mut stmt = c.prepare_cached(
                "SELECT i.id, i.name, i.title, i.channel_id, i.resolved_at, \
                 (SELECT COUNT(*) FROM follow_ups f WHERE f.incident_id = i.id AND f.state = 'open') \
                 FROM incidents i WHERE i.status = 'resolved' ORDER BY i.resolved_at, i.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, name, title, channel, resolved_at, open) = row?;
                Ok(AwaitingReview {
                    incident: IncidentId(id),
                    name,
                    title,
                    channel,
                    resolved_at: resolved_at.map(|t| parse_ts(&t)).transpose()?,
                    open_follow_ups: usize::try_from(open).unwrap_or(0),
                })
            })
            .collect()
        })
        .await
    }

    /// The open follow-ups `user` owns, across incidents, soonest due first (App Home's "Your
    /// open follow-ups").
    pub async fn open_follow_ups_of(&self, user: &UserId) -> Result<Vec<OwnedFollowUp>> {
        let user = user.as_str().to_string();
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT f.incident_id, i.name, f.number, f.title, f.owner, f.due, f.state \
                 FROM follow_ups f JOIN incidents i ON i.id = f.incident_id \
                 WHERE f.owner = ?1 AND f.state = 'open' \
                 ORDER BY f.due IS NULL, f.due, f.incident_id, f.number",
            )?;
            let rows = stmt.query_map([user], |r| {
                let id: i64 = r.get(0)?;
                let name: String = r.get(1)?;
                // The follow-up's columns start at 2, in COLUMNS order.
                let f = FollowUp {
                    number: r.get(2)?,
                    title: r.get(3)?,
                    owner: r.get::<_, Option<String>>(4)?.map(UserId),
                    due: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
                    state: FollowUpState::Open,
                };
                Ok(OwnedFollowUp {
                    incident: IncidentId(id),
                    name,
                    follow_up: f,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// When a follow-up was closed (for the post-mortem), if it was.
    pub async fn follow_up_closed_at(
        &self,
        id: IncidentId,
        r: FollowUpRef,
    ) -> Result<Option<DateTime<Utc>>> {
        self.with(Lane::General, move |c| {
            let at: Option<Option<String>> = c
                .prepare_cached(
                    "SELECT closed_at FROM follow_ups WHERE incident_id = ?1 AND number = ?2",
                )?
                .query_row(params![id.0, r.0], |row| row.get(0))
                .optional()?;
            at.flatten()
                .map(|s| parse_ts(&s).context("follow-up closing time"))
                .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{declared, t};
    use super::*;

    fn steps(n: u32, owner: bool) -> Vec<String> {
        let mut v = vec![format!("follow_up_post:{n}")];
        if owner {
            v.push(format!("follow_up_dm:{n}"));
        }
        v
    }

    fn new(id: IncidentId, title: &str, owner: Option<&str>) -> NewFollowUp {
        NewFollowUp {
            incident: id,
            title: title.into(),
            owner: owner.map(UserId::from),
            due: NaiveDate::from_ymd_opt(2027, 1, 15),
            by: UserId::from("U1"),
            at: t(60),
            steps,
        }
    }

    #[tokio::test]
    async fn follow_ups_are_numbered_per_incident_and_leave_pending_steps() {
        let s = Store::in_memory().unwrap();
        let a = declared(&s).await;
        let f1 = s
            .add_follow_up(new(a, "Add alert", Some("U2")))
            .await
            .unwrap();
        let f2 = s
            .add_follow_up(new(a, "Write runbook", None))
            .await
            .unwrap();
        assert_eq!((f1.0.number, f2.0.number), (1, 2));
        let all = s.follow_ups(a).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].owner, Some(UserId::from("U2")));
        assert_eq!(all[0].due, NaiveDate::from_ymd_opt(2027, 1, 15));
        assert_eq!(
            s.pending_steps(a).await.unwrap(),
            vec![
                "follow_up_dm:1".to_string(),
                "follow_up_post:1".into(),
                "follow_up_post:2".into()
            ]
        );
        let step = s.step(a, "follow_up_post:1").await.unwrap().unwrap();
        assert_eq!(
            step.attempts, 0,
            "never attempted: nothing to look for first"
        );
    }

    #[tokio::test]
    async fn closing_is_recorded_once_and_the_other_state_is_refused() {
        let s = Store::in_memory().unwrap();
        let a = declared(&s).await;
        s.add_follow_up(new(a, "Add alert", None)).await.unwrap();
        let by = UserId::from("U3");
        let r = FollowUpRef(1);
        assert!(matches!(
            s.close_follow_up(a, r, Closure::Done, &by, t(90)).await.unwrap(),
            FollowUpClosed::Changed(f) if f.state == FollowUpState::Done
        ));
        assert!(matches!(
            s.close_follow_up(a, r, Closure::Done, &by, t(95))
                .await
                .unwrap(),
            FollowUpClosed::NoChange(_)
        ));
        assert!(matches!(
            s.close_follow_up(a, r, Closure::WontDo, &by, t(99))
                .await
                .unwrap(),
            FollowUpClosed::Refused(FollowUpError::AlreadyClosed { .. })
        ));
        assert_eq!(s.follow_up_closed_at(a, r).await.unwrap(), Some(t(90)));
        assert!(s
            .open_follow_ups_of(&UserId::from("U2"))
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            s.close_follow_up(a, FollowUpRef(7), Closure::Done, &by, t(99))
                .await
                .unwrap(),
            FollowUpClosed::Refused(FollowUpError::NotFound(_))
        ));
    }
}

#[cfg(test)]
mod home_tests {
    use super::super::tests::{declared, t};
    use super::super::NewResolution;
    use super::*;
    use crate::incident::lifecycle::Transition;

    #[tokio::test]
    async fn app_home_queries_list_incidents_awaiting_review_and_a_persons_open_follow_ups() {
        let s = Store::in_memory().unwrap();
        let id = declared(&s).await;
        s.transition(id, Transition::Declared).await.unwrap();
        for (title, owner, due) in [
            ("Later", Some("U2"), Some("2027-03-01")),
            ("Sooner", Some("U2"), Some("2027-01-01")),
            ("Someone else's", Some("U3"), None),
        ] {
            s.add_follow_up(NewFollowUp {
                incident: id,
                title: title.into(),
                owner: owner.map(UserId::from),
                due: due.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                by: UserId::from("U1"),
                at: t(10),
                steps: |_, _| Vec::new(),
            })
            .await
            .unwrap();
        }
        assert!(
            s.awaiting_review().await.unwrap().is_empty(),
            "not resolved yet"
        );
        s.record_resolution(NewResolution {
            incident: id,
            resolve_key: "V2".into(),
            resolved_by: UserId::from("U1"),
            summary: String::new(),
            at: t(60),
        })
        .await
        .unwrap();
        s.transition(id, Transition::Resolved).await.unwrap();
        s.close_follow_up(
            id,
            FollowUpRef(3),
            Closure::Done,
            &UserId::from("U3"),
            t(70),
        )
        .await
        .unwrap();
        let awaiting = s.awaiting_review().await.unwrap();
        assert_eq!(awaiting.len(), 1);
        assert_eq!(awaiting[0].open_follow_ups, 2);
        assert_eq!(awaiting[0].resolved_at, Some(t(60)));
        let mine = s.open_follow_ups_of(&UserId::from("U2")).await.unwrap();
        let titles: Vec<&str> = mine.iter().map(|o| o.follow_up.title.as_str()).collect();
        assert_eq!(titles, vec!["Sooner", "Later"], "soonest due first");
        assert!(s
            .open_follow_ups_of(&UserId::from("U3"))
            .await
            .unwrap()
            .is_empty());
    }
}
