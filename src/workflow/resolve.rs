//! The resolve workflow: rename the channel, update topic, summary and announcements, post the
//! resolution, resolve the page and update the post-mortem. All steps are independent and run at
//! once; each is recorded so a restart finishes what is left without repeating anything.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::app::App;
use crate::incident::ids::ChannelId;
use crate::incident::{Incident, Status};
use crate::slack::ui;
use crate::workflow::declare::update_with_retry;
use crate::workflow::{integrations, post_step, slack_step, summary};

/// Run (or resume) the resolve workflow of incident `id`.
pub async fn run(app_arc: Arc<App>, id: i64) -> Result<()> {
    let app: &App = &app_arc;
    // Waits for a declare still in progress on this incident.
    let _guard = app.lock_incident(id).await;
    let inc = app
        .store
        .incident(id)?
        .context("incident disappeared from the store")?;
    if inc.status != Status::Resolving {
        return Ok(());
    }
    let Some(channel) = inc.channel_id.clone() else {
        app.store.set_status(id, Status::Resolved)?;
        return Ok(());
    };
    integrations::start_resolve(&app_arc, &inc);

    let level = app.settings.incidents.severity(&inc.severity);
    let tz = app.settings.incidents.timezone;

    let announcements = async {
        let list = app.store.announcements(id).unwrap_or_default();
        let futs = list
            .iter()
            .map(|(bc, ts)| update_announcement(app, &inc, bc, ts));
        futures_util::future::join_all(futs).await;
    };
    let channel_id = ChannelId::from(channel.as_str());
    let topic = slack_step(app, id, "resolve_topic", |_| {
        let topic = ui::topic(&inc, level, true);
        let (app, channel) = (&app, &channel_id);
        async move { app.slack.set_topic(channel, &topic).await }
    });
    let summary = slack_step(app, id, "resolve_summary", |_| {
        let app = &app;
        async move {
            summary::refresh(app, id).await;
            Ok(())
        }
    });
    let post = post_step(
        app,
        &inc,
        "resolution",
        &channel,
        || {
            let (t, b) = ui::resolution_post(&inc, tz);
            (t, Some(b))
        },
        None,
    );
    tokio::join!(
        rename(app, &inc, &channel),
        topic,
        summary,
        post,
        announcements
    );

    app.store.set_status(id, Status::Resolved)?;
    tracing::info!(incident = %inc.name, "incident resolved");
    Ok(())
}

async fn rename(app: &App, inc: &Incident, channel: &str) {
    let target = inc.name.resolved_channel_name();
    slack_step(app, inc.id, "rename", |_| {
        let target = target.clone();
        async move {
            let channel = ChannelId::from(channel);
            match app.slack.rename(&channel, &target).await {
                Err(e) if e.is_code("name_taken") => {
                    // Already renamed by an earlier attempt?
                    let info = app.slack.info(&channel).await?;
                    if info.name.as_deref() == Some(target.as_str()) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
                r => r,
            }
        }
    })
    .await;
}

async fn update_announcement(app: &App, inc: &Incident, broadcast: &str, ts: &str) {
    let level = app.settings.incidents.severity(&inc.severity);
    let tz = app.settings.incidents.timezone;
    let update_step = format!("announce_update:{broadcast}");
    let reply_step = format!("announce_reply:{broadcast}");
    let update = slack_step(app, inc.id, &update_step, |_| {
        let (text, blocks) = ui::announcement(inc, level, tz);
        async move { update_with_retry(app, broadcast, ts, &text, &blocks).await }
    });
    let reply = post_step(
        app,
        inc,
        &reply_step,
        broadcast,
        || (ui::announcement_resolved_reply(inc), None),
        Some(ts),
    );
    tokio::join!(update, reply);
}
