//! The declare workflow: channel, then everything in and about it at once.
//!
//! Critical path: `conversations.create` -> `chat.postMessage` (summary) -> `pins.add`. Invites,
//! topic, announcements and the reply to the reporter run beside it; paging and the post-mortem
//! start at submit, beside channel creation (they need only the name), and run in the background
//! with their own retries, so a broken integration never holds the Slack side back.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::context::Ctx;
use crate::incident::lifecycle::Transition;
use crate::incident::naming::draw_name;
use crate::incident::{ChannelId, Incident, IncidentId, Status, UserId};
use crate::slack::api::SlackError;
use crate::slack::ui;
use crate::slack::web::{CreateChannelError, Method};
use crate::store::Field;
use crate::workflow::runner::{retry_call, run_step, Runner, StepOutcome, StepRun, Verdict};
use crate::workflow::steps::StepKey;
use crate::workflow::{integrations, post_step, summary};

/// How many names to try when Slack says `name_taken` for names we never used.
pub const NAME_ATTEMPTS: usize = 5;
/// Draws per name attempt when checking the store for collisions.
const DRAWS_PER_NAME: usize = 50;

/// Run (or resume) the declare workflow of incident `id`.
pub async fn run(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    let _guard = runner.lock_incident(id).await;
    let mut inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    if inc.status == Status::Failed {
        return Ok(());
    }
    // Paging and the post-mortem need only the incident's name (their Slack link uses the
    // channel name until the id is known): start them now, beside channel creation, once the
    // `conversations.create` request (the critical path) has left.
    if inc.channel_id.is_none() {
        let start = off_critical_path(async { integrations::start_declare(runner, id) });
        let (created, ()) = tokio::join!(create_channel(ctx, &mut inc), start);
        if let Err(reason) = created? {
            tracing::error!(incident = %inc.name, %reason, "could not create the incident channel");
            ctx.store.transition(id, Transition::DeclareFailed).await?;
            // Wake integration steps waiting for the channel: none will come.
            ctx.channel_created.notify_waiters();
            integrations::declare_failed(runner, id).await?;
            let text = ui::declare_failed_reply(&inc.title, &reason);
            if let Err(e) =
                retry_call(ctx, &StepKey::Reply, || send_to_reporter(ctx, &inc, &text)).await
            {
                tracing::warn!(error = %e, "could not tell the reporter that declaring failed");
            }
            return Ok(());
        }
    } else {
        integrations::start_declare(runner, id);
    }
    let channel = inc
        .channel_id
        .clone()
        .context("the channel id was just recorded")?;

    let summary = async {
        if let Some(ts) = summary::post(ctx, id, &channel).await? {
            // Pin, and catch up with links that arrived while the summary was being posted.
            // After an attempt whose outcome is unknown, look before pinning again.
            let pin = run_step(
                ctx,
                id,
                StepKey::Pin,
                |a| {
                    let (channel, ts) = (&channel, &ts);
                    async move {
                        if a.maybe_applied && ctx.slack.is_pinned(channel, ts).await? {
                            return Ok(());
                        }
                        ctx.slack.pin(channel, ts).await
                    }
                },
                |_| None,
            );
            let (pin, refreshed) = tokio::join!(pin, summary::refresh(ctx, id));
            pin?;
            refreshed?;
        }
        Ok::<(), anyhow::Error>(())
    };

    let announce = async {
        let futs = ctx
            .settings
            .slack
            .broadcast_channels
            .iter()
            .map(|bc| announce_in(ctx, &inc, ChannelId::from(bc.as_str())));
        futures_util::future::join_all(futs)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    };

    // The summary is on the critical path (post, then pin): polled first, and the rest wait one
    // scheduler turn so that its request is written before theirs.
    let (a, b, c, d, e) = tokio::join!(
        summary,
        off_critical_path(invite(ctx, &inc, &channel)),
        off_critical_path(set_topic(ctx, &inc, &channel)),
        off_critical_path(announce),
        off_critical_path(reply_to_reporter(ctx, &inc)),
    );
    a.context("summary")?;
    b.context("invites")?;
    c.context("topic")?;
    d.context("announcements")?;
    e.context("reply to the reporter")?;

    ctx.store.transition(id, Transition::Declared).await?;
    super::nudges::schedule(runner, id).await?;
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

/// Create `incd-<name>` and record its id. When an earlier attempt's outcome is unknown, first
/// look for the channel (it may exist), retrying that lookup like any call. On `name_taken` for
/// a channel that is not ours, draw another name. The inner `Err` carries a reason for the
/// reporter (declaring failed for good); the outer one a store failure.
async fn create_channel(ctx: &Ctx, inc: &mut Incident) -> Result<Result<(), String>> {
    let key = StepKey::CreateChannel;
    let mut run = StepRun::load(ctx, inc.id, key.clone()).await?;
    let mut names_tried = 0;
    // Set after drawing a new name: nothing can exist under it yet.
    let mut fresh_name = false;
    loop {
        let a = run.attempt().await?;
        let name = inc.name.channel_name();
        if a.maybe_applied && !fresh_name {
            let bot = ctx.bot_user_id();
            match retry_call(ctx, &key, || ctx.slack.find_own_channel(&name, bot)).await {
                Ok(Some(id)) => {
                    tracing::info!(incident = %inc.name, channel = %id, "channel was created by an earlier attempt; adopting it");
                    record_channel(ctx, inc, id).await?;
                    run.done(None).await?;
                    return Ok(Ok(()));
                }
                Ok(None) => {}
                Err(e) => match run.failed(&e).await? {
                    Verdict::Retried => continue,
                    Verdict::GaveUp => return Ok(Err(e.human())),
                },
            }
        }
        fresh_name = false;
        let result = match ctx.slack.create_channel(&name).await {
            Ok(id) => Ok(id),
            Err(CreateChannelError::NameTaken) => Err(NameTaken),
            // Created or not, the answer is unusable: look for the channel on the next attempt.
            Err(e @ CreateChannelError::NoChannelId) => Err(Other(SlackError::Transport {
                method: Method::ConversationsCreate.name().into(),
                detail: e.to_string(),
            })),
            Err(CreateChannelError::Slack(e)) => Err(Other(e)),
        };
        match result {
            Ok(id) => {
                record_channel(ctx, inc, id).await?;
                run.done(None).await?;
                return Ok(Ok(()));
            }
            Err(NameTaken) if names_tried + 1 < NAME_ATTEMPTS => {
                names_tried += 1;
                let Some(new_name) = new_name(ctx, inc).await? else {
                    run.failed(&name_taken()).await?;
                    return Ok(Err(ui::no_name_left_reason()));
                };
                tracing::warn!(old = %inc.name, new = %new_name, "channel name taken in Slack; drawing another");
                inc.name = new_name;
                fresh_name = true;
            }
            Err(NameTaken) => {
                run.failed(&name_taken()).await?;
                return Ok(Err(ui::names_taken_reason(names_tried + 1)));
            }
            Err(Other(e)) => match run.failed(&e).await? {
                Verdict::Retried => {}
                Verdict::GaveUp => return Ok(Err(e.human())),
            },
        }
    }
}

/// How a `conversations.create` attempt failed.
enum CreateFailed {
    NameTaken,
    Other(SlackError),
}
use CreateFailed::{NameTaken, Other};

/// `name_taken` as the permanent error a step records.
fn name_taken() -> SlackError {
    SlackError::Api {
        method: Method::ConversationsCreate.name().into(),
        code: "name_taken".into(),
        needed: None,
        response: serde_json::Value::Null,
    }
}

async fn record_channel(ctx: &Ctx, inc: &mut Incident, id: ChannelId) -> Result<()> {
    ctx.store
        .set_field(inc.id, Field::ChannelId, id.as_str())
        .await
        .context("recording the channel id")?;
    inc.channel_id = Some(id);
    ctx.channel_created.notify_waiters();
    Ok(())
}

/// Draw an unused name for the incident's declaration date and record it.
async fn new_name(ctx: &Ctx, inc: &Incident) -> Result<Option<crate::incident::IncidentName>> {
    let s = &ctx.settings.incidents;
    let date = inc.declared_at.with_timezone(&s.timezone).date_naive();
    for _ in 0..DRAWS_PER_NAME {
        let used = ctx
            .store
            .names_used_on(&date.format("%Y%m%d").to_string())
            .await?;
        let Some(name) = draw_name(
            date,
            &s.adjectives,
            &s.animals,
            &mut rand::rng(),
            DRAWS_PER_NAME,
            |n| used.contains(n.as_str()),
        ) else {
            return Ok(None);
        };
        if ctx.store.rename_incident(inc.id, &name).await? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

async fn invite(ctx: &Ctx, inc: &Incident, channel: &ChannelId) -> Result<()> {
    let bot = ctx.bot_user_id();
    let configured = ctx
        .settings
        .slack
        .invite_users
        .iter()
        .map(|u| UserId::from(u.as_str()))
        .collect::<Vec<_>>();
    let mut users: Vec<UserId> = Vec::new();
    for u in std::iter::once(&inc.reporter)
        .chain(inc.commander.iter())
        .chain(configured.iter())
    {
        if Some(u) != bot && !users.contains(u) {
            users.push(u.clone());
        }
    }
    if users.is_empty() {
        return Ok(());
    }
    run_step(
        ctx,
        inc.id,
        StepKey::Invite,
        |a| {
            let users = &users;
            async move {
                if !a.maybe_applied {
                    return invite_users(ctx, channel, users).await;
                }
                // An earlier invite may have gone through: invite only who is still missing.
                let members = ctx.slack.members(channel).await?;
                let missing: Vec<UserId> = users
                    .iter()
                    .filter(|u| !members.contains(u))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    return Ok(());
                }
                invite_users(ctx, channel, &missing).await
            }
        },
        |_| None,
    )
    .await?;
    Ok(())
}

/// Invite everyone; when Slack refuses the batch because of some users, invite the others one by
/// one so a single bad id never keeps the responders out.
async fn invite_users(ctx: &Ctx, channel: &ChannelId, users: &[UserId]) -> Result<(), SlackError> {
    let benign = |e: &SlackError| e.is_code("already_in_channel") || e.is_code("cant_invite_self");
    match ctx.slack.invite(channel, users).await {
        Ok(_) => Ok(()),
        Err(e) if benign(&e) && users.len() == 1 => Ok(()),
        Err(e) if !e.is_transient() && users.len() > 1 => {
            tracing::warn!(error = %e, "batch invite refused; inviting one by one");
            for u in users {
                match ctx.slack.invite(channel, std::slice::from_ref(u)).await {
                    Ok(_) => {}
                    Err(e) if benign(&e) => {}
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => tracing::warn!(user = %u, error = %e, "could not invite user"),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn set_topic(ctx: &Ctx, inc: &Incident, channel: &ChannelId) -> Result<()> {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let topic = ui::topic(inc, level, false);
    run_step(
        ctx,
        inc.id,
        StepKey::Topic,
        |_| ctx.slack.set_topic(channel, &topic),
        |_| None,
    )
    .await?;
    Ok(())
}

async fn announce_in(ctx: &Ctx, inc: &Incident, broadcast: ChannelId) -> Result<()> {
    let step = StepKey::Announce(broadcast.clone());
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let tz = ctx.settings.incidents.timezone;
    let render = || {
        let (t, b) = ui::announcement(inc, level, tz);
        (t, Some(b))
    };
    let ts = match post_step(ctx, inc, step.clone(), &broadcast, render, None).await? {
        StepOutcome::Failed(e) if e.is_code("not_in_channel") => {
            // A public channel the bot has not joined yet: join and try once more.
            let joined = retry_call(ctx, &step, || ctx.slack.join(&broadcast)).await;
            match joined {
                Ok(_) => {
                    ctx.store.reset_step(inc.id, &step.to_string()).await?;
                    post_step(ctx, inc, step, &broadcast, render, None)
                        .await?
                        .value()
                }
                Err(e) => {
                    tracing::error!(channel = %broadcast, error = %e, "cannot post the announcement: invite the incd bot to this broadcast channel");
                    None
                }
            }
        }
        outcome => outcome.value(),
    };
    if let Some(ts) = ts {
        ctx.store.add_announcement(inc.id, &broadcast, &ts).await?;
    }
    Ok(())
}

/// Tell the reporter where the incident lives: ephemeral where they typed the command, else a DM.
async fn reply_to_reporter(ctx: &Ctx, inc: &Incident) -> Result<()> {
    let current = ctx.store.incident(inc.id).await?;
    let text = ui::declared_reply(current.as_ref().unwrap_or(inc));
    run_step(
        ctx,
        inc.id,
        StepKey::Reply,
        |_| send_to_reporter(ctx, inc, &text),
        |_| None,
    )
    .await?;
    Ok(())
}

/// Ephemeral through the command's `response_url` (it works in any channel, bot member or not);
/// a DM from the app when that is gone or fails. An error only when neither got through.
async fn send_to_reporter(ctx: &Ctx, inc: &Incident, text: &str) -> Result<(), SlackError> {
    if let Some(url) = &inc.response_url {
        match ctx.slack.respond(url, text).await {
            Ok(()) => return Ok(()),
            Err(e) => tracing::info!(error = %e, "ephemeral reply not possible; sending a DM"),
        }
    }
    ctx.slack.direct_message(&inc.reporter, text).await
}
