//! The declare workflow: channel, then everything in and about it at once.
//!
//! Critical path: `conversations.create` -> `chat.postMessage` (summary) -> `pins.add`. Invites,
//! topic, announcements and the reply to the reporter run beside it; paging and the post-mortem
//! start at submit, beside channel creation (they need only the name), and run in the background
//! with their own retries, so a broken integration never holds the Slack side back.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::app::App;
use crate::incident::ids::{ChannelId, MessageTs, UserId};
use crate::incident::naming::draw_name;
use crate::incident::{Incident, Status};
use crate::slack::api::SlackError;
use crate::slack::ui;
use crate::slack::web::CreateChannelError;
use crate::store::StepState;
use crate::workflow::{
    integrations, post_step, post_step_outcome, slack_step, summary, StepOutcome,
};

/// How many names to try when Slack says `name_taken` for names we never used.
pub const NAME_ATTEMPTS: usize = 5;
/// Draws per name attempt when checking the store for collisions.
const DRAWS_PER_NAME: usize = 50;

/// Run (or resume) the declare workflow of incident `id`.
pub async fn run(app_arc: Arc<App>, id: i64) -> Result<()> {
    let app: &App = &app_arc;
    let _guard = app.lock_incident(id).await;
    let mut inc = app
        .store
        .incident(id)?
        .context("incident disappeared from the store")?;
    if inc.status == Status::Failed {
        return Ok(());
    }
    // Paging and the post-mortem need only the incident's name (their Slack link uses the
    // channel name until the id is known): start them now, beside channel creation, once the
    // `conversations.create` request (the critical path) has left.
    if inc.channel_id.is_none() {
        let snapshot = inc.clone();
        let start = off_critical_path(async { integrations::start_declare(&app_arc, &snapshot) });
        let (created, ()) = tokio::join!(create_channel(app, &mut inc), start);
        match created {
            Ok(()) => {}
            Err(reason) => {
                tracing::error!(incident = %inc.name, %reason, "could not create the incident channel");
                app.store.set_status(id, Status::Failed)?;
                // Wake integration steps waiting for the channel: none will come.
                app.channel_created.notify_waiters();
                integrations::declare_failed(&app_arc, id);
                send_to_reporter(app, &inc, &ui::declare_failed_reply(&inc.title, &reason)).await;
                return Ok(());
            }
        }
    } else {
        integrations::start_declare(&app_arc, &inc);
    }
    let channel = inc.channel_id.clone().unwrap_or_default();

    let summary = async {
        let ts = summary::post(app, id, &channel).await;
        if let Some(ts) = ts {
            // Pin, and catch up with links that arrived while the summary was being posted.
            let pin = slack_step(app, id, "pin", |_| {
                let (channel, ts) = (
                    ChannelId::from(channel.as_str()),
                    MessageTs::from(ts.as_str()),
                );
                async move { app.slack.pin(&channel, &ts).await }
            });
            tokio::join!(pin, summary::refresh(app, id));
        }
    };

    let announce = async {
        let futs = app
            .settings
            .slack
            .broadcast_channels
            .iter()
            .map(|bc| announce_in(app, &inc, bc));
        futures_util::future::join_all(futs).await;
    };

    // The summary is on the critical path (post, then pin): polled first, and the rest wait one
    // scheduler turn so that its request is written before theirs.
    tokio::join!(
        summary,
        off_critical_path(invite(app, &inc, &channel)),
        off_critical_path(set_topic(app, &inc, &channel)),
        off_critical_path(announce),
        off_critical_path(reply_to_reporter(app, &inc)),
    );

    app.store.mark_declared(id)?;
    tracing::info!(incident = %inc.name, channel = %channel, "incident declared");
    Ok(())
}

/// Run `f` after one turn of the scheduler. Tokio runs the task it woke last first, so requests
/// started together leave in reverse order; yielding lets the critical-path request (started
/// just before) reach the socket before these do. Costs them microseconds.
async fn off_critical_path<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::yield_now().await;
    f.await
}

/// Create `incd-<name>`; on `name_taken` adopt our own channel (a previous attempt created it) or
/// draw another name. Records the channel id. `Err` carries a reason for the reporter.
async fn create_channel(app: &App, inc: &mut Incident) -> Result<(), String> {
    let mut maybe_created = app
        .store
        .step(inc.id, "create_channel")
        .ok()
        .flatten()
        .is_some_and(|s| s.state != StepState::Done);
    let mut names_tried = 0;
    let mut transport_failures = 0;
    loop {
        let name = inc.name.channel_name();
        let _ = app
            .store
            .set_step(inc.id, "create_channel", StepState::Started, None);
        let result = app.slack.create_channel(&name).await;
        match result {
            Ok(id) => return record_channel(app, inc, id.as_str()),
            Err(e @ CreateChannelError::NoChannelId) => return Err(e.to_string()),
            Err(CreateChannelError::NameTaken) => {
                if maybe_created {
                    match find_own_channel(app, &name).await {
                        Ok(Some(id)) => {
                            tracing::info!(incident = %inc.name, channel = %id, "channel was created by an earlier attempt; adopting it");
                            return record_channel(app, inc, &id);
                        }
                        Ok(None) => {}
                        Err(e) => return Err(e.human()),
                    }
                }
                names_tried += 1;
                if names_tried >= NAME_ATTEMPTS {
                    let _ = app.store.set_step(
                        inc.id,
                        "create_channel",
                        StepState::GaveUp,
                        Some("name_taken"),
                    );
                    return Err(ui::names_taken_reason(names_tried));
                }
                let new_name = new_name(app, inc).ok_or_else(ui::no_name_left_reason)?;
                tracing::warn!(old = %inc.name, new = %new_name, "channel name taken in Slack; drawing another");
                inc.name = new_name;
                maybe_created = false;
            }
            Err(CreateChannelError::Slack(e @ SlackError::Transport { .. })) => {
                transport_failures += 1;
                maybe_created = true;
                let _ = app.store.set_step(
                    inc.id,
                    "create_channel",
                    StepState::Failed,
                    Some(&e.to_string()),
                );
                if transport_failures >= super::SLACK_STEP_ATTEMPTS {
                    return Err(e.human());
                }
                tokio::time::sleep(crate::slack::api::jitter(
                    super::SLACK_STEP_BACKOFF * 2u32.pow(transport_failures - 1),
                ))
                .await;
            }
            Err(CreateChannelError::Slack(e)) => {
                let _ = app.store.set_step(
                    inc.id,
                    "create_channel",
                    StepState::GaveUp,
                    Some(&e.to_string()),
                );
                return Err(e.human());
            }
        }
    }
}

fn record_channel(app: &App, inc: &mut Incident, id: &str) -> Result<(), String> {
    app.store
        .set_field(inc.id, crate::store::Field::ChannelId, id)
        .map_err(|e| ui::channel_not_saved_reason(&e))?;
    let _ = app
        .store
        .set_step(inc.id, "create_channel", StepState::Done, None);
    app.metrics.step("create_channel", "done");
    inc.channel_id = Some(id.to_string());
    app.channel_created.notify_waiters();
    Ok(())
}

/// Draw an unused name for the incident's declaration date and record it.
fn new_name(app: &App, inc: &Incident) -> Option<crate::incident::IncidentName> {
    let s = &app.settings.incidents;
    let date = inc.declared_at.with_timezone(&s.timezone).date_naive();
    for _ in 0..DRAWS_PER_NAME {
        let name = draw_name(
            date,
            &s.adjectives,
            &s.animals,
            &mut rand::rng(),
            DRAWS_PER_NAME,
            |n| app.store.name_used(n).unwrap_or(true),
        )?;
        if app.store.rename_incident(inc.id, &name).unwrap_or(false) {
            return Some(name);
        }
    }
    None
}

/// Find a channel named `name` that the bot created (it is a member of every channel it made).
async fn find_own_channel(app: &App, name: &str) -> Result<Option<String>, SlackError> {
    let bot = app.bot_user_id().map(UserId::from);
    let found = app.slack.find_own_channel(name, bot.as_ref()).await?;
    Ok(found.map(|c| c.0))
}

async fn invite(app: &App, inc: &Incident, channel: &str) {
    let bot = app.bot_user_id();
    let mut users: Vec<String> = Vec::new();
    for u in std::iter::once(&inc.reporter)
        .chain(inc.commander.iter())
        .chain(app.settings.slack.invite_users.iter())
    {
        if Some(u.as_str()) != bot && !users.contains(u) {
            users.push(u.clone());
        }
    }
    if users.is_empty() {
        return;
    }
    slack_step(app, inc.id, "invite", |_| {
        let users = users.clone();
        async move { invite_users(app, channel, &users).await }
    })
    .await;
}

/// Invite everyone; when Slack refuses the batch because of some users, invite the others one by
/// one so a single bad id never keeps the responders out.
async fn invite_users(app: &App, channel: &str, users: &[String]) -> Result<(), SlackError> {
    let benign = |e: &SlackError| e.is_code("already_in_channel") || e.is_code("cant_invite_self");
    let channel = ChannelId::from(channel);
    let all: Vec<UserId> = users.iter().map(|u| UserId::from(u.as_str())).collect();
    match app.slack.invite(&channel, &all).await {
        Ok(_) => Ok(()),
        Err(e) if benign(&e) && users.len() == 1 => Ok(()),
        Err(e @ SlackError::Api { .. }) if users.len() > 1 => {
            tracing::warn!(error = %e, "batch invite refused; inviting one by one");
            for u in &all {
                match app.slack.invite(&channel, std::slice::from_ref(u)).await {
                    Ok(_) => {}
                    Err(e) if benign(&e) => {}
                    Err(e @ SlackError::Transport { .. }) => return Err(e),
                    Err(e) => tracing::warn!(user = %u, error = %e, "could not invite user"),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn set_topic(app: &App, inc: &Incident, channel: &str) {
    let level = app.settings.incidents.severity(&inc.severity);
    let topic = ui::topic(inc, level, false);
    let channel = ChannelId::from(channel);
    slack_step(app, inc.id, "topic", |_| {
        let (channel, topic) = (&channel, &topic);
        async move { app.slack.set_topic(channel, topic).await }
    })
    .await;
}

async fn announce_in(app: &App, inc: &Incident, broadcast: &str) {
    let step = format!("announce:{broadcast}");
    let level = app.settings.incidents.severity(&inc.severity);
    let tz = app.settings.incidents.timezone;
    let render = || {
        let (t, b) = ui::announcement(inc, level, tz);
        (t, Some(b))
    };
    let ts = match post_step_outcome(app, inc, &step, broadcast, render, None).await {
        StepOutcome::Failed(Some(e)) if e.is_code("not_in_channel") => {
            // A public channel the bot has not joined yet: join and try once more.
            match app.slack.join(&ChannelId::from(broadcast)).await {
                Ok(_) => {
                    let _ = app.store.reset_step(inc.id, &step);
                    post_step(app, inc, &step, broadcast, render, None).await
                }
                Err(e) => {
                    tracing::error!(channel = broadcast, error = %e, "cannot post the announcement: invite the incd bot to this broadcast channel");
                    None
                }
            }
        }
        outcome => outcome.value(),
    };
    if let Some(ts) = ts {
        let _ = app.store.add_announcement(inc.id, broadcast, &ts);
    }
}

/// Tell the reporter where the incident lives: ephemeral where they typed the command, else a DM.
async fn reply_to_reporter(app: &App, inc: &Incident) {
    let current = app.store.incident(inc.id).ok().flatten();
    let text = ui::declared_reply(current.as_ref().unwrap_or(inc));
    slack_step(app, inc.id, "reply", |_| {
        let text = text.clone();
        async move {
            send_to_reporter(app, inc, &text).await;
            Ok(())
        }
    })
    .await;
}

/// Ephemeral through the command's `response_url` (it works in any channel, bot member or not);
/// a DM from the app when that is gone or fails.
async fn send_to_reporter(app: &App, inc: &Incident, text: &str) {
    if let Some(url) = &inc.response_url {
        match app.slack.respond(url, text).await {
            Ok(()) => return,
            Err(e) => tracing::info!(error = %e, "ephemeral reply not possible; sending a DM"),
        }
    }
    let reporter = UserId::from(inc.reporter.as_str());
    if let Err(e) = app.slack.direct_message(&reporter, text).await {
        tracing::warn!(error = %e, "could not reach the reporter");
    }
}

/// `chat.update` with a few retries on transport failures (an update is idempotent).
pub(crate) async fn update_with_retry(
    app: &App,
    channel: &str,
    ts: &str,
    text: &str,
    blocks: &Value,
) -> Result<(), SlackError> {
    let (channel, ts) = (ChannelId::from(channel), MessageTs::from(ts));
    let mut n = 0;
    loop {
        match app.slack.update(&channel, &ts, text, blocks).await {
            Ok(()) => return Ok(()),
            Err(e @ SlackError::Transport { .. }) if n + 1 < super::SLACK_STEP_ATTEMPTS => {
                n += 1;
                tracing::warn!(error = %e, "chat.update failed; retrying");
                tokio::time::sleep(crate::slack::api::jitter(
                    super::SLACK_STEP_BACKOFF * 2u32.pow(n),
                ))
                .await;
            }
            Err(e) => return Err(e),
        }
    }
}
