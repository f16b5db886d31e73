//! The incident lifecycle on PostgreSQL (see `store/lifecycle.rs`, same semantics). Changes and
//! captures lock the incident row (`FOR UPDATE`), so replicas handling one incident at once
//! apply each change once and agree on a captured message's first and last holder.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{incident_from_row, intent, Pg};
use crate::incident::roles::Role;
use crate::incident::timeline::EntryKind;
use crate::incident::{Incident, IncidentId, Status, UserId};
use crate::store::lifecycle::{capture_source, kind_json};
use crate::store::{
    parse_ts, ts, Applied, Captured, ChangeRecord, ChangeRecorded, ChangeRequest, NewChange,
    StoredEntry, INCIDENT_COLUMNS,
};

fn seq_of(n: i64) -> Result<u32> {
    u32::try_from(n).context("change number overflow")
}

async fn held(tx: &deadpool_postgres::Transaction<'_>, id: IncidentId, m: &str) -> Result<i64> {
    Ok(tx
        .query_one(
            "SELECT COUNT(*) FROM captures WHERE incident_id = $1 AND message_ts = $2",
            &[&id.0, &m],
        )
        .await?
        .try_get(0)?)
}

impl Pg {
    pub async fn record_change(
        &self,
        new: NewChange,
        describe: impl FnOnce(&Applied) -> String + Send + 'static,
        marker: impl FnOnce(u32) -> String + Send + 'static,
    ) -> Result<ChangeRecorded> {
        intent(self.record_change_now(new, describe, marker)).await
    }

    async fn record_change_now(
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
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1 FOR UPDATE");
        let Some(row) = tx.query_opt(&sql, &[&id.0]).await? else {
            return Ok(ChangeRecorded::NotFound);
        };
        let inc = incident_from_row(&row)?;
        if tx
            .query_opt("SELECT seq FROM changes WHERE key = $1", &[&key])
            .await?
            .is_some()
        {
            return Ok(ChangeRecorded::Duplicate);
        }
        if inc.status != Status::Open {
            return Ok(ChangeRecorded::NotOpen(inc.status));
        }
        let applied = match request {
            ChangeRequest::Status { status, message } => {
                tx.execute(
                    "UPDATE incidents SET phase = $2, last_update_at = $3 WHERE id = $1",
                    &[&id.0, &status.as_str(), &ts(at)],
                )
                .await?;
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
                tx.execute(
                    "UPDATE incidents SET severity = $2 WHERE id = $1",
                    &[&id.0, &level.as_str()],
                )
                .await?;
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
                tx.execute(
                    "UPDATE incidents SET roles = $2 WHERE id = $1",
                    &[&id.0, &json],
                )
                .await?;
                if role == Role::Commander {
                    tx.execute(
                        "UPDATE incidents SET commander = $2 WHERE id = $1",
                        &[&id.0, &change.new.as_ref().map(|u| u.as_str())],
                    )
                    .await?;
                }
                Applied::Role {
                    role,
                    previous: change.previous,
                    new: change.new,
                    handover: change.is_handover,
                }
            }
        };
        let Some(row) = tx
            .query_opt(
                "INSERT INTO changes (incident_id, key, change, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO NOTHING RETURNING seq",
                &[&id.0, &key, &serde_json::to_string(&applied)?, &ts(at)],
            )
            .await?
        else {
            // Recorded meanwhile for another incident by the same request: a redelivery.
            return Ok(ChangeRecorded::Duplicate);
        };
        let seq = seq_of(row.try_get(0)?)?;
        tx.execute(
            "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id.0,
                &ts(at),
                &describe(&applied),
                &by.as_str(),
                &kind_json(&applied.entry_kind()),
                &format!("change:{seq}"),
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO steps (incident_id, step, state, attempts, first_at, updated_at) \
             VALUES ($1, $2, 'started', 0, $3, $3)",
            &[&id.0, &marker(seq), &ts(at)],
        )
        .await?;
        tx.commit().await?;
        Ok(ChangeRecorded::Started(ChangeRecord {
            seq,
            incident: id,
            by,
            at,
            applied,
        }))
    }

    pub async fn change(&self, seq: u32) -> Result<Option<ChangeRecord>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT c.incident_id, c.change, c.at, COALESCE(t.author, '') FROM changes c \
                 LEFT JOIN timeline t ON t.incident_id = c.incident_id \
                 AND t.source_key = 'change:' || c.seq WHERE c.seq = $1",
                &[&i64::from(seq)],
            )
            .await?;
        row.map(|r| {
            let change: String = r.try_get(1)?;
            Ok(ChangeRecord {
                seq,
                incident: IncidentId(r.try_get(0)?),
                by: UserId(r.try_get(3)?),
                at: parse_ts(&r.try_get::<_, String>(2)?)?,
                applied: serde_json::from_str(&change)
                    .with_context(|| format!("unreadable change {seq} in the store"))?,
            })
        })
        .transpose()
    }

    pub async fn add_entry(
        &self,
        id: IncidentId,
        source_key: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        intent(async {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (incident_id, source_key) DO NOTHING",
                    &[
                        &id.0,
                        &ts(at),
                        &text,
                        &author.as_ref().map(|a| a.as_str()),
                        &kind_json(&kind),
                        &source_key,
                    ],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn timeline_entries(&self, id: IncidentId) -> Result<Vec<StoredEntry>> {
        let c = self.client().await?;
        c.query(
            "SELECT at, author, kind, text FROM timeline WHERE incident_id = $1 ORDER BY at, id",
            &[&id.0],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(StoredEntry {
                at: parse_ts(&r.try_get::<_, String>(0)?)?,
                author: r.try_get::<_, Option<String>>(1)?.map(UserId),
                kind: r
                    .try_get::<_, Option<String>>(2)?
                    .map(|k| serde_json::from_str(&k).context("unreadable timeline kind"))
                    .transpose()?,
                text: r.try_get(3)?,
            })
        })
        .collect()
    }

    pub async fn capture_hold(
        &self,
        id: IncidentId,
        message_ts: String,
        holder: String,
    ) -> Result<Captured> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?;
        let before = held(&tx, id, &message_ts).await?;
        let n = tx
            .execute(
                "INSERT INTO captures (incident_id, message_ts, holder) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&id.0, &message_ts, &holder],
            )
            .await?;
        tx.commit().await?;
        Ok(if before == 0 && n == 1 {
            Captured::First
        } else {
            Captured::Same
        })
    }

    pub async fn capture_release(
        &self,
        id: IncidentId,
        message_ts: String,
        holder: String,
    ) -> Result<Captured> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?;
        let n = tx
            .execute(
                "DELETE FROM captures WHERE incident_id = $1 AND message_ts = $2 AND holder = $3",
                &[&id.0, &message_ts, &holder],
            )
            .await?;
        let left = held(&tx, id, &message_ts).await?;
        let out = if n == 1 && left == 0 {
            tx.execute(
                "DELETE FROM timeline WHERE incident_id = $1 AND source_key = $2",
                &[&id.0, &capture_source(&message_ts)],
            )
            .await?;
            Captured::Last
        } else {
            Captured::Same
        };
        tx.commit().await?;
        Ok(out)
    }

    pub async fn capture_held(&self, id: IncidentId, message_ts: String) -> Result<bool> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM captures WHERE incident_id = $1 AND message_ts = $2",
                &[&id.0, &message_ts],
            )
            .await?
            .try_get(0)?;
        Ok(n > 0)
    }

    pub async fn add_captured_entry(
        &self,
        id: IncidentId,
        message_ts: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?;
        if held(&tx, id, &message_ts).await? == 0 {
            return Ok(false);
        }
        let n = tx
            .execute(
                "INSERT INTO timeline (incident_id, at, text, author, kind, source_key) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (incident_id, source_key) DO NOTHING",
                &[
                    &id.0,
                    &ts(at),
                    &text,
                    &author.as_ref().map(|a| a.as_str()),
                    &kind_json(&kind),
                    &capture_source(&message_ts),
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn fill_captured_entry(
        &self,
        id: IncidentId,
        message_ts: String,
        at: DateTime<Utc>,
        author: Option<UserId>,
        kind: EntryKind,
        text: String,
    ) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE timeline SET at = $3, author = $4, kind = $5, text = $6 \
                 WHERE incident_id = $1 AND source_key = $2",
                &[
                    &id.0,
                    &capture_source(&message_ts),
                    &ts(at),
                    &author.as_ref().map(|a| a.as_str()),
                    &kind_json(&kind),
                    &text,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn nudge_state(
        &self,
        id: IncidentId,
    ) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT last_nudged_at, snoozed_until FROM incidents WHERE id = $1",
                &[&id.0],
            )
            .await?;
        let (n, s): (Option<String>, Option<String>) = match row {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (None, None),
        };
        Ok((
            n.map(|t| parse_ts(&t)).transpose()?,
            s.map(|t| parse_ts(&t)).transpose()?,
        ))
    }

    pub async fn record_nudge(
        &self,
        id: IncidentId,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE incidents SET last_nudged_at = $3 \
                 WHERE id = $1 AND last_nudged_at IS NOT DISTINCT FROM $2::TEXT",
                &[&id.0, &previous.map(ts), &ts(at)],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn snooze_nudges(&self, id: IncidentId, until: DateTime<Utc>) -> Result<()> {
        intent(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE incidents SET snoozed_until = $2 WHERE id = $1",
                &[&id.0, &ts(until)],
            )
            .await?;
            Ok(())
        })
        .await
    }

    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        intent(async {
            let c = self.client().await?;
            let sql = format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status = 'open' \
                 ORDER BY declared_at, id"
            );
            c.query(&sql, &[])
                .await?
                .iter()
                .map(incident_from_row)
                .collect()
        })
        .await
    }
}
