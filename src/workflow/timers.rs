//! Durable timers: what they do when they fire, and the scheduler that fires them.
//!
//! A timer is a row in the store (see `store::timers`) with a due time; the scheduler started by
//! the composition root fires what is due (also what came due while incd was down), claiming each
//! with a short lease so two processes never fire one together. Every kind re-checks, when it
//! fires, whether it is still wanted: a timer that outlived its reason does nothing.
//!
//! Kinds today: [`TimerKind::Resume`], set when another process held a workflow's lease; when
//! it fires and the workflow still has work left, this process takes it over (the other one
//! died, or it finished and there is nothing to do); and [`TimerKind::Review`], an incident's
//! next review reminder (see `workflow::review`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::incident::IncidentId;
use crate::store::NewTimer;
use crate::workflow::runner::{resume_plan, Runner};
use crate::workflow::steps::{Background, Workflow};

/// How often the scheduler looks for due timers (also the latest a timer fires after its time).
pub const POLL: Duration = Duration::from_secs(1);
/// How long a claim on a firing timer lasts: a process that died while firing leaves it to be
/// fired again after this.
const FIRE_LEASE: Duration = Duration::from_secs(60);
/// Timers fired per look.
const BATCH: usize = 32;

/// What a timer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Resume a workflow if it still has work left.
    Resume(Workflow),
    /// Nudge the commander if the incident still has no recent status update.
    Nudge,
    /// The incident's next review reminder (decided when it fires: see `workflow::review`).
    Review,
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerKind::Resume(w) => write!(f, "resume:{w}"),
            TimerKind::Nudge => f.write_str("nudge"),
            TimerKind::Review => f.write_str("review"),
        }
    }
}

impl FromStr for TimerKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<TimerKind> {
        if s == "nudge" {
            return Ok(TimerKind::Nudge);
        }
        if s == "review" {
            return Ok(TimerKind::Review);
        }
        let w = match s.strip_prefix("resume:") {
            Some("declare") => Workflow::Declare,
            Some("resolve") => Workflow::Resolve,
            Some(other) if other.starts_with("change:") => other["change:".len()..]
                .parse()
                .map(Workflow::Change)
                .with_context(|| format!("unknown timer kind {s:?}"))?,
            Some(other) => Background::ALL
                .into_iter()
                .find(|b| b.as_str() == other)
                .map(Workflow::Background)
                .with_context(|| format!("unknown timer kind {s:?}"))?,
            None => anyhow::bail!("unknown timer kind {s:?}"),
        };
        Ok(TimerKind::Resume(w))
    }
}

/// Schedule (or move) the timer of `kind` for incident `id`: one per incident and kind.
pub async fn schedule(
    runner: &Runner,
    id: IncidentId,
    kind: TimerKind,
    due_at: DateTime<Utc>,
) -> Result<()> {
    runner
        .ctx()
        .store
        .schedule_timer(NewTimer {
            key: format!("{kind}@{id}"),
            incident: id,
            kind: kind.to_string(),
            due_at,
        })
        .await
}

/// What firing a timer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// Still wanted: the work was started.
    Started,
    /// Re-checked and no longer wanted.
    NotNeeded,
}

/// Fire every due timer once. Returns what each did.
pub async fn fire_due(runner: &Arc<Runner>) -> Result<Vec<Fired>> {
    let ctx = runner.ctx();
    let now = ctx.clock.now();
    let lease = chrono::Duration::from_std(FIRE_LEASE).unwrap_or(chrono::Duration::seconds(60));
    let mut out = Vec::new();
    for t in ctx.store.due_timers(now, BATCH).await? {
        if !ctx
            .store
            .claim_timer(t.id, runner.owner(), now, now + lease)
            .await?
        {
            continue; // another process fires it
        }
        let fired = match t.kind.parse::<TimerKind>() {
            Ok(kind) => fire(runner, t.incident, kind).await?,
            Err(e) => {
                // Completed below so it does not come back every poll; said loudly once.
                tracing::error!(timer = %t.key, error = %e, "a timer of an unknown kind is dropped");
                Fired::NotNeeded
            }
        };
        ctx.store
            .complete_timer(t.id, runner.owner(), ctx.clock.now())
            .await?;
        out.push(fired);
    }
    Ok(out)
}

/// Re-check and act.
async fn fire(runner: &Arc<Runner>, id: IncidentId, kind: TimerKind) -> Result<Fired> {
    let store = &runner.ctx().store;
    match kind {
        TimerKind::Resume(w) => {
            let Some(inc) = store.incident(id).await? else {
                return Ok(Fired::NotNeeded);
            };
            let pending = store.pending_steps(id).await?;
            if !resume_plan(inc.status, &pending)?.contains(&w) {
                return Ok(Fired::NotNeeded);
            }
            runner.start(id, w);
            Ok(Fired::Started)
        }
        TimerKind::Nudge => super::nudges::fire(runner, id).await,
        TimerKind::Review => super::review::fire(runner, id).await,
    }
}

/// How often the scheduler also looks for unfinished work nobody runs (a dead replica's, once
/// its leases expired, or a workflow stopped by an error).
pub const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// Fire due timers until shutdown, and rescan for unfinished work every [`RESCAN_EVERY`].
pub async fn run_scheduler(runner: Arc<Runner>, mut shutdown: watch::Receiver<bool>) {
    let mut last_scan = tokio::time::Instant::now();
    loop {
        if let Err(e) = fire_due(&runner).await {
            tracing::error!(
                error = format!("{e:#}"),
                "firing timers failed; trying again"
            );
        }
        if last_scan.elapsed() >= RESCAN_EVERY {
            last_scan = tokio::time::Instant::now();
            if let Err(e) = runner.rescan().await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "looking for unfinished work failed; trying again"
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};
    use crate::store::StepState;
    use crate::workflow::runner::tests::{incident, test_runner};
    use crate::workflow::steps::StepKey;

    #[test]
    fn timer_kinds_read_back_as_themselves() {
        for w in [
            Workflow::Declare,
            Workflow::Resolve,
            Workflow::Background(Background::PageResolve),
        ] {
            let k = TimerKind::Resume(w);
            assert_eq!(k.to_string().parse::<TimerKind>().unwrap(), k);
        }
        assert_eq!("review".parse::<TimerKind>().unwrap(), TimerKind::Review);
        assert!("remind:declare".parse::<TimerKind>().is_err());
        assert!("resume:sms".parse::<TimerKind>().is_err());
    }

    #[tokio::test]
    async fn a_timer_fires_once_when_due_and_rechecks_whether_it_is_still_wanted() {
        let (runner, clock): (Arc<Runner>, TestClock) = test_runner();
        let ctx = runner.ctx().clone();
        let finished = incident(&ctx, "20261201-calm-otter").await;
        ctx.store
            .transition(finished, crate::incident::lifecycle::Transition::Declared)
            .await
            .unwrap();
        let waiting = incident(&ctx, "20261201-brisk-heron").await;
        ctx.store
            .transition(waiting, crate::incident::lifecycle::Transition::Declared)
            .await
            .unwrap();
        // The page step of `waiting` was left unfinished by another process.
        ctx.store
            .set_step(
                waiting,
                &StepKey::Background(Background::Page).to_string(),
                StepState::Started,
                None,
                clock.now(),
            )
            .await
            .unwrap();
        let due = clock.now() + chrono::Duration::seconds(30);
        let page = TimerKind::Resume(Workflow::Background(Background::Page));
        schedule(&runner, finished, page, due).await.unwrap();
        schedule(&runner, waiting, page, due).await.unwrap();

        assert!(fire_due(&runner).await.unwrap().is_empty(), "not due yet");
        clock.advance(Duration::from_secs(30));
        let mut fired = fire_due(&runner).await.unwrap();
        fired.sort_by_key(|f| *f == Fired::Started);
        assert_eq!(fired, vec![Fired::NotNeeded, Fired::Started]);
        clock.advance(Duration::from_secs(300));
        assert!(fire_due(&runner).await.unwrap().is_empty(), "fired once");
    }
}
