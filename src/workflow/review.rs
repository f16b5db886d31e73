//! Review reminders: a durable timer per resolved incident (`review@<id>`), set when the
//! incident is resolved, cancelled when it is reopened. When it fires, the schedule
//! (`INCD_REVIEW_AFTER`, `INCD_REVIEW_EVERY`) decides from the store as it is then: stop for
//! good (closed and no follow-up open), wait, or remind. A reminder is recorded for its due time
//! before anything is sent (so it is sent once per due time across restarts) and sent by the
//! workflow `review:<due ms>`, which computes the list of open follow-ups and the recipients when
//! it runs: the channel (with a *Close* button) and the commander; after the channel is
//! archived, the commander and every owner of an open follow-up by DM.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::runner::{run_step, Runner, StepOutcome};
use super::steps::{StepKey, Workflow};
use super::timers::{schedule, Fired, TimerKind};
use super::{post_once, post_step, Post};
use crate::incident::review::{recipients, reminders_continue, ReviewDecision, ReviewFacts};
use crate::incident::{ChannelId, IncidentId, Status};
use crate::slack::ui;
use crate::store::StepState;

/// Set the review timer of an incident just resolved (its first reminder's due time).
pub async fn start(runner: &Runner, id: IncidentId, resolved_at: DateTime<Utc>) -> Result<()> {
    let due = runner.ctx().settings.review.first_due(resolved_at);
    schedule(runner, id, TimerKind::Review, due).await
}

/// Cancel the review timer (the incident was reopened).
pub async fn cancel(runner: &Runner, id: IncidentId) -> Result<()> {
    runner
        .ctx()
        .store
        .cancel_timer(&format!("{}@{id}", TimerKind::Review))
        .await?;
    Ok(())
}

/// The review timer fired: decide from the store as it is now.
pub async fn fire(runner: &Arc<Runner>, id: IncidentId) -> Result<Fired> {
    let ctx = runner.ctx();
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(Fired::NotNeeded);
    };
    let (Some(resolved_at), true) = (
        inc.resolved_at,
        matches!(inc.status, Status::Resolved | Status::Closed),
    ) else {
        return Ok(Fired::NotNeeded); // reopened (or not resolved yet): nothing to review
    };
    let open = ctx
        .store
        .follow_ups(id)
        .await?
        .iter()
        .filter(|f| f.is_open())
        .count();
    let facts = ReviewFacts {
        resolved_at,
        last_reminded_for: ctx.store.review_reminded_for(id).await?,
        closed: inc.status == Status::Closed,
        open_follow_ups: open,
    };
    let now = ctx.clock.now();
    match ctx.settings.review.decide(now, &facts) {
        ReviewDecision::Stop => {
            tracing::info!(incident = %inc.name, "closed and nothing open: review reminders stop");
            Ok(Fired::NotNeeded)
        }
        ReviewDecision::Wait { until } => {
            schedule(runner, id, TimerKind::Review, until).await?;
            Ok(Fired::NotNeeded)
        }
        ReviewDecision::Remind { due_at, next_at } => {
            let w = Workflow::Review(due_at.timestamp_millis());
            let marker = StepKey::of(w).to_string();
            if ctx
                .store
                .record_review_reminder(id, due_at, &marker, now)
                .await?
            {
                runner.start(id, w);
            }
            schedule(runner, id, TimerKind::Review, next_at).await?;
            Ok(Fired::Started)
        }
    }
}

/// Send the reminder for the due time `due_ms`, computed now.
pub async fn run(runner: &Arc<Runner>, id: IncidentId, due_ms: i64) -> Result<()> {
    let ctx = runner.ctx();
    let inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    let follow_ups = ctx.store.follow_ups(id).await?;
    let open: Vec<_> = follow_ups.iter().filter(|f| f.is_open()).cloned().collect();
    let closed = inc.status == Status::Closed;
    if !matches!(inc.status, Status::Resolved | Status::Closed)
        || !reminders_continue(closed, open.len())
    {
        return Ok(()); // no longer wanted since it was due
    }
    let archived = ctx
        .store
        .step(id, &StepKey::Archive.to_string())
        .await?
        .is_some_and(|s| s.state == StepState::Done && s.detail.as_deref() == Some("archived"));
    let to = recipients(archived, inc.commander.as_ref(), &follow_ups);
    let tz = ctx.settings.incidents.timezone;
    if to.channel {
        if let Some(channel) = inc.channel_id.clone() {
            let (text, blocks) = ui::review_reminder(&inc, &open, tz, true);
            if let StepOutcome::Failed(e) = post_step(
                ctx,
                &inc,
                StepKey::ReviewPost(due_ms),
                &channel,
                || (text.clone(), Some(blocks.clone())),
                None,
            )
            .await?
            {
                tracing::warn!(incident = %inc.name, error = %e, "could not post the review reminder");
            }
        }
    }
    for user in to.direct {
        let key = StepKey::ReviewDm(due_ms, user.clone());
        let dm = ChannelId::from(user.as_str());
        let (text, blocks) = ui::review_reminder(&inc, &open, tz, false);
        // Like the follow-up DM, a DM is not searched after an unknown outcome.
        let out = run_step(
            ctx,
            id,
            key.clone(),
            |_| {
                post_once(
                    ctx,
                    &inc,
                    &key,
                    Post {
                        channel: &dm,
                        text: text.clone(),
                        blocks: Some(blocks.clone()),
                        thread_ts: None,
                    },
                )
            },
            |ts| Some(ts.to_string()),
        )
        .await?;
        if let StepOutcome::Failed(e) = out {
            tracing::warn!(incident = %inc.name, user = %user, error = %e, "could not send the review reminder");
        }
    }
    Ok(())
}
