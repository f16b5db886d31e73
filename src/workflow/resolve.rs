//! The resolve workflow: rename the channel, update topic, summary and announcements, post the
//! resolution, resolve the page and update the post-mortem. All steps are independent and run at
//! once; each is recorded so a restart finishes what is left without repeating anything.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::context::Ctx;
use crate::incident::lifecycle::Transition;
use crate::incident::{ChannelId, Incident, IncidentId, MessageTs, Status};
use crate::slack::ui;
use crate::workflow::runner::{run_step, Runner, StepRun, Verdict};
use crate::workflow::steps::StepKey;
use crate::workflow::{integrations, post_step, summary, update_message};

/// Run (or resume) the resolve workflow of incident `id`.
pub async fn run(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    // Waits for a declare still in progress on this incident.
    let _guard = runner.lock_incident(id).await;
    let inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    if inc.status != Status::Resolving {
        return Ok(());
    }
    integrations::start_resolve(runner, id);
    let Some(channel) = inc.channel_id.clone() else {
        ctx.store.transition(id, Transition::Resolved).await?;
        return Ok(());
    };

    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let tz = ctx.settings.incidents.timezone;

    let announcements = async {
        let list = ctx.store.announcements(id).await?;
        let futs = list
            .iter()
            .map(|(bc, ts)| update_announcement(ctx, &inc, bc, ts));
        futures_util::future::join_all(futs)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    };
    let topic = run_step(
        ctx,
        id,
        StepKey::ResolveTopic,
        |_| {
            let topic = ui::topic(&inc, level, true);
            let channel = &channel;
            async move { ctx.slack.set_topic(channel, &topic).await }
        },
        |_| None,
    );
    // The summary renders from the store: the update Slack took is the effect.
    let summary = async {
        let mut run = StepRun::load(ctx, id, StepKey::ResolveSummary).await?;
        if run.is_done() {
            return Ok(());
        }
        loop {
            run.attempt().await?;
            match summary::refresh_checked(ctx, id).await? {
                Ok(()) => return run.done(None).await,
                Err(e) => match run.failed(&e).await? {
                    Verdict::Retried => {}
                    Verdict::GaveUp => return Ok::<(), anyhow::Error>(()),
                },
            }
        }
    };
    let impact = ctx.store.impact(id).await?;
    let post = post_step(
        ctx,
        &inc,
        StepKey::Resolution,
        &channel,
        || {
            let (t, mut b) = ui::resolution_post(&inc, tz);
            if let (Some(i), Some(blocks)) = (&impact, b.as_array_mut()) {
                blocks.push(ui::impact_section(i));
            }
            (t, Some(b))
        },
        None,
    );
    let (a, b, c, d, e) = tokio::join!(
        rename(ctx, &inc, &channel),
        topic,
        summary,
        post,
        announcements
    );
    a.context("rename")?;
    b.context("topic")?;
    c.context("summary")?;
    d.context("resolution post")?;
    e.context("announcements")?;

    ctx.store.transition(id, Transition::Resolved).await?;
    // Review reminders from now on (issue 12).
    super::review::start(
        runner,
        id,
        inc.resolved_at.unwrap_or_else(|| ctx.clock.now()),
    )
    .await?;
    // The summary's refresh state is not needed any more (a late refresh renders anew).
    ctx.summaries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    tracing::info!(incident = %inc.name, "incident resolved");
    Ok(())
}

async fn rename(ctx: &Ctx, inc: &Incident, channel: &ChannelId) -> Result<()> {
    let target = inc.name.resolved_channel_name();
    run_step(
        ctx,
        inc.id,
        StepKey::Rename,
        |_| {
            let target = target.clone();
            async move {
                match ctx.slack.rename(channel, &target).await {
                    Err(e) if e.is_code("name_taken") => {
                        // Already renamed by an earlier attempt?
                        let info = ctx.slack.info(channel).await?;
                        if info.name.as_deref() == Some(target.as_str()) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }
                    r => r,
                }
            }
        },
        |_| None,
    )
    .await?;
    Ok(())
}

async fn update_announcement(
    ctx: &Ctx,
    inc: &Incident,
    broadcast: &ChannelId,
    ts: &MessageTs,
) -> Result<()> {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let tz = ctx.settings.incidents.timezone;
    let update_key = StepKey::AnnounceUpdate(broadcast.clone());
    let update = run_step(
        ctx,
        inc.id,
        update_key.clone(),
        |_| {
            let (text, blocks) = ui::announcement(inc, level, tz);
            let key = &update_key;
            async move { update_message(ctx, key, broadcast, ts, &text, &blocks).await }
        },
        |_: &()| None,
    );
    let reply = post_step(
        ctx,
        inc,
        StepKey::AnnounceReply(broadcast.clone()),
        broadcast,
        || (ui::announcement_resolved_reply(inc), None),
        Some(ts),
    );
    let (u, r) = tokio::join!(update, reply);
    u?;
    r?;
    Ok(())
}
