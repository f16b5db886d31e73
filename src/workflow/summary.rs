//! The pinned summary: posted once, then kept in step with the store.
//!
//! Refreshes are coalesced per incident: while one `chat.update` is in flight, further requests
//! only mark the summary dirty, and the in-flight refresher renders again when it is done. A
//! render identical to the last one sent is not sent, so links that arrive together cost one
//! update, and concurrent updates can never leave an older render on top.

use std::collections::HashMap;

use anyhow::Result;

use crate::context::Ctx;
use crate::incident::{ChannelId, Incident, IncidentId, MessageTs};
use crate::slack::api::SlackError;
use crate::slack::ui;
use crate::store::Field;
use crate::workflow::steps::StepKey;
use crate::workflow::{post_step, update_message};

/// Per-incident refresh state, kept in the context.
#[derive(Debug, Default)]
pub struct SummaryState {
    /// Render last sent to Slack (post or update).
    last_sent: Option<String>,
    in_flight: bool,
    dirty: bool,
}

/// Summaries by incident id.
pub type Summaries = std::sync::Mutex<HashMap<IncidentId, SummaryState>>;

fn render(ctx: &Ctx, inc: &Incident, follow_ups: (usize, usize)) -> (String, serde_json::Value) {
    let level = ctx.settings.incidents.severity(inc.severity.as_str());
    let (text, mut blocks) = ui::summary(
        inc,
        level,
        ctx.settings.incidents.timezone,
        ctx.pager.is_some(),
        ctx.notion.is_some(),
    );
    // The count of open follow-ups, once there are any.
    let (open, total) = follow_ups;
    if total > 0 {
        if let Some(b) = blocks.as_array_mut() {
            b.push(serde_json::to_value(ui::follow_ups_line(open, total)).unwrap_or_default());
        }
    }
    (text, blocks)
}

/// `(open, total)` follow-ups of an incident.
async fn follow_up_counts(ctx: &Ctx, id: IncidentId) -> Result<(usize, usize)> {
    let all = ctx.store.follow_ups(id).await?;
    Ok((all.iter().filter(|f| f.is_open()).count(), all.len()))
}

fn key(r: &(String, serde_json::Value)) -> String {
    format!("{}{}", r.0, r.1)
}

/// Post the summary once (step `summary`) and record its ts. The caller then runs [`refresh`]
/// (beside the pin) to catch up with links that arrived while it was being posted. `None` when
/// posting failed for good.
pub async fn post(ctx: &Ctx, id: IncidentId, channel: &ChannelId) -> Result<Option<MessageTs>> {
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(None);
    };
    if let Some(ts) = inc.summary_ts.clone() {
        return Ok(Some(ts));
    }
    let rendered = render(ctx, &inc, follow_up_counts(ctx, id).await?);
    let Some(ts) = post_step(
        ctx,
        &inc,
        StepKey::Summary,
        channel,
        || (rendered.0.clone(), Some(rendered.1.clone())),
        None,
    )
    .await?
    .value() else {
        return Ok(None);
    };
    ctx.store
        .set_field(id, Field::SummaryTs, ts.as_str())
        .await?;
    ctx.summaries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id)
        .or_default()
        .last_sent = Some(key(&rendered));
    Ok(Some(ts))
}

/// Bring the posted summary in line with the store (after links arrive). A Slack failure is
/// logged (the next refresh renders the latest state again); a store failure is returned.
pub async fn refresh(ctx: &Ctx, id: IncidentId) -> Result<()> {
    if let Err(e) = refresh_checked(ctx, id).await? {
        tracing::warn!(incident_id = %id, error = %e, "could not update the pinned summary");
    }
    Ok(())
}

/// [`refresh`], telling whether Slack took the update (for a step whose effect it is). While
/// another refresh is in flight this one only asks it to render again, and counts as done.
pub async fn refresh_checked(ctx: &Ctx, id: IncidentId) -> Result<Result<(), SlackError>> {
    {
        let mut m = ctx.summaries.lock().unwrap_or_else(|p| p.into_inner());
        let st = m.entry(id).or_default();
        if st.in_flight {
            st.dirty = true;
            return Ok(Ok(()));
        }
        st.in_flight = true;
    }
    loop {
        let sent = send_latest(ctx, id).await;
        let mut m = ctx.summaries.lock().unwrap_or_else(|p| p.into_inner());
        let st = m.entry(id).or_default();
        if st.dirty && matches!(sent, Ok(Ok(()))) {
            st.dirty = false;
            continue;
        }
        st.in_flight = false;
        return sent;
    }
}

async fn send_latest(ctx: &Ctx, id: IncidentId) -> Result<Result<(), SlackError>> {
    let Some(inc) = ctx.store.incident(id).await? else {
        return Ok(Ok(()));
    };
    let (Some(channel), Some(ts)) = (inc.channel_id.clone(), inc.summary_ts.clone()) else {
        return Ok(Ok(())); // not posted yet: the poster renders the latest state
    };
    let rendered = render(ctx, &inc, follow_up_counts(ctx, id).await?);
    let k = key(&rendered);
    let unchanged = ctx
        .summaries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .and_then(|s| s.last_sent.as_ref())
        .is_some_and(|last| *last == k);
    if unchanged {
        return Ok(Ok(()));
    }
    let sent = update_message(
        ctx,
        &StepKey::Summary,
        &channel,
        &ts,
        &rendered.0,
        &rendered.1,
    )
    .await;
    if sent.is_ok() {
        ctx.summaries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default()
            .last_sent = Some(k);
    }
    Ok(sent)
}
