//! The pinned summary: posted once, then kept in step with the store.
//!
//! Refreshes are coalesced per incident: while one `chat.update` is in flight, further requests
//! only mark the summary dirty, and the in-flight refresher renders again when it is done. A
//! render identical to the last one sent is not sent, so links that arrive together cost one
//! update, and concurrent updates can never leave an older render on top.

use std::collections::HashMap;

use crate::app::App;
use crate::incident::Incident;
use crate::slack::ui;
use crate::workflow::declare::update_with_retry;
use crate::workflow::post_step;

/// Per-incident refresh state, kept in [`App`].
#[derive(Debug, Default)]
pub struct SummaryState {
    /// Render last sent to Slack (post or update).
    last_sent: Option<String>,
    in_flight: bool,
    dirty: bool,
}

/// Summaries by incident id.
pub type Summaries = std::sync::Mutex<HashMap<i64, SummaryState>>;

fn render(app: &App, inc: &Incident) -> (String, serde_json::Value) {
    let level = app.settings.incidents.severity(&inc.severity);
    ui::summary(
        inc,
        level,
        app.settings.incidents.timezone,
        app.pager.is_some(),
        app.notion.is_some(),
    )
}

fn key(r: &(String, serde_json::Value)) -> String {
    format!("{}{}", r.0, r.1)
}

/// Post the summary once (step `summary`) and record its ts. The caller then runs [`refresh`]
/// (beside the pin) to catch up with links that arrived while it was being posted.
pub async fn post(app: &App, id: i64, channel: &str) -> Option<String> {
    let inc = app.store.incident(id).ok().flatten()?;
    if let Some(ts) = inc.summary_ts.clone() {
        return Some(ts);
    }
    let rendered = render(app, &inc);
    let ts = post_step(
        app,
        &inc,
        "summary",
        channel,
        || (rendered.0.clone(), Some(rendered.1.clone())),
        None,
    )
    .await?;
    let _ = app.store.set_field(id, crate::store::Field::SummaryTs, &ts);
    app.summaries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id)
        .or_default()
        .last_sent = Some(key(&rendered));
    Some(ts)
}

/// Bring the posted summary in line with the store (after links arrive, or on resolve).
pub async fn refresh(app: &App, id: i64) {
    {
        let mut m = app.summaries.lock().unwrap_or_else(|p| p.into_inner());
        let st = m.entry(id).or_default();
        if st.in_flight {
            st.dirty = true;
            return;
        }
        st.in_flight = true;
    }
    loop {
        send_latest(app, id).await;
        let mut m = app.summaries.lock().unwrap_or_else(|p| p.into_inner());
        let st = m.entry(id).or_default();
        if st.dirty {
            st.dirty = false;
            continue;
        }
        st.in_flight = false;
        return;
    }
}

async fn send_latest(app: &App, id: i64) {
    let Ok(Some(inc)) = app.store.incident(id) else {
        return;
    };
    let (Some(channel), Some(ts)) = (inc.channel_id.clone(), inc.summary_ts.clone()) else {
        return; // not posted yet: the poster renders the latest state
    };
    let rendered = render(app, &inc);
    let k = key(&rendered);
    let unchanged = app
        .summaries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .and_then(|s| s.last_sent.as_ref())
        .is_some_and(|last| *last == k);
    if unchanged {
        return;
    }
    match update_with_retry(app, &channel, &ts, &rendered.0, &rendered.1).await {
        Ok(()) => {
            app.summaries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id)
                .or_default()
                .last_sent = Some(k);
        }
        Err(e) => {
            tracing::warn!(incident = %inc.name, error = %e, "could not update the pinned summary")
        }
    }
}
