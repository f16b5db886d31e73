//! `/incident follow-up|follow-ups|done|wontdo` and the follow-up buttons (*Done*, *Won't do*)
//! in the owner's DM and the ephemeral list.
//!
//! Adding or closing a follow-up is recorded inside the ack (intent lane) and answered
//! ephemerally; posting it, the owner's DM and the summary count follow after the ack.

use std::sync::Arc;

use super::{Failure, Outcome};
use crate::incident::command::IncidentCommand;
use crate::incident::follow_up::{Closure, FollowUpRef};
use crate::incident::{Incident, IncidentId, UserId};
use crate::slack::inbound::{BlockActions, SlashCommand};
use crate::slack::meta::FollowUpButton;
use crate::slack::socket::Handled;
use crate::slack::ui::{self, FOLLOW_UP_DONE_ACTION, FOLLOW_UP_WONTDO_ACTION};
use crate::store::StepState;
use crate::store::{FollowUpClosed, NewFollowUp};
use crate::workflow::runner::Runner;
use crate::workflow::steps::{StepKey, Workflow};

/// The `/incident` words handled here (and by `handlers/close.rs`).
const OWN_WORDS: &[&str] = &[
    "follow-up",
    "followup",
    "follow-ups",
    "followups",
    "done",
    "wontdo",
    "wont-do",
    "close",
    "reopen",
];

/// The `/incident` text parsed, when it is one of the after-the-incident subcommands: `None`
/// leaves the command to the other handlers (declare today).
pub fn parse(app: &Arc<Runner>, text: &str) -> Option<Result<IncidentCommand, String>> {
    let first = text.split_whitespace().next().unwrap_or_default();
    if !OWN_WORDS.contains(&first.to_lowercase().as_str()) {
        return None;
    }
    let levels: Vec<&str> = app
        .ctx()
        .settings
        .incidents
        .severities
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    Some(IncidentCommand::parse(text, &levels).map_err(|e| e.to_string()))
}

fn store_failure(e: anyhow::Error) -> Failure {
    Failure::new(e.context("store unavailable"), Some(ui::internal_error()))
}

/// The incident whose channel the command was typed in, or the refusal to answer with.
pub async fn incident_here(
    app: &Arc<Runner>,
    c: &SlashCommand,
    cmd: &IncidentCommand,
) -> Result<Result<Incident, Handled>, Failure> {
    let inc = app
        .ctx()
        .store
        .incident_by_channel(&c.channel_id)
        .await
        .map_err(store_failure)?;
    Ok(inc.ok_or_else(|| Handled::reply(Some(ui::subcommand_outside_incident(cmd.name())))))
}

/// `/incident follow-up <title> [owner @u] [due YYYY-MM-DD]`, `follow-ups`, `done F-n`,
/// `wontdo F-n` in `inc`'s channel.
pub async fn on_command(
    app: &Arc<Runner>,
    c: &SlashCommand,
    inc: Incident,
    cmd: IncidentCommand,
) -> Outcome {
    let ctx = app.ctx();
    match cmd {
        IncidentCommand::FollowUp { title, owner, due } => {
            let added = ctx
                .store
                .add_follow_up(NewFollowUp {
                    incident: inc.id,
                    title,
                    owner,
                    due,
                    by: c.user_id.clone(),
                    at: ctx.clock.now(),
                    steps: crate::workflow::follow_ups::pending_steps,
                })
                .await
                .map_err(|e| {
                    Failure::new(
                        e.context("could not record the follow-up"),
                        Some(ui::internal_error()),
                    )
                })?;
            let app = app.clone();
            let id = inc.id;
            let n = added.0.number;
            Ok(Handled::reply(Some(ui::follow_up_added(&added.0)))
                .then(move || app.start(id, Workflow::FollowUp(n))))
        }
        IncidentCommand::FollowUps => {
            let all = ctx
                .store
                .follow_ups_for_ack(inc.id)
                .await
                .map_err(store_failure)?;
            Ok(Handled::reply(Some(ui::follow_up_list(&inc, &all))))
        }
        IncidentCommand::Done(r) => close(app, &inc, r, Closure::Done, &c.user_id).await,
        IncidentCommand::WontDo(r) => close(app, &inc, r, Closure::WontDo, &c.user_id).await,
        other => Ok(Handled::reply(Some(ui::follow_up_refused(&format!(
            "`/incident {}` is not handled here.",
            other.name()
        ))))),
    }
}

/// Close a follow-up; the answer is the ack, the summary count follows after it.
async fn close(
    app: &Arc<Runner>,
    inc: &Incident,
    r: FollowUpRef,
    closure: Closure,
    by: &UserId,
) -> Outcome {
    let answer = close_and_answer(app, inc, r, closure, by).await?;
    let (value, changed) = answer;
    let handled = Handled::reply(Some(value));
    if !changed {
        return Ok(handled);
    }
    let app = app.clone();
    let id = inc.id;
    Ok(handled.then(move || after_change(&app, id)))
}

async fn close_and_answer(
    app: &Arc<Runner>,
    inc: &Incident,
    r: FollowUpRef,
    closure: Closure,
    by: &UserId,
) -> Result<(serde_json::Value, bool), Failure> {
    let ctx = app.ctx();
    let closed = ctx
        .store
        .close_follow_up(inc.id, r, closure, by, ctx.clock.now())
        .await
        .map_err(|e| {
            Failure::new(
                e.context("could not record the follow-up's state"),
                Some(ui::internal_error()),
            )
        })?;
    Ok(match closed {
        FollowUpClosed::Changed(f) => (ui::follow_up_closed(inc, &f, true), true),
        FollowUpClosed::NoChange(f) => (ui::follow_up_closed(inc, &f, false), false),
        FollowUpClosed::Refused(e) => (ui::follow_up_refused(&e.to_string()), false),
    })
}

/// What follows a follow-up's change: the pinned summary's count, unless the channel was
/// archived (an archived channel's messages cannot change).
fn after_change(app: &Arc<Runner>, id: IncidentId) {
    let r = app.clone();
    app.spawn_tracked(async move {
        let ctx = r.ctx();
        let archived = match ctx.store.step(id, &StepKey::Archive.to_string()).await {
            Ok(s) => s.is_some_and(|s| {
                s.state == StepState::Done && s.detail.as_deref() == Some("archived")
            }),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "store unavailable");
                return;
            }
        };
        if archived {
            return;
        }
        if let Err(e) = crate::workflow::summary::refresh(ctx, id).await {
            tracing::error!(error = format!("{e:#}"), "could not refresh the summary");
        }
    });
}

/// Whether a pressed button is a follow-up's.
pub fn is_follow_up_action(action_id: &str) -> bool {
    action_id == FOLLOW_UP_DONE_ACTION || action_id == FOLLOW_UP_WONTDO_ACTION
}

/// *Done* / *Won't do* pressed (in the owner's DM or the list): recorded inside the ack, the
/// answer goes to the person through the action's `response_url`.
pub async fn on_actions(app: &Arc<Runner>, a: BlockActions) -> Outcome {
    let ctx = app.ctx();
    let mut answers = Vec::new();
    let mut changed_incidents = Vec::new();
    for action in a
        .actions
        .iter()
        .filter(|x| is_follow_up_action(&x.action_id))
    {
        let button = match FollowUpButton::decode(action.value.as_deref().unwrap_or_default()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "follow-up button ignored");
                continue;
            }
        };
        let closure = if action.action_id == FOLLOW_UP_DONE_ACTION {
            Closure::Done
        } else {
            Closure::WontDo
        };
        let Some(inc) = ctx
            .store
            .incident(button.incident)
            .await
            .map_err(store_failure)?
        else {
            continue;
        };
        let (value, changed) =
            close_and_answer(app, &inc, button.follow_up, closure, &a.user.id).await?;
        if changed {
            changed_incidents.push(inc.id);
        }
        answers.push(value);
    }
    let url = a.response_url.clone().unwrap_or_default();
    let app = app.clone();
    Ok(Handled::default().then(move || {
        for id in changed_incidents {
            after_change(&app, id);
        }
        let r = app.clone();
        app.spawn_tracked(async move {
            for v in answers {
                let text = v["text"].as_str().unwrap_or_default().to_string();
                if url.is_empty() {
                    continue;
                }
                if let Err(e) = r.ctx().slack.respond(&url, &text).await {
                    tracing::warn!(error = %e, "could not answer the button press");
                }
            }
        });
    }))
}
