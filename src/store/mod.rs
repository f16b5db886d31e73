//! The embedded database: schema, migrations and every query incd makes.
//!
//! SQLite in WAL mode in `INCD_DATA_DIR/incd.db`. All SQL lives in this module so that another
//! backend (PostgreSQL, for several replicas) can replace it behind the same methods. Writes that
//! record intent happen before the envelope is acknowledged; step results are written as each
//! step completes, so a restart resumes exactly where the process died.
//!
//! Calls are synchronous and short (single-row reads and writes on a local file); they run under
//! a mutex on the caller's task.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::incident::{Incident, IncidentName, Status};

/// Database file name inside the data directory.
pub const DB_FILE: &str = "incd.db";

/// Ordered migrations; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: incidents, announcements, steps, timeline
    r#"
    CREATE TABLE incidents (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        submission_key  TEXT NOT NULL UNIQUE,
        title           TEXT NOT NULL,
        description     TEXT NOT NULL,
        severity        TEXT NOT NULL,
        status          TEXT NOT NULL,
        reporter        TEXT NOT NULL,
        commander       TEXT,
        origin_channel  TEXT,
        declared_at     TEXT NOT NULL,
        channel_id      TEXT UNIQUE,
        summary_ts      TEXT,
        resolve_key     TEXT UNIQUE,
        resolved_at     TEXT,
        resolved_by     TEXT,
        resolution      TEXT,
        pagerduty_key   TEXT,
        pagerduty_id    TEXT,
        pagerduty_url   TEXT,
        notion_page_id  TEXT,
        notion_url      TEXT
    );
    CREATE INDEX incidents_status ON incidents(status);
    CREATE TABLE announcements (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        channel     TEXT NOT NULL,
        ts          TEXT NOT NULL,
        PRIMARY KEY (incident_id, channel)
    );
    CREATE TABLE steps (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        step        TEXT NOT NULL,
        state       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        detail      TEXT,
        first_at    TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (incident_id, step)
    );
    CREATE TABLE timeline (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        at          TEXT NOT NULL,
        text        TEXT NOT NULL
    );
    "#,
    // 2: where to answer the reporter (the slash command's response_url)
    "ALTER TABLE incidents ADD COLUMN response_url TEXT;",
];

/// State of one recorded workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// An attempt was sent and its outcome is unknown (the process may have died mid-call).
    Started,
    Done,
    /// Failed; will be retried.
    Failed,
    /// Retried until the bound and stopped; a person can retry from Slack.
    GaveUp,
    /// No longer needed (e.g. the incident resolved before paging ever succeeded).
    Skipped,
}

impl StepState {
    fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::GaveUp => "gave_up",
            StepState::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> StepState {
        match s {
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "gave_up" => StepState::GaveUp,
            "skipped" => StepState::Skipped,
            _ => StepState::Started,
        }
    }
}

/// A recorded step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: StepState,
    pub attempts: u32,
    pub detail: Option<String>,
    pub first_at: DateTime<Utc>,
}

/// What a declare submission records before it is acknowledged.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    pub name: &'a IncidentName,
    pub submission_key: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub severity: &'a str,
    pub reporter: &'a str,
    pub commander: Option<&'a str>,
    pub origin_channel: Option<&'a str>,
    /// The `/incident` command's `response_url`, for the ephemeral reply.
    pub response_url: Option<&'a str>,
    pub declared_at: DateTime<Utc>,
}

/// Outcome of recording a declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    New(i64),
    /// The same submission was recorded before (a redelivered envelope).
    Duplicate(i64),
    /// The name is already used; draw another.
    NameTaken,
}

/// Outcome of recording a resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolveRecorded {
    Started,
    /// The same confirmation was recorded before.
    Duplicate,
    /// Someone else resolved it first.
    AlreadyResolved,
    NotFound,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    /// The background checkpointer of a file database; stops when the store is dropped.
    checkpointer: Option<Checkpointer>,
}

/// How often the background thread copies the write-ahead log into the database file.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// WAL pages after which a commit checkpoints by itself: only a safety net for when the
/// background thread falls behind (it normally keeps the log far below this).
const AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// A thread with its own connection that checkpoints the WAL every [`CHECKPOINT_INTERVAL`].
///
/// SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, fsync
/// included, which would stall an async worker (and the acks it serves) for as long as the disk
/// takes. A PASSIVE checkpoint on another connection never blocks writers.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    runs: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Checkpointer {
    fn start(path: &Path, every: std::time::Duration) -> Result<Checkpointer> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {} for checkpoints", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Checkpoints copy pages through; they need no cache to speak of (256 KiB, not 2 MiB).
        conn.pragma_update(None, "cache_size", -256)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = runs.clone();
        let thread = std::thread::Builder::new()
            .name("incd-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) => {
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
                    }
                }
            })
            .context("starting the checkpoint thread")?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            runs,
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

const INCIDENT_COLUMNS: &str =
    "id, name, title, description, severity, status, reporter, commander, \
     origin_channel, declared_at, channel_id, summary_ts, resolved_at, resolved_by, resolution, \
     pagerduty_key, pagerduty_id, pagerduty_url, notion_page_id, notion_url, response_url";

fn incident_from_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    let status: String = r.get(5)?;
    Ok(Incident {
        id: r.get(0)?,
        name: IncidentName::from_stored(r.get::<_, String>(1)?),
        title: r.get(2)?,
        description: r.get(3)?,
        severity: r.get(4)?,
        status: Status::parse(&status).unwrap_or(Status::Open),
        reporter: r.get(6)?,
        commander: r.get(7)?,
        origin_channel: r.get(8)?,
        declared_at: parse_ts(&r.get::<_, String>(9)?),
        channel_id: r.get(10)?,
        summary_ts: r.get(11)?,
        resolved_at: r.get::<_, Option<String>>(12)?.map(|s| parse_ts(&s)),
        resolved_by: r.get(13)?,
        resolution: r.get(14)?,
        pagerduty_key: r.get(15)?,
        pagerduty_id: r.get(16)?,
        pagerduty_url: r.get(17)?,
        notion_page_id: r.get(18)?,
        notion_url: r.get(19)?,
        response_url: r.get(20)?,
    })
}

/// Fields of an incident that steps fill in as they complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ChannelId,
    SummaryTs,
    PagerDutyKey,
    PagerDutyId,
    PagerDutyUrl,
    NotionPageId,
    NotionUrl,
}

impl Field {
    fn column(self) -> &'static str {
        match self {
            Field::ChannelId => "channel_id",
            Field::SummaryTs => "summary_ts",
            Field::PagerDutyKey => "pagerduty_key",
            Field::PagerDutyId => "pagerduty_id",
            Field::PagerDutyUrl => "pagerduty_url",
            Field::NotionPageId => "notion_page_id",
            Field::NotionUrl => "notion_url",
        }
    }
}

impl Store {
    /// Open (creating the directory and file if needed) and migrate.
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with_checkpoints(data_dir, CHECKPOINT_INTERVAL)
    }

    /// [`Store::open`] with another checkpoint interval (tests).
    pub fn open_with_checkpoints(data_dir: &Path, every: std::time::Duration) -> Result<Store> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "creating data directory {} (set INCD_DATA_DIR to a writable place)",
                data_dir.display()
            )
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)
            .with_context(|| format!("opening database {}", path.display()))?;
        let mut store = Self::init(conn)?;
        store
            .conn()
            .pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        store.checkpointer = Some(Checkpointer::start(&path, every)?);
        Ok(store)
    }

    /// Background checkpoints completed so far (file databases).
    pub fn checkpoints_run(&self) -> u64 {
        self.checkpointer
            .as_ref()
            .map_or(0, |c| c.runs.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement is prepared once and reused: parsing SQL cost more than running it.
        conn.set_prepared_statement_cache_capacity(64);
        // WAL + NORMAL: every commit survives a process crash (kill -9); only an OS crash can
        // lose the last transactions. Commits stay well under a millisecond.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "database schema version {version} is newer than this incd understands ({}); upgrade incd",
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("applying migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            checkpointer: None,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the database accepts writes (for `/healthz`).
    pub fn is_writable(&self) -> bool {
        self.conn()
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .is_ok()
    }

    /// Whether any incident ever used `name`.
    pub fn name_used(&self, name: &IncidentName) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM incidents WHERE name = ?1")?
            .query_row([name.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Record a declaration (the intent) keyed by its submission.
    pub fn record_declaration(&self, n: &NewIncident<'_>) -> Result<Recorded> {
        let mut guard = self.conn();
        // One transaction, one commit: the incident and its first timeline entry.
        let conn = guard.transaction()?;
        if let Some(id) = conn
            .prepare_cached("SELECT id FROM incidents WHERE submission_key = ?1")?
            .query_row([n.submission_key], |r| r.get::<_, i64>(0))
            .optional()?
        {
            return Ok(Recorded::Duplicate(id));
        }
        let res = conn.prepare_cached(
            "INSERT INTO incidents (name, submission_key, title, description, severity, status, \
             reporter, commander, origin_channel, declared_at, response_url) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'declaring', ?6, ?7, ?8, ?9, ?10)")?
        .execute(
            params![
                n.name.as_str(),
                n.submission_key,
                n.title,
                n.description,
                n.severity,
                n.reporter,
                n.commander,
                n.origin_channel,
                ts(n.declared_at),
                n.response_url
            ],
        );
        match res {
            Ok(_) => {
                let id = conn.last_insert_rowid();
                conn.prepare_cached(
                    "INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    id,
                    ts(n.declared_at),
                    format!("Incident declared by <@{}>", n.reporter)
                ])?;
                conn.commit()?;
                Ok(Recorded::New(id))
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(Recorded::NameTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Replace the name of an incident whose channel does not exist yet (Slack said
    /// `name_taken`). Returns false when the new name is already used.
    pub fn rename_incident(&self, id: i64, name: &IncidentName) -> Result<bool> {
        match self
            .conn()
            .prepare_cached("UPDATE incidents SET name = ?2 WHERE id = ?1 AND channel_id IS NULL")?
            .execute(params![id, name.as_str()])
        {
            Ok(n) => Ok(n == 1),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn incident(&self, id: i64) -> Result<Option<Incident>> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([id], incident_from_row)
            .optional()?)
    }

    pub fn incident_by_channel(&self, channel_id: &str) -> Result<Option<Incident>> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE channel_id = ?1");
        Ok(self
            .conn()
            .prepare_cached(&sql)?
            .query_row([channel_id], incident_from_row)
            .optional()?)
    }

    /// Incidents with unfinished work: declaring, resolving, or with steps not yet done.
    pub fn unfinished(&self) -> Result<Vec<Incident>> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status IN ('declaring', 'resolving') \
             OR id IN (SELECT incident_id FROM steps WHERE state IN ('started', 'failed')) ORDER BY id"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], incident_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Set one step-result field.
    pub fn set_field(&self, id: i64, field: Field, value: &str) -> Result<()> {
        let sql = format!("UPDATE incidents SET {} = ?2 WHERE id = ?1", field.column());
        self.conn()
            .prepare_cached(&sql)?
            .execute(params![id, value])?;
        Ok(())
    }

    pub fn set_status(&self, id: i64, status: Status) -> Result<()> {
        self.conn()
            .prepare_cached("UPDATE incidents SET status = ?2 WHERE id = ?1")?
            .execute(params![id, status.as_str()])?;
        Ok(())
    }

    /// Mark declared (declaring -> open) without overriding a resolution already under way.
    pub fn mark_declared(&self, id: i64) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE incidents SET status = 'open' WHERE id = ?1 AND status = 'declaring'",
            )?
            .execute([id])?;
        Ok(())
    }

    /// Record a confirmed resolution (the intent) keyed by its submission.
    pub fn record_resolution(
        &self,
        id: i64,
        resolve_key: &str,
        resolved_by: &str,
        summary: &str,
        at: DateTime<Utc>,
    ) -> Result<ResolveRecorded> {
        let mut guard = self.conn();
        // One transaction: the resolution and its timeline entry commit together.
        let conn = guard.transaction()?;
        let current: Option<(String, Option<String>)> = conn
            .prepare_cached("SELECT status, resolve_key FROM incidents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((status, key)) = current else {
            return Ok(ResolveRecorded::NotFound);
        };
        if key.as_deref() == Some(resolve_key) {
            return Ok(ResolveRecorded::Duplicate);
        }
        if !Status::parse(&status).is_some_and(Status::can_resolve) {
            return Ok(ResolveRecorded::AlreadyResolved);
        }
        let changed = conn
            .prepare_cached(
                "UPDATE incidents SET status = 'resolving', resolve_key = ?2, resolved_by = ?3, \
             resolution = ?4, resolved_at = ?5 WHERE id = ?1 AND status IN ('declaring', 'open')",
            )?
            .execute(params![id, resolve_key, resolved_by, summary, ts(at)])?;
        if changed == 0 {
            return Ok(ResolveRecorded::AlreadyResolved);
        }
        conn.prepare_cached("INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)")?
            .execute(params![id, ts(at), format!("Resolved by <@{resolved_by}>")])?;
        conn.commit()?;
        Ok(ResolveRecorded::Started)
    }

    pub fn step(&self, id: i64, step: &str) -> Result<Option<Step>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT state, attempts, detail, first_at FROM steps WHERE incident_id = ?1 AND step = ?2")?
            .query_row(
                params![id, step],
                |r| {
                    Ok(Step {
                        state: StepState::parse(&r.get::<_, String>(0)?),
                        attempts: r.get(1)?,
                        detail: r.get(2)?,
                        first_at: parse_ts(&r.get::<_, String>(3)?),
                    })
                },
            )
            .optional()?)
    }

    /// Record a step's state. `Started` also counts an attempt.
    pub fn set_step(
        &self,
        id: i64,
        step: &str,
        state: StepState,
        detail: Option<&str>,
    ) -> Result<()> {
        let now = ts(Utc::now());
        let inc = i64::from(state == StepState::Started);
        self.conn().prepare_cached(
            "INSERT INTO steps (incident_id, step, state, attempts, detail, first_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             ON CONFLICT (incident_id, step) DO UPDATE SET state = ?3, attempts = attempts + ?4, \
             detail = COALESCE(?5, detail), updated_at = ?6")?
        .execute(
            params![id, step, state.as_str(), inc, detail, now],
        )?;
        Ok(())
    }

    /// Forget a step's history so it starts over (a person pressed Retry).
    pub fn reset_step(&self, id: i64, step: &str) -> Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM steps WHERE incident_id = ?1 AND step = ?2")?
            .execute(params![id, step])?;
        Ok(())
    }

    /// Steps of an incident that are not finished (started or failed).
    pub fn pending_steps(&self, id: i64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT step FROM steps WHERE incident_id = ?1 AND state IN ('started', 'failed') ORDER BY step",
        )?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn add_announcement(&self, id: i64, channel: &str, ts: &str) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO announcements (incident_id, channel, ts) VALUES (?1, ?2, ?3) \
             ON CONFLICT (incident_id, channel) DO UPDATE SET ts = ?3",
            )?
            .execute(params![id, channel, ts])?;
        Ok(())
    }

    /// `(channel, ts)` of every announcement of an incident.
    pub fn announcements(&self, id: i64) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT channel, ts FROM announcements WHERE incident_id = ?1 ORDER BY channel",
        )?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn add_timeline(&self, id: i64, at: DateTime<Utc>, text: &str) -> Result<()> {
        self.conn()
            .prepare_cached("INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)")?
            .execute(params![id, ts(at), text])?;
        Ok(())
    }

    pub fn timeline(&self, id: i64) -> Result<Vec<(DateTime<Utc>, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at, text FROM timeline WHERE incident_id = ?1 ORDER BY at, id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok((parse_ts(&r.get::<_, String>(0)?), r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new<'a>(name: &'a IncidentName, key: &'a str) -> NewIncident<'a> {
        NewIncident {
            name,
            submission_key: key,
            title: "DB down",
            description: "",
            severity: "sev1",
            reporter: "U1",
            commander: None,
            origin_channel: Some("C1"),
            response_url: None,
            declared_at: Utc::now(),
        }
    }

    #[test]
    fn a_redelivered_submission_is_recorded_once() {
        let s = Store::in_memory().unwrap();
        let n = IncidentName::from_stored("20261121-calm-otter");
        let Recorded::New(id) = s.record_declaration(&new(&n, "V1")).unwrap() else {
            panic!()
        };
        assert_eq!(
            s.record_declaration(&new(&n, "V1")).unwrap(),
            Recorded::Duplicate(id)
        );
        let other = IncidentName::from_stored("20261121-calm-otter");
        assert_eq!(
            s.record_declaration(&new(&other, "V2")).unwrap(),
            Recorded::NameTaken
        );
        assert!(s.name_used(&n).unwrap());
    }

    #[test]
    fn resolution_is_recorded_once_and_only_from_open() {
        let s = Store::in_memory().unwrap();
        let n = IncidentName::from_stored("20261121-calm-otter");
        let Recorded::New(id) = s.record_declaration(&new(&n, "V1")).unwrap() else {
            panic!()
        };
        s.mark_declared(id).unwrap();
        let now = Utc::now();
        assert_eq!(
            s.record_resolution(id, "VR1", "U2", "fixed", now).unwrap(),
            ResolveRecorded::Started
        );
        assert_eq!(
            s.record_resolution(id, "VR1", "U2", "fixed", now).unwrap(),
            ResolveRecorded::Duplicate
        );
        assert_eq!(
            s.record_resolution(id, "VR2", "U3", "again", now).unwrap(),
            ResolveRecorded::AlreadyResolved
        );
        // mark_declared never undoes a resolution in progress.
        s.mark_declared(id).unwrap();
        assert_eq!(s.incident(id).unwrap().unwrap().status, Status::Resolving);
        assert_eq!(s.timeline(id).unwrap().len(), 2);
    }

    #[test]
    fn steps_count_attempts_and_unfinished_work_is_found() {
        let s = Store::in_memory().unwrap();
        let n = IncidentName::from_stored("20261121-calm-otter");
        let Recorded::New(id) = s.record_declaration(&new(&n, "V1")).unwrap() else {
            panic!()
        };
        s.set_step(id, "page", StepState::Started, None).unwrap();
        s.set_step(id, "page", StepState::Failed, Some("503"))
            .unwrap();
        s.set_step(id, "page", StepState::Started, None).unwrap();
        let st = s.step(id, "page").unwrap().unwrap();
        assert_eq!((st.state, st.attempts), (StepState::Started, 2));
        assert_eq!(st.detail.as_deref(), Some("503"));
        s.mark_declared(id).unwrap();
        assert_eq!(s.unfinished().unwrap().len(), 1);
        s.set_step(id, "page", StepState::Done, None).unwrap();
        assert!(s.unfinished().unwrap().is_empty());
    }

    #[test]
    fn the_database_survives_reopening_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let n = IncidentName::from_stored("20261121-calm-otter");
        {
            let s = Store::open(dir.path()).unwrap();
            s.record_declaration(&new(&n, "V1")).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.name_used(&n).unwrap());
        assert!(s.is_writable());
    }

    #[test]
    fn the_log_is_checkpointed_into_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let n = IncidentName::from_stored("20261121-brisk-heron");
        let s = Store::open_with_checkpoints(dir.path(), Duration::from_millis(20)).unwrap();
        let autocheckpoint: i64 = s
            .conn()
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, AUTOCHECKPOINT_PAGES);
        s.record_declaration(&new(&n, "V1")).unwrap();
        let before = s.checkpoints_run();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.checkpoints_run() < before + 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no background checkpoint ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // The database file alone (without its write-ahead log) now holds the incident.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
        let alone = Store::open(copy.path()).unwrap();
        assert!(alone.name_used(&n).unwrap());
        drop(s); // stops and joins the checkpoint thread
    }
}
