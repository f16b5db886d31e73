//! Announcing follow-ups: for each one recorded (the intent, with its pending steps), a post in
//! the incident channel (`follow_up_post:<n>`, found again by its marker after an unknown
//! outcome) and a DM to its owner with *Done* / *Won't do* (`follow_up_dm:<n>`), then the pinned
//! summary's count. Only the pending steps run, so a resume never posts twice.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::runner::{run_step, Runner, StepOutcome};
use super::steps::StepKey;
use super::{post_once, post_step, Post};
use crate::incident::follow_up::FollowUpRef;
use crate::incident::{ChannelId, IncidentId};
use crate::slack::ui;

/// The steps a new follow-up `n` leaves pending (as the store records them).
pub fn pending_steps(n: u32, has_owner: bool) -> Vec<String> {
    let mut steps = vec![StepKey::FollowUpPost(n).to_string()];
    if has_owner {
        steps.push(StepKey::FollowUpDm(n).to_string());
    }
    steps
}

/// Run the pending steps of follow-up `number` of the incident.
pub async fn run(runner: &Arc<Runner>, id: IncidentId, number: u32) -> Result<()> {
    let ctx = runner.ctx();
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(());
    };
    let mut pending: Vec<StepKey> = Vec::new();
    for s in ctx.store.pending_steps(id).await? {
        let key: StepKey = s.parse()?;
        if matches!(key, StepKey::FollowUpPost(n) | StepKey::FollowUpDm(n) if n == number) {
            pending.push(key);
        }
    }
    let mut changed = false;
    for key in pending {
        let n = match key {
            StepKey::FollowUpPost(n) | StepKey::FollowUpDm(n) => n,
            _ => continue,
        };
        let Some(f) = ctx.store.follow_up(id, FollowUpRef(n)).await? else {
            tracing::warn!(incident = %inc.name, step = %key, "follow-up step without its follow-up");
            continue;
        };
        match key {
            StepKey::FollowUpPost(_) => {
                let Some(channel) = inc.channel_id.clone() else {
                    continue;
                };
                let (text, blocks) = ui::follow_up_post(&f);
                let out = post_step(
                    ctx,
                    &inc,
                    key.clone(),
                    &channel,
                    || (text.clone(), Some(blocks.clone())),
                    None,
                )
                .await?;
                if let StepOutcome::Failed(e) = out {
                    tracing::warn!(incident = %inc.name, step = %key, error = %e, "could not post the follow-up");
                }
                changed = true;
            }
            StepKey::FollowUpDm(_) => {
                let Some(owner) = f.owner.clone() else {
                    continue;
                };
                // A user id as the channel posts in the app's DM with them. That DM is not
                // searched after an unknown outcome (it would need im:history): a crash between
                // Slack taking the DM and incd recording it can repeat that one DM.
                let to = ChannelId::from(owner.as_str());
                let (text, blocks) = ui::follow_up_dm(&inc, &f);
                let out = run_step(
                    ctx,
                    id,
                    key.clone(),
                    |_| {
                        post_once(
                            ctx,
                            &inc,
                            &key,
                            Post {
                                channel: &to,
                                text: text.clone(),
                                blocks: Some(blocks.clone()),
                                thread_ts: None,
                            },
                        )
                    },
                    |ts| Some(ts.to_string()),
                )
                .await
                .context("sending the follow-up to its owner")?;
                if let StepOutcome::Failed(e) = out {
                    tracing::warn!(incident = %inc.name, step = %key, error = %e, "could not send the follow-up to its owner");
                }
            }
            _ => {}
        }
    }
    if changed {
        super::summary::refresh(ctx, id).await?;
    }
    Ok(())
}
