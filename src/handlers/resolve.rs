//! `/resolve-incident` opens the resolve form in an incident channel; its submission records the
//! resolution (the intent) before the ack, and the resolve workflow starts once the ack is
//! written.

use std::sync::Arc;

use anyhow::anyhow;
use chrono::Utc;
use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::app::App;
use crate::incident::ids::IncidentId;
use crate::slack::inbound::{SlashCommand, ViewSubmission};
use crate::slack::meta::ResolveFormMeta;
use crate::slack::socket::Handled;
use crate::slack::ui::{self, SUMMARY_ACTION, SUMMARY_BLOCK};
use crate::store::ResolveRecorded;

/// `/resolve-incident [summary]`: open the resolve form for this channel's incident.
pub fn on_command(app: &Arc<App>, c: SlashCommand, received: Instant) -> Outcome {
    let incident = app
        .store
        .incident_by_channel(c.channel_id.as_str())
        .map_err(|e| {
            Failure::new(
                anyhow!(e).context("store unavailable"),
                Some(ui::internal_error()),
            )
        })?;
    match incident {
        None => Ok(Handled::reply(Some(ui::resolve_outside_incident()))),
        Some(inc) if !inc.status.can_resolve() => {
            Ok(Handled::reply(Some(ui::resolve_already_resolved(&inc))))
        }
        Some(inc) => {
            let meta = ResolveFormMeta {
                incident: IncidentId(inc.id),
            }
            .encode();
            let text = c.text;
            let work = open_modal(app, c.trigger_id, c.response_url, received, move |_| {
                ui::resolve_modal(&inc, &text, &meta)
            });
            Ok(Handled::default().then(work))
        }
    }
}

/// The resolve form submitted: record the resolution, then start resolving.
pub fn on_submit(app: &Arc<App>, v: ViewSubmission) -> Outcome {
    let meta = match ResolveFormMeta::decode(&v.view.private_metadata) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "resolve form without incident id");
            return Ok(Handled::default());
        }
    };
    let id = meta.incident.0;
    let user = v.user.id.as_str();
    let summary = v
        .view
        .input(SUMMARY_BLOCK, SUMMARY_ACTION)
        .unwrap_or_default();
    let summary = summary.trim();
    let key = if v.view.id.is_empty() {
        format!("{user}:{id}")
    } else {
        v.view.id.clone()
    };
    match app
        .store
        .record_resolution(id, &key, user, summary, Utc::now())
    {
        Ok(ResolveRecorded::Started) => {
            let app = app.clone();
            Ok(Handled::default().then(move || app.spawn_resolve(id)))
        }
        Ok(ResolveRecorded::Duplicate) => Ok(Handled::default()),
        Ok(ResolveRecorded::AlreadyResolved) => {
            Ok(Handled::reply(Some(ui::resolve_form_already_resolved())))
        }
        Ok(ResolveRecorded::NotFound) => Ok(Handled::default()),
        Err(e) => Err(Failure::new(
            anyhow!(e).context("could not record the resolution"),
            Some(ui::resolution_not_saved()),
        )),
    }
}
