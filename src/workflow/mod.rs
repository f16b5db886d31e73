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

pub mod declare;
pub mod integrations;
pub mod resolve;
pub mod runner;
pub mod steps;
pub mod summary;
pub mod timers;

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::incident::{ChannelId, Incident, IncidentId, MessageTs, Status};
use crate::slack::api::SlackError;
use runner::{retry_call, run_step, StepOutcome};
use steps::StepKey;

/// `event_type` of the metadata incd attaches to its messages, to find them again.
pub const MESSAGE_MARKER: &str = "incd_step";

/// What a message step posts.
pub(crate) struct Post<'a> {
    pub channel: &'a ChannelId,
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<&'a MessageTs>,
}

/// Post a message marked with `(incident, step)` so it can be found again. Returns its `ts`.
pub(crate) async fn post_once(
    ctx: &Ctx,
    incident: &Incident,
    step: &StepKey,
    post: Post<'_>,
) -> Result<MessageTs, SlackError> {
    let mut args = json!({
        "channel": post.channel,
        "text": post.text,
        "unfurl_links": false,
        "unfurl_media": false,
        "metadata": {
            "event_type": MESSAGE_MARKER,
            "event_payload": {"incident": incident.name.as_str(), "step": step.to_string()}
        }
    });
    if let Some(b) = post.blocks {
        args["blocks"] = b;
    }
    if let Some(t) = post.thread_ts {
        args["thread_ts"] = json!(t);
    }
    let resp = ctx.slack.call("chat.postMessage", args).await?;
    match resp.get("ts").and_then(Value::as_str) {
        Some(ts) => Ok(MessageTs::from(ts)),
        None => Err(SlackError::Transport {
            method: "chat.postMessage".into(),
            detail: "the answer had no ts".into(),
        }),
    }
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
    let step = step.to_string();
    let resp = ctx
        .slack
        .call_form(
            "conversations.history",
            &[
                ("channel", channel.as_str()),
                ("oldest", &oldest),
                ("limit", "200"),
                ("include_all_metadata", "true"),
            ],
        )
        .await?;
    let found = resp
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|m| {
            let md = &m["metadata"];
            md["event_type"] == MESSAGE_MARKER
                && md["event_payload"]["incident"] == incident.name.as_str()
                && md["event_payload"]["step"] == step.as_str()
        })
        .and_then(|m| m.get("ts").and_then(Value::as_str))
        .map(MessageTs::from);
    Ok(found)
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
                if a.maybe_applied && thread_ts.is_none() {
                    let found = retry_call(ctx, key, || {
                        find_own_message(ctx, incident, key, channel, a.first_at)
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
    args: Value,
) -> Result<(), SlackError> {
    retry_call(ctx, key, || ctx.slack.call("chat.update", args.clone()))
        .await
        .map(|_| ())
}
