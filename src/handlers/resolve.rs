//! `/resolve-incident` opens the resolve form in an incident channel; its submission records the
//! resolution (the intent) before the ack, and the resolve workflow starts once the ack is
//! written.

use std::sync::Arc;

use tokio::time::Instant;

use super::{open_modal, Failure, Outcome};
use crate::slack::inbound::{SlashCommand, ViewSubmission};
use crate::slack::manifest::RESOLVE_COMMAND;
use crate::slack::meta::ResolveFormMeta;
use crate::slack::socket::Handled;
use crate::slack::ui::{self, SUMMARY_ACTION, SUMMARY_BLOCK};
use crate::store::{NewResolution, ResolveRecorded};
use crate::workflow::runner::Runner;
use crate::workflow::steps::Workflow;

/// `/resolve-incident [summary]`: open the resolve form for this channel's incident.
pub async fn on_command(app: &Arc<Runner>, c: SlashCommand, received: Instant) -> Outcome {
    let incident = app
        .ctx()
        .store
        .incident_by_channel(&c.channel_id)
        .await
        .map_err(|e| Failure::new(e.context("store unavailable"), Some(ui::internal_error())))?;
    match incident {
        None => Ok(Handled::reply(Some(ui::resolve_outside_incident()))),
        Some(inc) if inc.status == crate::incident::Status::Closed => Ok(Handled::reply(Some(
            ui::closed_refuses(&inc, RESOLVE_COMMAND),
        ))),
        Some(inc) if !inc.status.can_resolve() => {
            Ok(Handled::reply(Some(ui::resolve_already_resolved(&inc))))
        }
        Some(inc) => {
            let meta = ResolveFormMeta { incident: inc.id }.encode();
            let text = c.text;
            let work = open_modal(app, c.trigger_id, c.response_url, received, move |_| {
                ui::resolve_modal(&inc, &text, &meta)
            });
            Ok(Handled::default().then(work))
        }
    }
}

/// The resolve form submitted: record the resolution, then start resolving.
pub async fn on_submit(app: &Arc<Runner>, v: ViewSubmission) -> Outcome {
    let ctx = app.ctx();
    let meta = match ResolveFormMeta::decode(&v.view.private_metadata) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "resolve form without incident id");
            return Ok(Handled::default());
        }
    };
    let id = meta.incident;
    let user = &v.user.id;
    let summary = v
        .view
        .input(SUMMARY_BLOCK, SUMMARY_ACTION)
        .unwrap_or_default();
    let summary = summary.trim();
    let impact = v
        .view
        .input(ui::IMPACT_BLOCK, ui::IMPACT_ACTION)
        .unwrap_or_default();
    if !impact.trim().is_empty() {
        ctx.store.set_impact(id, impact.trim()).await.map_err(|e| {
            Failure::new(
                e.context("could not record the impact"),
                Some(ui::resolution_not_saved()),
            )
        })?;
    }
    let key = if v.view.id.is_empty() {
        format!("{user}:{id}")
    } else {
        v.view.id.clone()
    };
    let recorded = ctx
        .store
        .record_resolution(NewResolution {
            incident: id,
            resolve_key: key,
            resolved_by: user.clone(),
            summary: summary.to_string(),
            at: ctx.clock.now(),
        })
        .await;
    match recorded {
        Ok(ResolveRecorded::Started) => {
            let app = app.clone();
            Ok(Handled::default().then(move || app.start(id, Workflow::Resolve)))
        }
        Ok(ResolveRecorded::Duplicate) => Ok(Handled::default()),
        Ok(ResolveRecorded::AlreadyResolved) => {
            Ok(Handled::reply(Some(ui::resolve_form_already_resolved())))
        }
        Ok(ResolveRecorded::NotFound) => Ok(Handled::default()),
        Err(e) => Err(Failure::new(
            e.context("could not record the resolution"),
            Some(ui::resolution_not_saved()),
        )),
    }
}
