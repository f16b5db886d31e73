//! Nudges: when an open incident has had no status update for its severity's interval, its
//! commander gets a direct message with buttons to post an update or snooze. One durable timer
//! per incident (`nudge@<id>`), moved by every status update or severity change, re-checked
//! when it fires (a resolved incident, or one updated meanwhile, is not nudged). The nudge is
//! recorded before the message is sent, so a restart never sends it twice.

use std::sync::Arc;

use anyhow::Result;

use crate::incident::nudge::{Interval, NudgeClock, NudgeDecision};
use crate::incident::roles::Role;
use crate::incident::{ChannelId, Incident, IncidentId, Status};
use crate::slack::ui;
use crate::slack::web::Message;
use crate::workflow::runner::Runner;
use crate::workflow::timers::{schedule as schedule_timer, Fired, TimerKind};

async fn clock(runner: &Runner, inc: &Incident) -> Result<NudgeClock> {
    let (last_nudged_at, snoozed_until) = runner.ctx().store.nudge_state(inc.id).await?;
    Ok(NudgeClock {
        last_update_at: inc.last_update_at.unwrap_or(inc.declared_at),
        last_nudged_at,
        snoozed_until,
    })
}

/// (Re)schedule the incident's nudge for when it is next due (after an update, a severity
/// change, a snooze, or the declaration); cancel it when none is due.
pub async fn schedule(runner: &Runner, id: IncidentId) -> Result<()> {
    let store = &runner.ctx().store;
    let Some(inc) = store.incident(id).await? else {
        return Ok(());
    };
    let policy = &runner.ctx().settings.nudges;
    let next = if inc.status == Status::Open {
        policy.next_nudge_at(inc.severity.as_str(), &clock(runner, &inc).await?)
    } else {
        None
    };
    match next {
        Some(due) => schedule_timer(runner, id, TimerKind::Nudge, due).await,
        None => store
            .cancel_timer(&format!("{}@{id}", TimerKind::Nudge))
            .await
            .map(|_| ()),
    }
}

/// The nudge timer fired: re-check, nudge if due, and set the next one.
pub async fn fire(runner: &Arc<Runner>, id: IncidentId) -> Result<Fired> {
    let ctx = runner.ctx();
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(Fired::NotNeeded);
    };
    let now = ctx.clock.now();
    let c = clock(runner, &inc).await?;
    let decision =
        ctx.settings
            .nudges
            .decide(inc.severity.as_str(), &c, inc.status == Status::Open, now);
    match decision {
        NudgeDecision::Stop => Ok(Fired::NotNeeded),
        NudgeDecision::Wait { until } => {
            schedule_timer(runner, id, TimerKind::Nudge, until).await?;
            Ok(Fired::NotNeeded)
        }
        NudgeDecision::Nudge { since_update } => {
            if !ctx.store.record_nudge(id, c.last_nudged_at, now).await? {
                return Ok(Fired::NotNeeded); // another firing nudged meanwhile
            }
            schedule(runner, id).await?;
            let Some(commander) = inc.roles.holder(Role::Commander).cloned() else {
                return Ok(Fired::Started);
            };
            let snooze = match ctx.settings.nudges.interval(inc.severity.as_str()) {
                Interval::Every(d) => humantime::format_duration(d).to_string(),
                Interval::Off => String::new(),
            };
            let (text, blocks) = ui::lifecycle::nudge(&inc, since_update, &snooze);
            let dm = ChannelId::from(commander.as_str());
            let sent = ctx
                .slack
                .post(Message {
                    channel: &dm,
                    text,
                    blocks: Some(blocks),
                    thread_ts: None,
                    marker: (inc.name.as_str(), "nudge"),
                })
                .await;
            match sent {
                Ok(_) => tracing::info!(incident = %inc.name, "commander nudged"),
                Err(e) => {
                    tracing::warn!(incident = %inc.name, error = %e, "could not nudge the commander")
                }
            }
            Ok(Fired::Started)
        }
    }
}

/// The Snooze button: no nudge for one interval from now.
pub async fn snooze(runner: &Runner, id: IncidentId) -> Result<()> {
    let ctx = runner.ctx();
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(());
    };
    if let Interval::Every(d) = ctx.settings.nudges.interval(inc.severity.as_str()) {
        let until = ctx.clock.now() + crate::incident::nudge::to_chrono(d);
        ctx.store.snooze_nudges(id, until).await?;
    }
    schedule(runner, id).await
}
