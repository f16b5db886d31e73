//! Timeline capture: a message of an incident channel (thread replies included) marked with the
//! timeline emoji or pinned is one timeline entry however many marks it has, stamped with the
//! message's original time, its author and its permalink; it leaves when its last mark goes.
//! incd's own pins and reactions never count.
//!
//! The entry is stored at once. A pin carries the message inline; a reaction carries only the
//! message's ts, so its text is read with `conversations.replies` (which, unlike
//! `conversations.history`, finds thread replies) and filled in afterwards. Those reads queue
//! one at a time in the Slack client, which waits out every `Retry-After` (the method is limited
//! to about one call a minute for apps outside the Marketplace), so a burst of reactions is read
//! in turn, never refused.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::incident::timeline::{message_time, EntryKind};
use crate::incident::{ChannelId, MessageTs, UserId};
use crate::slack::api::SlackError;
use crate::slack::ui;
use crate::store::Captured;
use crate::workflow::runner::Runner;

/// Attempts of a read that fails transiently (a 429 is waited out inside each attempt).
const READ_ATTEMPTS: u32 = 4;

/// The message as a pin delivers it.
#[derive(Debug, Clone)]
pub struct Inline {
    pub text: String,
    pub author: Option<UserId>,
    pub permalink: Option<String>,
}

/// A mark added to or removed from a message.
#[derive(Debug, Clone)]
pub struct Mark {
    channel: ChannelId,
    ts: MessageTs,
    /// `reaction:<user>` or `pin`.
    holder: String,
    actor: UserId,
    added: bool,
    inline: Option<Inline>,
}

impl Mark {
    pub fn added(
        channel: ChannelId,
        ts: MessageTs,
        holder: String,
        actor: UserId,
        inline: Option<Inline>,
    ) -> Mark {
        Mark {
            channel,
            ts,
            holder,
            actor,
            added: true,
            inline,
        }
    }

    pub fn removed(channel: ChannelId, ts: MessageTs, holder: String, actor: UserId) -> Mark {
        Mark {
            channel,
            ts,
            holder,
            actor,
            added: false,
            inline: None,
        }
    }
}

/// Apply one mark.
pub async fn apply(runner: &Arc<Runner>, m: Mark) -> Result<()> {
    let ctx = runner.ctx();
    if ctx.bot_user_id() == Some(&m.actor) {
        return Ok(()); // incd's own pin (its summary) or reaction
    }
    let Some(inc) = ctx.store.incident_by_channel(&m.channel).await? else {
        return Ok(());
    };
    let ts = m.ts.as_str().to_string();
    if !m.added {
        if ctx.store.capture_release(inc.id, ts, m.holder).await? == Captured::Last {
            tracing::info!(incident = %inc.name, "message taken off the timeline");
        }
        return Ok(());
    }
    if ctx.store.capture_hold(inc.id, ts.clone(), m.holder).await? != Captured::First {
        return Ok(());
    }
    let Some(at) = message_time(&m.ts) else {
        return Ok(());
    };
    let kind = |permalink: Option<String>| EntryKind::Captured {
        channel: m.channel.clone(),
        message_ts: m.ts.clone(),
        permalink,
    };
    if let Some(i) = m.inline {
        ctx.store
            .add_captured_entry(inc.id, ts, at, i.author, kind(i.permalink), i.text)
            .await?;
        tracing::info!(incident = %inc.name, "pinned message put on the timeline");
        return Ok(());
    }
    ctx.store
        .add_captured_entry(
            inc.id,
            ts.clone(),
            at,
            None,
            kind(None),
            ui::lifecycle::CAPTURE_PENDING.into(),
        )
        .await?;
    let read = with_retries(|| ctx.slack.read_message(&m.channel, &m.ts)).await;
    let msg = match read {
        Ok(Some(msg)) => msg,
        Ok(None) => {
            tracing::info!(incident = %inc.name, "marked message is gone");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(incident = %inc.name, error = %e, "could not read the marked message; the entry keeps its time and link");
            return Ok(());
        }
    };
    let permalink = with_retries(|| ctx.slack.permalink(&m.channel, &m.ts))
        .await
        .ok()
        .filter(|p| !p.is_empty());
    ctx.store
        .fill_captured_entry(inc.id, ts, at, msg.user, kind(permalink), msg.text)
        .await?;
    tracing::info!(incident = %inc.name, "marked message put on the timeline");
    Ok(())
}

async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, SlackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SlackError>>,
{
    let mut wait = Duration::from_millis(500);
    let mut n = 1;
    loop {
        match f().await {
            Err(e) if e.is_transient() && n < READ_ATTEMPTS => {
                tokio::time::sleep(crate::slack::api::jitter(wait)).await;
                wait *= 2;
                n += 1;
            }
            r => return r,
        }
    }
}
