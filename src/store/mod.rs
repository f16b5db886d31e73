//! The embedded database: schema, migrations and every query incd makes.
//!
//! SQLite in WAL mode in `INCD_DATA_DIR/incd.db`. All SQL lives in this module so that another
//! backend (PostgreSQL, for several replicas) can replace it behind the same methods. Writes that
//! record intent happen before the envelope is acknowledged; step results are written as each
//! step completes, so a restart resumes exactly where the process died.
//!
//! The API is async. SQLite runs behind it on the blocking pool (`spawn_blocking`), never on an
//! async worker thread, through a small pool of connections: WAL lets readers run beside the one
//! writer, and writers hold the lock only for their short transaction (`busy_timeout` covers the
//! wait). Intent records (done inside a Slack ack) have their own connection, the *intent lane*,
//! so they never queue behind the step records of running workflows.
//!
//! Coordination that a second process could take over lives here too: leases ([`leases`]) and
//! durable timers ([`timers`]). A stored value this incd cannot read (an unknown status or step
//! state, a malformed time) is an error, never a silent default.
//!
//! **Two backends.** [`Store`] is either this embedded SQLite database or PostgreSQL
//! ([`postgres`], `INCD_DATABASE_URL`, for several replicas). Every public method begins with
//! `if let Some(pg) = self.pg() { return pg.<same method>(…).await; }` and goes on with the
//! SQLite code; the PostgreSQL code of `store/<file>.rs` is in `store/postgres/<file>.rs`. A
//! method written only for SQLite (through [`Store::with`]) fails on PostgreSQL with an error
//! naming the gap, never silently.

pub(crate) mod close;
mod deliveries;
mod fence;
mod follow_ups;
mod leases;
mod lifecycle;
pub mod postgres;
mod timers;

pub use close::{CloseRecorded, Closing, NewClose};
pub use deliveries::DELIVERY_MEMORY;
pub use fence::{fenced, Fence, LeaseLost};
pub use follow_ups::{AwaitingReview, FollowUpAdded, FollowUpClosed, NewFollowUp, OwnedFollowUp};
pub use leases::Lease;
pub use lifecycle::{
    Applied, Captured, ChangeRecord, ChangeRecorded, ChangeRequest, NewChange, StoredEntry,
};
pub use timers::{NewTimer, Timer};

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::incident::lifecycle::{Change, Transition};
use crate::incident::{
    ChannelId, Incident, IncidentId, IncidentName, MessageTs, Severity, Status, UserId,
};

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
    // 3: leases (work claimed by one process at a time) and durable timers. Times are unix
    // milliseconds: compared in SQL, and the same in PostgreSQL (bigint).
    r#"
    CREATE TABLE leases (
        key         TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    CREATE TABLE timers (
        id          INTEGER PRIMARY KEY,
        key         TEXT NOT NULL UNIQUE,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        kind        TEXT NOT NULL,
        due_at      INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        owner       TEXT,
        lease_until INTEGER,
        fired_at    INTEGER
    );
    CREATE INDEX timers_due ON timers(state, due_at);
    "#,
    // 4: after the incident (store/follow_ups.rs, store/close.rs): follow-ups F-<number> per
    // incident; the close (its submission, time, person, review date and notes)
    r#"
    CREATE TABLE follow_ups (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        number      INTEGER NOT NULL,
        title       TEXT NOT NULL,
        owner       TEXT,
        due         TEXT,
        state       TEXT NOT NULL DEFAULT 'open',
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        closed_by   TEXT,
        closed_at   TEXT,
        PRIMARY KEY (incident_id, number)
    );
    CREATE INDEX follow_ups_owner ON follow_ups(owner, state);
    ALTER TABLE incidents ADD COLUMN close_key TEXT;
    ALTER TABLE incidents ADD COLUMN closed_at TEXT;
    ALTER TABLE incidents ADD COLUMN closed_by TEXT;
    ALTER TABLE incidents ADD COLUMN review_date TEXT;
    ALTER TABLE incidents ADD COLUMN review_notes TEXT;
    ALTER TABLE incidents ADD COLUMN review_reminded_for INTEGER;
    ALTER TABLE incidents ADD COLUMN impact TEXT;
    "#,
    // 5: the incident lifecycle (see lifecycle.rs): the update status, role holders and last
    // update of an incident; who and what each timeline entry is, and what it came from (one
    // entry per source); the changes people make, propagated by their own workflow.
    r#"
    ALTER TABLE incidents ADD COLUMN phase TEXT;
    ALTER TABLE incidents ADD COLUMN roles TEXT;
    ALTER TABLE incidents ADD COLUMN last_update_at TEXT;
    ALTER TABLE incidents ADD COLUMN last_nudged_at TEXT;
    ALTER TABLE incidents ADD COLUMN snoozed_until TEXT;
    ALTER TABLE timeline ADD COLUMN author TEXT;
    ALTER TABLE timeline ADD COLUMN kind TEXT;
    ALTER TABLE timeline ADD COLUMN source_key TEXT;
    CREATE UNIQUE INDEX timeline_source ON timeline(incident_id, source_key);
    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        key         TEXT NOT NULL UNIQUE,
        change      TEXT NOT NULL,
        at          TEXT NOT NULL
    );
    CREATE TABLE captures (
        incident_id INTEGER NOT NULL REFERENCES incidents(id),
        message_ts  TEXT NOT NULL,
        holder      TEXT NOT NULL,
        PRIMARY KEY (incident_id, message_ts, holder)
    );
    "#,
    // 6: inbound deliveries already taken (events, commands, button presses), so a
    // redelivery is recognised by whichever process (or replica) gets it. Times: unix ms.
    r#"
    CREATE TABLE inbound_seen (
        key     TEXT PRIMARY KEY,
        seen_at INTEGER NOT NULL
    );
    CREATE INDEX inbound_seen_at ON inbound_seen(seen_at);
    "#,
];

/// State of one recorded workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// An attempt was sent and its outcome is unknown (the process may have died mid-call).
    Started,
    Done,
    /// Failed; will be retried.
    Failed,
    /// Ended as failed (a permanent error, or the give-up time passed); a person can retry.
    GaveUp,
    /// No longer needed (e.g. the incident resolved before paging ever succeeded).
    Skipped,
}

impl StepState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::GaveUp => "gave_up",
            StepState::Skipped => "skipped",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<StepState> {
        Ok(match s {
            "started" => StepState::Started,
            "done" => StepState::Done,
            "failed" => StepState::Failed,
            "gave_up" => StepState::GaveUp,
            "skipped" => StepState::Skipped,
            other => anyhow::bail!("unknown step state {other:?} in the store"),
        })
    }

    /// Whether the step still has work to do (resume picks it up).
    pub fn is_unfinished(self) -> bool {
        matches!(self, StepState::Started | StepState::Failed)
    }
}

/// A recorded step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: StepState,
    /// Attempts started so far (0: the step never called anything).
    pub attempts: u32,
    pub detail: Option<String>,
    pub first_at: DateTime<Utc>,
}

/// What a declare submission records before it is acknowledged.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub name: IncidentName,
    pub submission_key: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub reporter: UserId,
    pub commander: Option<UserId>,
    pub origin_channel: Option<ChannelId>,
    /// The `/incident` command's `response_url`, for the ephemeral reply.
    pub response_url: Option<String>,
    pub declared_at: DateTime<Utc>,
}

/// Outcome of recording a declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    New(IncidentId),
    /// The same submission was recorded before (a redelivered envelope).
    Duplicate(IncidentId),
    /// The name is already used; draw another.
    NameTaken,
}

/// What a confirmed resolution records before it is acknowledged.
#[derive(Debug, Clone)]
pub struct NewResolution {
    pub incident: IncidentId,
    pub resolve_key: String,
    pub resolved_by: UserId,
    pub summary: String,
    pub at: DateTime<Utc>,
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

/// Which connection a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Intent records inside an ack: a connection of their own.
    Intent,
    /// Everything else: any free connection of the pool.
    General,
}

/// Connections of the general pool (file databases). Readers run beside each other in WAL; two
/// or three cover the workflows' step records without holding an async thread each. They are
/// opened on first use: an idle incd (one timer poll a second) only ever opens the first, and
/// each open connection costs its schema, page cache and statement cache in resident memory.
pub const POOL_CONNECTIONS: usize = 3;
/// How long a writer waits for SQLite's write lock before the call fails (about; see
/// [`wait_for_lock`]).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a writer waiting for the write lock looks again.
const BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(250);

/// The intent lane's busy handler: called with how many times it was called for this wait;
/// sleeps and says whether to try again. SQLite's own `busy_timeout` sleeps 1, 2, 5, 10, 15, 20 … ms between
/// attempts, so an intent record that finds a step record's commit (well under a millisecond)
/// holding the lock would wait 3-8 ms longer than it needs, inside a Slack ack. Polling every
/// [`BUSY_POLL`] takes the lock within a quarter millisecond of its release.
fn wait_for_lock(attempts: i32) -> bool {
    let waited = BUSY_POLL * u32::try_from(attempts).unwrap_or(u32::MAX);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(BUSY_POLL);
    true
}

/// A connection slot; `None` until first used (pool connections open lazily).
type Conn = Arc<Mutex<Option<Connection>>>;

/// The store. Cheap to clone (a handle to one shared pool).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Inner>),
    Postgres(postgres::Pg),
}

struct Inner {
    /// The database file a lazily opened pool connection opens (`None` in memory).
    path: Option<std::path::PathBuf>,
    intent: Conn,
    pool: Vec<Conn>,
    /// One permit per pool connection: a caller waits here (asynchronously), never on a mutex
    /// inside the blocking pool.
    permits: tokio::sync::Semaphore,
    /// The background checkpointer of a file database; stops when the store is dropped.
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(inner) => f
                .debug_struct("Store")
                .field("connections", &(inner.pool.len() + 1))
                .finish(),
            Backend::Postgres(pg) => f.debug_struct("Store").field("postgres", pg).finish(),
        }
    }
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
        // Checkpoints copy WAL frames into the file through a buffer of their own; they need no
        // page cache to speak of. A small limit also caps the block SQLite allocates for a
        // connection's cache at its first read (20 pages, ~85 KiB, otherwise).
        conn.pragma_update(None, "cache_size", 4)?;
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

/// A stored time back; a malformed one is an error (never silently "now").
fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("unreadable time {s:?} in the store"))
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .with_context(|| format!("unreadable time {ms} in the store"))
}

/// A row conversion that may find an unreadable value: the row error or the value's.
fn conv<T>(r: rusqlite::Result<Result<T>>) -> Result<T> {
    r?
}

const INCIDENT_COLUMNS: &str =
    "id, name, title, description, severity, status, reporter, commander, \
     origin_channel, declared_at, channel_id, summary_ts, resolved_at, resolved_by, resolution, \
     pagerduty_key, pagerduty_id, pagerduty_url, notion_page_id, notion_url, response_url, \
     phase, roles, last_update_at";

fn incident_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Incident>> {
    let status: String = r.get(5)?;
    let Some(status) = Status::parse(&status) else {
        return Ok(Err(anyhow::anyhow!(
            "unknown incident status {status:?} in the store"
        )));
    };
    let declared_at = match parse_ts(&r.get::<_, String>(9)?) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let resolved_at = match r.get::<_, Option<String>>(12)?.map(|s| parse_ts(&s)) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return Ok(Err(e)),
    };
    let lifecycle = match lifecycle::columns(r, 21) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    let reporter = UserId(r.get(6)?);
    let commander = r.get::<_, Option<String>>(7)?.map(UserId);
    let roles = lifecycle.roles.unwrap_or_else(|| {
        crate::incident::roles::Assignments::with_commander(
            commander.clone().unwrap_or_else(|| reporter.clone()),
        )
    });
    Ok(Ok(Incident {
        phase: lifecycle.phase,
        roles,
        last_update_at: lifecycle.last_update_at,
        id: IncidentId(r.get(0)?),
        name: IncidentName::from_stored(r.get::<_, String>(1)?),
        title: r.get(2)?,
        description: r.get(3)?,
        severity: Severity::new(r.get::<_, String>(4)?),
        status,
        reporter,
        commander,
        origin_channel: r.get::<_, Option<String>>(8)?.map(ChannelId),
        declared_at,
        channel_id: r.get::<_, Option<String>>(10)?.map(ChannelId),
        summary_ts: r.get::<_, Option<String>>(11)?.map(MessageTs),
        resolved_at,
        resolved_by: r.get::<_, Option<String>>(13)?.map(UserId),
        resolution: r.get(14)?,
        pagerduty_key: r.get(15)?,
        pagerduty_id: r.get(16)?,
        pagerduty_url: r.get(17)?,
        notion_page_id: r.get(18)?,
        notion_url: r.get(19)?,
        response_url: r.get(20)?,
    }))
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
    pub(crate) fn column(self) -> &'static str {
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

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement is prepared once per connection and reused: parsing SQL cost more than
    // running it.
    conn.set_prepared_statement_cache_capacity(64);
    // WAL + NORMAL: every commit survives a process crash (kill -9); only an OS crash can
    // lose the last transactions. Commits stay well under a millisecond.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
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
    Ok(())
}

/// A write transaction that takes SQLite's write lock at `BEGIN` (waiting up to the busy
/// timeout). A deferred one that reads first and writes second fails at once with "database is
/// locked" when another connection committed in between (WAL cannot upgrade a stale snapshot).
fn write_tx(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// A file connection of the store: configured, checkpointing left to the background thread.
fn open_file(path: &Path) -> Result<Connection> {
    let c =
        Connection::open(path).with_context(|| format!("opening database {}", path.display()))?;
    configure(&c)?;
    c.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
    Ok(c)
}

/// The connection of a slot, opening it on first use.
fn ready<'a>(
    slot: &'a mut Option<Connection>,
    path: &Option<std::path::PathBuf>,
) -> Result<&'a mut Connection> {
    if slot.is_none() {
        let path = path
            .as_deref()
            .context("an in-memory store has no connection to open")?;
        *slot = Some(open_file(path)?);
    }
    slot.as_mut().context("store connection missing")
}

fn lock(c: &Conn) -> std::sync::MutexGuard<'_, Option<Connection>> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back),
    // so a poisoned lock is safe to reuse.
    c.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut first = open_file(&path)?;
        migrate(&mut first)?;
        // The intent lane looks for the write lock every 250 µs; the pool keeps SQLite's
        // backoff, so that when both wait, the intent (inside an ack) gets the lock first.
        first.busy_handler(Some(wait_for_lock))?;
        let intent = Arc::new(Mutex::new(Some(first)));
        let pool: Vec<Conn> = (0..POOL_CONNECTIONS)
            .map(|_| Arc::new(Mutex::new(None)))
            .collect();
        Ok(Store {
            backend: Backend::Sqlite(Arc::new(Inner {
                intent,
                permits: tokio::sync::Semaphore::new(pool.len()),
                pool,
                checkpointer: Some(Checkpointer::start(&path, every)?),
                path: Some(path),
            })),
        })
    }

    /// Background checkpoints completed so far (file databases).
    pub fn checkpoints_run(&self) -> u64 {
        match &self.backend {
            Backend::Sqlite(inner) => inner
                .checkpointer
                .as_ref()
                .map_or(0, |c| c.runs.load(std::sync::atomic::Ordering::Relaxed)),
            Backend::Postgres(_) => 0,
        }
    }

    /// An in-memory store, for tests: one connection serves both lanes (an in-memory database
    /// belongs to its connection).
    pub fn in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        migrate(&mut conn)?;
        let conn = Arc::new(Mutex::new(Some(conn)));
        Ok(Store {
            backend: Backend::Sqlite(Arc::new(Inner {
                path: None,
                intent: conn.clone(),
                pool: vec![conn],
                permits: tokio::sync::Semaphore::new(1),
                checkpointer: None,
            })),
        })
    }

    /// The shared PostgreSQL database at `url` (`postgres://…`), migrated.
    pub async fn connect_postgres(url: &str) -> Result<Store> {
        Ok(Store {
            backend: Backend::Postgres(postgres::Pg::connect(url).await?),
        })
    }

    /// The store the settings ask for: PostgreSQL when `INCD_DATABASE_URL` is set, else the
    /// SQLite file in the data directory.
    pub async fn from_settings(settings: &crate::config::Settings) -> Result<Store> {
        match &settings.database_url {
            Some(url) => Self::connect_postgres(url.expose())
                .await
                .context("connecting to PostgreSQL (INCD_DATABASE_URL)"),
            None => Self::open(&settings.data_dir),
        }
    }

    /// The PostgreSQL backend, when the store is on it.
    fn pg(&self) -> Option<&postgres::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// Which backend this is (`sqlite` or `postgres`), for logs and health.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Whether an error from this store means the database could not be reached (PostgreSQL
    /// down or cut off), so the caller can tell the person to try again in a minute.
    pub fn is_unreachable(&self, e: &anyhow::Error) -> bool {
        self.pg().is_some() && postgres::is_unreachable(e)
    }

    fn sqlite(&self) -> Result<&Arc<Inner>> {
        match &self.backend {
            Backend::Sqlite(inner) => Ok(inner),
            Backend::Postgres(_) => Err(anyhow::anyhow!(
                "this store operation has no PostgreSQL implementation yet (SQLite only); \
                 see docs/design.md, Store"
            )),
        }
    }

    /// Run `f` on a SQLite connection of `lane`, on the blocking pool. On PostgreSQL this is an
    /// error: a method that reaches it has no PostgreSQL code.
    async fn with<T, F>(&self, lane: Lane, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.sqlite()?.clone();
        match lane {
            Lane::Intent => tokio::task::spawn_blocking(move || {
                f(ready(&mut lock(&inner.intent), &inner.path)?)
            })
            .await
            .context("store task failed")?,
            Lane::General => {
                let _permit = inner.permits.acquire().await.context("store pool closed")?;
                let inner2 = inner.clone();
                tokio::task::spawn_blocking(move || {
                    // Holding a permit guarantees a free slot, except in memory where the
                    // intent lane shares the only one: then wait for it. A free connection
                    // that is already open comes first; a slot is opened only when every open
                    // one is busy.
                    for open_only in [true, false] {
                        for c in &inner2.pool {
                            if let Ok(mut g) = c.try_lock() {
                                if open_only && g.is_none() {
                                    continue;
                                }
                                return f(ready(&mut g, &inner2.path)?);
                            }
                        }
                    }
                    f(ready(&mut lock(&inner2.pool[0]), &inner2.path)?)
                })
                .await
                .context("store task failed")?
            }
        }
    }

    /// Whether the database accepts writes (for `/healthz`).
    pub async fn is_writable(&self) -> bool {
        if let Some(pg) = self.pg() {
            return pg.is_writable().await;
        }
        self.with(Lane::General, |c| {
            c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
            Ok(())
        })
        .await
        .is_ok()
    }

    /// Names already used by incidents declared on `day` (`YYYYMMDD`), to draw an unused one.
    pub async fn names_used_on(&self, day: &str) -> Result<HashSet<String>> {
        if let Some(pg) = self.pg() {
            return pg.names_used_on(day).await;
        }
        // A range on the unique index of `name` ('.' sorts right after '-'), not a LIKE scan.
        let (from, to) = (format!("{day}-"), format!("{day}."));
        self.with(Lane::Intent, move |c| {
            let mut stmt =
                c.prepare_cached("SELECT name FROM incidents WHERE name >= ?1 AND name < ?2")?;
            let rows = stmt.query_map([from, to], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<HashSet<_>>>()?)
        })
        .await
    }

    /// Whether any incident ever used `name`.
    pub async fn name_used(&self, name: &IncidentName) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.name_used(name).await;
        }
        let name = name.as_str().to_string();
        self.with(Lane::General, move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM incidents WHERE name = ?1")?
                .query_row([name], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    /// Record a declaration (the intent) keyed by its submission. Runs on the intent lane.
    pub async fn record_declaration(&self, n: NewIncident) -> Result<Recorded> {
        if let Some(pg) = self.pg() {
            return pg.record_declaration(n).await;
        }
        self.with(Lane::Intent, move |c| {
            // One transaction, one commit: the incident and its first timeline entry.
            let tx = write_tx(c)?;
            if let Some(id) = tx
                .prepare_cached("SELECT id FROM incidents WHERE submission_key = ?1")?
                .query_row([&n.submission_key], |r| r.get::<_, i64>(0))
                .optional()?
            {
                return Ok(Recorded::Duplicate(IncidentId(id)));
            }
            let res = tx
                .prepare_cached(
                    "INSERT INTO incidents (name, submission_key, title, description, severity, \
                     status, reporter, commander, origin_channel, declared_at, response_url) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 'declaring', ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    n.name.as_str(),
                    n.submission_key,
                    n.title,
                    n.description,
                    n.severity.as_str(),
                    n.reporter.as_str(),
                    n.commander.as_ref().map(UserId::as_str),
                    n.origin_channel.as_ref().map(ChannelId::as_str),
                    ts(n.declared_at),
                    n.response_url
                ]);
            match res {
                Ok(_) => {
                    let id = tx.last_insert_rowid();
                    tx.prepare_cached(
                        "INSERT INTO timeline (incident_id, at, text, author, kind) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        id,
                        ts(n.declared_at),
                        format!("Incident declared by <@{}>", n.reporter),
                        n.reporter.as_str(),
                        lifecycle::kind_json(&crate::incident::timeline::EntryKind::Declared)
                    ])?;
                    tx.commit()?;
                    Ok(Recorded::New(IncidentId(id)))
                }
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Ok(Recorded::NameTaken)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Replace the name of an incident whose channel does not exist yet (Slack said
    /// `name_taken`). Returns false when the new name is already used.
    pub async fn rename_incident(&self, id: IncidentId, name: &IncidentName) -> Result<bool> {
        if let Some(pg) = self.pg() {
            return pg.rename_incident(id, name).await;
        }
        let name = name.as_str().to_string();
        self.with(Lane::General, move |c| {
            match c
                .prepare_cached(
                    "UPDATE incidents SET name = ?2 WHERE id = ?1 AND channel_id IS NULL",
                )?
                .execute(params![id.0, name])
            {
                Ok(n) => Ok(n == 1),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    pub async fn incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        if let Some(pg) = self.pg() {
            return pg.incident(id).await;
        }
        self.with(Lane::General, move |c| {
            let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1");
            c.prepare_cached(&sql)?
                .query_row([id.0], incident_from_row)
                .optional()?
                .transpose()
        })
        .await
    }

    /// The incident of a channel. Runs on the intent lane: `/resolve-incident` asks inside its
    /// ack.
    pub async fn incident_by_channel(&self, channel: &ChannelId) -> Result<Option<Incident>> {
        if let Some(pg) = self.pg() {
            return pg.incident_by_channel(channel).await;
        }
        let channel = channel.as_str().to_string();
        self.with(Lane::Intent, move |c| {
            let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE channel_id = ?1");
            c.prepare_cached(&sql)?
                .query_row([channel], incident_from_row)
                .optional()?
                .transpose()
        })
        .await
    }

    /// The status of an incident (intent lane: retry buttons check it inside their ack).
    pub async fn status(&self, id: IncidentId) -> Result<Option<Status>> {
        if let Some(pg) = self.pg() {
            return pg.status(id).await;
        }
        self.with(Lane::Intent, move |c| {
            let s: Option<String> = c
                .prepare_cached("SELECT status FROM incidents WHERE id = ?1")?
                .query_row([id.0], |r| r.get(0))
                .optional()?;
            s.map(|s| Status::parse(&s).with_context(|| format!("unknown incident status {s:?}")))
                .transpose()
        })
        .await
    }

    /// Incidents with unfinished work: declaring, resolving, or with steps not yet done.
    pub async fn unfinished(&self) -> Result<Vec<Incident>> {
        if let Some(pg) = self.pg() {
            return pg.unfinished().await;
        }
        self.with(Lane::General, |c| {
            let sql = format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status IN ('declaring', 'resolving') \
                 OR id IN (SELECT incident_id FROM steps WHERE state IN ('started', 'failed')) ORDER BY id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([], incident_from_row)?;
            rows.map(conv).collect()
        })
        .await
    }

    /// Set one step-result field.
    pub async fn set_field(&self, id: IncidentId, field: Field, value: &str) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.set_field(id, field, value).await;
        }
        let value = value.to_string();
        self.with(Lane::General, move |c| {
            let sql = format!("UPDATE incidents SET {} = ?2 WHERE id = ?1", field.column());
            c.prepare_cached(&sql)?.execute(params![id.0, value])?;
            Ok(())
        })
        .await
    }

    /// Apply a lifecycle transition atomically: the change, or `None` when the incident was not
    /// in a status the transition starts from (see [`Transition::from`]).
    pub async fn transition(&self, id: IncidentId, t: Transition) -> Result<Option<Change>> {
        if let Some(pg) = self.pg() {
            return pg.transition(id, t).await;
        }
        self.with(Lane::General, move |c| {
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
            let Some(change) = t.apply(current) else {
                return Ok(None);
            };
            tx.prepare_cached("UPDATE incidents SET status = ?2 WHERE id = ?1 AND status = ?3")?
                .execute(params![id.0, change.to.as_str(), change.from.as_str()])?;
            tx.commit()?;
            Ok(Some(change))
        })
        .await
    }

    /// Record a confirmed resolution (the intent) keyed by its submission. Intent lane.
    pub async fn record_resolution(&self, r: NewResolution) -> Result<ResolveRecorded> {
        if let Some(pg) = self.pg() {
            return pg.record_resolution(r).await;
        }
        self.with(Lane::Intent, move |c| {
            // One transaction: the resolution and its timeline entry commit together.
            let tx = write_tx(c)?;
            let current: Option<(String, Option<String>)> = tx
                .prepare_cached("SELECT status, resolve_key FROM incidents WHERE id = ?1")?
                .query_row([r.incident.0], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((status, key)) = current else {
                return Ok(ResolveRecorded::NotFound);
            };
            if key.as_deref() == Some(r.resolve_key.as_str()) {
                return Ok(ResolveRecorded::Duplicate);
            }
            let status = Status::parse(&status)
                .with_context(|| format!("unknown incident status {status:?}"))?;
            let Some(change) = Transition::ResolveRequested.apply(status) else {
                return Ok(ResolveRecorded::AlreadyResolved);
            };
            let changed = tx
                .prepare_cached(
                    "UPDATE incidents SET status = ?2, resolve_key = ?3, resolved_by = ?4, \
                     resolution = ?5, resolved_at = ?6 WHERE id = ?1 AND status = ?7",
                )?
                .execute(params![
                    r.incident.0,
                    change.to.as_str(),
                    r.resolve_key,
                    r.resolved_by.as_str(),
                    r.summary,
                    ts(r.at),
                    change.from.as_str()
                ])?;
            if changed == 0 {
                return Ok(ResolveRecorded::AlreadyResolved);
            }
            tx.prepare_cached(
                "INSERT INTO timeline (incident_id, at, text, author, kind) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                r.incident.0,
                ts(r.at),
                format!("Resolved by <@{}>", r.resolved_by),
                r.resolved_by.as_str(),
                lifecycle::kind_json(&crate::incident::timeline::EntryKind::Resolved)
            ])?;
            tx.commit()?;
            Ok(ResolveRecorded::Started)
        })
        .await
    }

    /// A recorded step, by its key (see `workflow::steps::StepKey`).
    pub async fn step(&self, id: IncidentId, step: &str) -> Result<Option<Step>> {
        if let Some(pg) = self.pg() {
            return pg.step(id, step).await;
        }
        let step = step.to_string();
        self.with(Lane::General, move |c| {
            let row: Option<(String, u32, Option<String>, String)> = c
                .prepare_cached(
                    "SELECT state, attempts, detail, first_at FROM steps \
                     WHERE incident_id = ?1 AND step = ?2",
                )?
                .query_row(params![id.0, step], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            row.map(|(state, attempts, detail, first_at)| {
                Ok(Step {
                    state: StepState::parse(&state)?,
                    attempts,
                    detail,
                    first_at: parse_ts(&first_at)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Record a step's state at `now`. `Started` also counts an attempt. Inside [`fenced`]
    /// work, only while the fence's lease names its owner (else [`LeaseLost`]).
    pub async fn set_step(
        &self,
        id: IncidentId,
        step: &str,
        state: StepState,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let fence = fence::current();
        if let Some(pg) = self.pg() {
            return pg.set_step(id, step, state, detail, now, fence).await;
        }
        let (step, detail) = (step.to_string(), detail.map(String::from));
        self.with(Lane::General, move |c| {
            let tx = write_tx(c)?;
            if let Some(f) = fence {
                let holds = tx
                    .prepare_cached("SELECT 1 FROM leases WHERE key = ?1 AND owner = ?2")?
                    .query_row(params![f.key, f.owner], |_| Ok(()))
                    .optional()?
                    .is_some();
                if !holds {
                    return Err(LeaseLost { key: f.key }.into());
                }
            }
            let inc = i64::from(state == StepState::Started);
            tx.prepare_cached(
                "INSERT INTO steps (incident_id, step, state, attempts, detail, first_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 ON CONFLICT (incident_id, step) DO UPDATE SET state = ?3, attempts = attempts + ?4, \
                 detail = COALESCE(?5, detail), updated_at = ?6",
            )?
            .execute(params![id.0, step, state.as_str(), inc, detail, ts(now)])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Forget a step's history so it starts over (a person pressed Retry).
    pub async fn reset_step(&self, id: IncidentId, step: &str) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.reset_step(id, step).await;
        }
        let step = step.to_string();
        self.with(Lane::General, move |c| {
            c.prepare_cached("DELETE FROM steps WHERE incident_id = ?1 AND step = ?2")?
                .execute(params![id.0, step])?;
            Ok(())
        })
        .await
    }

    /// Keys of the steps of an incident that are not finished (started or failed).
    pub async fn pending_steps(&self, id: IncidentId) -> Result<Vec<String>> {
        if let Some(pg) = self.pg() {
            return pg.pending_steps(id).await;
        }
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT step FROM steps WHERE incident_id = ?1 AND state IN ('started', 'failed') \
                 ORDER BY step",
            )?;
            let rows = stmt.query_map([id.0], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub async fn add_announcement(
        &self,
        id: IncidentId,
        channel: &ChannelId,
        ts: &MessageTs,
    ) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.add_announcement(id, channel, ts).await;
        }
        let (channel, ts) = (channel.as_str().to_string(), ts.as_str().to_string());
        self.with(Lane::General, move |c| {
            c.prepare_cached(
                "INSERT INTO announcements (incident_id, channel, ts) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (incident_id, channel) DO UPDATE SET ts = ?3",
            )?
            .execute(params![id.0, channel, ts])?;
            Ok(())
        })
        .await
    }

    /// `(channel, ts)` of every announcement of an incident.
    pub async fn announcements(&self, id: IncidentId) -> Result<Vec<(ChannelId, MessageTs)>> {
        if let Some(pg) = self.pg() {
            return pg.announcements(id).await;
        }
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT channel, ts FROM announcements WHERE incident_id = ?1 ORDER BY channel",
            )?;
            let rows =
                stmt.query_map([id.0], |r| Ok((ChannelId(r.get(0)?), MessageTs(r.get(1)?))))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub async fn add_timeline(&self, id: IncidentId, at: DateTime<Utc>, text: &str) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.add_timeline(id, at, text).await;
        }
        let text = text.to_string();
        self.with(Lane::General, move |c| {
            c.prepare_cached("INSERT INTO timeline (incident_id, at, text) VALUES (?1, ?2, ?3)")?
                .execute(params![id.0, ts(at), text])?;
            Ok(())
        })
        .await
    }

    pub async fn timeline(&self, id: IncidentId) -> Result<Vec<(DateTime<Utc>, String)>> {
        if let Some(pg) = self.pg() {
            return pg.timeline(id).await;
        }
        self.with(Lane::General, move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT at, text FROM timeline WHERE incident_id = ?1 ORDER BY at, id",
            )?;
            let rows = stmt.query_map([id.0], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (at, text) = row?;
                Ok((parse_ts(&at)?, text))
            })
            .collect()
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    /// Run `test` on a fresh store of each backend: in-memory SQLite, then a PostgreSQL schema
    /// of its own (failing loudly when PostgreSQL cannot be reached).
    pub(crate) async fn each_backend<F, Fut>(test: F)
    where
        F: Fn(Store) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        eprintln!("backend: sqlite");
        test(Store::in_memory().unwrap()).await;
        eprintln!("backend: postgres");
        let schema = postgres::testing::Schema::create().await;
        test(Store::connect_postgres(&schema.url).await.unwrap()).await;
    }

    /// Run raw SQL on either backend (tests that corrupt stored values on purpose).
    pub(crate) async fn raw(s: &Store, sql: &str) {
        match &s.backend {
            Backend::Postgres(pg) => pg.batch(sql).await.unwrap(),
            Backend::Sqlite(_) => {
                let sql = sql.to_string();
                s.with(Lane::General, move |c| Ok(c.execute_batch(&sql)?))
                    .await
                    .unwrap()
            }
        }
    }

    pub(crate) fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn new(name: &IncidentName, key: &str) -> NewIncident {
        NewIncident {
            name: name.clone(),
            submission_key: key.into(),
            title: "DB down".into(),
            description: String::new(),
            severity: Severity::from("sev1"),
            reporter: UserId::from("U1"),
            commander: None,
            origin_channel: Some(ChannelId::from("C1")),
            response_url: None,
            declared_at: t(0),
        }
    }

    /// A freshly declared incident in `s`.
    pub(crate) async fn declared(s: &Store) -> IncidentId {
        let n = IncidentName::from_stored("20261201-calm-otter");
        match s.record_declaration(new(&n, "V1")).await.unwrap() {
            Recorded::New(id) | Recorded::Duplicate(id) => id,
            Recorded::NameTaken => panic!("name taken"),
        }
    }

    fn resolution(id: IncidentId, key: &str) -> NewResolution {
        NewResolution {
            incident: id,
            resolve_key: key.into(),
            resolved_by: UserId::from("U2"),
            summary: "fixed".into(),
            at: t(60),
        }
    }

    #[tokio::test]
    async fn a_redelivered_submission_is_recorded_once() {
        each_backend(|s| async move {
            let n = IncidentName::from_stored("20261121-calm-otter");
            let Recorded::New(id) = s.record_declaration(new(&n, "V1")).await.unwrap() else {
                panic!()
            };
            assert_eq!(
                s.record_declaration(new(&n, "V1")).await.unwrap(),
                Recorded::Duplicate(id)
            );
            assert_eq!(
                s.record_declaration(new(&n, "V2")).await.unwrap(),
                Recorded::NameTaken
            );
            assert!(s.name_used(&n).await.unwrap());
            let used = s.names_used_on("20261121").await.unwrap();
            assert!(used.contains("20261121-calm-otter"));
            assert!(s.names_used_on("20261122").await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn resolution_is_recorded_once_and_only_from_open() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.transition(id, Transition::Declared).await.unwrap();
            assert_eq!(
                s.record_resolution(resolution(id, "VR1")).await.unwrap(),
                ResolveRecorded::Started
            );
            assert_eq!(
                s.record_resolution(resolution(id, "VR1")).await.unwrap(),
                ResolveRecorded::Duplicate
            );
            assert_eq!(
                s.record_resolution(resolution(id, "VR2")).await.unwrap(),
                ResolveRecorded::AlreadyResolved
            );
            // A late "declared" never undoes a resolution in progress.
            assert_eq!(s.transition(id, Transition::Declared).await.unwrap(), None);
            assert_eq!(
                s.incident(id).await.unwrap().unwrap().status,
                Status::Resolving
            );
            assert_eq!(s.timeline(id).await.unwrap().len(), 2);
            assert_eq!(
                s.transition(id, Transition::Resolved).await.unwrap(),
                Some(Change {
                    from: Status::Resolving,
                    to: Status::Resolved
                })
            );
        })
        .await;
    }

    #[tokio::test]
    async fn steps_count_attempts_and_unfinished_work_is_found() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.set_step(id, "page", StepState::Started, None, t(1))
                .await
                .unwrap();
            s.set_step(id, "page", StepState::Failed, Some("503"), t(2))
                .await
                .unwrap();
            s.set_step(id, "page", StepState::Started, None, t(3))
                .await
                .unwrap();
            let st = s.step(id, "page").await.unwrap().unwrap();
            assert_eq!((st.state, st.attempts), (StepState::Started, 2));
            assert_eq!(st.detail.as_deref(), Some("503"));
            assert_eq!(st.first_at, t(1));
            s.transition(id, Transition::Declared).await.unwrap();
            assert_eq!(s.unfinished().await.unwrap().len(), 1);
            assert_eq!(s.pending_steps(id).await.unwrap(), vec!["page".to_string()]);
            s.set_step(id, "page", StepState::Done, None, t(4))
                .await
                .unwrap();
            assert!(s.unfinished().await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreadable_stored_value_is_an_error_not_a_default() {
        each_backend(|s| async move {
            let id = declared(&s).await;
            s.set_step(id, "page", StepState::Started, None, t(1))
                .await
                .unwrap();
            raw(
                &s,
                "UPDATE steps SET state = 'half-done'; \
                 UPDATE incidents SET declared_at = 'yesterday';",
            )
            .await;
            assert!(s.step(id, "page").await.is_err(), "unknown step state");
            assert!(s.incident(id).await.is_err(), "malformed time");
            raw(
                &s,
                &format!(
                    "UPDATE incidents SET declared_at = '{}', status = 'paused';",
                    ts(t(0))
                ),
            )
            .await;
            assert!(s.incident(id).await.is_err(), "unknown status");
        })
        .await;
    }

    #[tokio::test]
    async fn the_database_survives_reopening_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let n = IncidentName::from_stored("20261121-calm-otter");
        {
            let s = Store::open(dir.path()).unwrap();
            s.record_declaration(new(&n, "V1")).await.unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.name_used(&n).await.unwrap());
        assert!(s.is_writable().await);
    }

    fn open_pool_connections(s: &Store) -> usize {
        match &s.backend {
            Backend::Sqlite(inner) => inner.pool.iter().filter(|c| lock(c).is_some()).count(),
            Backend::Postgres(_) => unreachable!("a SQLite test"),
        }
    }

    #[tokio::test]
    async fn pool_connections_open_only_when_every_open_one_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(open_pool_connections(&s), 0, "nothing opened before use");
        for _ in 0..5 {
            assert!(s.is_writable().await);
        }
        assert_eq!(
            open_pool_connections(&s),
            1,
            "calls one after another share the first connection"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_intent_is_recorded_while_every_pool_connection_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = declared(&s).await;
        // Occupy every general connection with a slow read.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut busy = Vec::new();
        for _ in 0..POOL_CONNECTIONS {
            let (s, rx) = (s.clone(), rx.clone());
            busy.push(tokio::spawn(async move {
                s.with(Lane::General, move |_c| {
                    let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
                .await
            }));
        }
        // Wait until all permits are taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.sqlite().unwrap().permits.available_permits() > 0 {
            assert!(std::time::Instant::now() < deadline, "pool never filled");
            tokio::task::yield_now().await;
        }
        let n = IncidentName::from_stored("20261201-brisk-heron");
        let mut other = new(&n, "V2");
        other.declared_at = t(5);
        let rec = tokio::time::timeout(Duration::from_secs(2), s.record_declaration(other))
            .await
            .expect("the intent lane does not wait for the pool")
            .unwrap();
        assert!(matches!(rec, Recorded::New(_)));
        assert_eq!(open_pool_connections(&s), POOL_CONNECTIONS);
        for _ in 0..POOL_CONNECTIONS {
            tx.send(()).unwrap();
        }
        for b in busy {
            b.await.unwrap().unwrap();
        }
        assert!(s.incident(id).await.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intents_and_step_records_written_at_once_never_fail_for_a_locked_database() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let id = declared(&s).await;
        let mut writers = Vec::new();
        for w in 0..POOL_CONNECTIONS {
            let s = s.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..300 {
                    let step = format!("announce:C{w}{i}");
                    s.set_step(id, &step, StepState::Started, None, t(i))
                        .await?;
                    s.set_step(id, &step, StepState::Done, Some("1.2"), t(i))
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for i in 0..150 {
            let n = IncidentName::from_stored(format!("20261202-busy-{i}"));
            let mut intent = new(&n, &format!("B{i}"));
            intent.declared_at = t(i);
            let rec = s.record_declaration(intent).await.unwrap();
            assert!(matches!(rec, Recorded::New(_)), "{rec:?}");
            let Recorded::New(new_id) = rec else {
                unreachable!()
            };
            assert_eq!(
                s.transition(new_id, Transition::Declared)
                    .await
                    .unwrap()
                    .map(|c| c.to),
                Some(Status::Open)
            );
        }
        for w in writers {
            w.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_into_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let n = IncidentName::from_stored("20261121-brisk-heron");
        let s = Store::open_with_checkpoints(dir.path(), Duration::from_millis(20)).unwrap();
        let autocheckpoint: i64 = s
            .with(Lane::General, |c| {
                Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(autocheckpoint, AUTOCHECKPOINT_PAGES);
        s.record_declaration(new(&n, "V1")).await.unwrap();
        let before = s.checkpoints_run();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.checkpoints_run() < before + 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "no background checkpoint ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The database file alone (without its write-ahead log) now holds the incident.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
        let alone = Store::open(copy.path()).unwrap();
        assert!(alone.name_used(&n).await.unwrap());
        drop(s); // stops and joins the checkpoint thread
    }
}
