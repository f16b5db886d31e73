//! Close and reopen.
//!
//! Close (after the review, the incident already `closed` in the store): a post in the channel
//! (`close_post`), the pinned summary, the topic and every announcement say closed (idempotent
//! updates), then the channel is archived (`archive`). When Slack refuses to archive (only admins
//! may, in some workspaces) the channel is told to ask an admin (`archive_refused`); the incident
//! is closed either way. The page was resolved when the incident was resolved (a reopened
//! incident is resolved again before it can be closed).
//!
//! Reopen (the incident back to `open` in the store, its resolve and paging steps forgotten):
//! the channel loses its `-resolved` suffix, topic, summary and announcements say
//! investigating, a post says so (`reopen_post`), and the page is triggered again with the same
//! dedup key.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::runner::{retry_call, run_step, Runner, StepOutcome};
use super::steps::StepKey;
use super::{integrations, post_step, summary, update_message};
use crate::context::Ctx;
use crate::incident::{Incident, IncidentId, Status};
use crate::slack::ui;
use crate::slack::web::Archived;

/// Run (or resume) the close workflow.
pub async fn run_close(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    let _guard = runner.lock_incident(id).await;
    let inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    if inc.status != Status::Closed {
        return Ok(());
    }
    let Some(channel) = inc.channel_id.clone() else {
        return Ok(());
    };
    let closing = ctx
        .store
        .closing(id)
        .await?
        .context("a closed incident without its closing")?;
    let (text, blocks) = ui::close_post(&closing.by, closing.review_date, &closing.notes);
    if let StepOutcome::Failed(e) = post_step(
        ctx,
        &inc,
        StepKey::ClosePost,
        &channel,
        || (text.clone(), Some(blocks.clone())),
        None,
    )
    .await?
    {
        tracing::warn!(incident = %inc.name, error = %e, "could not post the close");
    }
    say_status_everywhere(ctx, &inc).await?;

    let archived = run_step(
        ctx,
        id,
        StepKey::Archive,
        |_| ctx.slack.archive(&channel),
        |a| {
            Some(match a {
                Archived::Archived => "archived".to_string(),
                Archived::Refused(code) => code.clone(),
            })
        },
    )
    .await?;
    let refused = match archived {
        StepOutcome::Ran(Archived::Refused(code)) => Some(code),
        StepOutcome::AlreadyDone(Some(code)) if code != "archived" => Some(code),
        StepOutcome::Failed(e) => {
            tracing::warn!(incident = %inc.name, error = %e, "could not archive the channel");
            e.code().map(str::to_string)
        }
        _ => None,
    };
    if let Some(code) = refused {
        tracing::info!(incident = %inc.name, code, "Slack refused to archive; asking for an admin");
        let text = ui::archive_refused(&code);
        post_step(
            ctx,
            &inc,
            StepKey::ArchiveRefused,
            &channel,
            || (text.clone(), None),
            None,
        )
        .await?;
    }
    tracing::info!(incident = %inc.name, "incident closed");
    Ok(())
}

/// Run (or resume) the reopen workflow.
pub async fn run_reopen(runner: &Arc<Runner>, id: IncidentId) -> Result<()> {
    let ctx: &Ctx = runner.ctx();
    let _guard = runner.lock_incident(id).await;
    let inc = ctx
        .store
        .incident(id)
        .await?
        .context("incident disappeared from the store")?;
    if inc.status != Status::Open {
        // Resolved again (or closed) since: the later workflow says what is true now.
        return Ok(());
    }
    let Some(channel) = inc.channel_id.clone() else {
        return Ok(());
    };
    super::review::cancel(runner, id).await?;
    integrations::page_again(runner, id);
    let target = inc.name.channel_name();
    let renamed = retry_call(ctx, &StepKey::Rename, || async {
        match ctx.slack.rename(&channel, &target).await {
            Err(e) if e.is_code("name_taken") => {
                let info = ctx.slack.info(&channel).await?;
                if info.name.as_deref() == Some(target.as_str()) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    })
    .await;
    if let Err(e) = renamed {
        tracing::warn!(incident = %inc.name, error = %e, "could not rename the channel back");
    }
    say_status_everywhere(ctx, &inc).await?;
    let text = ui::reopened_post();
    post_step(
        ctx,
        &inc,
        StepKey::ReopenPost,
        &channel,
        || (text.clone(), None),
        None,
    )
    .await?;
    tracing::info!(incident = %inc.name, "incident reopened");
    Ok(())
}

/// Topic, pinned summary and every announcement rendered from the incident's current status.
/// Each is an idempotent update, retried like any call; a Slack failure is logged.
async fn say_status_everywhere(ctx: &Ctx, inc: &Incident) -> Result<()> {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let tz = ctx.settings.incidents.timezone;
    if let Some(channel) = &inc.channel_id {
        let topic = ui::topic(inc, level, inc.status != Status::Open);
        if let Err(e) = retry_call(ctx, &StepKey::ResolveTopic, || {
            ctx.slack.set_topic(channel, &topic)
        })
        .await
        {
            tracing::warn!(incident = %inc.name, error = %e, "could not update the topic");
        }
    }
    summary::refresh(ctx, inc.id).await?;
    let (text, blocks) = ui::announcement(inc, level, tz);
    for (bc, ts) in ctx.store.announcements(inc.id).await? {
        let key = StepKey::AnnounceUpdate(bc.clone());
        if let Err(e) = update_message(ctx, &key, &bc, &ts, &text, &blocks).await {
            tracing::warn!(incident = %inc.name, channel = %bc, error = %e, "could not update an announcement");
        }
    }
    Ok(())
}
