//! Closing and reopening in the store: the close form's submission (keyed by its view, so a
//! redelivery records nothing twice), the review date and notes, and reopening a resolved
//! incident (its resolution cleared and the resolve and paging steps forgotten, so the next
//! resolve and the new page run again). Each records its workflow's marker as pending in the
//! same transaction, so a crash right after the ack still finishes the work.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

use super::{from_millis, millis, parse_ts, ts, write_tx, Lane, Store};
use crate::incident::lifecycle::{Change, Transition};
use crate::incident::{IncidentId, Status, UserId};

/// What the close form records before it is acknowledged.
#[derive(Debug, Clone)]
pub struct NewClose {
    pub incident: IncidentId,
    /// The form's view id: a redelivered submission finds it.
    pub close_key: String,
    pub by: UserId,
    pub review_date: Option<NaiveDate>,
    pub notes: String,
    pub at: DateTime<Utc>,
    /// The close workflow's marker step (its key text), recorded as pending.
    pub marker: String,
}

/// Outcome of recording a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseRecorded {
    Started,
    /// The same submission was recorded before.
    Duplicate,
    /// The incident is not resolved (or already closed): its status.
    Refused(Status),
    NotFound,
}

/// How an incident was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub at: DateTime<Utc>,
    pub by: UserId,
    pub review_date: Option<NaiveDate>,
    pub notes: String,
}

/// Step keys a reopen forgets: the resolve workflow's and the paging ones, so resolving again
/// and paging again run anew (`%` patterns for the per-channel and per-integration keys).
const FORGOTTEN_ON_REOPEN: &[&str] = &[
    "workflow:resolve",
    "rename",
    "resolve_topic",
    "resolve_summary",
    "resolution",
    "announce_update:%",
    "announce_reply:%",
    "page",
    "page_resolve",
    "postmortem_resolve",
    "notice:page",
    "gave_up:page",
    "recovered:page",
    "%:page_resolve",
    "%:postmortem_resolve",
    "reopen_post",
];

fn pending_marker(
    tx: &rusqlite::Transaction<'_>,
    id: IncidentId,
    marker: &str,
    at: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
         VALUES (?1, ?2, 'failed', 0, ?3, ?3) \
         ON CONFLICT (incident_id, step) DO UPDATE SET state = 'failed', attempts = 0, \
         detail = NULL, first_at = ?3, updated_at = ?3",
    )?
    .execute(params![id.0, marker, at])?;
    Ok(())
}

impl Store {
    /// Record a close (the intent) keyed by its submission. Intent lane.
    pub async fn record_close(&self, n: NewClose) -> Result<CloseRecorded> {
        self.with(Lane::Intent, move |c| {
            let tx = write_tx(c)?;
            let current: Option<(String, Option<String>)> = tx
                .prepare_cached("SELECT status, close_key FROM incidents WHERE id = ?1")?
                .query_row([n.incident.0], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((status, key)) = current else {
                return Ok(CloseRecorded::NotFound);
            };
            if key.as_deref() == Some(n.close_key.as_str()) {
                return Ok(CloseRecorded::Duplicate);
            }
            let status = Status::parse(&status)
                .with_context(|| format!("unknown incident status {status:?}"))?;
            let Some(change) = Transition::Close.apply(status) else {
                return Ok(CloseRecorded::Refused(status));
            };
            let at = ts(n.at);
            tx.prepare_cached(
                "UPDATE incidents SET status = ?2, close_key = ?3, closed_at = ?4, closed_by = ?5, \
                 review_date = ?6, review_notes = ?7 WHERE id = ?1 AND status = ?8",
            )?
            .execute(params![
                n.incident.0,
                change.to.as_str(),
                n.close_key,
                at,
                n.by.as_str(),
                n.review_date.map(|d| d.format("%Y-%m-%d").to_string()),
                n.notes,
                change.from.as_str()
            ])?;
            tx.prepare_cached("INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)")?
                .execute(params![n.incident.0, at, format!("Closed by <@{}>", n.by)])?;
            pending_marker(&tx, n.incident, &n.marker, &at)?;
            tx.commit()?;
            Ok(CloseRecorded::Started)
        })
        .await
    }

    /// How the incident was closed, once it is.
    pub async fn closing(&self, id: IncidentId) -> Result<Option<Closing>> {
        self.with(Lane::General, move |c| {
            let row: Option<[Option<String>; 4]> = c
                .prepare_cached(
                    "SELECT closed_at, closed_by, review_date, review_notes FROM incidents WHERE id = ?1",
                )?
                .query_row([id.0], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
                .optional()?;
            let Some([Some(at), Some(by), date, notes]) = row else {
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
        })
        .await
    }

    /// Reopen a resolved, not closed incident: back to open, its resolution cleared, the resolve
    /// and paging steps forgotten, the reopen workflow's marker pending. `None` when the
    /// incident was not resolved. Intent lane.
    pub async fn record_reopen(
        &self,
        id: IncidentId,
        by: &UserId,
        at: DateTime<Utc>,
        marker: &str,
    ) -> Result<Option<Change>> {
        let (by, marker) = (by.as_str().to_string(), marker.to_string());
        self.with(Lane::Intent, move |c| {
            let tx = write_tx(c)?;
            let current: Option<String> = tx
                .prepare_cached("SELECT status FROM incidents WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            let Some(current) = current else {
                return Ok(None);
            };
            let current = Status::parse(&current)
                .with_context(|| format!("unknown incident status {current:?}"))?;
            let Some(change) = Transition::Reopen.apply(current) else {
                return Ok(None);
            };
            tx.prepare_cached(
                "UPDATE incidents SET status = ?2, resolve_key = NULL, resolved_at = NULL, \
                 resolved_by = NULL, resolution = NULL, review_reminded_for = NULL \
                 WHERE id = ?1 AND status = ?3",
            )?
            .execute(params![id.0, change.to.as_str(), change.from.as_str()])?;
            for pattern in FORGOTTEN_ON_REOPEN {
                tx.prepare_cached("DELETE FROM steps WHERE incident_id = ?1 AND step LIKE ?2")?
                    .execute(params![id.0, pattern])?;
            }
            let at = ts(at);
            tx.prepare_cached("INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)")?
                .execute(params![id.0, at, format!("Reopened by <@{by}>")])?;
            pending_marker(&tx, id, &marker, &at)?;
            tx.commit()?;
            Ok(Some(change))
        })
        .await
    }
}

impl Store {
    /// Record the impact given in the resolve form, while the incident can still be resolved
    /// (written just before the resolution is recorded, so a refused form changes nothing).
    /// Intent lane.
    pub async fn set_impact(&self, id: IncidentId, impact: &str) -> Result<()> {
        let impact = impact.to_string();
        self.with(Lane::Intent, move |c| {
            c.prepare_cached(
                "UPDATE incidents SET impact = ?2 WHERE id = ?1 AND status IN ('declaring', 'open')",
            )?
            .execute(params![id.0, impact])?;
            Ok(())
        })
        .await
    }

    /// The impact given in the resolve form, if any.
    pub async fn impact(&self, id: IncidentId) -> Result<Option<String>> {
        self.with(Lane::General, move |c| {
            let v: Option<Option<String>> = c
                .prepare_cached("SELECT impact FROM incidents WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            Ok(v.flatten().filter(|s| !s.trim().is_empty()))
        })
        .await
    }

    /// The due time the last review reminder since the latest resolve stood for.
    pub async fn review_reminded_for(&self, id: IncidentId) -> Result<Option<DateTime<Utc>>> {
        self.with(Lane::General, move |c| {
            let ms: Option<Option<i64>> = c
                .prepare_cached("SELECT review_reminded_for FROM incidents WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            ms.flatten().map(from_millis).transpose()
        })
        .await
    }

    /// Record that the reminder for `due_at` is due to be sent, with its steps pending, once:
    /// false when a reminder for this (or a later) due time was recorded before.
    pub async fn record_review_reminder(
        &self,
        id: IncidentId,
        due_at: DateTime<Utc>,
        marker: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let marker = marker.to_string();
        self.with(Lane::General, move |c| {
            let tx = write_tx(c)?;
            let changed = tx
                .prepare_cached(
                    "UPDATE incidents SET review_reminded_for = ?2 WHERE id = ?1 \
                     AND (review_reminded_for IS NULL OR review_reminded_for < ?2)",
                )?
                .execute(params![id.0, millis(due_at)])?;
            if changed == 0 {
                return Ok(false);
            }
            pending_marker(&tx, id, &marker, &ts(now))?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{declared, t};
    use super::super::{NewResolution, ResolveRecorded, StepState};
    use super::*;

    async fn resolved(s: &Store) -> IncidentId {
        let id = declared(s).await;
        s.transition(id, Transition::Declared).await.unwrap();
        let r = s
            .record_resolution(NewResolution {
                incident: id,
                resolve_key: "V9".into(),
                resolved_by: UserId::from("U2"),
                summary: "fixed".into(),
                at: t(60),
            })
            .await
            .unwrap();
        assert_eq!(r, ResolveRecorded::Started);
        s.transition(id, Transition::Resolved).await.unwrap();
        id
    }

    fn close(id: IncidentId, key: &str) -> NewClose {
        NewClose {
            incident: id,
            close_key: key.into(),
            by: UserId::from("U3"),
            review_date: NaiveDate::from_ymd_opt(2026, 12, 20),
            notes: "Reviewed with the team".into(),
            at: t(600),
            marker: "workflow:close".into(),
        }
    }

    #[tokio::test]
    async fn only_a_resolved_incident_closes_and_a_redelivered_form_records_nothing_twice() {
        let s = Store::in_memory().unwrap();
        let open = declared(&s).await;
        s.transition(open, Transition::Declared).await.unwrap();
        assert_eq!(
            s.record_close(close(open, "V1")).await.unwrap(),
            CloseRecorded::Refused(Status::Open)
        );
        let s = Store::in_memory().unwrap();
        let id = resolved(&s).await;
        assert_eq!(
            s.record_close(close(id, "V1")).await.unwrap(),
            CloseRecorded::Started
        );
        assert_eq!(
            s.record_close(close(id, "V1")).await.unwrap(),
            CloseRecorded::Duplicate
        );
        assert_eq!(
            s.record_close(close(id, "V2")).await.unwrap(),
            CloseRecorded::Refused(Status::Closed)
        );
        let c = s.closing(id).await.unwrap().unwrap();
        assert_eq!(c.at, t(600));
        assert_eq!(c.notes, "Reviewed with the team");
        assert_eq!(c.review_date, NaiveDate::from_ymd_opt(2026, 12, 20));
        assert_eq!(s.pending_steps(id).await.unwrap(), vec!["workflow:close"]);
        assert_eq!(
            s.record_reopen(id, &UserId::from("U3"), t(700), "workflow:reopen")
                .await
                .unwrap(),
            None,
            "closed is final"
        );
    }

    #[tokio::test]
    async fn reopening_clears_the_resolution_and_forgets_the_resolve_and_paging_steps() {
        let s = Store::in_memory().unwrap();
        let id = resolved(&s).await;
        for step in [
            "rename",
            "announce_update:C1",
            "page",
            "page_resolve",
            "summary",
            "pin",
        ] {
            s.set_step(id, step, StepState::Done, None, t(70))
                .await
                .unwrap();
        }
        let change = s
            .record_reopen(id, &UserId::from("U3"), t(100), "workflow:reopen")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(change.to, Status::Open);
        let inc = s.incident(id).await.unwrap().unwrap();
        assert_eq!((inc.resolved_at, inc.resolution), (None, None));
        for gone in ["rename", "announce_update:C1", "page", "page_resolve"] {
            assert!(s.step(id, gone).await.unwrap().is_none(), "{gone}");
        }
        for kept in ["summary", "pin"] {
            assert!(s.step(id, kept).await.unwrap().is_some(), "{kept}");
        }
        assert_eq!(s.pending_steps(id).await.unwrap(), vec!["workflow:reopen"]);
        assert_eq!(s.review_reminded_for(id).await.unwrap(), None);
        // The impact can be given while resolvable, and only then.
        s.set_impact(id, "EU checkout down 20 min").await.unwrap();
        assert_eq!(
            s.impact(id).await.unwrap().as_deref(),
            Some("EU checkout down 20 min")
        );
        // Resolvable again, with a new submission.
        assert!(s.status(id).await.unwrap().unwrap().can_resolve());
    }
}

#[cfg(test)]
mod review_tests {
    use super::super::tests::{declared, t};
    use super::*;

    #[tokio::test]
    async fn a_review_reminder_is_recorded_once_per_due_time() {
        let s = Store::in_memory().unwrap();
        let id = declared(&s).await;
        assert!(s
            .record_review_reminder(id, t(30), "workflow:review:1", t(31))
            .await
            .unwrap());
        assert!(!s
            .record_review_reminder(id, t(30), "workflow:review:1", t(32))
            .await
            .unwrap());
        assert!(!s
            .record_review_reminder(id, t(20), "workflow:review:0", t(33))
            .await
            .unwrap());
        assert_eq!(s.review_reminded_for(id).await.unwrap(), Some(t(30)));
        assert!(s
            .record_review_reminder(id, t(60), "workflow:review:2", t(61))
            .await
            .unwrap());
        assert_eq!(
            s.pending_steps(id).await.unwrap(),
            vec!["workflow:review:1".to_string(), "workflow:review:2".into()]
        );
    }
}
