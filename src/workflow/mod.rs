//! Declare and resolve as durable workflows, their steps, and the runner that executes and
//! resumes them.
//!
//! The intent is recorded in the store before the envelope is acknowledged; [`runner`] records
//! each step's state (`started` before the call, `done` with its result after). A step that was
//! started but never finished (the process died mid-call) is re-run in a way that cannot
//! duplicate its effect: a channel Slack already created is found again and adopted, a message
//! already posted is found by its metadata marker. Independent steps run concurrently; only real
//! dependencies (the channel before anything in it, the summary before its pin) are awaited.
//!
//! On start, [`runner::Runner::resume_all`] picks up every unfinished workflow; [`timers`] fires
//! durable timers.

pub mod capture;
pub mod change;
pub mod close;
pub mod declare;
pub mod follow_ups;
pub mod home;
pub mod integrations;
pub mod nudges;
pub mod postmortem;
pub mod resolve;
pub mod review;
pub mod runner;
pub mod steps;
pub mod summary;
pub mod timers;

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::context::Ctx;
use crate::incident::{ChannelId, Incident, IncidentId, MessageTs, Status};
use crate::slack::api::SlackError;
use crate::slack::web::{Message, Method};
use runner::{retry_call, run_step, StepOutcome};
use steps::StepKey;

/// Post a message marked with `(incident, step)` so it can be found again. Returns its `ts`.
pub(crate) async fn post_once(
    ctx: &Ctx,
    incident: &Incident,
    step: &StepKey,
    post: Post<'_>,
) -> Result<MessageTs, SlackError> {
    let step = step.to_string();
    let ts = ctx
        .slack
        .post(Message {
            channel: post.channel,
            text: post.text,
            blocks: post.blocks,
            thread_ts: post.thread_ts,
            marker: (incident.name.as_str(), &step),
        })
        .await?;
    if ts.as_str().is_empty() {
        // Posted, but without its ts it cannot be recorded: look for it on the next attempt.
        return Err(SlackError::Transport {
            method: Method::ChatPostMessage.name().into(),
            detail: "the answer had no ts".into(),
        });
    }
    Ok(ts)
}

/// What a message step posts.
pub(crate) struct Post<'a> {
    pub channel: &'a ChannelId,
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<&'a MessageTs>,
}

/// Find a message incd posted for `(incident, step)` in `channel` since `since`.
pub(crate) async fn find_own_message(
    ctx: &Ctx,
    incident: &Incident,
    step: &StepKey,
    channel: &ChannelId,
    since: DateTime<Utc>,
) -> Result<Option<MessageTs>, SlackError> {
    let oldest = format!("{}.000000", (since.timestamp() - 60).max(0));
    ctx.slack
        .find_own_message(channel, incident.name.as_str(), &step.to_string(), &oldest)
        .await
}

/// Post once for `(incident, step)`: after an unknown outcome, look for the message by its
/// metadata marker (that lookup retried like any call) before posting again. A message posted by
/// an earlier run comes back as `Ran(ts)` too (its ts is recorded with the step), so whatever the
/// caller records next is recorded even when a restart came between the post and that record.
pub(crate) async fn post_step(
    ctx: &Ctx,
    incident: &Incident,
    step: StepKey,
    channel: &ChannelId,
    render: impl Fn() -> (String, Option<Value>),
    thread_ts: Option<&MessageTs>,
) -> Result<StepOutcome<MessageTs, SlackError>> {
    let key = step.clone();
    let outcome = run_step(
        ctx,
        incident.id,
        step,
        |a| {
            let (text, blocks) = render();
            let key = &key;
            async move {
                if a.maybe_applied {
                    // Top-level messages are found in the channel's history, thread replies in
                    // their thread.
                    let found = retry_call(ctx, key, || async {
                        match thread_ts {
                            None => find_own_message(ctx, incident, key, channel, a.first_at).await,
                            Some(parent) => {
                                ctx.slack
                                    .find_own_reply(
                                        channel,
                                        parent,
                                        incident.name.as_str(),
                                        &key.to_string(),
                                    )
                                    .await
                            }
                        }
                    })
                    .await?;
                    if let Some(ts) = found {
                        tracing::info!(incident = %incident.name, step = %key, "message was already posted; adopting it");
                        return Ok(ts);
                    }
                }
                post_once(
                    ctx,
                    incident,
                    key,
                    Post {
                        channel,
                        text,
                        blocks,
                        thread_ts,
                    },
                )
                .await
            }
        },
        |ts| Some(ts.to_string()),
    )
    .await?;
    Ok(match outcome {
        StepOutcome::AlreadyDone(Some(ts)) if !ts.is_empty() => {
            StepOutcome::Ran(MessageTs::from(ts))
        }
        other => other,
    })
}

/// Wait until the incident's channel exists (declare creates it), up to `limit`. `None` when
/// declaring failed or the limit passed.
pub(crate) async fn wait_for_channel(
    ctx: &Ctx,
    id: IncidentId,
    limit: Duration,
) -> Result<Option<ChannelId>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = ctx.channel_created.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match ctx.store.incident(id).await? {
            Some(inc) if inc.channel_id.is_some() => return Ok(inc.channel_id),
            Some(inc) if inc.status == Status::Failed => return Ok(None),
            Some(_) => {}
            None => return Ok(None),
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(None);
        }
    }
}

/// `chat.update` of a message incd posted, retried like any call (an update is idempotent).
pub(crate) async fn update_message(
    ctx: &Ctx,
    key: &StepKey,
    channel: &ChannelId,
    ts: &MessageTs,
    text: &str,
    blocks: &Value,
) -> Result<(), SlackError> {
    retry_call(ctx, key, || ctx.slack.update(channel, ts, text, blocks)).await
}
