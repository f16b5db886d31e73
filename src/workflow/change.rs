//! Showing one recorded change (a status update, a severity change, a role assignment)
//! everywhere the incident appears: a post in its channel, the topic when a value it shows
//! changed, the pinned summary, every announcement edited in place with a reply in its thread,
//! the new role holder's direct message (an ephemeral message in the channel when the DM cannot
//! be delivered), and a page when a raised severity pages and nobody was paged yet. The change
//! and its timeline entry were recorded before the ack; each part here is a step of its own, so
//! a restart finishes what is left and repeats nothing.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::context::Ctx;
use crate::incident::roles::Role;
use crate::incident::{ChannelId, Incident, MessageTs, Status};
use crate::slack::ui;
use crate::store::{Applied, ChangeRecord};
use crate::workflow::runner::{run_step, Runner, StepRun, Verdict};
use crate::workflow::steps::{ChangePart, StepKey};
use crate::workflow::{integrations, post_step, summary, update_message};

/// Run (or resume) the workflow that shows change `seq` of incident `id`.
pub async fn run(runner: &Arc<Runner>, id: crate::incident::IncidentId, seq: u32) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    // Changes of one incident are shown one after the other, and never beside a resolve.
    let _guard = runner.lock_incident(id).await;
    let Some(change) = ctx.store.change(seq).await? else {
        return Ok(());
    };
    let inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    let Some(channel) = inc.channel_id.clone() else {
        return Ok(());
    };
    if matches!(
        change.applied,
        Applied::Status { .. } | Applied::Severity { .. }
    ) {
        // Each update resets the nudge clock; a severity change changes its interval.
        super::nudges::schedule(runner, id).await?;
    }
    let settings = &ctx.settings.incidents;
    let level_of = |s: &str| settings.severity(s);
    let key = |p: ChangePart| StepKey::Change(seq, p);
    let open = inc.status == Status::Open;

    let post = post_step(
        ctx,
        &inc,
        key(ChangePart::Post),
        &channel,
        || {
            (
                ui::lifecycle::change_post(&change.applied, &change.by, &level_of),
                None,
            )
        },
        None,
    );
    let topic = async {
        if !open || !shown_in_topic(&change.applied) {
            return Ok(());
        }
        let level = settings.severity(inc.severity.as_str());
        let text = ui::topic(&inc, level, false);
        run_step(
            ctx,
            id,
            key(ChangePart::Topic),
            |_| {
                let (channel, text) = (&channel, &text);
                async move { ctx.slack.set_topic(channel, text).await }
            },
            |_| None,
        )
        .await
        .map(|_| ())
    };
    let summary = async {
        let mut run = StepRun::load(ctx, id, key(ChangePart::Summary)).await?;
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
    let announcements = async {
        if !open || !shown_in_announcements(&change.applied) {
            return Ok(());
        }
        let list = ctx.store.announcements(id).await?;
        let futs = list
            .iter()
            .map(|(bc, ts)| announce(ctx, &inc, &change, bc, ts));
        futures_util::future::join_all(futs)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    };
    let dm = direct_message(ctx, &inc, &change, &channel);
    let page = async {
        if let Applied::Severity { to, .. } = &change.applied {
            let level = settings.severity(to);
            if open && inc.severity.as_str() == to && inc.severity.pages(level) {
                integrations::page_if_never_paged(runner, id).await?;
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    let (a, b, c, d, e, f) = tokio::join!(post, topic, summary, announcements, dm, page);
    a.context("change post")?;
    b.context("topic")?;
    c.context("summary")?;
    d.context("announcements")?;
    e.context("role holder's message")?;
    f.context("page")?;
    tracing::info!(incident = %inc.name, change = seq, "change shown");
    Ok(())
}

/// Whether the topic shows what changed: the status, the severity, the commander.
fn shown_in_topic(a: &Applied) -> bool {
    match a {
        Applied::Status {
            status, previous, ..
        } => status != previous,
        Applied::Severity { .. } => true,
        Applied::Role { role, .. } => *role == Role::Commander,
    }
}

/// Whether announcements show it: status and severity, and who commands.
fn shown_in_announcements(a: &Applied) -> bool {
    match a {
        Applied::Status { .. } | Applied::Severity { .. } => true,
        Applied::Role { role, .. } => *role == Role::Commander,
    }
}

async fn announce(
    ctx: &Ctx,
    inc: &Incident,
    change: &ChangeRecord,
    broadcast: &ChannelId,
    ts: &MessageTs,
) -> Result<()> {
    let settings = &ctx.settings.incidents;
    let level_of = |s: &str| settings.severity(s);
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let tz = ctx.settings.incidents.timezone;
    let edit_key = StepKey::Change(change.seq, ChangePart::AnnounceEdit(broadcast.clone()));
    let edit = run_step(
        ctx,
        inc.id,
        edit_key.clone(),
        |_| {
            let (text, blocks) = ui::announcement(inc, level, tz);
            let key = &edit_key;
            async move { update_message(ctx, key, broadcast, ts, &text, &blocks).await }
        },
        |_: &()| None,
    );
    let reply = post_step(
        ctx,
        inc,
        StepKey::Change(change.seq, ChangePart::AnnounceReply(broadcast.clone())),
        broadcast,
        || {
            (
                ui::lifecycle::change_reply(&change.applied, &level_of),
                None,
            )
        },
        Some(ts),
    );
    let (u, r) = tokio::join!(edit, reply);
    u?;
    r?;
    Ok(())
}

/// The new role holder's direct message with the role's duties; when Slack will not deliver it
/// (the messages tab is off, the user cannot be written to), the same text as an ephemeral
/// message in the incident channel (which reaches channel members only).
async fn direct_message(
    ctx: &Ctx,
    inc: &Incident,
    change: &ChangeRecord,
    channel: &ChannelId,
) -> Result<()> {
    let Applied::Role {
        role,
        new: Some(holder),
        handover,
        ..
    } = &change.applied
    else {
        return Ok(());
    };
    let guide = ctx.settings.roles.get(*role);
    let text = ui::lifecycle::role_dm(inc, *role, guide, *handover);
    run_step(
        ctx,
        inc.id,
        StepKey::Change(change.seq, ChangePart::Dm),
        |_| {
            let text = &text;
            async move {
                match ctx.slack.direct_message(holder, text).await {
                    Err(e) if !e.is_transient() => {
                        tracing::info!(error = %e, "direct message refused; telling the holder in the channel");
                        ctx.slack.post_ephemeral(channel, holder, text).await
                    }
                    r => r,
                }
            }
        },
        |_: &()| None,
    )
    .await
    .map(|_| ())
}
