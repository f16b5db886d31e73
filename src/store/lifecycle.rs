//! The incident lifecycle's SQL: status updates, severity and role changes (each recorded once,
//! keyed by the command or form that asked for it, with its timeline entry and the marker of the
//! workflow that shows it everywhere, in one transaction), notes, captured messages and the
//! timeline read back.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{incident_from_row, parse_ts, ts, write_tx, Lane, Store, INCIDENT_COLUMNS};
use crate::incident::command::UpdateStatus;
use crate::incident::roles::{Assignments, Role};
use crate::incident::timeline::EntryKind;
use crate::incident::{Incident, IncidentId, Severity, Status, UserId};

/// The lifecycle columns of an incident row.
pub(super) struct Columns {
    pub phase: UpdateStatus,
    pub roles: Option<Assignments>,
    pub last_update_at: Option<DateTime<Utc>>,
}

/// Read `phase, roles, last_update_at` starting at column `first`. An unreadable value is an
/// error.
pub(super) fn columns(r: &Row<'_>, first: usize) -> Result<Columns> {
    let phase = match r.get::<_, Option<String>>(first)? {
        None => UpdateStatus::Investigating,
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown incident phase {p:?} in the store"))?,
    };
    let roles = r
        .get::<_, Option<String>>(first + 1)?
        .map(|j| serde_json::from_str(&j).context("unreadable role holders in the store"))
        .transpose()?;
    let last_update_at = r
        .get::<_, Option<String>>(first + 2)?
        .map(|t| parse_ts(&t))
        .transpose()?;
    Ok(Columns {
        phase,
        roles,
        last_update_at,
    })
}

/// What a person asks to change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRequest {
    Status {
        status: UpdateStatus,
        message: String,
    },
    Severity(Severity),
    Role {
        role: Role,
        user: Option<UserId>,
    },
}

/// A change to record: which incident, what identifies the request across redeliveries, who
/// asked, what and when.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub incident: IncidentId,
    pub key: String,
    pub by: UserId,
    pub request: ChangeRequest,
    pub at: DateTime<Utc>,
}

/// A change as applied: what the channel, topic, summary and announcements are told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Applied {
    Status {
        status: String,
        previous: String,
        message: String,
    },
    Severity {
        from: String,
        to: String,
    },
    Role {
        role: Role,
        previous: Option<UserId>,
        new: Option<UserId>,
        handover: bool,
    },
}

impl Applied {
    /// The status set, when this is a status update.
    pub fn status(&self) -> Option<UpdateStatus> {
        match self {
            Applied::Status { status, .. } => status.parse().ok(),
            _ => None,
        }
    }

    /// The timeline kind of this change.
    pub fn entry_kind(&self) -> EntryKind {
        match self {
            Applied::Status { .. } => EntryKind::StatusChanged,
            Applied::Severity { .. } => EntryKind::SeverityChanged,
            Applied::Role { role, handover, .. } => EntryKind::RoleChanged {
                role: *role,
                handover: *handover,
            },
        }
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub seq: u32,
    pub incident: IncidentId,
    pub by: UserId,
    pub at: DateTime<Utc>,
    pub applied: Applied,
}

/// Outcome of recording a change.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeRecorded {
    /// Applied and recorded; its workflow shows it everywhere.
    Started(ChangeRecord),
    /// The same command or form was recorded before (a redelivery).
    Duplicate,
    /// It would change nothing (the same severity, the same holder).
    Unchanged,
    /// The incident is not open (declaring, resolving or resolved).
    NotOpen(Status),
    NotFound,
}

/// A timeline entry as stored. `kind` is `None` for entries written before entries had kinds
/// (and for integration notes), which are shown as plain text.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub at: DateTime<Utc>,
    pub author: Option<UserId>,
    pub kind: Option<EntryKind>,
    pub text: String,
}

/// What adding or removing a capture holder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captured {
    /// The message had no holder and now has one: it goes on the timeline.
    First,
    /// The last holder went: it leaves the timeline.
    Last,
    /// Holders changed but the message stays (or stays off).
    Same,
}

pub(super) fn kind_json(kind: &EntryKind) -> String {
    serde_json::to_string(kind).unwrap_or_default()
}

fn capture_source(message_ts: &str) -> String {
    format!("msg:{message_ts}")
}

impl Store {
    /// Apply and record a change keyed by `key` (the command's trigger id, the form's view id),
    /// in one transaction with its timeline entry (`describe` writes the entry's text) and the
    /// marker step (`marker(seq)`) that makes resume show it if the process dies. Intent lane:
    /// it runs inside the ack.
    pub async fn record_change(
        &self,
        new: NewChange,
        describe: impl FnOnce(&Applied) -> String + Send + 'static,
        marker: impl FnOnce(u32) -> String + Send + 'static,
    ) -> Result<ChangeRecorded> {
        let NewChange {
            incident: id,
            key,
            by,
            request,
            at,
        } = new;
        self.with(Lane::Intent, move |c| {
            let tx = write_tx(c)?;
            let seen: Option<i64> = tx
                .prepare_cached("SELECT seq FROM changes WHERE key = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            if seen.is_some() {
                return Ok(ChangeRecorded::Duplicate);
            }
            let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1");
            let Some(inc) = tx
                .prepare_cached(&sql)?
                .query_row([id.0], incident_from_row)
                .optional()?
                .transpose()?
            else {
                return Ok(ChangeRecorded::NotFound);
            };
            if inc.status != Status::Open {
                return Ok(ChangeRecorded::NotOpen(inc.status));
            }
            let applied = match request {
                ChangeRequest::Status { status, message } => {
                    tx.prepare_cached(
                        "UPDATE incidents SET phase = ?2, last_update_at = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id.0, status.as_str(), ts(at)])?;
                    Applied::Status {
                        status: status.as_str().into(),
                        previous: inc.phase.as_str().into(),
                        message,
                    }
                }
                ChangeRequest::Severity(level) => {
                    if level == inc.severity {
                        return Ok(ChangeRecorded::Unchanged);
                    }
                    tx.prepare_cached("UPDATE incidents SET severity = ?2 WHERE id = ?1")?
                        .execute(params![id.0, level.as_str()])?;
                    Applied::Severity {
                        from: inc.severity.as_str().into(),
                        to: level.as_str().into(),
                    }
                }
                ChangeRequest::Role { role, user } => {
                    let mut roles = inc.roles.clone();
                    let change = roles.assign(role, user);
                    if change.is_noop() {
                        return Ok(ChangeRecorded::Unchanged);
                    }
                    let json = serde_json::to_string(&roles)?;
                    tx.prepare_cached("UPDATE incidents SET roles = ?2 WHERE id = ?1")?
                        .execute(params![id.0, json])?;
                    if role == Role::Commander {
                        tx.prepare_cached("UPDATE incidents SET commander = ?2 WHERE id = ?1")?
                            .execute(params![id.0, change.new.as_ref().map(|u| u.as_str())])?;
                    }
                    Applied::Role {
                        role,
                        previous: change.previous,
                        new: change.new,
                        handover: change.is_handover,
                    }
                }
            };
            tx.prepare_cached(
                "INSERT INTO changes (incident_id, key, change, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id.0, key, serde_json::to_string(&applied)?, ts(at)])?;
            let seq = u32::try_from(tx.last_insert_rowid()).context("change number overflow")?;
            tx.prepare_cached(
                "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id.0,
                ts(at),
                describe(&applied),
                by.as_str(),
                kind_json(&applied.entry_kind()),
                format!("change:{seq}")
            ])?;
            tx.prepare_cached(
                "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
                 VALUES (?1, ?2, 'started', 0, ?3, ?3)",
            )?
            .execute(params![id.0, marker(seq), ts(at)])?;
            tx.commit()?;
            Ok(ChangeRecorded::Started(ChangeRecord {
                seq,
                incident: id,
                by,
                at,
                applied,
            }))
        })
        .await
    }

    /// A recorded change by its number.
    pub async fn change(&self, seq: u32) -> Result<Option<ChangeRecord>> {
        self.with(Lane::General, move |c| {
            let row: Option<(i64, String, String, String)> = c
                .prepare_cached(
                    "SELECT c.incident_id, c.change, c.at, COALESCE(t.author, '') FROM changes c \
                     LEFT JOIN timeline t ON t.incident_id = c.incident_id \
                     AND t.source_key = 'change:' || c.seq WHERE c.seq = ?1",
                )?
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?;
            row.map(|(incident, change, at, by)| {
                Ok(ChangeRecord {
                    seq,
                    incident: IncidentId(incident),
                    by: UserId(by),
                    at: parse_ts(&at)?,
                    applied: serde_json::from_str(&change)
                        .with_context(|| format!("unreadable change {seq} in the store"))?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Add a person's entry (a note) once per `source_key`. True when it was added now. Intent
    /// lane: `/incident note` records it inside the ack.
    pub async fn add_entry(
        &self,
        id: IncidentId,
        source_key: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        self.with(Lane::Intent, move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (incident_id, source_key) DO NOTHING",
                )?
                .execute(params![
                    id.0,
                    ts(at),
                    text,
                    author.as_ref().map(|a| a.as_str()),
                    kind_json(&kind),
                    source_key
                ])?;
            Ok(n == 1)
        })
        .await
    }

    /// The timeline of an incident, oldest first (entries with the same time in recorded order).
    pub async fn timeline_entries(&self, id: IncidentId) -> Result<Vec<StoredEntry>> {
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT at, author, kind, text FROM timeline WHERE incident_id = ?1 \
                 ORDER BY at, id",
            )?;
            let rows = stmt.query_map([id.0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (at, author, kind, text) = row?;
                Ok(StoredEntry {
                    at: parse_ts(&at)?,
                    author: author.map(UserId),
                    kind: kind
                        .map(|k| serde_json::from_str(&k).context("unreadable timeline kind"))
                        .transpose()?,
                    text,
                })
            })
            .collect()
        })
        .await
    }

    /// Record that `holder` (`reaction:U…` or `pin`) marks a message of the incident.
    pub async fn capture_hold(
        &self,
        id: IncidentId,
        message_ts: String,
        holder: String,
    ) -> Result<Captured> {
        self.with(Lane::General, move |c| {
            let tx = write_tx(c)?;
            let before: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM captures WHERE incident_id = ?1 AND message_ts = ?2",
                )?
                .query_row(params![id.0, message_ts], |r| r.get(0))?;
            let n = tx
                .prepare_cached(
                    "INSERT INTO captures (incident_id, message_ts, holder) VALUES (?1, ?2, ?3) \
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![id.0, message_ts, holder])?;
            tx.commit()?;
            Ok(if before == 0 && n == 1 {
                Captured::First
            } else {
                Captured::Same
            })
        })
        .await
    }

    /// Record that `holder` no longer marks the message; when it was the last, the message's
    /// timeline entry is removed in the same transaction.
    pub async fn capture_release(
        &self,
        id: IncidentId,
        message_ts: String,
        holder: String,
    ) -> Result<Captured> {
        self.with(Lane::General, move |c| {
            let tx = write_tx(c)?;
            let n = tx
                .prepare_cached(
                    "DELETE FROM captures WHERE incident_id = ?1 AND message_ts = ?2 AND holder = ?3",
                )?
                .execute(params![id.0, message_ts, holder])?;
            let left: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM captures WHERE incident_id = ?1 AND message_ts = ?2",
                )?
                .query_row(params![id.0, message_ts], |r| r.get(0))?;
            let out = if n == 1 && left == 0 {
                tx.prepare_cached("DELETE FROM timeline WHERE incident_id = ?1 AND source_key = ?2")?
                    .execute(params![id.0, capture_source(&message_ts)])?;
                Captured::Last
            } else {
                Captured::Same
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Whether a message is still held by anyone.
    pub async fn capture_held(&self, id: IncidentId, message_ts: String) -> Result<bool> {
        self.with(Lane::General, move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM captures WHERE incident_id = ?1 AND message_ts = ?2",
                )?
                .query_row(params![id.0, message_ts], |r| r.get(0))?;
            Ok(n > 0)
        })
        .await
    }

    /// Put a captured message on the timeline (once per message), if it is still held.
    pub async fn add_captured_entry(
        &self,
        id: IncidentId,
        message_ts: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        self.with(Lane::General, move |c| {
            let tx = write_tx(c)?;
            let held: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM captures WHERE incident_id = ?1 AND message_ts = ?2",
                )?
                .query_row(params![id.0, message_ts], |r| r.get(0))?;
            if held == 0 {
                return Ok(false);
            }
            let n = tx
                .prepare_cached(
                    "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (incident_id, source_key) DO NOTHING",
                )?
                .execute(params![
                    id.0,
                    ts(at),
                    text,
                    author.as_ref().map(|a| a.as_str()),
                    kind_json(&kind),
                    capture_source(&message_ts)
                ])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    /// Fill in a captured message's entry once its text has been read (its time, author, text
    /// and permalink). False when the entry is gone (the message was unmarked meanwhile).
    pub async fn fill_captured_entry(
        &self,
        id: IncidentId,
        message_ts: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        self.with(Lane::General, move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE timeline SET at = ?3, author = ?4, kind = ?5, text = ?6 \
                     WHERE incident_id = ?1 AND source_key = ?2",
                )?
                .execute(params![
                    id.0,
                    capture_source(&message_ts),
                    ts(at),
                    author.as_ref().map(|a| a.as_str()),
                    kind_json(&kind),
                    text
                ])?;
            Ok(n == 1)
        })
        .await
    }

    /// When the commander was last nudged and until when nudges are snoozed.
    pub async fn nudge_state(
        &self,
        id: IncidentId,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
        self.with(Lane::General, move |c| {
            let row: Option<(Option<String>, Option<String>)> = c
                .prepare_cached(
                    "SELECT last_nudged_at, snoozed_until FROM incidents WHERE id = ?1",
                )?
                .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (n, s) = row.unwrap_or_default();
            Ok((
                n.map(|t| parse_ts(&t)).transpose()?,
                s.map(|t| parse_ts(&t)).transpose()?,
            ))
        })
        .await
    }

    /// Record a nudge at `at`, once: false when another firing recorded one since `previous`.
    /// Recorded before the message is sent, so a restart never sends it twice.
    pub async fn record_nudge(
        &self,
        id: IncidentId,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.with(Lane::General, move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE incidents SET last_nudged_at = ?3 \
                     WHERE id = ?1 AND last_nudged_at IS ?2",
                )?
                .execute(params![id.0, previous.map(ts), ts(at)])?;
            Ok(n == 1)
        })
        .await
    }

    /// No nudges before `until` (the Snooze button).
    pub async fn snooze_nudges(&self, id: IncidentId, until: DateTime<Utc>) -> Result<()> {
        self.with(Lane::Intent, move |c| {
            c.prepare_cached("UPDATE incidents SET snoozed_until = ?2 WHERE id = ?1")?
                .execute(params![id.0, ts(until)])?;
            Ok(())
        })
        .await
    }

    /// Every open incident (declared and not resolving or resolved), oldest first.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        self.with(Lane::Intent, |c| {
            let sql = format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status = 'open' ORDER BY declared_at, id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([], incident_from_row)?;
            rows.map(super::conv).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{declared, t};
    use super::*;
    use crate::incident::lifecycle::Transition;

    fn describe(a: &Applied) -> String {
        format!("{a:?}")
    }

    fn new(id: IncidentId, request: ChangeRequest, at: DateTime<Utc>) -> NewChange {
        NewChange {
            incident: id,
            key: "T1".into(),
            by: "U1".into(),
            request,
            at,
        }
    }

    async fn open(s: &Store) -> IncidentId {
        let id = declared(s).await;
        s.transition(id, Transition::Declared).await.unwrap();
        id
    }

    #[tokio::test]
    async fn a_change_is_applied_once_with_its_entry_and_marker() {
        let s = Store::in_memory().unwrap();
        let id = open(&s).await;
        let req = ChangeRequest::Role {
            role: Role::Ops,
            user: Some(UserId::from("U9")),
        };
        let r = s
            .record_change(new(id, req.clone(), t(5)), describe, |n| {
                format!("workflow:change:{n}")
            })
            .await
            .unwrap();
        let ChangeRecorded::Started(rec) = r else {
            panic!("{r:?}")
        };
        let again = s
            .record_change(new(id, req, t(6)), describe, |n| {
                format!("workflow:change:{n}")
            })
            .await
            .unwrap();
        assert_eq!(again, ChangeRecorded::Duplicate);
        let inc = s.incident(id).await.unwrap().unwrap();
        assert_eq!(inc.roles.holder(Role::Ops), Some(&UserId::from("U9")));
        assert_eq!(inc.roles.holder(Role::Commander), Some(&UserId::from("U1")));
        assert_eq!(s.change(rec.seq).await.unwrap().unwrap(), rec);
        assert_eq!(
            s.pending_steps(id).await.unwrap(),
            vec![format!("workflow:change:{}", rec.seq)]
        );
        let entries = s.timeline_entries(id).await.unwrap();
        assert_eq!(entries.len(), 2, "declared and the role change");
        assert_eq!(entries[1].author, Some(UserId::from("U1")));
    }

    #[tokio::test]
    async fn the_same_severity_changes_nothing() {
        let s = Store::in_memory().unwrap();
        let id = open(&s).await;
        assert!(s.record_nudge(id, None, t(1)).await.unwrap());
        assert!(!s.record_nudge(id, None, t(2)).await.unwrap(), "once");
        assert_eq!(s.nudge_state(id).await.unwrap(), (Some(t(1)), None));
        let r = s
            .record_change(
                new(id, ChangeRequest::Severity(Severity::from("sev1")), t(5)),
                describe,
                |n| n.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r, ChangeRecorded::Unchanged);
        assert!(s.pending_steps(id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_message_held_twice_leaves_only_with_its_last_holder() {
        let s = Store::in_memory().unwrap();
        let id = open(&s).await;
        let m = "1700000000.000100".to_string();
        let hold = |h: &str| s.capture_hold(id, m.clone(), h.into());
        assert_eq!(hold("reaction:U1").await.unwrap(), Captured::First);
        assert_eq!(hold("reaction:U1").await.unwrap(), Captured::Same);
        assert_eq!(hold("pin").await.unwrap(), Captured::Same);
        let kind = EntryKind::Note;
        assert!(s
            .add_captured_entry(id, m.clone(), t(1), None, kind.clone(), "x".into())
            .await
            .unwrap());
        assert!(!s
            .add_captured_entry(id, m.clone(), t(1), None, kind, "x".into())
            .await
            .unwrap());
        let release = |h: &str| s.capture_release(id, m.clone(), h.into());
        assert_eq!(release("pin").await.unwrap(), Captured::Same);
        assert_eq!(release("reaction:U2").await.unwrap(), Captured::Same);
        assert_eq!(s.timeline_entries(id).await.unwrap().len(), 2);
        assert_eq!(release("reaction:U1").await.unwrap(), Captured::Last);
        assert_eq!(s.timeline_entries(id).await.unwrap().len(), 1);
    }
}
