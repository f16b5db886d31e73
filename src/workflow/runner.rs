//! The one durable step runner.
//!
//! [`Runner`] owns what runs: the tracker of in-flight work (shutdown waits for it), the
//! per-incident locks, the in-process claims and the store leases of running workflows. It starts
//! and resumes workflows ([`Workflow`]); each workflow executes its steps through [`StepRun`]
//! (or its shorthand [`run_step`]), which records every attempt in the store before making it:
//!
//! - `started` (counting the attempt) before the call, `done` with its result only after the
//!   effect happened; a store write that fails stops the step with an error (never discarded),
//!   and the workflow root reports it once.
//! - a transient error ([`Transient`]) is retried with exponential backoff and jitter, never
//!   sooner than the service's `Retry-After`, until the step's give-up time passes
//!   ([`RetryPolicy`]); a permanent error ends the step at once. A person's declaration is never
//!   dropped for a transient fault.
//! - when an earlier attempt's outcome is unknown ([`Attempt::maybe_applied`]), the step looks
//!   for its own effect before acting again; that lookup is a call like any other, retried the
//!   same way.
//!
//! Work a second process could take over is claimed through the store with a lease
//! (`<workflow>:<incident>`), renewed while it runs; a restarted instance frees its own leases
//! at start, so its unfinished work resumes at once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedMutexGuard};
use tracing::Instrument;

use crate::config::RetrySettings;
use crate::context::Ctx;
use crate::incident::{IncidentId, Status};
use crate::integrations::IntegrationError;
use crate::slack::api::{jitter, SlackError};
use crate::store::{Step, StepState};
use crate::workflow::steps::{StepKey, Workflow};

/// How long a workflow's lease lasts without renewal. A process that died holds its work at
/// most this long before another one may take it over.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a running workflow renews its lease (well inside [`LEASE_TTL`]).
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Whether an error is worth retrying, and how soon the service allows it.
pub trait Transient {
    fn is_transient(&self) -> bool;
    /// The service's `Retry-After`, when it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Transient for SlackError {
    /// Slack's own classification ([`SlackError::is_transient`]).
    fn is_transient(&self) -> bool {
        SlackError::is_transient(self)
    }
}

impl Transient for IntegrationError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
    fn retry_after(&self) -> Option<Duration> {
        IntegrationError::retry_after(self)
    }
}

/// How one step retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff; doubles up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// After this long since the step's first attempt, a transient error ends it as failed.
    pub give_up_after: Duration,
}

/// Longest backoff between two Slack attempts: Slack recovers in seconds, and a person waits.
const SLACK_MAX_DELAY: Duration = Duration::from_secs(15);

impl RetryPolicy {
    /// The policy of `key`, from the configured bounds.
    pub fn for_step(key: &StepKey, s: &RetrySettings) -> RetryPolicy {
        match key {
            // PagerDuty and Notion: the configured bounds as they are.
            StepKey::Background(_) => RetryPolicy {
                initial_delay: s.initial_delay,
                max_delay: s.max_delay,
                give_up_after: s.give_up_after,
            },
            // Slack steps: the same give-up time, shorter waits between attempts.
            _ => RetryPolicy {
                initial_delay: s.initial_delay,
                max_delay: s.max_delay.min(SLACK_MAX_DELAY),
                give_up_after: s.give_up_after,
            },
        }
    }
}

/// One attempt of a step.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// An earlier attempt (in this process or one that died) may have taken effect: look for
    /// the effect before acting again.
    pub maybe_applied: bool,
    /// When the step's first attempt started (messages posted since then may be ours).
    pub first_at: DateTime<Utc>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after this wait (already slept by [`StepRun::failed`]).
    Retried,
    /// Ended as failed: permanent error, or the give-up time passed.
    GaveUp,
}

/// A step being executed: the record-keeping around its attempts.
pub struct StepRun<'a> {
    ctx: &'a Ctx,
    id: IncidentId,
    key: StepKey,
    name: String,
    policy: RetryPolicy,
    prior: Option<Step>,
    first_at: Option<DateTime<Utc>>,
    maybe_applied: bool,
    delay: Duration,
}

impl<'a> StepRun<'a> {
    /// Look the step up; the caller decides from [`StepRun::prior`] whether it still needs to
    /// run.
    pub async fn load(ctx: &'a Ctx, id: IncidentId, key: StepKey) -> Result<StepRun<'a>> {
        let name = key.to_string();
        let prior = ctx
            .store
            .step(id, &name)
            .await
            .with_context(|| format!("reading step {name}"))?;
        let policy = RetryPolicy::for_step(&key, &ctx.settings.retry);
        Ok(StepRun {
            ctx,
            id,
            maybe_applied: prior.as_ref().is_some_and(|p| p.attempts > 0),
            first_at: prior.as_ref().map(|p| p.first_at),
            prior,
            delay: policy.initial_delay,
            policy,
            key,
            name,
        })
    }

    /// Use another retry policy (tests, or a caller that knows better).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.delay = policy.initial_delay;
        self.policy = policy;
        self
    }

    pub fn prior(&self) -> Option<&Step> {
        self.prior.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.prior
            .as_ref()
            .is_some_and(|p| p.state == StepState::Done)
    }

    pub fn key(&self) -> &StepKey {
        &self.key
    }

    /// Record the start of an attempt (before making it) and describe it.
    pub async fn attempt(&mut self) -> Result<Attempt> {
        let now = self.ctx.clock.now();
        self.ctx
            .store
            .set_step(self.id, &self.name, StepState::Started, None, now)
            .await
            .with_context(|| format!("recording the start of step {}", self.name))?;
        let first_at = *self.first_at.get_or_insert(now);
        let a = Attempt {
            maybe_applied: self.maybe_applied,
            first_at,
        };
        self.maybe_applied = true;
        Ok(a)
    }

    /// The effect happened: record it (with what to find it by later).
    pub async fn done(self, detail: Option<&str>) -> Result<()> {
        self.ctx
            .store
            .set_step(
                self.id,
                &self.name,
                StepState::Done,
                detail,
                self.ctx.clock.now(),
            )
            .await
            .with_context(|| format!("recording step {} done", self.name))?;
        self.ctx.metrics.step(&self.name, "done");
        Ok(())
    }

    /// The step is not needed any more.
    pub async fn skip(self, reason: &str) -> Result<()> {
        self.ctx
            .store
            .set_step(
                self.id,
                &self.name,
                StepState::Skipped,
                Some(reason),
                self.ctx.clock.now(),
            )
            .await
            .with_context(|| format!("recording step {} skipped", self.name))
    }

    /// An attempt failed: record it, then either wait out the backoff (transient, within the
    /// give-up time) or end the step as failed.
    pub async fn failed<E: Transient + std::fmt::Display>(&mut self, e: &E) -> Result<Verdict> {
        match self.record_failure(e).await? {
            Next::Retry(wait) => {
                tokio::time::sleep(wait).await;
                Ok(Verdict::Retried)
            }
            Next::GiveUp => Ok(Verdict::GaveUp),
        }
    }

    /// [`StepRun::failed`] without the wait: the caller does something first (tell the channel)
    /// and then sleeps the returned wait.
    pub async fn record_failure<E: Transient + std::fmt::Display>(
        &mut self,
        e: &E,
    ) -> Result<Next> {
        let now = self.ctx.clock.now();
        let detail = e.to_string();
        let elapsed = (now - self.first_at.unwrap_or(now))
            .to_std()
            .unwrap_or_default();
        if !e.is_transient() || elapsed >= self.policy.give_up_after {
            self.ctx
                .store
                .set_step(self.id, &self.name, StepState::GaveUp, Some(&detail), now)
                .await
                .with_context(|| format!("recording step {} failed", self.name))?;
            self.ctx.metrics.step(&self.name, "gave_up");
            tracing::error!(incident_id = %self.id, step = %self.name, error = %detail, transient = e.is_transient(), "step failed for good");
            return Ok(Next::GiveUp);
        }
        self.ctx
            .store
            .set_step(self.id, &self.name, StepState::Failed, Some(&detail), now)
            .await
            .with_context(|| format!("recording a failed attempt of step {}", self.name))?;
        self.ctx.metrics.step(&self.name, "retry");
        let wait = e.retry_after().map_or(self.delay, |ra| ra.max(self.delay));
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        tracing::warn!(incident_id = %self.id, step = %self.name, error = %detail, wait_ms = wait.as_millis() as u64, "step failed; retrying");
        Ok(Next::Retry(jitter(wait)))
    }
}

/// What follows a recorded failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this wait (backoff with jitter, never shorter than `Retry-After`).
    Retry(Duration),
    /// Ended as failed.
    GiveUp,
}

/// How a [`run_step`] ended.
#[derive(Debug)]
pub enum StepOutcome<T, E> {
    Ran(T),
    /// Done in an earlier run; nothing was called. Carries what was recorded with it.
    AlreadyDone(Option<String>),
    /// Ended as failed (recorded and logged) with the last error.
    Failed(E),
}

impl<T, E> StepOutcome<T, E> {
    /// The value of a run that called and succeeded.
    pub fn value(self) -> Option<T> {
        match self {
            StepOutcome::Ran(v) => Some(v),
            StepOutcome::AlreadyDone(_) | StepOutcome::Failed(_) => None,
        }
    }
}

/// Run one step to completion: skip it when done before, else attempt until it succeeds, fails
/// permanently or gives up. `detail_of` gives what to record with the step when it is done.
pub async fn run_step<T, E, F, Fut>(
    ctx: &Ctx,
    id: IncidentId,
    key: StepKey,
    mut attempt: F,
    detail_of: impl Fn(&T) -> Option<String>,
) -> Result<StepOutcome<T, E>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient + std::fmt::Display,
{
    let run = StepRun::load(ctx, id, key).await?;
    drive(run, &mut attempt, detail_of).await
}

/// [`run_step`] on a loaded [`StepRun`] (to set its policy).
pub async fn drive<T, E, F, Fut>(
    mut run: StepRun<'_>,
    attempt: &mut F,
    detail_of: impl Fn(&T) -> Option<String>,
) -> Result<StepOutcome<T, E>>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient + std::fmt::Display,
{
    if run.is_done() {
        let detail = run.prior.and_then(|p| p.detail);
        return Ok(StepOutcome::AlreadyDone(detail));
    }
    loop {
        let a = run.attempt().await?;
        match attempt(a).await {
            Ok(v) => {
                let detail = detail_of(&v);
                run.done(detail.as_deref()).await?;
                return Ok(StepOutcome::Ran(v));
            }
            Err(e) => match run.failed(&e).await? {
                Verdict::Retried => {}
                Verdict::GaveUp => return Ok(StepOutcome::Failed(e)),
            },
        }
    }
}

/// Retry one call that is not a step of its own (a lookup, an idempotent update) with `key`'s
/// policy, without recording anything. Gives up on a permanent error or after the give-up time.
pub async fn retry_call<T, E, F, Fut>(ctx: &Ctx, key: &StepKey, mut call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Transient + std::fmt::Display,
{
    let policy = RetryPolicy::for_step(key, &ctx.settings.retry);
    let started = ctx.clock.now();
    let mut delay = policy.initial_delay;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let elapsed = (ctx.clock.now() - started).to_std().unwrap_or_default();
                if !e.is_transient() || elapsed >= policy.give_up_after {
                    return Err(e);
                }
                let wait = e.retry_after().map_or(delay, |ra| ra.max(delay));
                delay = (delay * 2).min(policy.max_delay);
                tracing::warn!(step = %key, error = %e, "call failed; retrying");
                tokio::time::sleep(jitter(wait)).await;
            }
        }
    }
}

type LockMap = Mutex<HashMap<(IncidentId, &'static str), Arc<tokio::sync::Mutex<()>>>>;

/// Lock maps beyond this size drop the locks nobody holds (a long-running process would
/// otherwise keep one per incident it ever saw).
const LOCKS_PRUNE_AT: usize = 256;

/// Runs workflows: tracks them, serialises them per incident, claims them, resumes them.
pub struct Runner {
    ctx: Arc<Ctx>,
    /// Lease owner: this instance (`INCD_INSTANCE`, one name per replica).
    owner: String,
    locks: LockMap,
    /// Workflows running in this process.
    running: Mutex<HashSet<(IncidentId, Workflow)>>,
    inflight: AtomicUsize,
    idle: Notify,
    shutting_down: AtomicBool,
}

impl Runner {
    pub fn new(ctx: Arc<Ctx>, owner: impl Into<String>) -> Arc<Runner> {
        Arc::new(Runner {
            ctx,
            owner: owner.into(),
            locks: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// This instance's lease owner name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Serialises workflows of one incident (declare, then resolve).
    pub async fn lock_incident(&self, id: IncidentId) -> OwnedMutexGuard<()> {
        self.lock(id, "incident").await
    }

    /// Serialises the PagerDuty steps of one incident: a withdrawal never crosses a trigger in
    /// flight.
    pub async fn lock_pager(&self, id: IncidentId) -> OwnedMutexGuard<()> {
        self.lock(id, "pagerduty").await
    }

    /// Serialises the Notion steps of one incident: the resolution update never reads the
    /// incident between the post-mortem's creation and its record, and the post-mortem writers
    /// (resolve, close, follow-ups) each read the page and append what is missing, so two at once
    /// could both append the same section.
    pub async fn lock_notion(&self, id: IncidentId) -> OwnedMutexGuard<()> {
        self.lock(id, "notion").await
    }

    async fn lock(&self, id: IncidentId, what: &'static str) -> OwnedMutexGuard<()> {
        let m = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > LOCKS_PRUNE_AT {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry((id, what)).or_default().clone()
        };
        m.lock_owned().await
    }

    /// Whether shutdown has begun (no new work is taken).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Stop taking new work.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Spawn work that shutdown waits for. A panic inside is logged.
    pub fn spawn_tracked<F>(self: &Arc<Self>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            let inner = tokio::spawn(fut);
            if let Err(e) = inner.await {
                if e.is_panic() {
                    me.ctx.metrics.handler_panic();
                    tracing::error!("a workflow task panicked; its steps will resume on restart");
                }
            }
            if me.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// Wait until no tracked work is running, or `limit` passes. True when idle.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.inflight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inflight.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// Start (or resume) one workflow of an incident in the background.
    pub fn start(self: &Arc<Self>, id: IncidentId, w: Workflow) {
        self.start_chain(id, vec![w]);
    }

    /// Start workflows of one incident that must run one after the other (declare before
    /// resolve), in one background task.
    pub fn start_chain(self: &Arc<Self>, id: IncidentId, chain: Vec<Workflow>) {
        let me = self.clone();
        self.spawn_tracked(async move {
            for w in chain {
                me.run(id, w).await;
            }
        });
    }

    /// Run one workflow now, unless it already runs here or another process holds its lease.
    /// Errors are reported here, once, with their whole chain; the workflow resumes later.
    pub async fn run(self: &Arc<Self>, id: IncidentId, w: Workflow) {
        let span = tracing::info_span!("workflow", workflow = %w, incident_id = %id);
        async {
            if !self.claim_local(id, w) {
                tracing::debug!("already running in this process");
                return;
            }
            let result = self.run_leased(id, w).await;
            self.release_local(id, w);
            match result {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!("another process holds this workflow's lease; checking again when it expires");
                    if let Err(e) = self.recheck_after_lease(id, w).await {
                        tracing::error!(error = format!("{e:#}"), "could not schedule the re-check");
                    }
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "workflow stopped; it resumes on the next start"
                ),
            }
        }
        .instrument(span)
        .await
    }

    /// Set a timer for when another process's lease on `w` expires: if that process died, this
    /// one takes the work over then.
    async fn recheck_after_lease(&self, id: IncidentId, w: Workflow) -> Result<()> {
        let key = Self::lease_key(id, w);
        let now = self.ctx.clock.now();
        let due = match self.ctx.store.lease(&key).await? {
            Some(l) if l.expires_at > now => l.expires_at,
            _ => now,
        };
        super::timers::schedule(self, id, super::timers::TimerKind::Resume(w), due).await
    }

    fn claim_local(&self, id: IncidentId, w: Workflow) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((id, w))
    }

    fn release_local(&self, id: IncidentId, w: Workflow) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(id, w));
    }

    fn lease_key(id: IncidentId, w: Workflow) -> String {
        format!("{w}:{id}")
    }

    /// Claim the lease, run with renewals, release. `Ok(false)` when someone else holds it.
    async fn run_leased(self: &Arc<Self>, id: IncidentId, w: Workflow) -> Result<bool> {
        let key = Self::lease_key(id, w);
        let store = &self.ctx.store;
        let ttl = chrono::Duration::from_std(LEASE_TTL).unwrap_or(chrono::Duration::seconds(30));
        let now = self.ctx.clock.now();
        if !store
            .claim_lease(&key, &self.owner, now, now + ttl)
            .await
            .context("claiming the workflow's lease")?
        {
            return Ok(false);
        }
        // Step records of this run are fenced by the lease: once another process holds it,
        // they fail (LeaseLost) instead of recording work the new holder is redoing.
        let fence = crate::store::Fence {
            key: key.clone(),
            owner: self.owner.clone(),
        };
        let work = crate::store::fenced(fence, self.execute(id, w));
        tokio::pin!(work);
        let mut renew = tokio::time::interval(LEASE_RENEW);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = renew.tick() => {
                    let now = self.ctx.clock.now();
                    match store.claim_lease(&key, &self.owner, now, now + ttl).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("lost the workflow's lease to another process"),
                        Err(e) => tracing::warn!(error = %e, "could not renew the workflow's lease"),
                    }
                }
            }
        };
        store
            .release_lease(&key, &self.owner)
            .await
            .context("releasing the workflow's lease")?;
        result.map(|()| true)
    }

    async fn execute(self: &Arc<Self>, id: IncidentId, w: Workflow) -> Result<()> {
        match w {
            Workflow::Declare
            | Workflow::Resolve
            | Workflow::Change(_)
            | Workflow::Close
            | Workflow::Reopen
            | Workflow::Review(_) => {
                let marker = StepKey::of(w).to_string();
                let store = &self.ctx.store;
                let now = self.ctx.clock.now();
                store
                    .set_step(id, &marker, StepState::Started, None, now)
                    .await
                    .context("recording the workflow's start")?;
                match w {
                    Workflow::Declare => super::declare::run(self, id).await?,
                    Workflow::Change(n) => super::change::run(self, id, n).await?,
                    Workflow::Resolve => super::resolve::run(self, id).await?,
                    Workflow::Close => super::close::run_close(self, id).await?,
                    Workflow::Review(ms) => super::review::run(self, id, ms).await?,
                    _ => super::close::run_reopen(self, id).await?,
                }
                store
                    .set_step(id, &marker, StepState::Done, None, self.ctx.clock.now())
                    .await
                    .context("recording the workflow done")
            }
            Workflow::Background(b) => super::integrations::run(self, id, b).await,
            Workflow::FollowUp(n) => super::follow_ups::run(self, id, n).await,
        }
    }

    /// Free the leases this instance's previous run left (on start, before any inbound work is
    /// taken: a lease claimed by this run must never be freed as the previous run's). Returns
    /// how many were freed.
    pub async fn free_previous_leases(&self) -> Result<usize> {
        let freed = self
            .ctx
            .store
            .release_leases_of(&self.owner)
            .await
            .context("freeing this instance's leases from its previous run")?;
        if freed > 0 {
            tracing::info!(
                freed,
                "took back the leases of this instance's previous run"
            );
        }
        Ok(freed)
    }

    /// Resume every unfinished workflow of every incident (on start, after
    /// [`Runner::free_previous_leases`]). Returns how many incidents had work left.
    pub async fn resume_all(self: &Arc<Self>) -> Result<usize> {
        self.rescan().await
    }

    /// Start every unfinished workflow that is not running here: work left by a process that
    /// died (its leases expired; a live one keeps its work by its leases) or stopped by an error.
    /// An incident whose plan cannot be read is reported and skipped, never the others with it.
    /// Returns how many incidents got work started.
    pub async fn rescan(self: &Arc<Self>) -> Result<usize> {
        let mut started = 0;
        for inc in self.ctx.store.unfinished().await? {
            let plan = match self
                .ctx
                .store
                .pending_steps(inc.id)
                .await
                .and_then(|pending| resume_plan(inc.status, &pending))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(incident = %inc.name, error = format!("{e:#}"), "cannot plan this incident's unfinished work; skipping it");
                    continue;
                }
            };
            let idle: Vec<Workflow> = {
                let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                plan.into_iter()
                    .filter(|w| !running.contains(&(inc.id, *w)))
                    .collect()
            };
            if idle.is_empty() {
                continue;
            }
            started += 1;
            tracing::info!(incident = %inc.name, status = inc.status.as_str(), workflows = ?idle, "resuming unfinished work");
            let (chain, background): (Vec<Workflow>, Vec<Workflow>) = idle
                .into_iter()
                .partition(|w| matches!(w, Workflow::Declare | Workflow::Resolve));
            if !chain.is_empty() {
                self.start_chain(inc.id, chain);
            }
            for w in background {
                self.start(inc.id, w);
            }
        }
        Ok(started)
    }
}

/// Which workflows of an incident must run again, in order: those owning an unfinished step,
/// plus the one its status says is under way. Declare always comes before resolve.
pub fn resume_plan(status: Status, pending_steps: &[String]) -> Result<Vec<Workflow>> {
    let mut wanted: Vec<Workflow> = Vec::new();
    let mut add = |w: Workflow| {
        if !wanted.contains(&w) {
            wanted.push(w);
        }
    };
    match status {
        Status::Declaring => add(Workflow::Declare),
        Status::Resolving => add(Workflow::Resolve),
        Status::Open | Status::Resolved | Status::Failed | Status::Closed => {}
    }
    for s in pending_steps {
        let key: StepKey = s.parse()?;
        add(key.workflow());
    }
    let rank = |w: &Workflow| match w {
        Workflow::Declare => 0,
        Workflow::Resolve => 1,
        Workflow::Close | Workflow::Reopen | Workflow::Review(_) => 2,
        Workflow::Background(_) | Workflow::FollowUp(_) | Workflow::Change(_) => 3,
    };
    wanted.sort_by_key(rank);
    Ok(wanted)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};
    use crate::context::{Ctx, Parts};
    use crate::incident::{IncidentName, Severity, UserId};
    use crate::slack::api::SlackApi;
    use crate::store::{NewIncident, Recorded, Store};
    use chrono::TimeZone;

    /// A runner over an in-memory store, a test clock and a Slack client nobody answers (the
    /// tests here never reach it).
    pub(crate) fn test_runner() -> (Arc<Runner>, TestClock) {
        test_runner_with(false)
    }

    /// [`test_runner`] with PagerDuty configured (Events v2 at a closed port: never reached).
    pub(crate) fn test_runner_paging() -> (Arc<Runner>, TestClock) {
        test_runner_with(true)
    }

    fn test_runner_with(paging: bool) -> (Arc<Runner>, TestClock) {
        let clock = TestClock::at(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let mut settings = crate::config::Settings::for_tests();
        // Real sleeps, kept short; the give-up time stays the default and is measured on the
        // test clock.
        settings.retry.initial_delay = Duration::from_millis(1);
        settings.retry.max_delay = Duration::from_millis(4);
        let slack = SlackApi::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/api",
            settings.slack.bot_token.clone(),
            settings.slack.app_token.clone(),
            metrics.clone(),
        );
        let ctx = Ctx::new(Parts {
            settings,
            store: Store::in_memory().unwrap(),
            slack,
            pager: paging.then(|| {
                crate::integrations::pagerduty::Pager::new(
                    reqwest::Client::new(),
                    crate::config::PagerDutySettings::Events {
                        routing_key: crate::config::Secret::new("R".repeat(32)),
                        events_url: "http://127.0.0.1:9".into(),
                    },
                )
            }),
            notion: None,
            metrics,
            clock: Arc::new(clock.clone()),
        });
        (Runner::new(Arc::new(ctx), "test-instance"), clock)
    }

    /// Record a declared incident named `name`.
    pub(crate) async fn incident(ctx: &Ctx, name: &str) -> IncidentId {
        let rec = ctx
            .store
            .record_declaration(NewIncident {
                name: IncidentName::from_stored(name),
                submission_key: name.into(),
                title: "Checkout down".into(),
                description: String::new(),
                severity: Severity::from("sev1"),
                reporter: UserId::from("U1"),
                commander: None,
                origin_channel: None,
                response_url: None,
                declared_at: ctx.clock.now(),
            })
            .await
            .unwrap();
        match rec {
            Recorded::New(id) => id,
            other => panic!("{other:?}"),
        }
    }

    fn transport() -> SlackError {
        SlackError::Transport {
            method: crate::slack::web::Method::ChatPostMessage.name().into(),
            detail: "HTTP 503".into(),
        }
    }

    fn refused(code: &str) -> SlackError {
        SlackError::Api {
            method: crate::slack::web::Method::ChatPostMessage.name().into(),
            code: code.into(),
            needed: None,
            response: serde_json::Value::Null,
        }
    }

    async fn step(ctx: &Ctx, id: IncidentId, key: &StepKey) -> Step {
        ctx.store.step(id, &key.to_string()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_effect_happens() {
        let (runner, _clock) = test_runner();
        let ctx = runner.ctx();
        let id = incident(ctx, "20261201-calm-otter").await;
        let mut seen = Vec::new();
        let outcome = run_step(
            ctx,
            id,
            StepKey::Summary,
            |a| {
                seen.push(a.maybe_applied);
                let n = seen.len();
                async move {
                    match n {
                        1 => Err(transport()),
                        2 => Err(refused("internal_error")),
                        _ => Ok("1700000000.000100".to_string()),
                    }
                }
            },
            |ts| Some(ts.clone()),
        )
        .await
        .unwrap();
        assert_eq!(outcome.value().as_deref(), Some("1700000000.000100"));
        assert_eq!(seen, vec![false, true, true], "later attempts look first");
        let s = step(ctx, id, &StepKey::Summary).await;
        assert_eq!((s.state, s.attempts), (StepState::Done, 3));
        assert_eq!(s.detail.as_deref(), Some("1700000000.000100"));
        // Done: nothing runs again, and what was recorded comes back.
        let again: StepOutcome<String, SlackError> = run_step(
            ctx,
            id,
            StepKey::Summary,
            |_| async { panic!("ran twice") },
            |_| None,
        )
        .await
        .unwrap();
        assert!(matches!(again, StepOutcome::AlreadyDone(Some(ts)) if ts == "1700000000.000100"));
    }

    #[tokio::test]
    async fn a_permanent_error_ends_the_step_at_once() {
        let (runner, _clock) = test_runner();
        let ctx = runner.ctx();
        let id = incident(ctx, "20261201-calm-otter").await;
        let mut calls = 0;
        let outcome: StepOutcome<(), SlackError> = run_step(
            ctx,
            id,
            StepKey::Topic,
            |_| {
                calls += 1;
                async { Err(refused("channel_not_found")) }
            },
            |_| None,
        )
        .await
        .unwrap();
        assert!(matches!(outcome, StepOutcome::Failed(e) if e.is_code("channel_not_found")));
        assert_eq!(calls, 1);
        let s = step(ctx, id, &StepKey::Topic).await;
        assert_eq!(s.state, StepState::GaveUp);
        assert!(s.detail.unwrap().contains("channel_not_found"));
    }

    #[tokio::test]
    async fn transient_errors_end_a_step_only_after_the_give_up_time() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx();
        let give_up = ctx.settings.retry.give_up_after;
        let id = incident(ctx, "20261201-calm-otter").await;
        let mut calls = 0u32;
        let outcome: StepOutcome<(), SlackError> = run_step(
            ctx,
            id,
            StepKey::Invite,
            |_| {
                calls += 1;
                // Each attempt takes a tenth of the give-up time on the context's clock.
                clock.advance(give_up / 10);
                async { Err(transport()) }
            },
            |_| None,
        )
        .await
        .unwrap();
        assert!(matches!(outcome, StepOutcome::Failed(_)));
        assert_eq!(calls, 10, "kept trying for the whole give-up time");
        assert_eq!(
            step(ctx, id, &StepKey::Invite).await.state,
            StepState::GaveUp
        );
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_backoff_grows() {
        #[derive(Debug)]
        struct Limited(Duration);
        impl std::fmt::Display for Limited {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "rate limited")
            }
        }
        impl Transient for Limited {
            fn is_transient(&self) -> bool {
                true
            }
            fn retry_after(&self) -> Option<Duration> {
                Some(self.0)
            }
        }
        let (runner, _clock) = test_runner();
        let ctx = runner.ctx();
        let id = incident(ctx, "20261201-calm-otter").await;
        let mut at = Vec::new();
        run_step(
            ctx,
            id,
            StepKey::Background(crate::workflow::steps::Background::Page),
            |_| {
                at.push(std::time::Instant::now());
                let n = at.len();
                async move {
                    if n < 3 {
                        Err(Limited(Duration::from_millis(60)))
                    } else {
                        Ok(())
                    }
                }
            },
            |_| None,
        )
        .await
        .unwrap();
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_millis(60)),
            "never before Retry-After: {gaps:?}"
        );
    }

    #[tokio::test]
    async fn a_store_write_that_fails_stops_the_step_with_an_error() {
        let (runner, _clock) = test_runner();
        let ctx = runner.ctx();
        // No such incident: the step record violates its foreign key.
        let missing = IncidentId(999);
        let mut called = false;
        let r: Result<StepOutcome<(), SlackError>> = run_step(
            ctx,
            missing,
            StepKey::Pin,
            |_| {
                called = true;
                async { Ok(()) }
            },
            |_| None,
        )
        .await;
        assert!(r.is_err(), "the failed write is reported");
        assert!(!called, "nothing is called without its start on record");
    }

    #[tokio::test]
    async fn a_step_left_started_by_a_dead_process_looks_for_its_effect_first() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx();
        let id = incident(ctx, "20261201-calm-otter").await;
        ctx.store
            .set_step(id, "summary", StepState::Started, None, clock.now())
            .await
            .unwrap();
        let mut first = None;
        let _: StepOutcome<(), SlackError> = run_step(
            ctx,
            id,
            StepKey::Summary,
            |a| {
                first.get_or_insert(a.maybe_applied);
                async { Ok(()) }
            },
            |_| None,
        )
        .await
        .unwrap();
        assert_eq!(first, Some(true));
    }

    #[test]
    fn the_runner_retries_what_slack_calls_transient() {
        assert!(Transient::is_transient(&transport()));
        for code in [
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ] {
            assert!(Transient::is_transient(&refused(code)), "{code}");
        }
        for code in [
            "name_taken",
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
        ] {
            assert!(!Transient::is_transient(&refused(code)), "{code}");
        }
    }

    #[test]
    fn resume_finishes_every_workflow_with_unfinished_steps_declare_first() {
        let pending = vec![
            "pin".to_string(),
            "page".to_string(),
            "workflow:declare".to_string(),
        ];
        assert_eq!(
            resume_plan(Status::Resolving, &pending).unwrap(),
            vec![
                Workflow::Declare,
                Workflow::Resolve,
                Workflow::Background(crate::workflow::steps::Background::Page)
            ]
        );
        assert_eq!(resume_plan(Status::Open, &[]).unwrap(), vec![]);
        assert!(resume_plan(Status::Open, &["bogus".to_string()]).is_err());
    }

    #[tokio::test]
    async fn one_unreadable_incident_never_keeps_the_others_from_resuming() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx().clone();
        let broken = incident(&ctx, "20261201-calm-otter").await;
        let fine = incident(&ctx, "20261201-brisk-heron").await;
        for id in [broken, fine] {
            ctx.store
                .transition(id, crate::incident::lifecycle::Transition::Declared)
                .await
                .unwrap();
        }
        ctx.store
            .set_step(
                broken,
                "a-step-from-the-future",
                StepState::Started,
                None,
                clock.now(),
            )
            .await
            .unwrap();
        ctx.store
            .set_step(broken, "page", StepState::Started, None, clock.now())
            .await
            .unwrap();
        ctx.store
            .set_step(fine, "page", StepState::Started, None, clock.now())
            .await
            .unwrap();
        assert_eq!(runner.rescan().await.unwrap(), 1, "only the readable one");
        // PagerDuty is not configured here: the resumed page step ends as not needed, so the
        // next rescan finds nothing to do.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while step(
            &ctx,
            fine,
            &StepKey::Background(crate::workflow::steps::Background::Page),
        )
        .await
        .state
            != StepState::Skipped
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the page step was not resumed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runner.rescan().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_workflow_leased_by_another_live_process_is_left_to_it_and_rechecked_later() {
        let (runner, clock) = test_runner();
        let ctx = runner.ctx().clone();
        let id = incident(&ctx, "20261201-calm-otter").await;
        let w = Workflow::Background(crate::workflow::steps::Background::Page);
        let now = clock.now();
        let until = now + chrono::Duration::seconds(30);
        assert!(ctx
            .store
            .claim_lease(&Runner::lease_key(id, w), "other-replica", now, until)
            .await
            .unwrap());
        runner.run(id, w).await;
        let l = ctx
            .store
            .lease(&Runner::lease_key(id, w))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.owner, "other-replica", "not taken over while valid");
        let due = ctx.store.due_timers(until, 10).await.unwrap();
        assert_eq!(due.len(), 1, "a re-check is due when the lease expires");
        assert_eq!(due[0].kind, "resume:page");
        assert!(ctx.store.due_timers(now, 10).await.unwrap().is_empty());
    }
}
