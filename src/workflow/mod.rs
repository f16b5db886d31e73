//! Declare and resolve as durable workflows, and the runner that executes and resumes them.
//!
//! The intent is recorded in the store before the envelope is acknowledged; each step records
//! its state (`started` before the call, `done` with its result after). A step that was started
//! but never finished (the process died mid-call) is re-run in a way that cannot duplicate its
//! effect: a channel Slack already created is found again and adopted, a message already posted
//! is found by its metadata marker. Independent steps run concurrently; only real dependencies
//! (the channel before anything in it, the summary before its pin) are awaited.
//!
//! On start, [`resume_all`] picks up every unfinished workflow.

pub mod declare;
pub mod integrations;
pub mod resolve;
pub mod summary;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::app::App;
use crate::incident::ids::{ChannelId, MessageTs};
use crate::incident::{Incident, Status};
use crate::slack::api::{jitter, SlackError};
use crate::slack::web::Message;
use crate::store::StepState;

/// Attempts for a Slack step whose call failed without a usable answer (timeout, 5xx).
pub const SLACK_STEP_ATTEMPTS: u32 = 5;
/// First backoff between those attempts; doubles each time.
pub const SLACK_STEP_BACKOFF: Duration = Duration::from_millis(500);

/// Run a Slack step once to completion, recording its state. Returns `None` when the step was
/// already done earlier or failed for good (logged and recorded; the workflow goes on).
///
/// `attempt` receives `maybe_applied`: true when an earlier attempt's outcome is unknown, so the
/// step must first look for its own effect before acting again.
pub(crate) async fn slack_step<T, F, Fut>(
    app: &App,
    incident_id: i64,
    step: &str,
    attempt: F,
) -> Option<T>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<T, SlackError>>,
{
    run_step(app, incident_id, step, attempt, |_| None)
        .await
        .value()
}

/// How a step run ended.
pub(crate) enum StepOutcome<T> {
    Ran(T),
    /// Done in an earlier run; nothing was called.
    AlreadyDone,
    /// Failed for good (recorded and logged); the last Slack error, if Slack was reached at all.
    Failed(Option<SlackError>),
}

impl<T> StepOutcome<T> {
    /// The result of a run that called Slack and succeeded.
    pub(crate) fn value(self) -> Option<T> {
        match self {
            StepOutcome::Ran(v) => Some(v),
            StepOutcome::AlreadyDone | StepOutcome::Failed(_) => None,
        }
    }
}

/// [`slack_step`], telling how it ended. `detail_of` gives what to record with the step when it
/// is done (a message's ts, to be found again after a restart).
pub(crate) async fn run_step<T, F, Fut>(
    app: &App,
    incident_id: i64,
    step: &str,
    mut attempt: F,
    detail_of: impl Fn(&T) -> Option<String>,
) -> StepOutcome<T>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Result<T, SlackError>>,
{
    let prior = match app.store.step(incident_id, step) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(incident_id, step, error = %e, "store unavailable");
            return StepOutcome::Failed(None);
        }
    };
    if prior.as_ref().is_some_and(|p| p.state == StepState::Done) {
        return StepOutcome::AlreadyDone;
    }
    let mut maybe_applied = prior
        .as_ref()
        .is_some_and(|p| p.state == StepState::Started);
    for n in 0..SLACK_STEP_ATTEMPTS {
        let _ = app
            .store
            .set_step(incident_id, step, StepState::Started, None);
        match attempt(maybe_applied).await {
            Ok(v) => {
                let detail = detail_of(&v);
                let _ = app
                    .store
                    .set_step(incident_id, step, StepState::Done, detail.as_deref());
                app.metrics.step(step, "done");
                return StepOutcome::Ran(v);
            }
            Err(e @ SlackError::Transport { .. }) if n + 1 < SLACK_STEP_ATTEMPTS => {
                maybe_applied = true;
                app.metrics.step(step, "retry");
                let _ =
                    app.store
                        .set_step(incident_id, step, StepState::Failed, Some(&e.to_string()));
                tracing::warn!(incident_id, step, error = %e, "step failed; retrying");
                tokio::time::sleep(jitter(SLACK_STEP_BACKOFF * 2u32.pow(n))).await;
            }
            Err(e) => {
                app.metrics.step(step, "failed");
                let _ =
                    app.store
                        .set_step(incident_id, step, StepState::GaveUp, Some(&e.to_string()));
                tracing::error!(incident_id, step, error = %e, "step failed");
                return StepOutcome::Failed(Some(e));
            }
        }
    }
    StepOutcome::Failed(None)
}

/// What a message step posts.
pub(crate) struct Post<'a> {
    pub channel: &'a str,
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<&'a str>,
}

/// Post a message exactly once for `(incident, step)`: after an unknown outcome, look for the
/// message by its metadata marker before posting again. Returns its `ts`.
pub(crate) async fn post_once(
    app: &App,
    incident: &Incident,
    step: &str,
    post: Post<'_>,
) -> Result<String, SlackError> {
    let channel = ChannelId::from(post.channel);
    let thread_ts = post.thread_ts.map(MessageTs::from);
    let ts = app
        .slack
        .post(Message {
            channel: &channel,
            text: post.text,
            blocks: post.blocks,
            thread_ts: thread_ts.as_ref(),
            marker: (incident.name.as_str(), step),
        })
        .await?;
    Ok(ts.0)
}

/// Find a message incd posted for `(incident, step)` in `channel` since `since`.
pub(crate) async fn find_own_message(
    app: &App,
    incident: &Incident,
    step: &str,
    channel: &str,
    since: DateTime<Utc>,
) -> Result<Option<String>, SlackError> {
    let oldest = format!("{}.000000", (since.timestamp() - 60).max(0));
    let found = app
        .slack
        .find_own_message(
            &ChannelId::from(channel),
            incident.name.as_str(),
            step,
            &oldest,
        )
        .await?;
    Ok(found.map(|ts| ts.0))
}

/// Post once, looking for an earlier copy first when the outcome of a previous attempt is
/// unknown. Wraps [`slack_step`].
pub(crate) async fn post_step(
    app: &App,
    incident: &Incident,
    step: &str,
    channel: &str,
    render: impl Fn() -> (String, Option<Value>),
    thread_ts: Option<&str>,
) -> Option<String> {
    post_step_outcome(app, incident, step, channel, render, thread_ts)
        .await
        .value()
}

/// [`post_step`], telling how it ended. A message posted by an earlier run comes back as
/// `Ran(ts)` too (its ts is recorded with the step), so whatever the caller records next is
/// recorded even when a restart came between the post and that record.
pub(crate) async fn post_step_outcome(
    app: &App,
    incident: &Incident,
    step: &str,
    channel: &str,
    render: impl Fn() -> (String, Option<Value>),
    thread_ts: Option<&str>,
) -> StepOutcome<String> {
    let prior = app.store.step(incident.id, step).ok().flatten();
    if let Some(p) = &prior {
        if p.state == StepState::Done {
            return match p.detail.clone() {
                Some(ts) if !ts.is_empty() => StepOutcome::Ran(ts),
                _ => StepOutcome::AlreadyDone,
            };
        }
    }
    let first_at = prior.map(|s| s.first_at).unwrap_or_else(Utc::now);
    run_step(app, incident.id, step, |maybe_applied| {
        let (text, blocks) = render();
        async move {
            if maybe_applied && thread_ts.is_none() {
                if let Some(ts) = find_own_message(app, incident, step, channel, first_at).await? {
                    tracing::info!(incident = %incident.name, step, "message was already posted; adopting it");
                    return Ok(ts);
                }
            }
            post_once(
                app,
                incident,
                step,
                Post {
                    channel,
                    text,
                    blocks,
                    thread_ts,
                },
            )
            .await
        }
    }, |ts| Some(ts.clone()))
    .await
}

/// Wait until the incident's channel exists (declare creates it), up to `limit`. `None` when
/// declaring failed or the limit passed.
pub(crate) async fn wait_for_channel(app: &App, id: i64, limit: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = app.channel_created.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match app.store.incident(id) {
            Ok(Some(inc)) if inc.channel_id.is_some() => return inc.channel_id,
            Ok(Some(inc)) if inc.status == Status::Failed => return None,
            Ok(Some(_)) => {}
            _ => return None,
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return None;
        }
    }
}

/// Resume every unfinished workflow (on start).
pub fn resume_all(app: &Arc<App>) -> Result<usize> {
    let unfinished = app.store.unfinished()?;
    let n = unfinished.len();
    for inc in unfinished {
        tracing::info!(incident = %inc.name, status = inc.status.as_str(), "resuming unfinished work");
        match inc.status {
            Status::Declaring => app.spawn_declare(inc.id),
            Status::Resolving => app.spawn_resolve(inc.id),
            Status::Open | Status::Resolved => integrations::resume(app, &inc),
            Status::Failed => {}
        }
    }
    Ok(n)
}
